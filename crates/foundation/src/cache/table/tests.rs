//! The front must never serve what moka would not: a model test over
//! every kind of change, a race of writers and readers, expiry and the
//! bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

use bytes::Bytes;
use foundation_proto::cache::Version;
use foundation_proto::NodeId;
use proptest::prelude::*;

use super::*;
use crate::cache::options::CacheOptions;
use crate::cache::store::{Counters, Entry};

fn table(options: &CacheOptions) -> Table {
    Table::new(
        "t",
        options,
        &Arc::new(Counters::default()),
        &Arc::default(),
    )
}

fn at(stamp: u64, value: Option<u8>) -> Entry {
    Entry {
        value: value.map(|v| Bytes::from(vec![v])),
        version: Version {
            stamp,
            node: NodeId(1),
        },
        ttl_ms: None,
    }
}

fn key(k: u8) -> Bytes {
    Bytes::from(vec![k])
}

#[derive(Clone, Debug)]
enum Step {
    Apply(u8, u64, Option<u8>),
    Insert(u8, u64),
    Invalidate(u8),
    ForgetIf(u8, u64),
    InvalidateAll,
    /// Straight on the moka cache, as `Cache::local()` allows.
    RawInsert(u8, u64),
    RawInvalidate(u8),
    RawInvalidateAll,
    Get(u8),
    Drain,
}

fn step() -> impl Strategy<Value = Step> {
    let k = 0u8..4;
    let s = 0u64..12;
    prop_oneof![
        (k.clone(), s.clone(), proptest::option::of(any::<u8>()))
            .prop_map(|(k, s, v)| Step::Apply(k, s, v)),
        (k.clone(), s.clone()).prop_map(|(k, s)| Step::Insert(k, s)),
        k.clone().prop_map(Step::Invalidate),
        (k.clone(), s.clone()).prop_map(|(k, s)| Step::ForgetIf(k, s)),
        Just(Step::InvalidateAll),
        (k.clone(), s).prop_map(|(k, s)| Step::RawInsert(k, s)),
        k.clone().prop_map(Step::RawInvalidate),
        Just(Step::RawInvalidateAll),
        k.clone().prop_map(Step::Get),
        k.clone().prop_map(Step::Get),
        k.prop_map(Step::Get),
        Just(Step::Drain),
    ]
}

proptest! {
    #[test]
    fn every_get_answers_what_moka_holds(steps in proptest::collection::vec(step(), 1..80)) {
        let t = table(&CacheOptions::default());
        let mut model: HashMap<u8, Entry> = HashMap::new();
        for s in steps {
            match s {
                Step::Apply(k, stamp, v) => {
                    let e = at(stamp, v);
                    let newer = model.get(&k).is_none_or(|h| h.version.is_superseded_by(e.version));
                    prop_assert_eq!(t.apply(key(k), e.clone()), newer);
                    if newer {
                        model.insert(k, e);
                    }
                }
                Step::Insert(k, stamp) => {
                    t.insert(key(k), at(stamp, Some(k)));
                    model.insert(k, at(stamp, Some(k)));
                }
                Step::Invalidate(k) => {
                    t.invalidate(&key(k));
                    model.remove(&k);
                }
                Step::ForgetIf(k, stamp) => {
                    t.forget_if(&key(k), at(stamp, None).version);
                    if model.get(&k).is_some_and(|h| h.version.stamp == stamp) {
                        model.remove(&k);
                    }
                }
                Step::InvalidateAll => {
                    t.invalidate_all();
                    model.clear();
                }
                Step::RawInsert(k, stamp) => {
                    t.moka().insert(key(k), at(stamp, Some(k.wrapping_add(100))));
                    model.insert(k, at(stamp, Some(k.wrapping_add(100))));
                }
                Step::RawInvalidate(k) => {
                    t.moka().invalidate(&key(k));
                    model.remove(&k);
                }
                Step::RawInvalidateAll => {
                    t.moka().invalidate_all();
                    model.clear();
                }
                Step::Get(k) => {
                    prop_assert_eq!(t.get(&key(k)), model.get(&k).cloned(), "key {}", k);
                }
                Step::Drain => {
                    t.drain();
                }
            }
        }
    }
}

