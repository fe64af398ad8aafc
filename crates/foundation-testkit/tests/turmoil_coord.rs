//! Coordination under faults, on turmoil: five real nodes (coordination
//! over SWIM and QUIC, every message on turmoil's network and clock) while
//! clients on every node add to a counter, read it, write and read a
//! register, and take a lock, and every node runs a fenced singleton. The
//! faults: the leader is cut off from the majority, then heals; the leader
//! crashes and its host restarts; the singleton's host is cut off, then
//! heals; 2% of datagrams are lost throughout.
//! Even seeds run on memory storage (the restarted host is a new member);
//! odd seeds on durable storage (it comes back with its Raft id, vote and
//! log, read from its files).
//!
//! Afterwards:
//! - the counter's and the register's histories are linearizable (the
//!   test kit's checker);
//! - no two holders of the lock overlap in time, by their own clocks
//!   ([`LockGuard::is_held`]), and fencing tokens grow with each grant;
//! - likewise no two instances of the fenced singleton ran at once. A
//!   holding open on a host that crashes ends at the crash.
//!
//! `TURMOIL_SEED=n` runs one seed, `TURMOIL_SEEDS=k` runs seeds 0..k
//! (three by default); a failing seed prints the command that replays it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use foundation::coord::{Coord, CoordError};
use foundation::process::{Context, Instance, Service, ServiceError, StopReason};
use foundation::Node;
use foundation_testkit::exclusion::{self, Holding};
use foundation_testkit::linearizability::{
    check, Counter, CounterCall, Op, Register, RegisterCall,
};
use foundation_testkit::turmoil_node;
use foundation_testkit::turmoil_udp::Loss;
use rand::{RngExt, SeedableRng};

const NODES: usize = 5;
const SEEDS: [&str; 3] = ["n0", "n1", "n2"];

type CounterOp = Op<CounterCall, i64>;
type RegisterOp = Op<RegisterCall, Option<u64>>;

/// Holdings as recorded: each goes in when it begins, and gets its end
/// when it ends, or when its host crashes.
type Holdings = Mutex<Vec<(Holding, bool)>>;

/// Records a holding that begins now; its slot.
fn begin(holdings: &Holdings, holder: usize, token: u64) -> usize {
    let mut h = lock(holdings);
    let from = now_us();
    h.push((
        Holding {
            holder,
            token,
            from,
            to: from,
        },
        false,
    ));
    h.len() - 1
}

/// Ends the holding in `slot` now (once).
fn end(holdings: &Holdings, slot: usize) {
    if let Some((h, ended)) = lock(holdings).get_mut(slot) {
        if !*ended {
            h.to = now_us();
            *ended = true;
        }
    }
}

/// Ends every open holding of `holder` now (it crashed, or the run ends).
fn end_all(holdings: &Holdings, holder: Option<usize>) {
    for (h, ended) in lock(holdings).iter_mut() {
        if !*ended && holder.is_none_or(|x| x == h.holder) {
            h.to = now_us();
            *ended = true;
        }
    }
}

/// A history as recorded: an operation goes in when invoked (so one in
/// flight on a host that crashes stays, without an answer) and is taken
/// out again if it is known to have had no effect.
type History<C, A> = Mutex<Vec<Option<Op<C, A>>>>;

