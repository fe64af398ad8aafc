//! Requests to peers and their replies, matched by a correlation id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;

use super::types::GroupId;
use super::wire::{Envelope, Reply, Request, KIND_REPLY, KIND_REQUEST};
use crate::id::NodeId;
use crate::locks::Locked;
use crate::messenger::Messenger;

/// Most requests waiting for a reply at once; beyond it a call fails at
/// once rather than grow the table.
const MAX_PENDING: usize = 16 * 1024;

/// Why a request got no reply.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum RpcError {
    #[error("{0:016x} is not an active member or cannot be reached: {1}")]
    Unreachable(u64, String),
    #[error("no reply from {0:016x} within {1:?}")]
    Timeout(u64, Duration),
    #[error("{0} requests already wait for replies")]
    Busy(usize),
    #[error("cannot encode the request: {0}")]
    Encode(String),
    #[error("{0:016x} answered {1}")]
    Unexpected(u64, String),
}

/// Sends requests, routes replies back to their callers, and holds this
/// node's group id, which every request carries.
#[derive(Debug)]
pub(crate) struct Rpc {
    pub(crate) messenger: Messenger,
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    next: AtomicU64,
    group: Mutex<Option<GroupId>>,
}

/// Removes a call's slot however the call ends (reply, timeout, drop).
struct Slot<'a> {
    rpc: &'a Rpc,
    corr: u64,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.rpc.pending.locked().remove(&self.corr);
    }
}

impl Rpc {
    pub(crate) fn new(messenger: Messenger) -> Self {
        Rpc {
            messenger,
            pending: Mutex::default(),
            next: AtomicU64::new(1),
            group: Mutex::default(),
        }
    }

    /// The Raft group this node belongs to, if any yet.
    pub(crate) fn group(&self) -> Option<GroupId> {
        *self.group.locked()
    }

    /// Joins `group` if this node has none; answers the group it is in.
    pub(crate) fn adopt(&self, group: GroupId) -> GroupId {
        *self.group.locked().get_or_insert(group)
    }

    /// Sends `body` to `to` and waits up to `wait` for the reply.
    pub(crate) async fn call(
        &self,
        to: u64,
        body: Request,
        wait: Duration,
    ) -> Result<Reply, RpcError> {
        let corr = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.locked();
            if pending.len() >= MAX_PENDING {
                return Err(RpcError::Busy(pending.len()));
            }
            pending.insert(corr, tx);
        }
        let _slot = Slot { rpc: self, corr };
        let env = Envelope {
            corr,
            group: self.group(),
            body,
        };
        let bytes = env.encode().map_err(|e| RpcError::Encode(e.to_string()))?;
        let exchange = async {
            self.messenger
                .send_auto(NodeId(to), KIND_REQUEST, bytes)
                .await
                .map_err(|e| RpcError::Unreachable(to, e.reason.to_string()))?;
            rx.await.map_err(|_| RpcError::Timeout(to, wait))
        };
        tokio::time::timeout(wait, exchange)
            .await
            .map_err(|_| RpcError::Timeout(to, wait))?
    }

    /// A reply arrived: hands it to its caller, if it still waits.
    pub(crate) fn answered(&self, corr: u64, reply: Reply) {
        if let Some(tx) = self.pending.locked().remove(&corr) {
            let _ = tx.send(reply);
        }
    }

    /// Sends `reply` to request `corr` from `to`.
    pub(crate) async fn reply(&self, to: NodeId, corr: u64, reply: Reply) {
        let env = Envelope {
            corr,
            group: self.group(),
            body: reply,
        };
        match env.encode() {
            Ok(bytes) => {
                if let Err(e) = self.messenger.send_auto(to, KIND_REPLY, bytes).await {
                    tracing::debug!(%to, error = %e, "coordination reply not sent");
                }
            }
            Err(e) => tracing::warn!(%to, error = %e, "coordination reply does not encode"),
        }
    }
}
