//! The order of writes to one key: versions stamped by a hybrid logical
//! clock.
//!
//! A key's owner stamps each write. A replica that receives a write
//! remembers its version, so when it becomes the owner its own stamps come
//! after every write it has seen. The physical part (wall milliseconds)
//! keeps a restarted node, whose counter starts again, ahead of what it
//! wrote before it stopped, as long as clocks differ by less than the
//! time between its last write and its restart.

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// Bits of a stamp below the milliseconds: up to 65,536 writes per
/// millisecond per node before the stamp runs ahead of the wall clock.
const LOGICAL_BITS: u32 = 16;

/// When a write happened in the key's order: compared by `stamp`, ties
/// (two owners stamping in the same instant during a view change) by
/// node id, so every node picks the same winner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    /// Wall milliseconds shifted left 16 bits, plus a counter.
    pub stamp: u64,
    /// The node that stamped it.
    pub node: NodeId,
}

impl Version {
    /// The version before every write.
    pub const ZERO: Version = Version {
        stamp: 0,
        node: NodeId(0),
    };

    /// Whether a copy at `self` should be replaced by one at `incoming`.
    pub fn is_superseded_by(self, incoming: Version) -> bool {
        incoming > self
    }
}

/// One node's clock for stamping writes.
#[derive(Clone, Debug)]
pub struct Clock {
    node: NodeId,
    last: u64,
}

impl Clock {
    /// A clock for `node`.
    pub fn new(node: NodeId) -> Self {
        Clock { node, last: 0 }
    }

    /// Stamps a write at wall time `wall_ms`: later than every stamp this
    /// clock made or observed.
    pub fn stamp(&mut self, wall_ms: u64) -> Version {
        let physical = wall_ms.saturating_mul(1 << LOGICAL_BITS);
        self.last = physical.max(self.last.saturating_add(1));
        Version {
            stamp: self.last,
            node: self.node,
        }
    }

    /// A version stamped elsewhere was seen: later stamps come after it.
    pub fn observe(&mut self, seen: Version) {
        self.last = self.last.max(seen.stamp);
    }
}
