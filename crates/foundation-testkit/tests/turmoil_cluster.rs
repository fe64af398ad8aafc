//! Whole nodes under turmoil: seven real nodes (SWIM membership, registry,
//! process manager, pub/sub, all over QUIC + mutual TLS) on a simulated
//! network and simulated time, under loss, a partition, a crash and a
//! restart. After every 10 ms of simulated time the test checks:
//!
//! - no node ever admits the intruder (a node with the wrong secret that
//!   keeps trying to join);
//! - no subscriber receives a message twice or out of order;
//!
//! and each phase waits for the cluster to settle: one member set on
//! every node, every registry naming exactly the live owners' services,
//! one holder of the singleton, named by every registry.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use foundation::process::ServiceOptions;
use foundation::telemetry::DropReason;
use foundation::{MemberEvent, Node, NodeBuilder, NodeId};
use foundation_demo::{Counted, Counter};
use foundation_testkit::turmoil_node;
use foundation_testkit::turmoil_udp::Loss;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

const NODES: usize = 7;
const SEEDS: [&str; 3] = ["n0", "n1", "n2"];
const TOPIC: &str = "ticks";
/// The node that publishes.
const PUBLISHER: usize = 1;
const PUBLISH_EVERY: Duration = Duration::from_millis(10);
/// How often the invariants are checked (simulated).
const CHECK_EVERY: Duration = Duration::from_millis(10);

/// What the hosts share with the test.
#[derive(Default)]
struct Shared {
    /// Running nodes by index.
    nodes: Mutex<BTreeMap<usize, Node>>,
    intruder: Mutex<Option<NodeId>>,
    /// Per receiver: the publisher's sequence numbers in arrival order.
    arrivals: Mutex<BTreeMap<usize, Vec<u64>>>,
    /// Messages to publish, from when it is set.
    publish: AtomicU64,
    /// Messages published (accepted by `broadcast`).
    published: AtomicU64,
    /// A node asked to let go of its handle in `nodes` before its host is
    /// crashed: its sockets must be dropped inside the simulation, where
    /// turmoil releases their ports.
    forget: Mutex<Option<usize>>,
    /// Loss of every datagram any node sends.
    loss: Loss,
    /// Whether nodes add 1 to the singleton every [`CALL_EVERY`].
    calling: AtomicBool,
    /// Additions attempted, and acknowledged, over every node's life.
    attempted: AtomicU64,
    acked: AtomicU64,
    /// The highest total any acknowledgement carried.
    highest: AtomicU64,
    /// A node asked to stop gracefully (its host then ends).
    stop: Mutex<Option<usize>>,
    /// Singleton instances started without a handoff, on any node.
    fresh_starts: Arc<AtomicU64>,
    /// Members declared down, as seen by any node (one per observer).
    downs: AtomicU64,
}

/// Period of each node's additions to the singleton.
const CALL_EVERY: Duration = Duration::from_millis(20);

/// Adds 1 to the singleton every [`CALL_EVERY`] while `calling` is set.
async fn call_singleton(node: Node, shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(CALL_EVERY).await;
        if !shared.calling.load(Ordering::Relaxed) {
            continue;
        }
        let Ok(Some(leader)) = node.processes().lookup_singleton::<Counter>("leader") else {
            continue;
        };
        shared.attempted.fetch_add(1, Ordering::Relaxed);
        if let Ok(Counted { total, .. }) = leader.call(1, Duration::from_secs(1)).await {
            shared.acked.fetch_add(1, Ordering::Relaxed);
            shared.highest.fetch_max(total, Ordering::Relaxed);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Run for `seed` (panics carry the command that runs it again).
struct Seed {
    seed: u64,
    test: &'static str,
}

impl std::fmt::Display for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} (again: TURMOIL_SEED={} cargo test -p foundation-testkit --test turmoil_cluster {})",
            self.seed, self.seed, self.test
        )
    }
}

fn name(i: usize) -> String {
    format!("n{i}")
}

type HostResult = Result<(), Box<dyn std::error::Error>>;

