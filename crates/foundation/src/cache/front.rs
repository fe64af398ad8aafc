//! A read front for a moka cache (ADR 029): gets are served from a
//! sharded map without writing moka's read log, whose flush (once every
//! 64 reads, on the reading thread) is what a moka get's tail is made
//! of. Reads are recorded lossily in small per-shard logs that a
//! background task replays into moka (a log that fills asks for it), as
//! Caffeine drains its read buffers off the reader's thread.
//!
//! The front never decides what is live: [`Table`](super::table::Table)
//! asks moka (`contains_key`, which records nothing) before it serves a
//! front copy, and forgets a key in the front after every change to it.
//! What the front adds is one rule, an epoch per shard: a copy read from
//! moka is put in the front only if no change to the shard was made
//! since before that read, so a slow reader cannot put back a value a
//! writer has just replaced.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use foldhash::fast::RandomState;
use tokio::sync::Notify;

use crate::locks::{Locked, RwLocked};

/// Shards of the map (and of the read log).
const SHARDS: usize = 16;
/// Reads each shard's log keeps between two drains; more are not
/// recorded.
pub(crate) const LOG_PER_SHARD: usize = 64;

struct Shard<V> {
    /// Bumped, under the map's write lock, by every change to the shard.
    epoch: AtomicU64,
    map: RwLock<HashMap<Bytes, V, RandomState>>,
    /// Keys read from the front since the last drain (lossy, bounded).
    log: Mutex<Vec<Bytes>>,
    /// How many the log holds, read without its lock.
    logged: AtomicUsize,
}

/// Where a read from moka started: [`Front::fill`] keeps its copy only if
/// the shard has not changed since.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket {
    shard: usize,
    epoch: u64,
}

/// Copies of entries a moka cache holds, keyed like it.
pub(crate) struct Front<V> {
    hasher: RandomState,
    shards: Box<[Shard<V>]>,
    /// Most copies one shard keeps.
    per_shard: usize,
    /// Told when a shard's log fills, once until the next drain.
    wake: Arc<Notify>,
    /// A drain was asked for since the last one.
    asked: AtomicBool,
}

impl<V: Clone> std::fmt::Debug for Front<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front").field("len", &self.len()).finish()
    }
}

impl<V: Clone> Front<V> {
    /// A front of at most about `capacity` copies (the moka cache's own
    /// bound in entries: the front only keeps keys moka holds), which
    /// tells `wake` when a log fills.
    pub(crate) fn new(capacity: u64, wake: Arc<Notify>) -> Self {
        let per_shard = usize::try_from(capacity / SHARDS as u64)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        Front {
            hasher: RandomState::default(),
            shards: (0..SHARDS)
                .map(|_| Shard {
                    epoch: AtomicU64::new(0),
                    map: RwLock::default(),
                    log: Mutex::default(),
                    logged: AtomicUsize::new(0),
                })
                .collect(),
            per_shard,
            wake,
            asked: AtomicBool::new(false),
        }
    }

    fn shard_of(&self, key: &[u8]) -> usize {
        // The maps hash with their own seeds, so a shard's keys do not
        // share bits of their map's hash.
        (self.hasher.hash_one(key) >> 60) as usize % SHARDS
    }

    /// The copy of `key`, if the front has one; the read is logged for
    /// [`Front::drain`] unless the shard's log is full or busy.
    pub(crate) fn get(&self, key: &[u8]) -> Option<V> {
        let shard = &self.shards[self.shard_of(key)];
        let log = shard.logged.load(Ordering::Relaxed) < LOG_PER_SHARD;
        let (k, v) = {
            let map = shard.map.read_locked();
            let (k, v) = map.get_key_value(key)?;
            (log.then(|| k.clone()), v.clone())
        };
        if let Some(k) = k {
            if let Ok(mut log) = shard.log.try_lock() {
                if log.len() < LOG_PER_SHARD {
                    log.push(k);
                    shard.logged.store(log.len(), Ordering::Relaxed);
                    if log.len() == LOG_PER_SHARD && !self.asked.swap(true, Ordering::Relaxed) {
                        self.wake.notify_one();
                    }
                }
            }
        }
        Some(v)
    }

    /// Call before reading `key` from moka, for [`Front::fill`].
    pub(crate) fn ticket(&self, key: &[u8]) -> Ticket {
        let shard = self.shard_of(key);
        Ticket {
            shard,
            epoch: self.shards[shard].epoch.load(Ordering::Acquire),
        }
    }

    /// Keeps `value`, read from moka after `ticket` was taken, unless the
    /// shard changed since or is full.
    pub(crate) fn fill(&self, ticket: Ticket, key: Bytes, value: V) {
        let shard = &self.shards[ticket.shard];
        let mut map = shard.map.write_locked();
        if shard.epoch.load(Ordering::Relaxed) != ticket.epoch {
            return;
        }
        if map.len() < self.per_shard || map.contains_key(&key) {
            map.insert(key, value);
        }
    }