#[derive(Default)]
struct Shared {
    counter: History<CounterCall, i64>,
    register: History<RegisterCall, Option<u64>>,
    /// Lock holdings, by simulated time in µs.
    holdings: Holdings,
    /// Instances of the fenced singleton, likewise.
    instances: Holdings,
    /// Per host: the member leading coordination as that host sees it
    /// (by host index), and its voter count.
    views: Mutex<BTreeMap<usize, (Option<usize>, usize)>>,
    /// Member ids by host (a restarted host has a new one).
    ids: Mutex<BTreeMap<usize, foundation::NodeId>>,
    /// Whether clients run.
    clients: std::sync::atomic::AtomicBool,
    loss: Loss,
    /// Distinct register values.
    next_value: std::sync::atomic::AtomicU64,
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

/// What an operation's outcome means for the history: answered, never
/// happened (dropped), or unknown (pending forever).
enum Outcome<A> {
    Answered(A),
    Unknown,
    Nothing,
}

fn outcome<T, A>(r: Result<T, CoordError>, answer: impl FnOnce(T) -> A) -> Outcome<A> {
    match r {
        Ok(v) => Outcome::Answered(answer(v)),
        Err(e) if e.outcome_known() => Outcome::Nothing,
        Err(_) => Outcome::Unknown,
    }
}

/// Records an invocation; answers its slot.
fn invoke<C, A>(history: &History<C, A>, call: C, blank: A) -> usize {
    let mut h = lock(history);
    h.push(Some(Op {
        invoked: now_us(),
        returned: None,
        call,
        answer: blank,
    }));
    h.len() - 1
}

/// Records what came back for the operation in `slot`.
fn complete<C, A>(history: &History<C, A>, slot: usize, out: Outcome<A>) {
    let mut h = lock(history);
    match out {
        Outcome::Answered(a) => {
            if let Some(op) = h[slot].as_mut() {
                op.returned = Some(now_us());
                op.answer = a;
            }
        }
        Outcome::Unknown => {}
        Outcome::Nothing => h[slot] = None,
    }
}

async fn client(coord: Coord, i: usize, seed: u64, shared: Arc<Shared>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (i as u64) << 32);
    loop {
        tokio::time::sleep(Duration::from_millis(rng.random_range(10..60))).await;
        if !shared.clients.load(std::sync::atomic::Ordering::Relaxed) {
            continue;
        }
        match rng.random_range(0..4u8) {
            0 => {
                let slot = invoke(&shared.counter, CounterCall::Add(1), 0);
                let r = coord.add("ctr", 1).await;
                complete(&shared.counter, slot, outcome(r, |v| v));
            }
            1 => {
                let slot = invoke(&shared.counter, CounterCall::Read, 0);
                let r = coord.counter("ctr").await;
                complete(&shared.counter, slot, outcome(r, |v| v));
            }
            2 => {
                let v = shared
                    .next_value
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    + 1;
                let slot = invoke(&shared.register, RegisterCall::Write(v), None);
                let r = coord.put("reg", v.to_le_bytes()).await;
                complete(&shared.register, slot, outcome(r, |_| None));
            }
            _ => {
                let slot = invoke(&shared.register, RegisterCall::Read, None);
                let r = coord.get("reg").await;
                let value = |e: Option<foundation::coord::Entry>| {
                    Some(e.map_or(0, |e| {
                        u64::from_le_bytes(e.value.try_into().unwrap_or([0; 8]))
                    }))
                };
                complete(&shared.register, slot, outcome(r, value));
            }
        }
    }
}

/// Takes the lock, holds it a while (watching that it is still held),
/// releases it; records each holding.
async fn locker(coord: Coord, i: usize, seed: u64, shared: Arc<Shared>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x10c4 ^ (i as u64) << 40);
    loop {
        tokio::time::sleep(Duration::from_millis(rng.random_range(5..50))).await;
        if !shared.clients.load(std::sync::atomic::Ordering::Relaxed) {
            continue;
        }
        let Ok(guard) = coord.lock("L").await else {
            continue;
        };
        let slot = begin(&shared.holdings, i, guard.token());
        let hold = Duration::from_millis(rng.random_range(1..40));
        let until = tokio::time::Instant::now() + hold;
        // The holder stops using it when it sees it lost, or when it
        // starts releasing.
        while tokio::time::Instant::now() < until && guard.is_held() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        end(&shared.holdings, slot);
        let _ = guard.unlock().await;
    }
}

/// The fenced singleton: records when each instance ran, by its fence.
struct Probe {
    host: usize,
    shared: Arc<Shared>,
    slot: Option<usize>,
}

impl Service for Probe {
    type Request = ();
    type Reply = ();
    type State = ();

    async fn started(&mut self, ctx: &mut Context, _: Option<()>) -> Result<(), ServiceError> {
        let token = ctx
            .fence()
            .map(|f| f.token())
            .ok_or_else(|| ServiceError::new("a fenced singleton started without a fence"))?;
        self.slot = Some(begin(&self.shared.instances, self.host, token));
        Ok(())
    }

