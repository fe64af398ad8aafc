//! The types openraft is instantiated with.

use std::io::Cursor;

use foundation_proto::coord::{Command, Rejected, Response};
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// Foundation's Raft types: the log carries coordination
    /// [`Command`]s stamped with the leader's clock, a node's Raft id is its [`NodeId`](crate::NodeId)'s
    /// number, and snapshots are the encoded state in memory.
    pub TypeConfig:
        D = Proposal,
        R = Outcome,
        NodeId = u64,
        Node = openraft::EmptyNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The openraft handle of this node ([`Coord::raft`](super::Coord::raft)).
pub type Raft = openraft::Raft<TypeConfig>;

/// One entry of the log: a command and the clock of the leader that
/// proposed it ([`CoordState::apply_at`](foundation_proto::coord::CoordState::apply_at)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The leader's clock, ms since the Unix epoch.
    pub now_ms: u64,
    /// The command.
    pub command: Command,
}

/// What applying one log entry answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome(pub Result<Response, Rejected>);

/// Which Raft group a node belongs to: the node that founded it and when
/// (its clock, ms). Every Raft message carries it, so two groups formed
/// apart never merge silently (one would overwrite the other's log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupId {
    /// The founder's Raft id.
    pub founder: u64,
    /// When it founded the group (ms since the Unix epoch, its clock).
    pub at_ms: u64,
}

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}@{}", self.founder, self.at_ms)
    }
}
