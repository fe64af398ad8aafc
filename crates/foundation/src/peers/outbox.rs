//! Per-peer ordered, bounded send queues for the cluster services.
//!
//! Each peer gets its own queue and task, so a slow or unreachable peer
//! never delays the others, and messages to one peer keep their order.
//! A full queue drops the message and says so: callers use it only for
//! traffic that anti-entropy repairs (registry deltas), or that is
//! at-most-once by contract.

use crate::locks::Locked as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::id::NodeId;
use crate::messenger::Messenger;

/// Messages queued per peer before new ones are dropped.
pub(crate) const OUTBOX_CAPACITY: usize = 4096;

/// One peer's queue: (kind, payload).
type Queue = mpsc::Sender<(u16, Bytes)>;

/// Per-peer queues.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    messenger: Messenger,
    queues: Arc<Mutex<HashMap<NodeId, Queue>>>,
    cancel: CancellationToken,
    what: &'static str,
}

impl Outbox {
    pub(crate) fn new(messenger: Messenger, cancel: CancellationToken, what: &'static str) -> Self {
        Outbox {
            messenger,
            queues: Arc::default(),
            cancel,
            what,
        }
    }

    /// Queues a message for `to`; false if its queue is full (dropped).
    pub(crate) fn send(&self, to: NodeId, kind: u16, payload: Bytes) -> bool {
        let mut queues = self.queues.locked();
        let tx = queues.entry(to).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(OUTBOX_CAPACITY);
            let tasks = &self.messenger.tasks;
            tasks.spawn_in(
                tasks.peer_span(to, self.what),
                drain(
                    self.messenger.clone(),
                    to,
                    rx,
                    self.cancel.clone(),
                    self.what,
                ),
            );
            tx
        });
        match tx.try_send((kind, payload)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!(peer = %to, what = self.what, "outbox full: message dropped");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                queues.remove(&to);
                false
            }
        }
    }

    /// Drops the queue of a peer that left or went down.
    pub(crate) fn forget(&self, peer: NodeId) {
        self.queues.locked().remove(&peer);
    }
}

async fn drain(
    messenger: Messenger,
    to: NodeId,
    mut rx: mpsc::Receiver<(u16, Bytes)>,
    cancel: CancellationToken,
    what: &'static str,
) {
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return,
            m = rx.recv() => m,
        };
        let Some((kind, payload)) = next else { return };
        if let Err(e) = messenger.send_auto(to, kind, payload).await {
            tracing::debug!(peer = %to, what, error = %e, "send failed");
        }
    }
}
