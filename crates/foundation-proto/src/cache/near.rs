//! The near tier's rules: when a fetched copy may be kept, and when an
//! invalidation drops one.
//!
//! The classic near-cache bug is a fetch that crosses an invalidation: a
//! node asks the owner for a key, the owner answers the old value, a
//! write lands and its invalidation arrives before the old answer, and
//! the old value is then cached with nothing left to remove it. Here an
//! invalidation also raises a floor on every fetch of its key still in
//! flight, and an answer older than its fetch's floor is not kept (it is
//! still returned to its caller, who asked before the write finished).

use std::collections::HashMap;

use super::Version;

/// A fetch in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ticket(u64);

#[derive(Debug)]
struct Open {
    key: Vec<u8>,
    floor: Version,
}

/// Fetches in flight on one node's near tier, and the floor each has
/// been raised to. Bounded by the fetches callers have open.
#[derive(Debug, Default)]
pub struct Fetches {
    next: u64,
    open: HashMap<u64, Open>,
}

impl Fetches {
    /// A fetch of `key` starts.
    pub fn begin(&mut self, key: &[u8]) -> Ticket {
        self.next += 1;
        self.open.insert(
            self.next,
            Open {
                key: key.to_vec(),
                floor: Version::ZERO,
            },
        );
        Ticket(self.next)
    }

    /// An invalidation of `key` at `version` arrived: fetches in flight
    /// may keep only answers at least that new.
    pub fn invalidated(&mut self, key: &[u8], version: Version) {
        for o in self.open.values_mut().filter(|o| o.key == key) {
            o.floor = o.floor.max(version);
        }
    }

    /// The fetch ended with a copy at `version` (none: nothing found).
    /// Answers whether the copy may be kept in the near tier.
    pub fn finish(&mut self, ticket: Ticket, version: Option<Version>) -> bool {
        match (self.open.remove(&ticket.0), version) {
            (Some(o), Some(v)) => v >= o.floor,
            _ => false,
        }
    }

    /// The fetch was abandoned (its caller gave up).
    pub fn abandon(&mut self, ticket: Ticket) {
        self.open.remove(&ticket.0);
    }

    /// Fetches in flight.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no fetch is in flight.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

/// Whether a near copy at `held` is dropped by an invalidation at
/// `incoming`: when it is older. An invalidation that arrives after a
/// newer copy was fetched leaves that copy alone.
pub fn drops(held: Version, incoming: Version) -> bool {
    held < incoming
}