/// Writers apply ever newer versions (through the table, and straight on
/// moka); a reader that starts after a write returned never sees an older
/// version, however its reads interleave with the front's fills.
#[test]
fn no_read_sees_a_version_older_than_a_finished_write() {
    const KEYS: u8 = 4;
    const WRITES: u64 = 20_000;
    let t = Arc::new(table(&CacheOptions::default()));
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
    let stamps = Arc::new(AtomicU64::new(1));
    let done = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (t, acked, stamps, done) = (t.clone(), acked.clone(), stamps.clone(), done.clone());
            std::thread::spawn(move || {
                for i in 0..WRITES {
                    let k = (i % u64::from(KEYS)) as u8;
                    let stamp = stamps.fetch_add(1, SeqCst);
                    if w == 0 {
                        t.apply(key(k), at(stamp, Some(k)));
                    } else {
                        // Raw writes replace whatever is there: keep them
                        // ordered with the table's by the same counter
                        // only when newer.
                        t.moka().entry(key(k)).and_compute_with(|held| match held {
                            Some(h) if h.value().version.stamp > stamp => {
                                moka::ops::compute::Op::Nop
                            }
                            _ => moka::ops::compute::Op::Put(at(stamp, Some(k))),
                        });
                    }
                    acked[k as usize].fetch_max(stamp, SeqCst);
                }
                done.fetch_add(1, SeqCst);
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (t, acked, done) = (t.clone(), acked.clone(), done.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while done.load(SeqCst) < 2 && reads < 5_000_000 {
                    for k in 0..KEYS {
                        let floor = acked[k as usize].load(SeqCst);
                        let got = t.get(&key(k)).map_or(0, |e| e.version.stamp);
                        assert!(
                            got >= floor,
                            "key {k}: read stamp {got} after stamp {floor} was written"
                        );
                        reads += 1;
                    }
                    if reads.is_multiple_of(4096) {
                        t.drain();
                    }
                }
                reads
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    let reads: u64 = readers.into_iter().map(|r| r.join().expect("reader")).sum();
    assert!(reads > 0);
}

#[test]
fn an_expired_entry_is_not_served_from_the_front() {
    let t = table(&CacheOptions::default());
    let mut e = at(1, Some(1));
    e.ttl_ms = Some(30);
    t.apply(key(1), e.clone());
    assert_eq!(t.get(&key(1)), Some(e.clone()));
    assert_eq!(t.get(&key(1)), Some(e));
    assert_eq!(t.front_len(), 1);
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(t.get(&key(1)), None);
}

#[test]
fn the_front_holds_only_keys_moka_still_holds() {
    let options = CacheOptions {
        max_entries: 100,
        ..CacheOptions::default()
    };
    let t = table(&options);
    for round in 0..5u64 {
        for k in 0..2_000u64 {
            let kb = Bytes::from(k.to_le_bytes().to_vec());
            t.apply(kb.clone(), at(round * 10_000 + k + 1, Some(1)));
            t.get(&kb);
        }
    }
    t.moka().run_pending_tasks();
    t.drain();
    let held = t.moka().entry_count();
    assert!(held <= 100, "moka holds {held}");
    assert!(
        t.front_len() as u64 <= held,
        "front {} > moka {held}",
        t.front_len()
    );
}

#[test]
fn reads_served_by_the_front_are_replayed_into_moka() {
    let t = table(&CacheOptions::default());
    t.apply(key(1), at(1, Some(1)));
    for _ in 0..100 {
        assert!(t.get(&key(1)).is_some());
    }
    assert!(t.drain() > 0);
    assert_eq!(t.drain(), 0);
}

#[test]
fn with_an_idle_timer_the_front_is_off() {
    let options = CacheOptions {
        tti: Some(Duration::from_secs(60)),
        ..CacheOptions::default()
    };
    let t = table(&options);
    t.apply(key(1), at(1, Some(1)));
    assert!(t.get(&key(1)).is_some());
    assert_eq!(t.front_len(), 0);
    assert_eq!(t.drain(), 0);
}

/// Two writers store one new key at once, the newer version second or
/// first; once both returned, every get answers the newer one (the older
/// writer's value must not stay in the front after moka replaced it).
#[test]
fn racing_writes_of_a_new_key_leave_the_newer_version() {
    const KEYS: u64 = 20_000;
    let t = Arc::new(table(&CacheOptions::default()));
    let both = Arc::new(std::sync::Barrier::new(2));
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let (t, both) = (t.clone(), both.clone());
            std::thread::spawn(move || {
                let mut stale = 0u64;
                for k in 0..KEYS {
                    let kb = Bytes::from(k.to_le_bytes().to_vec());
                    t.apply(kb.clone(), at(2 * k + 1 + w, Some(1)));
                    both.wait();
                    if t.get(&kb).map(|e| e.version.stamp) != Some(2 * k + 2) {
                        stale += 1;
                    }
                    both.wait();
                }
                stale
            })
        })
        .collect();
    let stale: u64 = writers.into_iter().map(|w| w.join().expect("writer")).sum();
    assert_eq!(
        stale, 0,
        "gets that answered the older of two finished writes"
    );
}
