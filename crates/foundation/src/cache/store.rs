//! One cache's part on this node: a bounded moka cache of encoded keys to
//! versioned entries, with the counters `stats()` reports.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use foundation_proto::cache::Version;
use moka::ops::compute::Op;
use moka::sync::Cache as Moka;
use serde::{Deserialize, Serialize};

use super::options::CacheOptions;
use super::table::Table;
use crate::id::NodeId;

/// Most nodes recorded as keeping near copies of one key; a node beyond
/// it learns of changes by reconciliation.
const MAX_INTERESTED: usize = 256;

/// How long a delete's tombstone is kept, so a write older than the
/// delete that arrives late (from a slow replica or a handoff) cannot
/// bring the value back.
pub(crate) const TOMBSTONE_TTL: Duration = Duration::from_secs(60);

/// A stored entry, as the moka cache under a [`Cache`](super::Cache)
/// holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The value, postcard-encoded; none for a delete (a tombstone, kept
    /// a minute so an older write arriving late cannot revive the key).
    pub value: Option<Bytes>,
    /// Its place in the key's order of writes.
    pub version: Version,
    /// Its own time to live, in milliseconds from when it was stored.
    pub ttl_ms: Option<u64>,
}

impl Entry {
    pub(crate) fn ttl(&self) -> Option<Duration> {
        match (&self.value, self.ttl_ms) {
            (None, _) => Some(TOMBSTONE_TTL),
            (Some(_), ms) => ms.map(Duration::from_millis),
        }
    }

    pub(crate) fn weight(key: &Bytes, e: &Entry) -> u32 {
        let v = e.value.as_ref().map_or(0, Bytes::len);
        u32::try_from(key.len() + v + 32).unwrap_or(u32::MAX)
    }
}

/// What `stats()` reports of one cache on one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Gets that found a value.
    pub hits: u64,
    /// Gets that found none.
    pub misses: u64,
    /// Entries dropped to stay within the bounds.
    pub evictions: u64,
    /// Entries held on this node (moka's count: approximate until its
    /// pending work runs).
    pub entries: u64,
    /// Requests this node sent to peers for the cache.
    pub remote_calls: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) remote_calls: AtomicU64,
}

/// One cache's entries on this node.
pub(crate) struct Store {
    pub(crate) name: String,
    pub(crate) options: CacheOptions,
    pub(crate) table: Table,
    /// Which nodes keep near copies of which keys this node owns (bounded
    /// like the cache; a record evicted is repaired by reconciliation).
    interest: Moka<Bytes, Vec<NodeId>>,
    pub(crate) counters: Arc<Counters>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("name", &self.name)
            .field("options", &self.options)
            .field("table", &self.table)
            .finish()
    }
}

impl Store {
    pub(crate) fn new(name: &str, options: CacheOptions, wake: &Arc<tokio::sync::Notify>) -> Self {
        let counters = Arc::new(Counters::default());
        let interest = Moka::builder().max_capacity(options.max_entries).build();
        Store {
            name: name.to_owned(),
            table: Table::new(name, &options, &counters, wake),
            interest,
            options,
            counters,
        }
    }

    /// `node` keeps a near copy of `key`: tell it when the key changes.
    pub(crate) fn interested(&self, key: &Bytes, node: NodeId) {
        self.interest
            .entry(key.clone())
            .and_compute_with(|held| match held {
                Some(h) if h.value().contains(&node) => Op::Nop,
                Some(h) => {
                    let mut nodes = h.into_value();
                    if nodes.len() < MAX_INTERESTED {
                        nodes.push(node);
                    }
                    Op::Put(nodes)
                }
                None => Op::Put(vec![node]),
            });
    }

    /// The nodes that keep a near copy of `key`, forgotten: they are told
    /// once, and ask again when they fetch it again.
    pub(crate) fn take_interest(&self, key: &Bytes) -> Vec<NodeId> {
        self.interest.remove(key).unwrap_or_default()
    }

    /// The entry under `key`, tombstones included.
    pub(crate) fn entry(&self, key: &Bytes) -> Option<Entry> {
        self.table.get(key)
    }

    /// Counts a get's outcome (in the cache's own counters, which
    /// `/metrics` renders: a `metrics` macro with a label here would
    /// allocate on every get).
    pub(crate) fn count(&self, hit: bool) {
        let c = if hit {
            &self.counters.hits
        } else {
            &self.counters.misses
        };
        c.fetch_add(1, Relaxed);
    }

    /// Stores `entry` unless the copy held is as new or newer. Answers
    /// whether it was stored.
    pub(crate) fn apply(&self, key: Bytes, entry: Entry) -> bool {
        self.table.apply(key, entry)
    }

    /// Drops this node's copy of `key`, whatever its version.
    pub(crate) fn forget(&self, key: &Bytes) {
        self.table.invalidate(key);
    }

    /// Drops this node's copy of `key` if it is still at `version` (a
    /// newer write that arrived since is kept).
    pub(crate) fn forget_if(&self, key: &Bytes, version: Version) {
        self.table.forget_if(key, version);
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let c = &self.counters;
        CacheStats {
            hits: c.hits.load(Relaxed),
            misses: c.misses.load(Relaxed),
            evictions: c.evictions.load(Relaxed),
            entries: self.table.moka().entry_count(),
            remote_calls: c.remote_calls.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use foundation_proto::NodeId;

    use super::*;

    fn at(stamp: u64, value: Option<&'static [u8]>) -> Entry {
        Entry {
            value: value.map(Bytes::from_static),
            version: Version {
                stamp,
                node: NodeId(1),
            },
            ttl_ms: None,
        }
    }

    #[test]
    fn a_copy_keeps_the_newest_write_whatever_the_arrival_order() {
        let s = Store::new("t", CacheOptions::default(), &Arc::default());
        let k = Bytes::from_static(b"k");
        assert!(s.apply(k.clone(), at(5, Some(b"five"))));
        // An older write arriving late is refused, an equal one too.
        assert!(!s.apply(k.clone(), at(3, Some(b"three"))));
        assert!(!s.apply(k.clone(), at(5, Some(b"again"))));
        assert_eq!(s.entry(&k), Some(at(5, Some(b"five"))));
        // A delete is a tombstone: an older write cannot revive the key.
        assert!(s.apply(k.clone(), at(7, None)));
        assert!(!s.apply(k.clone(), at(6, Some(b"six"))));
        assert_eq!(s.entry(&k).and_then(|e| e.value), None);
        // Forgetting at a version keeps a newer write.
        assert!(s.apply(k.clone(), at(9, Some(b"nine"))));
        s.forget_if(&k, at(7, None).version);
        assert!(s.entry(&k).is_some());
        s.forget_if(&k, at(9, None).version);
        assert!(s.entry(&k).is_none());
    }
}
