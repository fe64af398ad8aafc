//! Per-peer, per-stream send queues with batching.
//!
//! Each (peer, channel, lane) has its own queue and task, so a slow peer
//! or a large message on one lane never delays the others, and the items
//! of one queue keep their order (FIFO per publisher, topic and channel:
//! a topic always maps to the same lane). A queue is bounded in bytes;
//! a broadcast waits for room, at most until its deadline.
//!
//! The task takes everything queued at once and sends it as one frame
//! (up to [`BATCH_BYTES`]): batching adds no wait, it only packs what
//! accumulated while the previous frame was written.

use crate::locks::Locked as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::wire::KIND_BATCH;
use crate::id::NodeId;
use crate::messenger::Messenger;
use crate::transport::{Channel, Payload};

/// Largest batch frame built from several items.
pub(crate) const BATCH_BYTES: usize = 64 * 1024;
/// Items taken from a queue at once.
const BATCH_ITEMS: usize = 4096;
/// Items per queue (the byte budget usually binds first).
const QUEUE_ITEMS: usize = 1 << 16;

/// Where a queue sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Route {
    pub(crate) peer: NodeId,
    pub(crate) channel: Channel,
    pub(crate) lane: u8,
}

/// One encoded item, shared by every peer it goes to.
pub(crate) type SharedItem = Arc<Payload>;

struct Queued {
    item: SharedItem,
    _permit: OwnedSemaphorePermit,
}

#[derive(Clone)]
struct Queue {
    tx: mpsc::Sender<Queued>,
    bytes: Arc<Semaphore>,
}

impl Queue {
    /// Queues `item` if there is room right now; gives it back otherwise.
    fn try_push(&self, item: SharedItem, cost: u32) -> Result<(), SharedItem> {
        let Ok(permit) = self.bytes.clone().try_acquire_many_owned(cost) else {
            return Err(item);
        };
        self.tx
            .try_send(Queued {
                item,
                _permit: permit,
            })
            .map_err(|e| e.into_inner().item)
    }
}

/// Why an item was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotQueued {
    /// No room before the deadline.
    Full,
    /// The node is shutting down.
    Closed,
}

/// The queues of every route.
#[derive(Clone)]
pub(crate) struct Sender {
    messenger: Messenger,
    queues: Arc<Mutex<HashMap<Route, Queue>>>,
    budget: usize,
    cancel: CancellationToken,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("budget", &self.budget)
            .finish()
    }
}

impl Sender {
    pub(crate) fn new(messenger: Messenger, budget: usize, cancel: CancellationToken) -> Self {
        Sender {
            messenger,
            queues: Arc::default(),
            budget: budget.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize)),
            cancel,
        }
    }

    /// The live queue of `route`, started if there is none.
    fn queue(&self, queues: &mut HashMap<Route, Queue>, route: Route) -> Queue {
        if let Some(q) = queues.get(&route).filter(|q| !q.tx.is_closed()) {
            return q.clone();
        }
        let (tx, rx) = mpsc::channel(QUEUE_ITEMS);
        let q = Queue {
            tx,
            bytes: Arc::new(Semaphore::new(self.budget)),
        };
        queues.insert(route, q.clone());
        let tasks = &self.messenger.tasks;
        tasks.spawn_in(
            tasks.peer_span(route.peer, "pubsub"),
            drain(self.messenger.clone(), route, rx, self.cancel.clone()),
        );
        q
    }

    /// Queues `item` for `route`, waiting for room at most `patience`.
    pub(crate) async fn push(
        &self,
        route: Route,
        item: SharedItem,
        patience: Duration,
    ) -> Result<(), NotQueued> {
        let cost = item.bytes().len().clamp(1, self.budget) as u32;
        // The common case, without waiting: under the lock, no clones.
        let (q, item) = {
            let mut queues = self.queues.locked();
            let item = match queues.get(&route) {
                Some(q) => match q.try_push(item, cost) {
                    Ok(()) => return Ok(()),
                    Err(item) => item,
                },
                None => item,
            };
            (self.queue(&mut queues, route), item)
        };
        let deadline = Instant::now() + patience;
        let permit =
            match tokio::time::timeout_at(deadline, q.bytes.clone().acquire_many_owned(cost)).await
            {
                Ok(Ok(p)) => p,
                Ok(Err(_)) => return Err(NotQueued::Closed),
                Err(_) => return Err(NotQueued::Full),
            };
        let queued = Queued {
            item,
            _permit: permit,
        };
        match tokio::time::timeout_at(deadline, q.tx.send(queued)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(NotQueued::Closed),
            Err(_) => Err(NotQueued::Full),
        }
    }

    /// Waits until every queue is empty (written to QUIC), at most until
    /// `deadline`; whether they all emptied.
    pub(crate) async fn flush(&self, deadline: Instant) -> bool {
        let queues: Vec<Queue> = self.queues.locked().values().cloned().collect();
        let all = self.budget as u32;
        for q in queues {
            // Every queued item holds permits: all of them free means empty.
            match tokio::time::timeout_at(deadline, q.bytes.acquire_many(all)).await {
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        true
    }

    /// Drops the queues of a peer that left or went down.
    pub(crate) fn forget(&self, peer: NodeId) {
        self.queues.locked().retain(|r, _| r.peer != peer);
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

async fn drain(
    messenger: Messenger,
    route: Route,
    mut rx: mpsc::Receiver<Queued>,
    cancel: CancellationToken,
) {
    let mut queued = Vec::with_capacity(64);
    loop {
        let n = tokio::select! {
            _ = cancel.cancelled() => return,
            n = rx.recv_many(&mut queued, BATCH_ITEMS) => n,
        };
        if n == 0 {
            return;
        }
        let items: Vec<SharedItem> = queued.iter().map(|q| q.item.clone()).collect();
        for frame in frames(&items) {
            if let Err(e) = messenger
                .send_on(route.peer, route.channel, route.lane, KIND_BATCH, &frame)
                .await
            {
                tracing::debug!(peer = %route.peer, channel = %route.channel, error = %e, "pub/sub frame not sent");
            }
        }
        // Room in the queue comes back once the frames are written.
        queued.clear();
    }
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
