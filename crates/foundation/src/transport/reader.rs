//! Reads frames from one incoming stream and hands them to the router.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use bytes::BytesMut;

use super::endpoint::TransportSettings;
use super::frame::{FrameDecoder, FrameError, LENGTH_PREFIX};
use super::inbox::Router;
use super::senders::{admit, Members, Refused, Senders, Speaker};
use crate::telemetry::Stats;
use crate::throttle::Throttle;
use foundation_proto::Channel;

/// Application error code sent when a stream is stopped for a bad frame.
pub(crate) const BAD_FRAME: u32 = 1;

enum ReadEnd {
    Finished,
    Lost(String),
    Bad(FrameError),
}

/// What every stream of a transport delivers to and counts in.
pub(crate) struct Receiving<'a> {
    pub(crate) router: &'a Router,
    pub(crate) stats: &'a Stats,
    pub(crate) settings: &'a TransportSettings,
    pub(crate) senders: &'a Senders,
    /// Active members, once the node set them (read per frame: a stream
    /// opened before they were set is checked from then on).
    pub(crate) members: &'a OnceLock<Arc<dyn Members>>,
    /// Warnings about dropped frames and bad streams, for the whole
    /// transport: one per period, whatever a peer sends.
    pub(crate) warnings: &'a Throttle,
}

/// Reads until the stream ends; a bad frame stops the stream with a logged
/// reason. Memory per stream grows only with bytes actually received, and
/// never beyond one frame of the configured maximum. A frame whose sender
/// is not the connection's (see `senders`) is dropped and counted.
pub(crate) async fn read_stream(
    mut recv: quinn::RecvStream,
    addr: SocketAddr,
    decoder: FrameDecoder,
    speaker: &Speaker,
    rx: Receiving<'_>,
) {
    let Receiving {
        router,
        stats,
        settings,
        senders,
        members,
        warnings,
    } = rx;
    let faults = &settings.faults;
    let mut stream_channel: Option<Channel> = None;
    let end = loop {
        let mut prefix = [0u8; LENGTH_PREFIX];
        match recv.read_exact(&mut prefix).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(0)) => break ReadEnd::Finished,
            Err(e) => break ReadEnd::Lost(e.to_string()),
        }
        let len = match decoder.check_len(prefix) {
            Ok(len) => len,
            Err(e) => break ReadEnd::Bad(e),
        };
        // Reserve up to 8 MiB at once; beyond that the buffer grows only as
        // bytes actually arrive (QUIC flow control bounds them).
        let mut body = BytesMut::with_capacity(len.min(8 << 20));
        while body.len() < len {
            // Copying a large frame takes many chunks: yield now and then
            // (tokio's budget) so other tasks, control traffic first, get
            // the thread.
            tokio::task::coop::consume_budget().await;
            match recv.read_chunk(len - body.len(), true).await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk.bytes),
                Ok(None) => break,
                Err(e) => return lost(addr, e.to_string()),
            }
        }
        if body.len() < len {
            break ReadEnd::Lost("stream finished inside a frame".into());
        }
        let env = match decoder.decode_body(body.freeze()) {
            Ok(env) => env,
            Err(e) => break ReadEnd::Bad(e),
        };
        let channel = *stream_channel.get_or_insert(env.channel);
        // One stream carries one channel, except in the single-stream
        // baseline (both ends run it).
        if channel != env.channel && !settings.single_stream {
            break ReadEnd::Bad(FrameError::WrongChannel {
                frame: env.channel,
                stream: channel,
            });
        }
        stats.received(env.channel, LENGTH_PREFIX + len);
        if faults.drops_from(addr) {
            continue;
        }
        if let Err(why) = senders.check(speaker, env.from) {
            stats.spoofed_sender();
            if let Some(suppressed) = warnings.admit(std::time::Instant::now()) {
                spoofed(addr, env.from, why, suppressed);
            }
            continue;
        }
        if let Some(members) = members.get() {
            if !admit(members.as_ref(), speaker, env.from).await {
                stats.non_member();
                if let Some(suppressed) = warnings.admit(std::time::Instant::now()) {
                    tracing::warn!(%addr, from = %env.from, suppressed, "frame dropped: its sender is not a member");
                }
                continue;
            }
        }
        if router.deliver(env, addr).await == 0 {
            stats.unrouted();
            tracing::trace!(%addr, %channel, "frame with no inbox dropped");
        }
    };
    match end {
        ReadEnd::Finished => tracing::trace!(%addr, "stream finished"),
        ReadEnd::Lost(why) => lost(addr, why),
        ReadEnd::Bad(e) => {
            stats.frame_error();
            if let Some(suppressed) = warnings.admit(std::time::Instant::now()) {
                tracing::warn!(%addr, error = %e, suppressed, "bad frame: closing the stream");
            }
            let _ = recv.stop(quinn::VarInt::from_u32(BAD_FRAME));
        }
    }
}

/// Logs a refused sender.
fn spoofed(addr: SocketAddr, claimed: foundation_proto::NodeId, why: Refused, suppressed: u64) {
    match why {
        Refused::NotThisConnection { pinned } => tracing::warn!(
            %addr, %claimed, %pinned, suppressed,
            "frame dropped: it claims another sender than its connection's"
        ),
        Refused::ConnectedElsewhere { ip } => tracing::warn!(
            %addr, %claimed, connected_from = %ip, suppressed,
            "frame dropped: its sender is connected from another address"
        ),
    }
}

fn lost(addr: SocketAddr, why: String) {
    tracing::debug!(%addr, reason = %why, "stream ended");
}