    /// A writer stored `value` under `key` in moka after taking `ticket`
    /// (call after the change is made): like [`Front::forget`], but the
    /// written value is kept if nothing else changed the shard since the
    /// ticket. Another change in between (a concurrent write, which moka
    /// may have ordered after this one) leaves no copy.
    pub(crate) fn wrote(&self, ticket: Ticket, key: Bytes, value: V) {
        let shard = &self.shards[ticket.shard];
        let mut map = shard.map.write_locked();
        let unchanged = shard.epoch.fetch_add(1, Ordering::Release) == ticket.epoch;
        if unchanged && (map.len() < self.per_shard || map.contains_key(&key)) {
            map.insert(key, value);
        } else {
            map.remove(&key);
        }
    }

    /// `key` changed in moka (call after the change is made): drop its
    /// copy, and refuse copies read before now.
    pub(crate) fn forget(&self, key: &[u8]) {
        let shard = &self.shards[self.shard_of(key)];
        let mut map = shard.map.write_locked();
        shard.epoch.fetch_add(1, Ordering::Release);
        map.remove(key);
    }

    /// Every key may have changed: drop every copy.
    pub(crate) fn clear(&self) {
        for shard in self.shards.iter() {
            let mut map = shard.map.write_locked();
            shard.epoch.fetch_add(1, Ordering::Release);
            map.clear();
        }
    }

    /// Hands every logged read to `replay` and empties the logs. Answers
    /// how many there were.
    pub(crate) fn drain(&self, mut replay: impl FnMut(&Bytes)) -> usize {
        self.asked.store(false, Ordering::Relaxed);
        let mut n = 0;
        let mut spare = Vec::new();
        for shard in self.shards.iter() {
            if shard.logged.load(Ordering::Relaxed) == 0 {
                continue;
            }
            {
                let mut log = shard.log.locked();
                std::mem::swap(&mut *log, &mut spare);
                shard.logged.store(0, Ordering::Relaxed);
            }
            n += spare.len();
            spare.iter().for_each(&mut replay);
            spare.clear();
        }
        n
    }

    /// Copies held.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.map.read_locked().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn a_copy_read_before_a_change_is_not_kept() {
        let f = Front::new(100, Arc::default());
        let t = f.ticket(b"a");
        // A writer changes "a" between the reader's moka read and its fill.
        f.forget(b"a");
        f.fill(t, k("a"), 1);
        assert_eq!(f.get(b"a"), None);
        // Read after the change: kept.
        let t = f.ticket(b"a");
        f.fill(t, k("a"), 2);
        assert_eq!(f.get(b"a"), Some(2));
        f.forget(b"a");
        assert_eq!(f.get(b"a"), None);
        // A write keeps its value unless another change came between its
        // ticket and its end.
        let t = f.ticket(b"a");
        f.wrote(t, k("a"), 4);
        assert_eq!(f.get(b"a"), Some(4));
        let (t1, t2) = (f.ticket(b"a"), f.ticket(b"a"));
        f.wrote(t2, k("a"), 6);
        f.wrote(t1, k("a"), 5);
        assert_eq!(f.get(b"a"), None);
        // clear refuses fills started before it too.
        let t = f.ticket(b"b");
        f.clear();
        f.fill(t, k("b"), 3);
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn the_front_keeps_no_more_than_its_capacity() {
        let f = Front::new(32, Arc::default());
        for i in 0..10_000u32 {
            let key = Bytes::from(i.to_le_bytes().to_vec());
            let t = f.ticket(&key);
            f.fill(t, key, i);
        }
        assert!(f.len() <= 32 + SHARDS, "{} copies", f.len());
    }

    #[test]
    fn a_full_log_asks_for_one_drain_until_it_is_drained() {
        use futures_util::FutureExt as _;
        let wake = Arc::new(Notify::new());
        let f = Front::new(100, wake.clone());
        let t = f.ticket(b"k");
        f.fill(t, k("k"), 1);
        let asked = || wake.notified().now_or_never().is_some();
        for _ in 0..LOG_PER_SHARD - 1 {
            f.get(b"k");
        }
        assert!(!asked(), "asked before a log was full");
        f.get(b"k");
        assert!(asked(), "a full log did not ask");
        for _ in 0..LOG_PER_SHARD {
            f.get(b"k");
        }
        assert!(!asked(), "asked twice before a drain");
        assert_eq!(f.drain(|_| {}), LOG_PER_SHARD);
        for _ in 0..LOG_PER_SHARD {
            f.get(b"k");
        }
        assert!(asked(), "a log full again after a drain did not ask");
    }

    #[test]
    fn reads_are_logged_up_to_the_bound_and_drained_once() {
        let f = Front::new(1_000, Arc::default());
        for i in 0..4u8 {
            let t = f.ticket(&[i]);
            f.fill(t, Bytes::from(vec![i]), i);
        }
        for _ in 0..1_000 {
            for i in 0..4u8 {
                assert_eq!(f.get(&[i]), Some(i));
            }
        }
        let mut seen = Vec::new();
        let n = f.drain(|k| seen.push(k.clone()));
        assert_eq!(n, seen.len());
        // Every key read was logged at least once; no log grew past its bound.
        for i in 0..4u8 {
            assert!(seen.iter().any(|k| k[..] == [i]), "key {i} not logged");
        }
        assert!(n <= SHARDS * LOG_PER_SHARD);
        assert_eq!(f.drain(|_| {}), 0);
    }
}