    async fn handle(&mut self, _: &mut Context, _: ()) -> Result<(), ServiceError> {
        Ok(())
    }

    async fn stopping(&mut self, _: &mut Context, _: &StopReason) -> Option<()> {
        if let Some(slot) = self.slot.take() {
            end(&self.shared.instances, slot);
        }
        None
    }
}

/// Publishes this host's view of the group every 10 ms.
async fn report(node: Node, i: usize, shared: Arc<Shared>) {
    loop {
        let s = node.coord().status();
        let ids = lock(&shared.ids).clone();
        let leader = s
            .leader
            .and_then(|l| ids.iter().find(|(_, id)| **id == l).map(|(h, _)| *h));
        lock(&shared.views).insert(i, (leader, s.raft_voters.len()));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

type HostResult = Result<(), Box<dyn std::error::Error>>;

/// Odd seeds keep coordination on disk, in `dir`, one directory per host.
fn durable(seed: u64) -> bool {
    seed % 2 == 1
}

async fn node_main(i: usize, seed: u64, dir: Arc<PathBuf>, shared: Arc<Shared>) -> HostResult {
    let mut builder =
        turmoil_node::builder_with_loss(&name(i), &SEEDS, seed, shared.loss.clone()).await?;
    if durable(seed) {
        let data = dir.join(name(i));
        builder = builder
            .set("coord.storage", "durable")
            .set("coord.data_dir", &data.display().to_string());
    }
    let node = builder.start().await?;
    lock(&shared.ids).insert(i, node.id());
    let probe = shared.clone();
    node.processes()
        .define("probe", move |_: &(), _: &Instance| Probe {
            host: i,
            shared: probe.clone(),
            slot: None,
        });
    node.processes()
        .start_singleton_fenced("single", "probe", &())?;
    let coord = node.coord().with_timeout(Duration::from_secs(2));
    tokio::spawn(client(coord.clone(), i, seed, shared.clone()));
    tokio::spawn(locker(coord, i, seed, shared.clone()));
    report(node, i, shared).await;
    Ok(())
}

struct Run {
    sim: turmoil::Sim<'static>,
    shared: Arc<Shared>,
    seed: u64,
    /// Durable storage of every host (odd seeds); removed with the run.
    _dir: tempfile::TempDir,
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
        // On tmpfs where there is one: the files are real, their fsyncs
        // free (a simulated crash keeps what the kernel has anyway).
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("a directory for durable storage");
        let path = Arc::new(dir.path().to_owned());
        for i in 0..NODES {
            let (s, p) = (shared.clone(), path.clone());
            sim.host(name(i), move || node_main(i, seed, p.clone(), s.clone()));
        }
        Run {
            sim,
            shared,
            seed,
            _dir: dir,
        }
    }

    fn replay(&self) -> String {
        format!(
            "seed {} ({} storage; again: TURMOIL_SEED={} cargo test --release -p foundation-testkit --test turmoil_coord)",
            self.seed,
            if durable(self.seed) { "durable" } else { "memory" },
            self.seed
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

    /// The host of the fenced singleton's running instance.
    fn singleton_host(&self) -> Option<usize> {
        let instances = lock(&self.shared.instances);
        instances
            .iter()
            .rev()
            .find(|(_, ended)| !ended)
            .map(|(h, _)| h.holder)
    }

    /// The leader every host in `hosts` agrees on, with three voters.
    fn agreed_leader(&self, hosts: &[usize]) -> Option<usize> {
        let views = lock(&self.shared.views);
        let first = views.get(&hosts[0])?;
        let all = hosts.iter().all(|h| views.get(h) == Some(first));
        match first {
            (Some(l), 3) if all => Some(*l),
            _ => None,
        }
    }
}

fn exclusive(r: &Run, holdings: &Holdings, what: &str) -> usize {
    end_all(holdings, None);
    let mut list: Vec<Holding> = lock(holdings).iter().map(|(h, _)| h.clone()).collect();
    if let Err(e) = exclusion::check(&mut list) {
        panic!("{}: {what}: {e}", r.replay());
    }
    list.len()
}

fn check_run(r: &Run) -> (usize, usize, usize, usize) {
    let counter: Vec<CounterOp> = lock(&r.shared.counter).iter().flatten().cloned().collect();
    let register: Vec<RegisterOp> = lock(&r.shared.register).iter().flatten().cloned().collect();
    if let Err(e) = check(&Counter(0), &counter) {
        panic!(
            "{}: the counter's history is not linearizable: {e}\n{counter:?}",
            r.replay()
        );
    }
    if let Err(e) = check(&Register::initial(0), &register) {
        panic!(
            "{}: the register's history is not linearizable: {e}\n{register:?}",
            r.replay()
        );
    }
    let holdings = exclusive(r, &r.shared.holdings, "the lock");
    let instances = exclusive(r, &r.shared.instances, "the fenced singleton");
    (counter.len(), register.len(), holdings, instances)
}

#[test]
fn histories_stay_linearizable_and_locks_never_overlap_under_partition_crash_and_loss() {
    for seed in turmoil_node::seeds() {
        let mut r = Run::new(seed);
        let all: Vec<usize> = (0..NODES).collect();
        assert!(
            r.until(Duration::from_secs(60), |r| r.agreed_leader(&all).is_some()),
            "{}: no group of three voters within 60 s",
            r.replay()
        );
        r.shared.loss.set(0.02);
        r.shared
            .clients
            .store(true, std::sync::atomic::Ordering::Relaxed);
        r.run_for(Duration::from_secs(5));

        // Cut the leader off from everyone.
        let leader = r.agreed_leader(&all).unwrap_or(0);
        for other in all.iter().filter(|o| **o != leader) {
            r.sim.partition(name(leader), name(*other));
        }
        let rest: Vec<usize> = all.iter().copied().filter(|o| *o != leader).collect();
        let elected = r.until(Duration::from_secs(20), |r| {
            r.agreed_leader(&rest).is_some_and(|l| l != leader)
        });
        assert!(
            elected,
            "{}: the majority elected no new leader",
            r.replay()
        );
        r.run_for(Duration::from_secs(5));
        for other in all.iter().filter(|o| **o != leader) {
            r.sim.repair(name(leader), name(*other));
        }
        r.run_for(Duration::from_secs(5));

        // Crash the leader; its host restarts three seconds later (a new
        // member on memory storage, the same Raft member on durable).
        let Some(leader) = r.agreed_leader(&all).or_else(|| r.agreed_leader(&rest)) else {
            panic!("{}: no leader after the partition healed", r.replay());
        };
        r.sim.crash(name(leader));
        end_all(&r.shared.holdings, Some(leader));
        end_all(&r.shared.instances, Some(leader));
        lock(&r.shared.views).remove(&leader);
        r.run_for(Duration::from_secs(3));
        r.sim.bounce(name(leader));
        r.run_for(Duration::from_secs(8));

        // Cut the fenced singleton's host off for 6 s: its instance loses
        // its fence; another starts on the majority side only after.
        let Some(host) = r.singleton_host() else {
            panic!("{}: the fenced singleton runs nowhere", r.replay());
        };
        for other in all.iter().filter(|o| **o != host) {
            r.sim.partition(name(host), name(*other));
        }
        r.run_for(Duration::from_secs(6));
        for other in all.iter().filter(|o| **o != host) {
            r.sim.repair(name(host), name(*other));
        }
        r.run_for(Duration::from_secs(5));
        r.shared
            .clients
            .store(false, std::sync::atomic::Ordering::Relaxed);
        r.shared.loss.set(0.0);
        r.run_for(Duration::from_secs(3));

        let (counter, register, holdings, instances) = check_run(&r);
        let storage = if durable(seed) { "durable" } else { "memory" };
        eprintln!(
            "seed {seed} ({storage}): linearizable: {counter} counter and {register} register \
             operations; {holdings} lock holdings and {instances} fenced instances, none \
             overlapping, tokens growing"
        );
        assert!(
            counter > 50 && register > 50 && holdings > 10 && instances >= 2,
            "{}: too little happened",
            r.replay()
        );
    }
}
