//! The distributed cache under faults, on turmoil: five real nodes (the
//! cache over SWIM and QUIC, every message on turmoil's network and
//! clock), each writing its own keys with ever larger values and reading
//! every key, while 2% of datagrams are lost, one node is cut off from the
//! others for 4 s, and the owner of the most keys written only before the
//! faults crashes and its host restarts (a new member with an empty
//! cache).
//!
//! The stated bound, checked on every read that returned a value: it is
//! never older than the newest write acknowledged [`BOUND`] before the
//! read began. (A miss is not a value: a cache may always miss, and a node
//! cut off from every holder of a key has nothing to read.) Afterwards,
//! every key reads the newest acknowledged value, or a newer one whose
//! write timed out, from every node: nothing acknowledged was lost.
//!
//! `TURMOIL_SEED=n` runs one seed, `TURMOIL_SEEDS=k` seeds 0..k (three by
//! default); a failing seed prints the command that replays it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use foundation::cache::{Cache, CacheOptions, Tier};
use foundation_testkit::turmoil_node;
use foundation_testkit::turmoil_udp::Loss;
use rand::{RngExt, SeedableRng};

const NODES: usize = 5;
/// Keys written throughout.
const KEYS: u64 = 20;
/// Keys written before the faults only, after `KEYS`: a lost copy of one
/// of these is not hidden by a later write.
const FROZEN: u64 = 20;
/// Every key.
const ALL: u64 = KEYS + FROZEN;
const SEEDS: [&str; 3] = ["n0", "n1", "n2"];
/// How much older than the newest acknowledged write a read may be.
const BOUND: Duration = Duration::from_secs(8);

#[derive(Clone, Debug)]
struct Write {
    key: u64,
    value: u64,
    returned: Option<u64>,
}

#[derive(Clone, Debug)]
struct Read {
    host: usize,
    key: u64,
    value: u64,
    invoked: u64,
}

