//! The chaos scenarios, simulated: each builds a cluster from a seed,
//! injects one fault, and measures how long until every invariant of
//! [`check::settled`] holds again.

use std::time::{Duration, Instant};

use super::check;
use super::net::NetConfig;
use super::world::Sim;

/// A simulated scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scenario {
    /// Every node starts at once, all joining through one seed.
    Form,
    /// One node joins a settled cluster.
    Join,
    /// The node running a singleton is killed.
    Crash,
    /// A 2:3 split for 10 s, then heal.
    Partition,
    /// The node running a singleton is paused 5 s (SIGSTOP), then resumed.
    Pause,
    /// 10% loss and 50 ms latency for 30 s under pub/sub traffic.
    Loss,
    /// Every node is restarted in turn, one every 2 s.
    Rolling,
}

impl Scenario {
    /// Every scenario, in a fixed order.
    pub const ALL: [Scenario; 7] = [
        Scenario::Form,
        Scenario::Join,
        Scenario::Crash,
        Scenario::Partition,
        Scenario::Pause,
        Scenario::Loss,
        Scenario::Rolling,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Form => "form",
            Scenario::Join => "join",
            Scenario::Crash => "crash",
            Scenario::Partition => "partition",
            Scenario::Pause => "pause",
            Scenario::Loss => "loss",
            Scenario::Rolling => "rolling",
        }
    }

    /// The scenario called `name`.
    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// What one run showed.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Outcome {
    /// The scenario.
    pub scenario: Scenario,
    /// Nodes in the cluster.
    pub nodes: usize,
    /// The seed.
    pub seed: u64,
    /// Virtual time from the fault's end (or the start, for `form`) until
    /// every invariant held; `None` if they did not within the limit.
    pub settled_after: Option<Duration>,
    /// Invariants broken (empty when the run passed).
    pub failures: Vec<String>,
    /// Pub/sub messages handed to the network (one per subscriber node).
    pub sent: u64,
    /// Deliveries made over deliveries due (subscribers running when each
    /// message was published): 1.0 when nothing was lost.
    pub delivery_ratio: f64,
    /// How long some singleton ran on two nodes at once during the fault
    /// (sampled every 100 ms): the window before the split-brain policy or
    /// conflict resolution acts. After settling it must be zero.
    pub overlap: Duration,
    /// For `form`: sealed membership bytes per node per second over the
    /// 10 virtual seconds after the cluster formed (a stable cluster's
    /// cost); `None` for the other scenarios.
    pub membership_bytes_per_node_s: Option<f64>,
    /// For `form`, over the same window: (what the datagrams carry,
    /// datagrams and bytes per node per second).
    pub membership_by_kind: Vec<(String, f64, f64)>,
    /// Events the simulation processed.
    pub steps: u64,
    /// Wall-clock time the run took.
    pub wall: Duration,
}

impl Outcome {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// The command that replays this run exactly.
    pub fn replay(&self) -> String {
        replay_command(self.scenario, self.nodes, self.seed)
    }
}

/// The command that replays `scenario` on `nodes` nodes with `seed`.
pub fn replay_command(scenario: Scenario, nodes: usize, seed: u64) -> String {
    format!(
        "foundation sim --scenario {} --nodes {nodes} --seed {seed}",
        scenario.name()
    )
}

/// How often the invariants are polled: often for small clusters, less for
/// large ones (a check reads every node's whole view).
fn poll(nodes: usize) -> Duration {
    if nodes > 200 {
        Duration::from_millis(250)
    } else {
        Duration::from_millis(50)
    }
}

/// Runs until [`check::settled`] holds, for at most `limit`; the time it
/// took, or the last failure.
pub fn settle(sim: &mut Sim, limit: Duration) -> Result<Duration, String> {
    let started = sim.now();
    let step = poll(sim.nodes.len());
    loop {
        match check::settled(sim) {
            Ok(()) => return Ok(sim.now() - started),
            Err(e) if sim.now() - started >= limit => {
                return Err(format!("not settled {limit:?} after: {e}"))
            }
            Err(_) => sim.run_for(step),
        }
    }
}

/// Runs `d`, publishing on the test topic every 100 ms from node
/// `publisher`, and adds to `overlap` the time some singleton ran on two
/// nodes at once (sampled every 100 ms).
fn run_checked(sim: &mut Sim, d: Duration, publisher: usize, overlap: &mut Duration) {
    let step = Duration::from_millis(100);
    let until = sim.now() + d;
    while sim.now() < until {
        sim.publish(publisher, TOPIC);
        sim.run_for(step);
        if check::at_most_one_owner(sim).is_err() {
            *overlap += step;
        }
    }
}

