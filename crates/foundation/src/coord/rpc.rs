//! Requests to peers and their replies, matched by a correlation id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::disk::{Disk, Write};
use super::types::GroupId;
use super::wire::{Envelope, Reply, Request, KIND_REPLY, KIND_REQUEST};
use crate::calls::Calls;
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

/// Which member holds which Raft id. A node's Raft id outlives its
/// [`NodeId`] when its storage is durable (a restart is a new member but
/// the same voter), so peers learn it from every message they receive.
#[derive(Debug, Default)]
struct Directory {
    by_raft: HashMap<u64, NodeId>,
    by_node: HashMap<NodeId, u64>,
}

/// Sends requests, routes replies back to their callers, and holds this
/// node's group id, which every request carries, and the directory of
/// Raft ids.
#[derive(Debug)]
pub(crate) struct Rpc {
    pub(crate) messenger: Messenger,
    /// This node's Raft id.
    pub(crate) id: u64,
    directory: Mutex<Directory>,
    /// Where the group id is kept, when durable.
    disk: Option<Arc<Disk>>,
    calls: Calls<Reply>,
    group: Mutex<Option<GroupId>>,
}

impl Rpc {
    pub(crate) fn new(
        messenger: Messenger,
        id: u64,
        group: Option<GroupId>,
        disk: Option<Arc<Disk>>,
    ) -> Self {
        let rpc = Rpc {
            id,
            disk,
            directory: Mutex::default(),
            calls: Calls::new(MAX_PENDING),
            group: Mutex::new(group),
            messenger,
        };
        rpc.learn(id, rpc.messenger.id());
        rpc
    }

    /// Member `node` has Raft id `raft`.
    pub(crate) fn learn(&self, raft: u64, node: NodeId) {
        let mut d = self.directory.locked();
        if let Some(old) = d.by_raft.insert(raft, node).filter(|old| *old != node) {
            d.by_node.remove(&old);
        }
        if let Some(old) = d.by_node.insert(node, raft).filter(|old| *old != raft) {
            d.by_raft.remove(&old);
        }
    }

    /// The member holding Raft id `raft`, if known.
    pub(crate) fn node_of(&self, raft: u64) -> Option<NodeId> {
        self.directory.locked().by_raft.get(&raft).copied()
    }

    /// The Raft id of member `node`, if known.
    pub(crate) fn raft_of(&self, node: NodeId) -> Option<u64> {
        self.directory.locked().by_node.get(&node).copied()
    }

    /// Forgets the entries `keep` refuses (members gone and out of the
    /// group), so the directory stays bounded.
    pub(crate) fn prune(&self, keep: impl Fn(u64, NodeId) -> bool) {
        let mut d = self.directory.locked();
        d.by_raft.retain(|r, n| keep(*r, *n));
        let Directory { by_raft, by_node } = &mut *d;
        by_node.retain(|n, r| by_raft.get(r) == Some(n));
    }

    /// The Raft group this node belongs to, if any yet.
    pub(crate) fn group(&self) -> Option<GroupId> {
        *self.group.locked()
    }

    /// Joins `group` if this node has none; answers the group it is in.
    /// A group joined is written to disk ahead of any log entry of it.
    pub(crate) fn adopt(&self, group: GroupId) -> GroupId {
        let mut current = self.group.locked();
        if let Some(g) = *current {
            return g;
        }
        *current = Some(group);
        if let Some(d) = &self.disk {
            if let Ok(bytes) = postcard::to_allocvec(&group) {
                d.write(vec![Write::Meta("group", bytes)], |_| {});
            }
        }
        group
    }

    /// Sends `body` to Raft id `to` and waits up to `wait` for the reply.
    pub(crate) async fn call(
        &self,
        to: u64,
        body: Request,
        wait: Duration,
    ) -> Result<Reply, RpcError> {
        let node = self.node_of(to).ok_or_else(|| {
            RpcError::Unreachable(to, "no member with that Raft id is known".into())
        })?;
        self.call_member(node, body, wait).await
    }

    /// Sends `body` to member `node` and waits up to `wait` for the reply.
    pub(crate) async fn call_member(
        &self,
        node: NodeId,
        body: Request,
        wait: Duration,
    ) -> Result<Reply, RpcError> {
        let to = node.0;
        let call = self.calls.open().map_err(|f| RpcError::Busy(f.0))?;
        let env = Envelope {
            corr: call.corr,
            from: self.id,
            group: self.group(),
            body,
        };
        let bytes = env.encode().map_err(|e| RpcError::Encode(e.to_string()))?;
        let exchange = async {
            self.messenger
                .send_auto(node, KIND_REQUEST, bytes)
                .await
                .map_err(|e| RpcError::Unreachable(to, e.reason.to_string()))?;
            call.reply().await.ok_or(RpcError::Timeout(to, wait))
        };
        tokio::time::timeout(wait, exchange)
            .await
            .map_err(|_| RpcError::Timeout(to, wait))?
    }

    /// A reply arrived: hands it to its caller, if it still waits.
    pub(crate) fn answered(&self, corr: u64, reply: Reply) {
        self.calls.answered(corr, reply);
    }

    /// Sends `reply` to request `corr` from `to`.
    pub(crate) async fn reply(&self, to: NodeId, corr: u64, reply: Reply) {
        let env = Envelope {
            corr,
            from: self.id,
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