/// Settings applied to every node's builder.
type Configure = fn(NodeBuilder) -> NodeBuilder;

/// The defaults.
fn defaults(b: NodeBuilder) -> NodeBuilder {
    b
}

/// Node `i`: registers `svc-i`, subscribes to the topic; node 0 starts the
/// singleton, the publisher publishes when told.
async fn node_main(i: usize, seed: u64, configure: Configure, shared: Arc<Shared>) -> HostResult {
    let node = configure(
        turmoil_node::builder_with_loss(&name(i), &SEEDS, seed, shared.loss.clone()).await?,
    )
    .start()
    .await?;
    foundation_demo::define_counting(&node, "tally", shared.fresh_starts.clone());
    let svc = node
        .services()
        .spawn(Counter::new, ServiceOptions::default());
    node.registry().register(&format!("svc-{i}"), &svc)?;
    let mut sub = node.pubsub().subscribe::<u64>(TOPIC)?;
    // Every node names the singleton at boot, as replicas running the
    // same code do (idempotent).
    let _ = node.processes().start_singleton("leader", "tally", &());
    if i == PUBLISHER {
        tokio::spawn(publish(node.clone(), shared.clone()));
    }
    lock(&shared.nodes).insert(i, node.clone());
    tokio::spawn(call_singleton(node.clone(), shared.clone()));
    let (mut events, counting) = (node.events(), shared.clone());
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            if matches!(ev, MemberEvent::Down(_)) {
                counting.downs.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    // Requests from the test: let go of the handle (before a crash: the
    // sockets must drop inside the simulation, where turmoil releases
    // their ports), or stop gracefully.
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    loop {
        tokio::select! {
            seq = sub.recv() => match seq {
                Some(seq) => lock(&shared.arrivals).entry(i).or_default().push(*seq),
                None => return Ok(()),
            },
            _ = tick.tick() => {
                if *lock(&shared.forget) == Some(i) {
                    lock(&shared.nodes).remove(&i);
                    *lock(&shared.forget) = None;
                }
                if *lock(&shared.stop) == Some(i) {
                    lock(&shared.nodes).remove(&i);
                    node.shutdown().await;
                    *lock(&shared.stop) = None;
                    return Ok(());
                }
            }
        }
    }
}

/// Publishes 1, 2, ... every [`PUBLISH_EVERY`] once `publish` is set, up
/// to its value.
async fn publish(node: Node, shared: Arc<Shared>) {
    let mut seq = 0;
    loop {
        tokio::time::sleep(PUBLISH_EVERY).await;
        if seq >= shared.publish.load(Ordering::Relaxed) {
            continue;
        }
        seq += 1;
        if node.pubsub().broadcast(TOPIC, seq).await.is_ok() {
            shared.published.store(seq, Ordering::Relaxed);
        }
    }
}

/// A node with the wrong secret that keeps knocking.
async fn intruder_main(seed: u64, shared: Arc<Shared>) -> HostResult {
    let node = turmoil_node::builder("intruder", &SEEDS, seed)
        .await?
        .secret("not-the-cluster-secret-0123456789")
        .start()
        .await?;
    *lock(&shared.intruder) = Some(node.id());
    std::future::pending::<()>().await;
    drop(node);
    Ok(())
}

/// Logs (filtered by `RUST_LOG`) stamped with the simulated time.
fn log_in_simulated_time() {
    struct SimTime;
    impl FormatTime for SimTime {
        fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
            match turmoil::sim_elapsed() {
                Some(t) => write!(w, "{:>10.3}s", t.as_secs_f64()),
                None => write!(w, "{:>11}", "-"),
            }
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_timer(SimTime)
        .with_test_writer()
        .try_init();
}

struct Run {
    sim: turmoil::Sim<'static>,
    shared: Arc<Shared>,
    seed: Seed,
}

impl Run {
    fn new(test: &'static str, seed: u64, loss: f64) -> Run {
        Run::with(test, seed, loss, defaults)
    }

    fn with(test: &'static str, seed: u64, loss: f64, configure: Configure) -> Run {
        log_in_simulated_time();
        let mut sim = turmoil::Builder::new()
            .rng_seed(seed)
            .simulation_duration(Duration::from_secs(600))
            .min_message_latency(Duration::from_millis(1))
            .max_message_latency(Duration::from_millis(10))
            .build();
        let shared = Arc::new(Shared::default());
        shared.loss.set(loss);
        for i in 0..NODES {
            let s = shared.clone();
            sim.host(name(i), move || node_main(i, seed, configure, s.clone()));
        }
        let s = shared.clone();
        sim.host("intruder", move || intruder_main(seed, s.clone()));
        Run {
            sim,
            shared,
            seed: Seed { seed, test },
        }
    }

    /// Steps until `settled` holds (checked with the invariants every
    /// [`CHECK_EVERY`]); the simulated time it took, or `None` after `limit`.
    fn until(
        &mut self,
        limit: Duration,
        mut settled: impl FnMut(&Run) -> bool,
    ) -> Option<Duration> {
        let start = self.sim.elapsed();
        let mut next_check = start;
        loop {
            let now = self.sim.elapsed();
            if now >= next_check {
                self.check_invariants();
                if settled(self) {
                    return Some(now - start);
                }
                next_check = now + CHECK_EVERY;
            }
            if now - start >= limit {
                return None;
            }
            if let Err(e) = self.sim.step() {
                panic!("{}: simulation failed: {e}", self.seed);
            }
        }
    }

    /// Runs for `d` of simulated time, checking the invariants.
    fn run_for(&mut self, d: Duration) {
        self.until(d, |_| false);
    }

    fn check_invariants(&self) {
        let intruder = *lock(&self.shared.intruder);
        if let Some(bad) = intruder {
            for (i, n) in lock(&self.shared.nodes).iter() {
                assert!(
                    n.members().iter().all(|m| m.id != bad),
                    "{}: node {i} admitted the intruder",
                    self.seed
                );
            }
        }
        for (i, seqs) in lock(&self.shared.arrivals).iter() {
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "{}: node {i} received a message twice or out of order: {:?}",
                self.seed,
                seqs.windows(2).find(|w| w[0] >= w[1])
            );
        }
    }

    fn nodes(&self) -> BTreeMap<usize, Node> {
        lock(&self.shared.nodes).clone()
    }

    /// Every running node sees exactly the running nodes as active.
    fn one_view(&self, running: usize) -> bool {
        let nodes = self.nodes();
        let ids: BTreeSet<NodeId> = nodes.values().map(|n| n.id()).collect();
        nodes.len() == running
            && nodes.values().all(|n| {
                n.active_members()
                    .iter()
                    .map(|m| m.id)
                    .collect::<BTreeSet<_>>()
                    == ids
            })
    }

    /// Every registry names each running node's service, and holds
    /// nothing owned by a node that is not running.
    fn one_registry(&self) -> bool {
        let nodes = self.nodes();
        let ids: BTreeSet<NodeId> = nodes.values().map(|n| n.id()).collect();
        nodes.values().all(|n| {
            let reg = n.registry();
            nodes
                .iter()
                .all(|(j, o)| reg.whereis(&format!("svc-{j}")).map(|e| e.owner()) == Some(o.id()))
                && reg
                    .snapshot()
                    .entries
                    .iter()
                    .all(|e| ids.contains(&e.owner()))
        })
    }

    /// The singleton's holder when it runs once and every registry names it.
    fn holder(&self) -> Option<NodeId> {
        let nodes = self.nodes();
        let running: usize = nodes
            .values()
            .map(|n| {
                n.processes()
                    .running()
                    .iter()
                    .filter(|(id, _)| id == "leader")
                    .count()
            })
            .sum();
        let named: BTreeSet<Option<NodeId>> = nodes
            .values()
            .map(|n| n.registry().whereis("leader").map(|e| e.owner()))
            .collect();
        match named.into_iter().collect::<Vec<_>>()[..] {
            [Some(h)] if running == 1 => Some(h),
            _ => None,
        }
    }

    fn settled(&self, running: usize) -> bool {
        self.one_view(running) && self.one_registry() && self.holder().is_some()
    }

    /// Forms the cluster; the simulated time it took. Every node names
    /// the singleton at boot: it must have started once, not once per
    /// partial view.
    fn form(&mut self) -> Duration {
        let formed = self
            .until(Duration::from_secs(60), |r| r.settled(NODES))
            .unwrap_or_else(|| panic!("{}: the cluster did not form in 60 s", self.seed));
        let fresh = self.shared.fresh_starts.load(Ordering::Relaxed);
        assert_eq!(
            fresh, 1,
            "{}: the singleton started {fresh} times from nothing while the cluster formed",
            self.seed
        );
        formed
    }

    /// The intruder's datagrams reached the cluster and were refused.
    fn assert_intruder_refused(&self) {
        let refused: u64 = self
            .nodes()
            .values()
            .map(|n| {
                n.raw()
                    .stats()
                    .datagrams_dropped(DropReason::Unauthenticated)
            })
            .sum();
        assert!(refused > 0, "{}: the intruder never knocked", self.seed);
    }

    fn arrivals(&self, i: usize) -> Vec<u64> {
        lock(&self.shared.arrivals)
            .get(&i)
            .cloned()
            .unwrap_or_default()
    }
}

#[test]
fn seven_nodes_under_five_percent_loss_settle_and_deliver_every_message_in_order() {
    let count = 300;
    for seed in turmoil_node::seeds() {
        let mut r = Run::new("seven_nodes_under_five_percent_loss", seed, 0.05);
        let formed = r.form();
        r.shared.publish.store(count, Ordering::Relaxed);
        let delivered = r.until(Duration::from_secs(60), |r| {
            (0..NODES).all(|i| r.arrivals(i).len() as u64 >= count)
        });
        let want: Vec<u64> = (1..=count).collect();
        for i in 0..NODES {
            assert_eq!(r.arrivals(i), want, "{}: node {i}", r.seed);
        }
        r.assert_intruder_refused();
        eprintln!(
            "5% loss, seed {seed}: settled (one view, one registry, one holder) {formed:?} after start; \
             {count} messages to {NODES} subscribers complete and in order {delivered:?} after publishing began"
        );
    }
}

#[test]
fn a_3_4_partition_for_10_s_heals_to_one_view_one_registry_and_one_holder() {
    for seed in turmoil_node::seeds() {
        let mut r = Run::new("a_3_4_partition_for_10_s", seed, 0.0);
        r.form();
        // Publishing spans the partition: 20 s of messages.
        let count = 2_000;
        r.shared.publish.store(count, Ordering::Relaxed);
        r.run_for(Duration::from_secs(1));
        let minority: Vec<String> = (0..3).map(name).collect();
        let majority: Vec<String> = (3..NODES).map(name).collect();
        for a in &minority {
            for b in majority
                .iter()
                .chain(std::iter::once(&"intruder".to_owned()))
            {
                r.sim.partition(a.as_str(), b.as_str());
            }
        }
        let split = r.until(Duration::from_secs(10), |r| {
            let nodes = r.nodes();
            nodes.values().all(|n| n.active_members().len() < NODES)
        });
        r.run_for(Duration::from_secs(10) - split.unwrap_or_default());
        assert!(
            split.is_some(),
            "{}: the sides never saw each other gone",
            r.seed
        );
        for a in &minority {
            for b in majority
                .iter()
                .chain(std::iter::once(&"intruder".to_owned()))
            {
                r.sim.repair(a.as_str(), b.as_str());
            }
        }
        let healed = r
            .until(Duration::from_secs(60), |r| r.settled(NODES))
            .unwrap_or_else(|| panic!("{}: not settled 60 s after the heal", r.seed));
        // Let publishing finish, then look at what arrived.
        r.until(Duration::from_secs(30), |r| {
            r.shared.published.load(Ordering::Relaxed) >= count
        });
        r.run_for(Duration::from_secs(2));
        let ratios: Vec<String> = (0..NODES)
            .map(|i| format!("{}", r.arrivals(i).len()))
            .collect();
        assert!(r.settled(NODES), "{}: unsettled after publishing", r.seed);
        r.assert_intruder_refused();
        eprintln!(
            "partition 3|4 for 10 s, seed {seed}: seen split after {split:?}; one view, one registry, \
             one holder {healed:?} after the heal; of {count} published, received per node: {}",
            ratios.join(" ")
        );
    }
}

#[test]
fn the_singleton_host_crashes_and_restarts_at_the_same_address() {
    for seed in turmoil_node::seeds() {
        let mut r = Run::new("the_singleton_host_crashes", seed, 0.0);
        r.form();
        let holder = r.holder().expect("holder");
        let h = r
            .nodes()
            .into_iter()
            .find(|(_, n)| n.id() == holder)
            .map(|(i, _)| i)
            .expect("the holder runs");
        *lock(&r.shared.forget) = Some(h);
        r.until(Duration::from_secs(1), |r| lock(&r.shared.forget).is_none());
        r.sim.crash(name(h));
        let failover = r
            .until(Duration::from_secs(30), |r| {
                r.settled(NODES - 1) && r.holder() != Some(holder)
            })
            .unwrap_or_else(|| panic!("{}: no failover within 30 s of the crash", r.seed));
        r.sim.bounce(name(h));
        let rejoin = r
            .until(Duration::from_secs(30), |r| r.settled(NODES))
            .unwrap_or_else(|| panic!("{}: the restarted node not settled within 30 s", r.seed));
        r.assert_intruder_refused();
        eprintln!(
            "crash of the singleton's host (node {h}), seed {seed}: one view, one registry, one new holder \
             {failover:?} after the crash; after its restart at the same address, settled again in {rejoin:?}"
        );
    }
}

/// SWIM timings for a 100 ms round trip: the direct probe's wait above
/// the round trip, room for the indirect probes (two round trips) within
/// the period, and seconds for a suspect to refute.
fn wan(b: NodeBuilder) -> NodeBuilder {
    b.set("membership.probe_period_ms", "1000")
        .set("membership.probe_rtt_ms", "400")
        .set("membership.suspect_to_down_ms", "3000")
}

/// What 30 s of 10% loss and 50 ms latency (each way) did.
struct Faulted {
    /// Per node, how many of the messages published under the faults
    /// arrived.
    received: Vec<usize>,
    /// Down events under the faults, summed over the observers (a member
    /// every other node declared down counts 6).
    downs: u64,
    settled: Duration,
    /// The seed and how to run it again.
    seed_text: String,
}

/// Forms the cluster, then publishes for 30 s under 10% loss and 50 ms
/// latency; once settled after the faults, publishes 100 more, which
/// every node must receive.
fn loss_and_latency(test: &'static str, seed: u64, configure: Configure) -> Faulted {
    let count = 3_000;
    let mut r = Run::with(test, seed, 0.0, configure);
    r.form();
    let all: Vec<String> = (0..NODES).map(name).collect();
    let set_latency = |r: &Run, d: Duration| {
        for a in &all {
            for b in all.iter().filter(|b| a < *b) {
                r.sim.set_link_latency(a.as_str(), b.as_str(), d);
            }
        }
    };
    set_latency(&r, Duration::from_millis(50));
    r.shared.loss.set(0.10);
    r.shared.publish.store(count, Ordering::Relaxed);
    let downs_before = r.shared.downs.load(Ordering::Relaxed);
    r.run_for(Duration::from_secs(30));
    let downs = r.shared.downs.load(Ordering::Relaxed) - downs_before;
    r.shared.loss.set(0.0);
    set_latency(&r, Duration::from_millis(5));
    let settled = r
        .until(Duration::from_secs(60), |r| r.settled(NODES))
        .unwrap_or_else(|| panic!("{}: not settled 60 s after the faults ended", r.seed));
    let published = r.shared.published.load(Ordering::Relaxed);
    let more = published.max(count) + 100;
    r.shared.publish.store(more, Ordering::Relaxed);
    let after = r.until(Duration::from_secs(30), |r| {
        (0..NODES).all(|i| r.arrivals(i).last() == Some(&more))
    });
    assert!(
        after.is_some(),
        "{}: messages published after the faults did not reach every node",
        r.seed
    );
    // Streams are ordered: once the last message arrived, whatever of the
    // earlier ones was still being retransmitted has arrived too.
    let received = (0..NODES)
        .map(|i| r.arrivals(i).iter().filter(|s| **s <= count).count())
        .collect();
    r.assert_intruder_refused();
    Faulted {
        received,
        downs,
        settled,
        seed_text: r.seed.to_string(),
    }
}

#[test]
fn ten_percent_loss_and_50_ms_latency_for_30_s_under_pubsub() {
    for seed in turmoil_node::seeds() {
        let f = loss_and_latency(
            "ten_percent_loss_and_50_ms_latency_for_30_s",
            seed,
            defaults,
        );
        eprintln!(
            "10% loss + 50 ms latency for 30 s, default timings, seed {seed}: {} down events; \
             settled {:?} after the faults; of 3000 messages received per node {:?}",
            f.downs, f.settled, f.received
        );
        // Issue 22: the defaults adapt to the round trip (ADRs 019, 020).
        assert_eq!(f.downs, 0, "{}: live members declared down", f.seed_text);
        assert!(
            f.received.iter().all(|n| *n == 3_000),
            "{}: lost messages: {:?}",
            f.seed_text,
            f.received
        );
    }
}

#[test]
fn with_timings_for_the_round_trip_loss_and_latency_lose_no_message() {
    for seed in turmoil_node::seeds() {
        let f = loss_and_latency("with_timings_for_the_round_trip", seed, wan);
        eprintln!(
            "10% loss + 50 ms latency for 30 s, probe 1 s / rtt 400 ms / suspect 3 s, seed {seed}: \
             {} down events; settled {:?} after the faults; received per node {:?}",
            f.downs, f.settled, f.received
        );
        assert!(
            f.received.iter().all(|n| *n == 3_000),
            "{}: lost messages: {:?}",
            f.seed_text,
            f.received
        );
    }
}

#[test]
fn a_rolling_restart_while_every_node_adds_to_the_singleton_loses_no_acknowledged_addition() {
    for seed in turmoil_node::seeds() {
        let mut r = Run::new("a_rolling_restart_while_every_node_adds", seed, 0.0);
        r.form();
        r.shared.calling.store(true, Ordering::Relaxed);
        r.run_for(Duration::from_secs(1));
        let mut back = Vec::new();
        for i in 0..NODES {
            *lock(&r.shared.stop) = Some(i);
            r.until(Duration::from_secs(10), |r| lock(&r.shared.stop).is_none())
                .unwrap_or_else(|| panic!("{}: node {i} did not stop within 10 s", r.seed));
            r.sim.bounce(name(i));
            back.push(
                r.until(Duration::from_secs(30), |r| r.settled(NODES))
                    .unwrap_or_else(|| {
                        panic!("{}: not settled 30 s after restarting node {i}", r.seed)
                    }),
            );
            r.run_for(Duration::from_secs(1));
        }
        r.shared.calling.store(false, Ordering::Relaxed);
        r.run_for(Duration::from_secs(2));
        let (acked, attempted, total) = (
            r.shared.acked.load(Ordering::Relaxed),
            r.shared.attempted.load(Ordering::Relaxed),
            r.shared.highest.load(Ordering::Relaxed),
        );
        eprintln!(
            "rolling restart of {NODES} nodes, seed {seed}: counter {total}, {acked} acknowledged, {attempted} attempted; settled after each restart in {back:?}"
        );
        assert!(
            acked > 1000,
            "{}: the load ran: {acked} acknowledged",
            r.seed
        );
        assert!(
            total >= acked,
            "{}: state lost: the counter ended at {total}, {acked} additions were acknowledged",
            r.seed
        );
        assert!(
            total <= attempted,
            "{}: applied twice: the counter ended at {total}, {attempted} attempted",
            r.seed
        );
    }
}
