//! Clock offsets of peers, measured over the control channel.
//!
//! Every node answers a clock ping (kind [`CLOCK_PING`]) with its wall
//! clock. [`Node::clock_offsets`] pings every alive member and estimates
//! each offset NTP-style: `peer_time - (sent + received) / 2`, with the round
//! trip as the error bound. `foundation doctor --http` reports them.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::Node;
use crate::id::NodeId;
use crate::membership::MemberState;
use crate::transport::{Channel, InboxFilter};

/// Message kind of a clock ping (the reserved range 0xFF00.. is Foundation's own).
pub const CLOCK_PING: u16 = *foundation_proto::kinds::CLOCK.start();
/// Message kind of a clock pong.
pub const CLOCK_PONG: u16 = CLOCK_PING + 1;

/// One peer's clock offset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockOffset {
    /// The peer.
    pub node: NodeId,
    /// Its name.
    pub name: String,
    /// Its clock minus ours, in milliseconds (positive: it is ahead).
    pub offset_ms: f64,
    /// Round trip of the measurement, in milliseconds (the error bound).
    pub rtt_ms: f64,
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// Answers clock pings until the node stops.
pub(crate) async fn responder(node: Node) {
    let mut inbox = node.subscribe(InboxFilter {
        channel: Some(Channel::Control),
        kinds: CLOCK_PING..=CLOCK_PING,
    });
    while let Some(msg) = inbox.recv().await {
        if let Some(reply) = answer(&msg.payload, &[]) {
            let _ = node
                .send(msg.from, Channel::Control, CLOCK_PONG, reply)
                .await;
        }
    }
}

/// The reply to an ask: the asker's clock (its 8-byte payload) echoed,
/// then ours, then `body`. `None` for an ask of another size.
pub(crate) fn answer(ask: &[u8], body: &[u8]) -> Option<Bytes> {
    if ask.len() != 8 {
        return None;
    }
    let mut reply = Vec::with_capacity(16 + body.len());
    reply.extend_from_slice(ask);
    reply.extend_from_slice(&now_ms().to_be_bytes());
    reply.extend_from_slice(body);
    Some(Bytes::from(reply))
}

/// One peer's reply to [`Node::ask_all`].
#[derive(Debug)]
pub(crate) struct Answer {
    /// The clock offset its reply gave.
    pub(crate) clock: ClockOffset,
    /// What it sent after the clocks.
    pub(crate) body: Bytes,
}

impl Node {
    /// Pings every alive member on the control channel and returns the
    /// clock offsets of those that answered within `timeout`.
    pub async fn clock_offsets(&self, timeout: Duration) -> Vec<ClockOffset> {
        self.ask_all(Channel::Control, (CLOCK_PING, CLOCK_PONG), timeout)
            .await
            .into_iter()
            .map(|a| a.clock)
            .collect()
    }

    /// Sends kind `ask.0` on `channel` to every alive member, carrying our
    /// wall clock, and gathers the replies of kind `ask.1` (made by
    /// [`answer`]) that come within `timeout`. Each reply gives the peer's
    /// clock offset NTP-style.
    pub(crate) async fn ask_all(
        &self,
        channel: Channel,
        (ask, reply): (u16, u16),
        timeout: Duration,
    ) -> Vec<Answer> {
        let mut inbox = self.subscribe(InboxFilter {
            channel: Some(channel),
            kinds: reply..=reply,
        });
        let peers: HashMap<NodeId, String> = self
            .members()
            .into_iter()
            .filter(|m| m.id != self.id() && m.state == MemberState::Alive)
            .map(|m| (m.id, m.name))
            .collect();
        let started = Instant::now();
        let mut sent: HashMap<NodeId, f64> = HashMap::new();
        for id in peers.keys() {
            let t0 = now_ms();
            let ping = Bytes::from(t0.to_be_bytes().to_vec());
            if self.send(*id, channel, ask, ping).await.is_ok() {
                sent.insert(*id, t0);
            }
        }
        let mut out = Vec::new();
        while out.len() < sent.len() {
            let Some(left) = timeout.checked_sub(started.elapsed()) else {
                break;
            };
            let Ok(Some(msg)) = tokio::time::timeout(left, inbox.recv()).await else {
                break;
            };
            let t3 = now_ms();
            if msg.payload.len() < 16 {
                continue;
            }
            let mut a = [0u8; 8];
            let mut b = [0u8; 8];
            a.copy_from_slice(&msg.payload[..8]);
            b.copy_from_slice(&msg.payload[8..16]);
            let (t0, t1) = (f64::from_be_bytes(a), f64::from_be_bytes(b));
            // Only the answer to this round's ask, once (NaN matches nothing).
            if sent.get(&msg.from) != Some(&t0) {
                continue;
            }
            sent.insert(msg.from, f64::NAN);
            out.push(Answer {
                clock: ClockOffset {
                    node: msg.from,
                    name: peers.get(&msg.from).cloned().unwrap_or_default(),
                    offset_ms: t1 - (t0 + t3) / 2.0,
                    rtt_ms: t3 - t0,
                },
                body: msg.payload.slice(16..),
            });
        }
        out
    }
}
