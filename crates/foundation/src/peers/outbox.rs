//! The cluster services' outbox: per-peer ordered queues for traffic that
//! anti-entropy repairs (registry deltas, process specs) or that is
//! at-most-once by contract. A full queue drops the message and says so;
//! every message dropped, queued or not, counts in
//! `foundation_outbox_dropped_total{what, reason}`.

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::queues::{Drain, Limits, NotQueued, PeerQueues};
use crate::id::NodeId;
use crate::messenger::Messenger;

/// Messages queued per peer before new ones are dropped.
pub(crate) const OUTBOX_ITEMS: usize = 4096;
/// Bytes queued per peer before new messages are dropped.
pub(crate) const OUTBOX_BYTES: usize = 16 << 20;

/// Counts a dropped outbox message.
fn dropped(what: &'static str, reason: &'static str) {
    metrics::counter!("foundation_outbox_dropped_total", "what" => what, "reason" => reason)
        .increment(1);
}

/// Sends each message on its own, on control or (when large) data.
#[derive(Clone, Debug)]
pub(crate) struct OneByOne(Messenger, &'static str);

impl Drain<NodeId, (u16, Bytes)> for OneByOne {
    fn admits(&self, peer: NodeId) -> bool {
        self.0.is_live_member(peer)
    }

    async fn send(&self, to: NodeId, items: &[(u16, Bytes)]) {
        for (kind, payload) in items {
            if let Err(e) = self.0.send_auto(to, *kind, payload.clone()).await {
                dropped(self.1, "send_failed");
                tracing::debug!(peer = %to, error = %e, "send failed: message dropped");
            }
        }
    }
}

/// Per-peer queues of (kind, payload).
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    queues: PeerQueues<NodeId, (u16, Bytes), OneByOne>,
    what: &'static str,
}

impl Outbox {
    pub(crate) fn new(messenger: Messenger, cancel: CancellationToken, what: &'static str) -> Self {
        let limits = Limits {
            items: OUTBOX_ITEMS,
            bytes: OUTBOX_BYTES,
        };
        Outbox {
            queues: PeerQueues::new(
                messenger.tasks.clone(),
                limits,
                OneByOne(messenger, what),
                cancel,
                what,
            ),
            what,
        }
    }

    /// Queues a message for `to`; false if it was dropped (queue full, or
    /// the node is stopping).
    pub(crate) fn send(&self, to: NodeId, kind: u16, payload: Bytes) -> bool {
        let len = payload.len();
        match self.queues.try_push(to, (kind, payload), len) {
            Ok(()) => true,
            Err(why) => {
                dropped(
                    self.what,
                    match why {
                        NotQueued::Full => "full",
                        NotQueued::Closed => "stopping",
                        NotQueued::UnknownPeer => "unknown_peer",
                    },
                );
                tracing::debug!(peer = %to, what = self.what, ?why, "outbox: message dropped");
                false
            }
        }
    }

    /// Drops the queue of a peer that left or went down.
    pub(crate) fn forget(&self, peer: NodeId) {
        self.queues.forget(peer);
    }
}
