//! What the registry stores: named entries pointing at services.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::mesh::ServiceMeta;
use crate::NodeId;

/// Where a service lives: its node and its id on that node.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceAddr {
    /// The hosting node (the entry's owner).
    pub node: NodeId,
    /// The service's id on that node, unique for the node's lifetime.
    pub local: u64,
}

impl fmt::Display for ServiceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.node, self.local)
    }
}

impl fmt::Debug for ServiceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceAddr({self})")
    }
}

/// Unique names have one holder in the cluster; group names have many.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EntryKind {
    /// One holder per name; a conflict after a partition heals has one
    /// deterministic winner (see [`winner`](super::winner)).
    Unique,
    /// Any number of members.
    Group,
    /// A node's interest in a pub/sub topic: the name is the topic, the
    /// service is the node itself (local id 0). Pub/sub sends a topic's
    /// messages only to nodes with an interest entry for it.
    Interest,
}

/// Identifies an entry within its owner's set.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntryKey {
    /// Unique or group.
    pub kind: EntryKind,
    /// The registered name.
    pub name: String,
    /// The service's id on its owner.
    pub local: u64,
}

/// One registration.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// The registered name.
    pub name: String,
    /// Unique or group.
    pub kind: EntryKind,
    /// The service; its node owns the entry.
    pub service: ServiceAddr,
    /// The service's message protocol (its Rust type name), checked by
    /// typed lookups.
    pub protocol: String,
    /// When the owner registered it (ms since the Unix epoch, owner's clock).
    pub registered_at: u64,
    /// Version, capabilities and metadata (the mesh discovers by them).
    pub meta: ServiceMeta,
}

impl Entry {
    /// The owning node.
    pub fn owner(&self) -> NodeId {
        self.service.node
    }

    /// The entry's key within its owner's set.
    pub fn key(&self) -> EntryKey {
        EntryKey {
            kind: self.kind,
            name: self.name.clone(),
            local: self.service.local,
        }
    }
}

/// The conflict rule for unique names: the earliest registration wins, then
/// the lowest owner id, then the lowest service id. Every node compares the
/// same values, so every node picks the same winner. Clock skew between
/// owners can only change *which* entry wins, never agreement on it.
pub fn winner<'a>(candidates: impl IntoIterator<Item = &'a Entry>) -> Option<&'a Entry> {
    candidates
        .into_iter()
        .min_by_key(|e| (e.registered_at, e.service.node, e.service.local))
}
