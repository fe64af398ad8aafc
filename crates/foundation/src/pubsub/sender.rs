//! Pub/sub's send queues: per peer, channel and lane, with batching.
//!
//! Each (peer, channel, lane) has its own queue and task
//! ([`PeerQueues`](crate::peers::PeerQueues)), so a slow peer or a large
//! message on one lane never delays the others, and the items of one queue
//! keep their order (FIFO per publisher, topic and channel: a topic always
//! maps to the same lane). A queue is bounded in bytes; a broadcast waits
//! for room, at most until its deadline.
//!
//! The drain takes everything queued at once and sends it as one frame (up
//! to [`BATCH_BYTES`]): batching adds no wait, it only packs what
//! accumulated while the previous frame was written.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::wire::KIND_BATCH;
use crate::id::NodeId;
use crate::messenger::Messenger;
use crate::peers::{Drain, Key, Limits, PeerQueues};
use crate::transport::{Channel, Payload};

pub(crate) use crate::peers::NotQueued;

/// Largest batch frame built from several items.
pub(crate) const BATCH_BYTES: usize = 64 * 1024;
/// Items per queue (the byte budget usually binds first).
const QUEUE_ITEMS: usize = 1 << 16;

/// Where a queue sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Route {
    pub(crate) peer: NodeId,
    pub(crate) channel: Channel,
    pub(crate) lane: u8,
}

impl Key for Route {
    fn peer(&self) -> NodeId {
        self.peer
    }
}

/// One encoded item, shared by every peer it goes to.
pub(crate) type SharedItem = Arc<Payload>;

/// Sends what accumulated as batch frames on the route's channel and lane.
#[derive(Clone, Debug)]
pub(crate) struct Batched(Messenger);

impl Drain<Route, SharedItem> for Batched {
    async fn send(&self, route: Route, items: &[SharedItem]) {
        for frame in frames(items) {
            if let Err(e) = self
                .0
                .send_on(route.peer, route.channel, route.lane, KIND_BATCH, &frame)
                .await
            {
                tracing::debug!(peer = %route.peer, channel = %route.channel, error = %e, "pub/sub frame not sent");
            }
        }
    }
}

/// The queues of every route.
#[derive(Clone, Debug)]
pub(crate) struct Sender {
    queues: PeerQueues<Route, SharedItem, Batched>,
}

impl Sender {
    /// Queues of `budget` bytes each.
    pub(crate) fn new(messenger: Messenger, budget: usize, cancel: CancellationToken) -> Self {
        let limits = Limits {
            items: QUEUE_ITEMS,
            bytes: budget,
        };
        Sender {
            queues: PeerQueues::new(
                messenger.tasks.clone(),
                limits,
                Batched(messenger),
                cancel,
                "pubsub",
            ),
        }
    }

    /// Queues `item` for `route`, waiting for room at most `patience`.
    pub(crate) async fn push(
        &self,
        route: Route,
        item: SharedItem,
        patience: Duration,
    ) -> Result<(), NotQueued> {
        let len = item.bytes().len();
        self.queues.push(route, item, len, patience).await
    }

    /// Waits until every queue is empty (written to QUIC), at most until
    /// `deadline`; whether they all emptied.
    pub(crate) async fn flush(&self, deadline: Instant) -> bool {
        self.queues.flush(deadline).await
    }

    /// Drops the queues of a peer that left or went down.
    pub(crate) fn forget(&self, peer: NodeId) {
        self.queues.forget(peer);
    }
}

/// Packs queued items into frames: a large item alone (its bytes shared,
/// compressed at most once across peers), small ones together.
pub(crate) fn frames(items: &[SharedItem]) -> Vec<SharedItem> {
    let mut out = Vec::new();
    let mut batch = BytesMut::new();
    for item in items {
        let bytes = item.bytes();
        if bytes.len() >= BATCH_BYTES / 2 {
            if !batch.is_empty() {
                out.push(Arc::new(Payload::new(batch.split().freeze())));
            }
            out.push(item.clone());
            continue;
        }
        if batch.len() + bytes.len() > BATCH_BYTES {
            out.push(Arc::new(Payload::new(batch.split().freeze())));
        }
        batch.extend_from_slice(bytes);
    }
    if !batch.is_empty() {
        out.push(Arc::new(Payload::new(batch.freeze())));
    }
    out
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn item(n: usize) -> SharedItem {
        Arc::new(Payload::new(Bytes::from(vec![1u8; n])))
    }

    #[test]
    fn small_items_share_frames_and_large_ones_go_alone() {
        assert!(frames(&[]).is_empty());
        let small: Vec<_> = (0..100).map(|_| item(100)).collect();
        let f = frames(&small);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].bytes().len(), 10_000);
        let big = item(BATCH_BYTES);
        let f = frames(&[item(10), big.clone(), item(10)]);
        assert_eq!(f.len(), 3);
        assert!(Arc::ptr_eq(&f[1], &big), "a large item is not copied");
        let many: Vec<_> = (0..1000).map(|_| item(1000)).collect();
        let f = frames(&many);
        assert!(f.iter().all(|p| p.bytes().len() <= BATCH_BYTES));
        assert_eq!(f.iter().map(|p| p.bytes().len()).sum::<usize>(), 1_000_000);
    }
}
