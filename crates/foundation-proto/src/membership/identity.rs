//! Who a member is: the slim identity SWIM carries in every header
//! ([`SwimId`]), and the full one with the metadata ([`MemberId`]), which
//! travels once per member (ADR 024).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// A member's identity and metadata: everything other nodes need to know
/// about one generation of a node. It travels with a node's own Hello,
/// Pull and Profile, and with every member of a `State` list; SWIM's
/// headers carry only its [`SwimId`].
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

impl MemberId {
    /// The slim identity SWIM gossips for this member.
    pub fn swim(&self) -> SwimId {
        SwimId {
            id: self.id,
            addr: self.addr,
            generation: self.generation,
        }
    }

    /// This member's metadata under the identity `swim` (the same node,
    /// its generation renewed).
    pub fn renamed(&self, swim: &SwimId) -> MemberId {
        MemberId {
            id: swim.id,
            addr: swim.addr,
            generation: swim.generation,
            ..self.clone()
        }
    }
}

/// The identity foca gossips and writes in every message header: node id,
/// membership address and generation, about 24 bytes with postcard
/// against about 52 for a [`MemberId`] (ADR 024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SwimId {
    /// Unique node id.
    pub id: NodeId,
    /// Membership (SWIM) address.
    pub addr: SocketAddr,
    /// Generation (see [`MemberId::generation`]).
    pub generation: u64,
}

impl foca::Identity for SwimId {
    type Addr = SocketAddr;

    /// After being declared down (e.g. a long pause), rejoin automatically
    /// as a newer generation of the same node.
    fn renew(&self) -> Option<Self> {
        Some(SwimId {
            generation: self.generation.wrapping_add(1),
            ..*self
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        (self.generation, self.id) > (adversary.generation, adversary.id)
    }
}
