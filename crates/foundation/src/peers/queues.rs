//! The per-peer queue: bounded in items and bytes, one task per key that
//! hands everything queued so far to its [`Drain`] at once.

use crate::locks::Locked as _;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::id::NodeId;
use crate::tasks::Tasks;

/// Items a drain gets at most at once.
const DRAIN_ITEMS: usize = 4096;

/// What a queue is keyed by: a peer, or a peer and a stream to it.
pub(crate) trait Key: Copy + Eq + Hash + Send + Sync + 'static {
    /// The peer the queue sends to.
    fn peer(&self) -> NodeId;
}

impl Key for NodeId {
    fn peer(&self) -> NodeId {
        *self
    }
}

/// How a queue's items go out. `send` gets everything queued since the
/// last call, in order; room in the queue comes back when it returns.
pub(crate) trait Drain<K, T>: Clone + Send + Sync + 'static {
    /// Whether `peer` may get a queue (and a task): a live member. Ids
    /// come from peers' messages, so without this check a peer could make
    /// this node keep a queue and a task for every id it invents.
    fn admits(&self, peer: NodeId) -> bool;

    /// Sends `items` to `key`'s peer. Failures are the drain's to log:
    /// the items are gone either way.
    fn send(&self, key: K, items: &[T]) -> impl Future<Output = ()> + Send;
}

/// Bounds of each queue.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Items queued at most.
    pub(crate) items: usize,
    /// Bytes queued at most (an item larger than this costs all of it).
    pub(crate) bytes: usize,
}

/// Why an item was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotQueued {
    /// No room (before the deadline, for a waiting push).
    Full,
    /// The node is shutting down.
    Closed,
    /// The peer is not a live member (and has no queue).
    UnknownPeer,
}

struct Queued<T> {
    item: T,
    permit: OwnedSemaphorePermit,
}

struct Queue<T> {
    tx: mpsc::Sender<Queued<T>>,
    bytes: Arc<Semaphore>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            tx: self.tx.clone(),
            bytes: self.bytes.clone(),
        }
    }
}

impl<T> Queue<T> {
    /// Queues `item` if there is room right now; gives it back otherwise.
    #[inline]
    fn try_push(&self, item: T, cost: u32) -> Result<(), (T, NotQueued)> {
        let Ok(permit) = self.bytes.clone().try_acquire_many_owned(cost) else {
            return Err((item, NotQueued::Full));
        };
        self.tx
            .try_send(Queued { item, permit })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(q) => (q.item, NotQueued::Full),
                mpsc::error::TrySendError::Closed(q) => (q.item, NotQueued::Closed),
            })
    }
}

/// What an attempt to queue without waiting came to.
enum Now<T> {
    Queued,
    /// No room now: the item, and the queue to wait on.
    Full(T, Queue<T>),
    Closed,
    UnknownPeer,
}

/// Queues by key, each drained by a task of its own.
pub(crate) struct PeerQueues<K, T, D> {
    tasks: Tasks,
    queues: Arc<Mutex<HashMap<K, Queue<T>>>>,
    limits: Limits,
    drain: D,
    cancel: CancellationToken,
    what: &'static str,
}

impl<K, T, D: Clone> Clone for PeerQueues<K, T, D> {
    fn clone(&self) -> Self {
        PeerQueues {
            tasks: self.tasks.clone(),
            queues: self.queues.clone(),
            limits: self.limits,
            drain: self.drain.clone(),
            cancel: self.cancel.clone(),
            what: self.what,
        }
    }
}

impl<K, T, D> std::fmt::Debug for PeerQueues<K, T, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerQueues")
            .field("what", &self.what)
            .field("limits", &self.limits)
            .finish()
    }
}

