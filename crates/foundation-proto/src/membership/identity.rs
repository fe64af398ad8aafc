//! The foca identity: who a member is, plus its metadata.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// A member's identity as gossiped by SWIM. It carries the metadata
/// (name, addresses, roles, version), so every member learns it on join.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberId {
    /// Unique node id.
    pub id: NodeId,
    /// Membership (SWIM) address: foca's `Identity::Addr`.
    pub addr: SocketAddr,
    /// QUIC transport address.
    pub transport: SocketAddr,
    /// Node name.
    pub name: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Foundation version.
    pub version: String,
    /// Start time (ms since the Unix epoch), bumped on each rejoin; decides
    /// which identity wins when two claim one address.
    pub generation: u64,
}

impl foca::Identity for MemberId {
    type Addr = SocketAddr;

    /// After being declared down (e.g. a long pause), rejoin automatically
    /// as a newer generation of the same node.
    fn renew(&self) -> Option<Self> {
        let mut next = self.clone();
        next.generation = self.generation.wrapping_add(1);
        Some(next)
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        (self.generation, self.id) > (adversary.generation, adversary.id)
    }
}