const TOPIC: &str = "sim-events";
/// Time the cluster gets to form before a fault.
const FORM_LIMIT: Duration = Duration::from_secs(120);
/// Time the cluster gets to settle after a fault.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);
/// Virtual time a formed cluster runs for its membership traffic figure.
const STEADY_WINDOW: Duration = Duration::from_secs(10);

fn holder(sim: &Sim, name: &str) -> Option<usize> {
    sim.nodes
        .iter()
        .position(|n| n.alive && n.running.contains_key(name))
}

/// Runs `scenario` on `nodes` nodes (at least 5) with `seed`.
pub fn run(scenario: Scenario, nodes: usize, seed: u64) -> Outcome {
    let wall = Instant::now();
    let nodes = nodes.max(5);
    let mut sim = Sim::new(nodes, seed, NetConfig::lan());
    sim.singletons = (0..3).map(|k| format!("singleton-{k}")).collect();
    let mut failures = Vec::new();
    let mut overlap = Duration::ZERO;
    let first = if scenario == Scenario::Join {
        nodes - 1
    } else {
        nodes
    };
    for i in 0..first {
        sim.start(i);
        sim.subscribe(i, TOPIC);
        // `form` starts every node at once; the others start 100 nodes a
        // second, as a deployment rolls out.
        if scenario != Scenario::Form && i % 10 == 9 {
            sim.run_for(Duration::from_millis(100));
        }
    }
    let formed = settle(&mut sim, FORM_LIMIT);
    let mut settled_after = None;
    let mut membership_bytes_per_node_s = None;
    let mut membership_by_kind = Vec::new();
    match (scenario, formed) {
        (_, Err(e)) => failures.push(format!("forming: {e}")),
        (Scenario::Form, Ok(t)) => {
            settled_after = Some(t);
            sim.membership_by_kind.clear();
            sim.run_for(STEADY_WINDOW);
            let per_node_s = |bytes: u64| bytes as f64 / nodes as f64 / STEADY_WINDOW.as_secs_f64();
            let bytes = sim.membership_by_kind.values().map(|(_, b)| b).sum();
            membership_bytes_per_node_s = Some(per_node_s(bytes));
            membership_by_kind = sim
                .membership_by_kind
                .iter()
                .map(|(k, (n, bytes))| (k.clone(), per_node_s(*n), per_node_s(*bytes)))
                .collect();
        }
        (_, Ok(_)) => {
            // The quorum's base is confirmed once a view was stable.
            run_checked(&mut sim, Duration::from_secs(3), 1, &mut overlap);
            let publisher = 1;
            match scenario {
                Scenario::Join => {
                    sim.start(nodes - 1);
                    sim.subscribe(nodes - 1, TOPIC);
                }
                Scenario::Crash => {
                    let h = holder(&sim, "singleton-0").unwrap_or(0);
                    sim.crash(h);
                }
                Scenario::Partition => {
                    let cut = nodes * 2 / 5;
                    let (a, b): (Vec<usize>, Vec<usize>) = (0..nodes).partition(|i| *i < cut);
                    sim.partition(&a, &b);
                    run_checked(&mut sim, Duration::from_secs(10), publisher, &mut overlap);
                    sim.heal();
                }
                Scenario::Pause => {
                    let h = holder(&sim, "singleton-0").unwrap_or(0);
                    sim.pause(h);
                    run_checked(&mut sim, Duration::from_secs(5), publisher, &mut overlap);
                    sim.resume(h);
                }
                Scenario::Loss => {
                    sim.set_net(NetConfig {
                        latency: (Duration::from_millis(45), Duration::from_millis(55)),
                        loss: 0.10,
                    });
                    run_checked(&mut sim, Duration::from_secs(30), publisher, &mut overlap);
                    sim.set_net(NetConfig::lan());
                }
                Scenario::Rolling => {
                    for i in 0..nodes {
                        sim.restart(i);
                        sim.subscribe(i, TOPIC);
                        run_checked(
                            &mut sim,
                            Duration::from_secs(2),
                            (i + 1) % nodes,
                            &mut overlap,
                        );
                    }
                }
                Scenario::Form => {}
            }
            match settle(&mut sim, SETTLE_LIMIT) {
                Ok(t) => settled_after = Some(t),
                Err(e) => failures.push(e),
            }
        }
    }
    if let Err(e) = check::no_duplicate_delivery(&sim) {
        if !failures.contains(&e) {
            failures.push(e);
        }
    }
    let delivery_ratio = if sim.expected == 0 {
        1.0
    } else {
        sim.delivered as f64 / sim.expected as f64
    };
    Outcome {
        scenario,
        nodes,
        seed,
        settled_after,
        failures,
        sent: sim.sent,
        delivery_ratio,
        overlap,
        membership_bytes_per_node_s,
        membership_by_kind,
        steps: sim.steps,
        wall: wall.elapsed(),
    }
}
