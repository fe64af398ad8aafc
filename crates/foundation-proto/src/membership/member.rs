//! The public view of members and their events.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::identity::MemberId;
use crate::NodeId;

/// A member's state as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed probes; declared Down unless it refutes in time.
    Suspect,
    /// Declared down by the cluster (crashed, partitioned).
    Down,
    /// Left gracefully.
    Left,
}

impl MemberState {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Down => "down",
            MemberState::Left => "left",
        }
    }

    /// Alive or suspect: still counted in the cluster.
    pub fn is_active(self) -> bool {
        matches!(self, MemberState::Alive | MemberState::Suspect)
    }
}

/// A member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Unique node id.
    pub id: NodeId,
    /// Node name.
    pub name: String,
    /// Membership (SWIM) address.
    pub addr: SocketAddr,
    /// QUIC transport address.
    pub transport: SocketAddr,
    /// Roles.
    pub roles: Vec<String>,
    /// Foundation version.
    pub version: String,
    /// Current state.
    pub state: MemberState,
    /// SWIM incarnation (bumped when it refutes a suspicion).
    pub incarnation: u16,
    /// Identity generation (bumped when it rejoins after being declared down).
    pub generation: u64,
}

impl Member {
    /// The identity, with its metadata, this member has.
    pub fn identity(&self) -> MemberId {
        MemberId {
            id: self.id,
            addr: self.addr,
            transport: self.transport,
            name: self.name.clone(),
            roles: self.roles.clone(),
            version: self.version.clone(),
            generation: self.generation,
        }
    }

    /// The member an identity describes, in `state` at `incarnation`.
    pub fn from_identity(id: &MemberId, state: MemberState, incarnation: u16) -> Self {
        Member {
            id: id.id,
            name: id.name.clone(),
            addr: id.addr,
            transport: id.transport,
            roles: id.roles.clone(),
            version: id.version.clone(),
            state,
            incarnation,
            generation: id.generation,
        }
    }
}

/// A change in membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberEvent {
    /// A member joined, or became alive again (refuted a suspicion, rejoined).
    Up(Member),
    /// A member missed probes and is suspected.
    Suspect(Member),
    /// A member was declared down (crash, partition).
    Down(Member),
    /// A member left gracefully.
    Left(Member),
}

impl MemberEvent {
    /// The member concerned.
    pub fn member(&self) -> &Member {
        match self {
            MemberEvent::Up(m)
            | MemberEvent::Suspect(m)
            | MemberEvent::Down(m)
            | MemberEvent::Left(m) => m,
        }
    }
}

impl From<&Member> for crate::process::planner::Member {
    /// The member as the process planner sees it: active (alive or
    /// suspect), left gracefully, or down.
    fn from(m: &Member) -> Self {
        use crate::process::planner::Presence;
        crate::process::planner::Member {
            id: m.id,
            roles: m.roles.clone(),
            presence: match m.state {
                MemberState::Alive | MemberState::Suspect => Presence::Active,
                MemberState::Left => Presence::Left,
                MemberState::Down => Presence::Down,
            },
        }
    }
}
