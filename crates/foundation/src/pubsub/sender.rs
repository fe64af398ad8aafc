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
//!
//! A frame that cannot be sent (the peer is unreachable, reconnecting or
//! backing off, or the node is stopping) loses its items: each is counted
//! as dropped on its topic and in `foundation_pubsub_dropped_total`, and
//! the loss is logged once per failed frame.

use std::ops::Range;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::stats::TopicCounters;
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

/// One encoded item and the counters of its topic.
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) payload: Payload,
    pub(crate) counters: Arc<TopicCounters>,
}

/// One item, shared by every peer it goes to.
pub(crate) type SharedItem = Arc<Item>;

/// Sends what accumulated as batch frames on the route's channel and lane.
#[derive(Clone, Debug)]
pub(crate) struct Batched(Messenger);

impl Drain<Route, SharedItem> for Batched {
    fn admits(&self, peer: NodeId) -> bool {
        self.0.is_live_member(peer)
    }

    async fn send(&self, route: Route, items: &[SharedItem]) {
        for frame in frames(items) {
            let payload = match &frame.packed {
                Some(packed) => packed,
                None => &items[frame.items.start].payload,
            };
            if let Err(e) = self
                .0
                .send_on(route.peer, route.channel, route.lane, KIND_BATCH, payload)
                .await
            {
                let lost = &items[frame.items];
                for item in lost {
                    item.counters.dropped.fetch_add(1, Relaxed);
                }
                metrics::counter!("foundation_pubsub_dropped_total").increment(lost.len() as u64);
                tracing::debug!(peer = %route.peer, channel = %route.channel, error = %e, messages = lost.len(), "pub/sub frame not sent: messages dropped");
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
        let len = item.payload.len();
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

/// One frame of a batch: `items[items]`, packed into a new payload, or
/// the one large item sent as it is (`packed` is `None`: its bytes are
/// shared across peers and compressed at most once).
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) packed: Option<Payload>,
    pub(crate) items: Range<usize>,
}

/// Packs queued items into frames: a large item alone, small ones
/// together (at most [`BATCH_BYTES`] each).
pub(crate) fn frames(items: &[SharedItem]) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut batch = BytesMut::new();
    let mut start = 0;
    let pack = |batch: &mut BytesMut, out: &mut Vec<Frame>, items: Range<usize>| {
        if !batch.is_empty() {
            out.push(Frame {
                packed: Some(Payload::new(batch.split().freeze())),
                items,
            });
        }
    };
    for (i, item) in items.iter().enumerate() {
        let len = item.payload.len();
        if len >= BATCH_BYTES / 2 {
            pack(&mut batch, &mut out, start..i);
            out.push(Frame {
                packed: None,
                items: i..i + 1,
            });
            start = i + 1;
            continue;
        }
        if batch.len() + len > BATCH_BYTES {
            pack(&mut batch, &mut out, start..i);
            start = i;
        }
        item.payload.write_to(&mut batch);
    }
    pack(&mut batch, &mut out, start..items.len());
    out
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn item(n: usize) -> SharedItem {
        Arc::new(Item {
            payload: Payload::new(Bytes::from(vec![1u8; n])),
            counters: Arc::default(),
        })
    }

    fn len(items: &[SharedItem], f: &Frame) -> usize {
        match &f.packed {
            Some(p) => p.len(),
            None => items[f.items.start].payload.len(),
        }
    }

    #[test]
    fn small_items_share_frames_and_large_ones_go_alone() {
        assert!(frames(&[]).is_empty());
        let small: Vec<_> = (0..100).map(|_| item(100)).collect();
        let f = frames(&small);
        assert_eq!(f.len(), 1);
        assert_eq!((len(&small, &f[0]), f[0].items.clone()), (10_000, 0..100));
        let mixed = [item(10), item(BATCH_BYTES), item(10)];
        let f = frames(&mixed);
        let ranges: Vec<_> = f.iter().map(|f| f.items.clone()).collect();
        assert_eq!(ranges, vec![0..1, 1..2, 2..3]);
        assert!(f[1].packed.is_none(), "a large item is not copied");
        let many: Vec<_> = (0..1000).map(|_| item(1000)).collect();
        let f = frames(&many);
        assert!(f.iter().all(|f| len(&many, f) <= BATCH_BYTES));
        assert_eq!(f.iter().map(|f| len(&many, f)).sum::<usize>(), 1_000_000);
        // Every item is in exactly one frame, in order: a failed frame
        // counts exactly its own items as dropped.
        let mut next = 0;
        for f in &f {
            assert_eq!(f.items.start, next);
            assert_eq!(f.items.len() * 1000, len(&many, f));
            next = f.items.end;
        }
        assert_eq!(next, 1000);
    }
}
