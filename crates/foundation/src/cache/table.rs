//! The entries one node holds for one cache (as a holder, or in its near
//! tier): a bounded moka cache, read through a [`Front`] (ADR 029).
//!
//! Every change this crate makes goes through a [`Table`] method, which
//! forgets the key in the front once moka has it. Changes made straight
//! on the moka cache (`Cache::local()`, reach-through) reach the front
//! through moka's eviction listener, which moka calls after the change,
//! on the changing thread for a replacement or a removal, and during its
//! pending work for an eviction or an expiry. Before the front serves a
//! copy it asks moka whether the key is still live (`contains_key`:
//! expiry, `invalidate_all` and eviction included), so no copy outlives
//! its entry.
//!
//! With `tti` set the front is off: an idle timer must be reset by every
//! read, and the front records reads lossily.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use foundation_proto::cache::Version;
use moka::notification::RemovalCause;
use moka::ops::compute::{CompResult, Op};
use moka::sync::Cache as Moka;
use moka::Expiry;

use super::front::Front;
use super::options::CacheOptions;
use super::store::{Counters, Entry};

/// How often logged front reads are replayed into moka while reads
/// come (each replay takes at most 16 × 64 keys per table).
pub(crate) const DRAIN_BUSY: Duration = Duration::from_millis(10);
/// How often the drain looks when no read came since the last look.
pub(crate) const DRAIN_IDLE: Duration = Duration::from_millis(100);

struct PerEntryTtl;

impl Expiry<Bytes, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &Bytes, e: &Entry, _: Instant) -> Option<Duration> {
        e.ttl()
    }

    fn expire_after_update(
        &self,
        _: &Bytes,
        e: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        e.ttl()
    }
}

/// A bounded moka cache of entries with a read front.
pub(crate) struct Table {
    moka: Moka<Bytes, Entry>,
    front: Option<Arc<Front<Entry>>>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("entries", &self.moka.entry_count())
            .field("front", &self.front)
            .finish()
    }
}

impl Table {
    /// A table bounded by `options`, counting its evictions into
    /// `counters` under metric label `name`. `wake` is told when the
    /// front's logged reads should be replayed (see [`Table::drain`]).
    pub(crate) fn new(
        name: &str,
        options: &CacheOptions,
        counters: &Arc<Counters>,
        wake: &Arc<tokio::sync::Notify>,
    ) -> Self {
        let capacity = match options.max_bytes {
            // An entry weighs at least 33 bytes (`Entry::weight`).
            Some(bytes) => bytes / 33,
            None => options.max_entries,
        };
        let front = options
            .tti
            .is_none()
            .then(|| Arc::new(Front::new(capacity, wake.clone())));
        let evicted = counters.clone();
        let label = name.to_owned();
        let listener_front = front.clone();
        let mut b = Moka::builder().expire_after(PerEntryTtl).eviction_listener(
            move |key: Arc<Bytes>, _, cause| {
                if let Some(f) = &listener_front {
                    f.forget(&key);
                }
                if cause == RemovalCause::Size {
                    evicted.evictions.fetch_add(1, Relaxed);
                    metrics::counter!("foundation_cache_evictions_total", "cache" => label.clone())
                        .increment(1);
                }
            },
        );
        b = match options.max_bytes {
            Some(bytes) => b.max_capacity(bytes).weigher(Entry::weight),
            None => b.max_capacity(options.max_entries),
        };
        if let Some(tti) = options.tti {
            b = b.time_to_idle(tti);
        }
        Table {
            moka: b.build(),
            front,
        }
    }

    /// The moka cache underneath. Changes made on it directly reach the
    /// front through the eviction listener.
    pub(crate) fn moka(&self) -> &Moka<Bytes, Entry> {
        &self.moka
    }

    /// The entry under `key`, tombstones included.
    pub(crate) fn get(&self, key: &Bytes) -> Option<Entry> {
        let Some(front) = &self.front else {
            return self.moka.get(key);
        };
        if let Some(e) = front.get(key) {
            if self.moka.contains_key(key) {
                return Some(e);
            }
        }
        let ticket = front.ticket(key);
        let e = self.moka.get(key)?;
        front.fill(ticket, key.clone(), e.clone());
        Some(e)
    }

    fn changed(&self, key: &[u8]) {
        if let Some(f) = &self.front {
            f.forget(key);
        }
    }

    /// Runs `write`, which stores `entry` under `key` in moka or not
    /// (answering which), and keeps the front coherent with it: a new
    /// key's value goes into the front (a replacement's listener call
    /// moves the epoch, so it leaves no copy).
    fn write(&self, key: Bytes, entry: &Entry, write: impl FnOnce() -> bool) -> bool {
        let Some(front) = &self.front else {
            return write();
        };
        let ticket = front.ticket(&key);
        let stored = write();
        if stored {
            front.wrote(ticket, key, entry.clone());
        }
        stored
    }

    /// Stores `entry` unless the copy held is as new or newer. Answers
    /// whether it was stored.
    pub(crate) fn apply(&self, key: Bytes, entry: Entry) -> bool {
        self.write(key.clone(), &entry, || {
            let version = entry.version;
            let r = self.moka.entry(key).and_compute_with(|held| match held {
                Some(h) if !h.value().version.is_superseded_by(version) => Op::Nop,
                _ => Op::Put(entry.clone()),
            });
            matches!(r, CompResult::Inserted(_) | CompResult::ReplacedWith(_))
        })
    }

    /// Stores `entry` whatever is held.
    pub(crate) fn insert(&self, key: Bytes, entry: Entry) {
        self.write(key.clone(), &entry, || {
            self.moka.insert(key, entry.clone());
            true
        });
    }

    /// Drops `key`, whatever its version.
    pub(crate) fn invalidate(&self, key: &Bytes) {
        self.moka.invalidate(key);
        self.changed(key);
    }

    /// Drops `key` if it is still at `version` (a newer write that arrived
    /// since is kept).
    pub(crate) fn forget_if(&self, key: &Bytes, version: Version) {
        let r = self
            .moka
            .entry(key.clone())
            .and_compute_with(|held| match held {
                Some(h) if h.value().version == version => Op::Remove,
                _ => Op::Nop,
            });
        if matches!(r, CompResult::Removed(_)) {
            self.changed(key);
        }
    }

    /// Drops every entry.
    pub(crate) fn invalidate_all(&self) {
        self.moka.invalidate_all();
        if let Some(f) = &self.front {
            f.clear();
        }
    }

    /// Replays the reads the front logged into moka (its recency and
    /// frequency records), then runs moka's pending work on this thread
    /// instead of a reader's. Answers how many reads were replayed.
    pub(crate) fn drain(&self) -> usize {
        let Some(front) = &self.front else { return 0 };
        let n = front.drain(|k| {
            self.moka.get(k);
        });
        if n > 0 {
            self.moka.run_pending_tasks();
        }
        n
    }

    /// Copies the front holds (for tests and `Debug`).
    #[cfg(test)]
    pub(crate) fn front_len(&self) -> usize {
        self.front.as_ref().map_or(0, |f| f.len())
    }
}

#[cfg(test)]
mod tests;