#[derive(Default)]
struct Shared {
    writes: Mutex<Vec<Write>>,
    reads: Mutex<Vec<Read>>,
    misses: AtomicU64,
    /// Per host, how many members its cache places keys over.
    views: Mutex<BTreeMap<usize, usize>>,
    clients: AtomicBool,
    /// Whether the frozen keys are still written.
    warmup: AtomicBool,
    /// Member ids by host, and the owner of each frozen key, as host 0
    /// places it.
    ids: Mutex<BTreeMap<usize, foundation::NodeId>>,
    owners: Mutex<BTreeMap<u64, foundation::NodeId>>,
    values: AtomicU64,
    loss: Loss,
    /// The final reads: (host, key, value or none).
    finals: Mutex<Vec<(usize, u64, Option<u64>)>>,
    check: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_us() -> u64 {
    turmoil::sim_elapsed().map_or(0, |d| d.as_micros() as u64)
}

fn name(i: usize) -> String {
    format!("n{i}")
}

/// Writes this host's keys (`key % NODES == host`) with values from one
/// counter for the whole run, and reads any key.
async fn client(cache: Cache<u64, u64>, i: usize, seed: u64, shared: Arc<Shared>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (i as u64) << 32);
    loop {
        tokio::time::sleep(Duration::from_millis(rng.random_range(5..40))).await;
        if shared.check.load(Ordering::Relaxed) {
            for key in 0..ALL {
                let v = cache.get(&key).await.ok().flatten();
                lock(&shared.finals).push((i, key, v));
            }
            std::future::pending::<()>().await;
        }
        if !shared.clients.load(Ordering::Relaxed) {
            continue;
        }
        if rng.random_bool(0.5) {
            let base = if shared.warmup.load(Ordering::Relaxed) && rng.random_bool(0.5) {
                KEYS
            } else {
                0
            };
            let key = base + rng.random_range(0..KEYS / NODES as u64) * NODES as u64 + i as u64;
            let value = shared.values.fetch_add(1, Ordering::Relaxed) + 1;
            let slot = {
                let mut w = lock(&shared.writes);
                w.push(Write {
                    key,
                    value,
                    returned: None,
                });
                w.len() - 1
            };
            if cache.put(&key, &value).await.is_ok() {
                lock(&shared.writes)[slot].returned = Some(now_us());
            }
        } else {
            let key = rng.random_range(0..ALL);
            let invoked = now_us();
            match cache.get(&key).await {
                Ok(Some(value)) => lock(&shared.reads).push(Read {
                    host: i,
                    key,
                    value,
                    invoked,
                }),
                Ok(None) => {
                    shared.misses.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {}
            }
        }
    }
}

type HostResult = Result<(), Box<dyn std::error::Error>>;

async fn node_main(i: usize, seed: u64, shared: Arc<Shared>) -> HostResult {
    let node = turmoil_node::builder_with_loss(&name(i), &SEEDS, seed, shared.loss.clone())
        .await?
        .start()
        .await?;
    let options =
        CacheOptions::tier(Tier::Partitioned { replicas: 1 }).timeout(Duration::from_secs(1));
    let cache = node.cache::<u64, u64>("c", options)?;
    lock(&shared.ids).insert(i, node.id());
    tokio::spawn(client(cache.clone(), i, seed, shared.clone()));
    loop {
        let n = node.caches().members().len();
        lock(&shared.views).insert(i, n);
        if i == 0 {
            let mut owners = lock(&shared.owners);
            for k in KEYS..ALL {
                if let Ok(o) = cache.owner_of(&k) {
                    owners.insert(k, o);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct Run {
    sim: turmoil::Sim<'static>,
    shared: Arc<Shared>,
    seed: u64,
}

impl Run {
    fn new(seed: u64) -> Run {
        let mut sim = turmoil::Builder::new()
            .rng_seed(seed)
            .simulation_duration(Duration::from_secs(600))
            .min_message_latency(Duration::from_millis(1))
            .max_message_latency(Duration::from_millis(5))
            .build();
        let shared = Arc::new(Shared::default());
        for i in 0..NODES {
            let s = shared.clone();
            sim.host(name(i), move || node_main(i, seed, s.clone()));
        }
        Run { sim, shared, seed }
    }

    fn replay(&self) -> String {
        format!(
            "seed {} (again: TURMOIL_SEED={} cargo test --release -p foundation-testkit --test turmoil_cache)",
            self.seed, self.seed
        )
    }

    fn until(&mut self, limit: Duration, mut done: impl FnMut(&Run) -> bool) -> bool {
        let start = self.sim.elapsed();
        loop {
            if done(self) {
                return true;
            }
            if self.sim.elapsed() - start >= limit {
                return false;
            }
            if let Err(e) = self.sim.step() {
                panic!("{}: simulation failed: {e}", self.replay());
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        self.until(d, |_| false);
    }

    fn all_see(&self, n: usize) -> bool {
        let v = lock(&self.shared.views);
        v.len() == NODES && v.values().all(|m| *m == n)
    }

    /// The host (other than 0, which reports placement) owning the most
    /// frozen keys.
    fn owner_of_most_frozen(&self) -> usize {
        let owners = lock(&self.shared.owners);
        let ids = lock(&self.shared.ids);
        (1..NODES)
            .max_by_key(|h| owners.values().filter(|o| ids.get(h) == Some(*o)).count())
            .unwrap_or(3)
    }

    fn cut(&mut self, host: usize, on: bool) {
        for other in (0..NODES).filter(|o| *o != host) {
            if on {
                self.sim.partition(name(host), name(other));
            } else {
                self.sim.repair(name(host), name(other));
            }
        }
    }
}

/// Every read that returned a value returned one no older than the newest
/// write to its key acknowledged `BOUND` before the read began.
/// Answers the writes acknowledged, the reads, and the most stale read
/// seen (how long before it began a newer value had been acknowledged).
fn check_bound(r: &Run) -> (usize, usize, Duration) {
    let writes = lock(&r.shared.writes).clone();
    let reads = lock(&r.shared.reads).clone();
    let bound = BOUND.as_micros() as u64;
    let mut worst = 0;
    for read in &reads {
        let newer_since = writes
            .iter()
            .filter(|w| w.key == read.key && w.value > read.value)
            .filter_map(|w| w.returned.filter(|t| *t < read.invoked))
            .min();
        if let Some(t) = newer_since {
            worst = worst.max(read.invoked - t);
        }
        let floor = writes
            .iter()
            .filter(|w| w.key == read.key && w.returned.is_some_and(|t| t + bound < read.invoked))
            .map(|w| w.value)
            .max()
            .unwrap_or(0);
        assert!(
            read.value >= floor,
            "{}: host {} read key {} = {} at {} µs, older than {} acknowledged more than {:?} before",
            r.replay(),
            read.host,
            read.key,
            read.value,
            read.invoked,
            floor,
            BOUND
        );
    }
    (
        writes.iter().filter(|w| w.returned.is_some()).count(),
        reads.len(),
        Duration::from_micros(worst),
    )
}

/// After the faults: every node reads every key's newest acknowledged
/// value, or a newer one that was written but not acknowledged.
fn check_nothing_lost(r: &Run) {
    let writes = lock(&r.shared.writes).clone();
    let finals = lock(&r.shared.finals).clone();
    assert_eq!(
        finals.len(),
        NODES * ALL as usize,
        "{}: final reads missing",
        r.replay()
    );
    for (host, key, value) in finals {
        let acked = writes
            .iter()
            .filter(|w| w.key == key && w.returned.is_some())
            .map(|w| w.value)
            .max();
        let Some(acked) = acked else { continue };
        let ok = value.is_some_and(|v| {
            v == acked || (v > acked && writes.iter().any(|w| w.key == key && w.value == v))
        });
        assert!(
            ok,
            "{}: host {host} reads key {key} = {value:?} after the faults; last acknowledged {acked}",
            r.replay()
        );
    }
}

#[test]
fn reads_stay_within_the_bound_and_nothing_acknowledged_is_lost_under_partition_crash_and_loss() {
    for seed in turmoil_node::seeds() {
        let mut r = Run::new(seed);
        assert!(
            r.until(Duration::from_secs(60), |r| r.all_see(NODES)),
            "{}: the caches did not all place over five members within 60 s",
            r.replay()
        );
        r.shared.warmup.store(true, Ordering::Relaxed);
        r.shared.clients.store(true, Ordering::Relaxed);
        r.run_for(Duration::from_secs(3));
        r.shared.warmup.store(false, Ordering::Relaxed);
        r.shared.loss.set(0.02);
        r.run_for(Duration::from_secs(2));
        // One node cut off for 4 s.
        r.cut(1, true);
        r.run_for(Duration::from_secs(4));
        r.cut(1, false);
        r.run_for(Duration::from_secs(6));
        // The owner of the most frozen keys crashes; its host restarts 3 s
        // later with an empty cache.
        let victim = r.owner_of_most_frozen();
        r.sim.crash(name(victim));
        lock(&r.shared.views).remove(&victim);
        r.run_for(Duration::from_secs(3));
        r.sim.bounce(name(victim));
        r.run_for(Duration::from_secs(8));
        r.shared.clients.store(false, Ordering::Relaxed);
        r.shared.loss.set(0.0);
        assert!(
            r.until(Duration::from_secs(30), |r| r.all_see(NODES)),
            "{}: the caches did not all place over five members again",
            r.replay()
        );
        r.run_for(Duration::from_secs(3));
        let (acked, reads, worst) = check_bound(&r);
        r.shared.check.store(true, Ordering::Relaxed);
        r.until(Duration::from_secs(30), |r| {
            lock(&r.shared.finals).len() == NODES * ALL as usize
        });
        check_nothing_lost(&r);
        let misses = r.shared.misses.load(Ordering::Relaxed);
        eprintln!(
            "seed {seed}: {acked} writes acknowledged, {reads} reads returned values within {BOUND:?} \
             (the most stale {worst:?}; {misses} misses), every key intact on every node afterwards"
        );
        assert!(
            acked > 100 && reads > 100,
            "{}: too little happened",
            r.replay()
        );
    }
}
