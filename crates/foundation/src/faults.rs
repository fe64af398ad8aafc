//! Fault injection for tests: partitions at the transport level.
//!
//! Each node holds a [`Faults`] set that its membership socket and its
//! QUIC transport consult: datagrams and frames to a blocked address are
//! dropped as if lost on the wire, and those from a blocked address are
//! dropped on arrival. Blocking both ways between two node sets makes a
//! partition; blocking one way makes an asymmetric one. The test kit's
//! `Cluster::partition` drives it; `node.raw().faults()` reaches it.
//!
//! With nothing blocked, the cost is one relaxed atomic load per
//! datagram or frame.

use crate::locks::RwLocked as _;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// The addresses a node may not talk to (outgoing) or hear (incoming).
#[derive(Clone, Debug, Default)]
pub struct Faults {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    active: AtomicBool,
    to: RwLock<HashSet<SocketAddr>>,
    from: RwLock<HashSet<SocketAddr>>,
    dropped: AtomicU64,
}

impl Faults {
    /// Drops everything this node sends to `addrs`.
    pub fn block_to(&self, addrs: impl IntoIterator<Item = SocketAddr>) {
        self.inner.to.write_locked().extend(addrs);
        self.inner.active.store(true, Ordering::Release);
    }

    /// Drops everything this node receives from `addrs`.
    pub fn block_from(&self, addrs: impl IntoIterator<Item = SocketAddr>) {
        self.inner.from.write_locked().extend(addrs);
        self.inner.active.store(true, Ordering::Release);
    }

    /// Lifts every block.
    pub fn heal(&self) {
        self.inner.to.write_locked().clear();
        self.inner.from.write_locked().clear();
        self.inner.active.store(false, Ordering::Release);
    }

    /// Whether sending to `addr` is blocked (and counts the drop).
    pub fn drops_to(&self, addr: SocketAddr) -> bool {
        self.check(&self.inner.to, addr)
    }

    /// Whether receiving from `addr` is blocked (and counts the drop).
    pub fn drops_from(&self, addr: SocketAddr) -> bool {
        self.check(&self.inner.from, addr)
    }

    fn check(&self, set: &RwLock<HashSet<SocketAddr>>, addr: SocketAddr) -> bool {
        if !self.inner.active.load(Ordering::Acquire) {
            return false;
        }
        let hit = set.read_locked().contains(&addr);
        if hit {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// Datagrams and frames dropped so far.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_only_the_named_direction_until_healed() {
        let f = Faults::default();
        let a: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let b: SocketAddr = "127.0.0.1:2".parse().expect("addr");
        assert!(!f.drops_to(a));
        f.block_to([a]);
        assert!(f.drops_to(a));
        assert!(!f.drops_to(b));
        assert!(!f.drops_from(a));
        f.block_from([b]);
        assert!(f.drops_from(b));
        assert_eq!(f.dropped(), 2);
        f.heal();
        assert!(!f.drops_to(a) && !f.drops_from(b));
    }
}
