//! Coordination under faults, on turmoil: five real nodes (coordination
//! over SWIM and QUIC, every message on turmoil's network and clock) while
//! clients on every node add to a counter, read it, write and read a
//! register, and take a lock. The faults: the leader is cut off from the
//! majority, then heals; the leader crashes and its host restarts; 2% of
//! datagrams are lost throughout.
//!
//! Afterwards:
//! - the counter's and the register's histories are linearizable (the
//!   test kit's checker);
//! - no two holders of the lock overlap in time, by their own clocks
//!   ([`LockGuard::is_held`]), and fencing tokens grow with each grant.
//!
//! `TURMOIL_SEED=n` runs one seed, `TURMOIL_SEEDS=k` runs seeds 0..k
//! (three by default); a failing seed prints the command that replays it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use foundation::coord::{Coord, CoordError};
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

/// A history as recorded: an operation goes in when invoked (so one in
/// flight on a host that crashes stays, without an answer) and is taken
/// out again if it is known to have had no effect.
type History<C, A> = Mutex<Vec<Option<Op<C, A>>>>;

#[derive(Default)]
struct Shared {
    counter: History<CounterCall, i64>,
    register: History<RegisterCall, Option<u64>>,
    /// Lock holdings, by simulated time in µs.
    holdings: Mutex<Vec<Holding>>,
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
        let from = now_us();
        let hold = Duration::from_millis(rng.random_range(1..40));
        let until = tokio::time::Instant::now() + hold;
        let mut to = None;
        while tokio::time::Instant::now() < until {
            if !guard.is_held() {
                to = Some(now_us());
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let token = guard.token();
        // The holder stops using it when it starts releasing.
        let to = to.unwrap_or_else(now_us);
        lock(&shared.holdings).push(Holding {
            holder: i,
            token,
            from,
            to,
        });
        let _ = guard.unlock().await;
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

async fn node_main(i: usize, seed: u64, shared: Arc<Shared>) -> HostResult {
    let node = turmoil_node::builder_with_loss(&name(i), &SEEDS, seed, shared.loss.clone())
        .await?
        .start()
        .await?;
    lock(&shared.ids).insert(i, node.id());
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
            "seed {} (again: TURMOIL_SEED={} cargo test --release -p foundation-testkit --test turmoil_coord)",
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

fn check_run(r: &Run) -> (usize, usize, usize) {
    let counter: Vec<CounterOp> = lock(&r.shared.counter).iter().flatten().cloned().collect();
    let register: Vec<RegisterOp> = lock(&r.shared.register).iter().flatten().cloned().collect();
    let mut holdings = lock(&r.shared.holdings).clone();
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
    if let Err(e) = exclusion::check(&mut holdings) {
        panic!("{}: {e}", r.replay());
    }
    (counter.len(), register.len(), holdings.len())
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

        // Crash the leader; its host restarts (a new member, memory
        // storage) three seconds later.
        let Some(leader) = r.agreed_leader(&all).or_else(|| r.agreed_leader(&rest)) else {
            panic!("{}: no leader after the partition healed", r.replay());
        };
        r.sim.crash(name(leader));
        lock(&r.shared.views).remove(&leader);
        r.run_for(Duration::from_secs(3));
        r.sim.bounce(name(leader));
        r.run_for(Duration::from_secs(8));
        r.shared
            .clients
            .store(false, std::sync::atomic::Ordering::Relaxed);
        r.shared.loss.set(0.0);
        r.run_for(Duration::from_secs(3));

        let (counter, register, holdings) = check_run(&r);
        eprintln!(
            "seed {seed}: linearizable: {counter} counter and {register} register operations; \
             {holdings} lock holdings, none overlapping, tokens growing"
        );
        assert!(
            counter > 50 && register > 50 && holdings > 10,
            "{}: too little happened",
            r.replay()
        );
    }
}
