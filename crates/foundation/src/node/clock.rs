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
        let mut reply = msg.payload.to_vec();
        reply.extend_from_slice(&now_ms().to_be_bytes());
        let _ = node
            .send(msg.from, Channel::Control, CLOCK_PONG, Bytes::from(reply))
            .await;
    }
}

impl Node {
    /// Pings every alive member on the control channel and returns the
    /// clock offsets of those that answered within `timeout`.
    pub async fn clock_offsets(&self, timeout: Duration) -> Vec<ClockOffset> {
        let mut inbox = self.subscribe(InboxFilter {
            channel: Some(Channel::Control),
            kinds: CLOCK_PONG..=CLOCK_PONG,
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
            if self
                .send(
                    *id,
                    Channel::Control,
                    CLOCK_PING,
                    Bytes::from(t0.to_be_bytes().to_vec()),
                )
                .await
                .is_ok()
            {
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
            if msg.payload.len() != 16 {
                continue;
            }
            let mut a = [0u8; 8];
            let mut b = [0u8; 8];
            a.copy_from_slice(&msg.payload[..8]);
            b.copy_from_slice(&msg.payload[8..]);
            let (t0, t1) = (f64::from_be_bytes(a), f64::from_be_bytes(b));
            if sent.get(&msg.from) != Some(&t0) {
                continue;
            }
            out.push(ClockOffset {
                node: msg.from,
                name: peers.get(&msg.from).cloned().unwrap_or_default(),
                offset_ms: t1 - (t0 + t3) / 2.0,
                rtt_ms: t3 - t0,
            });
        }
        out
    }
}