impl<K, T, D> PeerQueues<K, T, D>
where
    K: Key,
    T: Send + Sync + 'static,
    D: Drain<K, T>,
{
    /// Queues whose tasks run in `tasks`, send through `drain`, stop with
    /// `cancel`, and name themselves `what` in logs.
    pub(crate) fn new(
        tasks: Tasks,
        limits: Limits,
        drain: D,
        cancel: CancellationToken,
        what: &'static str,
    ) -> Self {
        let max = Semaphore::MAX_PERMITS.min(u32::MAX as usize);
        PeerQueues {
            tasks,
            queues: Arc::default(),
            limits: Limits {
                items: limits.items.max(1),
                bytes: limits.bytes.clamp(1, max),
            },
            drain,
            cancel,
            what,
        }
    }

    fn cost(&self, bytes: usize) -> u32 {
        bytes.clamp(1, self.limits.bytes) as u32
    }

    /// A new queue for `key` and the task that drains it.
    fn queue(&self, queues: &mut HashMap<K, Queue<T>>, key: K) -> Queue<T> {
        let (tx, rx) = mpsc::channel(self.limits.items);
        let q = Queue {
            tx,
            bytes: Arc::new(Semaphore::new(self.limits.bytes)),
        };
        queues.insert(key, q.clone());
        self.tasks.spawn_in(
            self.tasks.peer_span(key.peer(), self.what),
            drain(key, rx, self.drain.clone(), self.cancel.clone()),
        );
        q
    }

    /// Queues `item` (costing `bytes` of the budget) for `key` if there is
    /// room now; drops it otherwise.
    pub(crate) fn try_push(&self, key: K, item: T, bytes: usize) -> Result<(), NotQueued> {
        match self.push_now(key, item, self.cost(bytes)) {
            Now::Queued => Ok(()),
            Now::Full(..) => Err(NotQueued::Full),
            Now::Closed => Err(NotQueued::Closed),
            Now::UnknownPeer => Err(NotQueued::UnknownPeer),
        }
    }

    /// The common case, under the lock and without clones: the key's live
    /// queue takes the item now. Otherwise the item comes back with the
    /// queue to wait on (started if there was none).
    #[inline]
    fn push_now(&self, key: K, item: T, cost: u32) -> Now<T> {
        let mut queues = self.queues.locked();
        let item = match queues.get(&key) {
            Some(q) => match q.try_push(item, cost) {
                Ok(()) => return Now::Queued,
                Err((item, NotQueued::Full)) => return Now::Full(item, q.clone()),
                // Its task ended: start another below.
                Err((item, _closed)) => item,
            },
            None => item,
        };
        // Only here, off the common path: `is_cancelled` takes a lock.
        if self.cancel.is_cancelled() {
            return Now::Closed;
        }
        if !self.drain.admits(key.peer()) {
            return Now::UnknownPeer;
        }
        let q = self.queue(&mut queues, key);
        match q.try_push(item, cost) {
            Ok(()) => Now::Queued,
            Err((item, NotQueued::Full)) => Now::Full(item, q),
            Err((_, _closed)) => Now::Closed,
        }
    }

    /// Queues `item` for `key`, waiting for room at most `patience`.
    pub(crate) async fn push(
        &self,
        key: K,
        item: T,
        bytes: usize,
        patience: Duration,
    ) -> Result<(), NotQueued> {
        let cost = self.cost(bytes);
        let (item, q) = match self.push_now(key, item, cost) {
            Now::Queued => return Ok(()),
            Now::Full(item, q) => (item, q),
            Now::Closed => return Err(NotQueued::Closed),
            Now::UnknownPeer => return Err(NotQueued::UnknownPeer),
        };
        let deadline = Instant::now() + patience;
        let permit =
            match tokio::time::timeout_at(deadline, q.bytes.clone().acquire_many_owned(cost)).await
            {
                Ok(Ok(p)) => p,
                Ok(Err(_)) => return Err(NotQueued::Closed),
                Err(_) => return Err(NotQueued::Full),
            };
        let queued = Queued { item, permit };
        match tokio::time::timeout_at(deadline, q.tx.send(queued)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(NotQueued::Closed),
            Err(_) => Err(NotQueued::Full),
        }
    }

    /// Waits until every queue is empty (its items handed to the drain and
    /// sent), at most until `deadline`; whether they all emptied.
    pub(crate) async fn flush(&self, deadline: Instant) -> bool {
        let queues: Vec<Queue<T>> = self.queues.locked().values().cloned().collect();
        let all = self.limits.bytes as u32;
        for q in queues {
            // Every queued item holds permits: all of them free means empty.
            if tokio::time::timeout_at(deadline, q.bytes.acquire_many(all))
                .await
                .is_err()
            {
                return false;
            }
        }
        true
    }

    /// Drops the queues of a peer that left or went down.
    pub(crate) fn forget(&self, peer: NodeId) {
        self.queues.locked().retain(|k, _| k.peer() != peer);
    }

    /// Queues that exist now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queues.locked().len()
    }
}

async fn drain<K: Key, T, D: Drain<K, T>>(
    key: K,
    mut rx: mpsc::Receiver<Queued<T>>,
    sink: D,
    cancel: CancellationToken,
) {
    // Reused across rounds: no allocation per batch once warm.
    let mut queued = Vec::with_capacity(64);
    let mut items: Vec<T> = Vec::with_capacity(64);
    let mut permits: Vec<OwnedSemaphorePermit> = Vec::with_capacity(64);
    loop {
        let n = tokio::select! {
            _ = cancel.cancelled() => return,
            n = rx.recv_many(&mut queued, DRAIN_ITEMS) => n,
        };
        if n == 0 {
            return;
        }
        for q in queued.drain(..) {
            items.push(q.item);
            permits.push(q.permit);
        }
        sink.send(key, &items).await;
        items.clear();
        // The permits are held until the items are sent: `flush` waits
        // for all of them.
        permits.clear();
    }
}
