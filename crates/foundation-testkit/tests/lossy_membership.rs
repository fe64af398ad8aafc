//! Membership under loss and latency, simulated: no live member may be
//! declared down (issue 22).

use std::time::Duration;

use foundation_testkit::sim::check::{missing_members, rejoins};
use foundation_testkit::sim::{NetConfig, Sim};

/// How often the lossy run looks at every node's member list, as the
/// real-process test polls every host.
const POLL: Duration = Duration::from_secs(5);

/// How long a hung member may take to be declared down by every node
/// under 10% loss and 50 ms one way: until one of the others probes it and
/// that probe round ends, the suspicion (10 round trips, longer while the
/// estimates still carry the LAN they were measured on), and the Down
/// notice's spread over lossy links: a node that missed it keeps the
/// member until its own probe of it fails, which foca's shuffled round of
/// probes may leave for a cycle. Measured figures: docs/RELIABILITY.md;
/// shortening it is open in issue 22.
const HANG_BOUND: Duration = Duration::from_secs(30);

fn lossy() -> NetConfig {
    NetConfig {
        latency: (Duration::from_millis(45), Duration::from_millis(55)),
        loss: 0.10,
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `nodes` started at once on a LAN and given 10 s to form; false downs
/// counted from then on.
fn formed_on_a_lan(nodes: usize, seed: u64) -> Sim {
    let mut sim = Sim::new(nodes, seed, NetConfig::lan());
    sim.start_all();
    sim.run_for(Duration::from_secs(10));
    sim.false_downs.clear();
    sim
}

#[test]
fn no_live_member_is_declared_down_under_ten_percent_loss_and_50_ms() {
    let nodes = env_u64("FOUNDATION_SIM_NODES", 30) as usize;
    let minutes = env_u64("FOUNDATION_SIM_MINUTES", 2);
    let seeds = env_u64("FOUNDATION_SIM_SEEDS", 3);
    let mut failed = Vec::new();
    for seed in 0..seeds {
        let mut sim = formed_on_a_lan(nodes, seed);
        sim.set_net(lossy());
        let wall = std::time::Instant::now();
        let mut missing_polls = 0;
        for _ in 0..(60 * minutes / POLL.as_secs()) {
            sim.run_for(POLL);
            if missing_members(&sim) > 0 {
                missing_polls += 1;
            }
        }
        let rejoined = rejoins(&sim, 1);
        eprintln!(
            "nodes={nodes} seed={seed} minutes={minutes}: {} false downs, {missing_polls} polls missing a member, {rejoined} rejoins, {} steps, wall {:?}",
            sim.false_downs.len(),
            sim.steps,
            wall.elapsed()
        );
        if !sim.false_downs.is_empty() {
            failed.push(format!(
                "seed {seed}: {} false downs, first {:?}",
                sim.false_downs.len(),
                &sim.false_downs[..sim.false_downs.len().min(3)]
            ));
        }
        // A live member told it was declared down rejoins under a new
        // generation: no Down event counted, but a window in which others
        // miss it (foca's TurnUndead after a refuted suspicion did this).
        if missing_polls > 0 || rejoined > 0 {
            failed.push(format!(
                "seed {seed}: {missing_polls} polls missing a member, {rejoined} rejoins"
            ));
        }
        // Still lossy: a hung member (SIGSTOP) is declared down by every
        // other node within HANG_BOUND.
        let hung = nodes / 3;
        let hung_id = sim.nodes[hung].id;
        sim.pause(hung);
        let stopped = sim.now();
        sim.run_for(HANG_BOUND + Duration::from_secs(5));
        let mut slowest = Duration::ZERO;
        for observer in (0..nodes).filter(|o| *o != hung) {
            match sim
                .downs
                .iter()
                .find(|(t, o, id)| *o == observer && *id == hung_id && *t >= stopped)
            {
                Some((t, _, _)) => slowest = slowest.max(*t - stopped),
                None => {
                    failed.push(format!(
                        "seed {seed}: node {observer} never saw the hung node down"
                    ));
                    break;
                }
            }
        }
        let mut times: Vec<Duration> = sim
            .downs
            .iter()
            .filter(|(t, _, id)| *id == hung_id && *t >= stopped)
            .map(|(t, _, _)| *t - stopped)
            .collect();
        times.sort();
        eprintln!(
            "nodes={nodes} seed={seed}: hung node down first after {:?}, half after {:?}, everywhere after {slowest:?}",
            times.first(),
            times.get(times.len() / 2)
        );
        if slowest > HANG_BOUND {
            failed.push(format!(
                "seed {seed}: hung node down everywhere only after {slowest:?}"
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// One node starved of CPU: every few seconds it stops handling anything
/// for 2 s, then handles what waited, late and timers first (as a starved
/// or GC-paused process does: its timeouts fire before it reads the acks
/// that arrived in time). It may be declared down itself; it must not get anyone
/// else declared down.
#[test]
fn a_starved_node_does_not_get_others_declared_down() {
    let nodes = env_u64("FOUNDATION_SIM_NODES", 30) as usize;
    let seeds = env_u64("FOUNDATION_SIM_SEEDS", 3);
    let mut failed = Vec::new();
    for seed in 0..seeds {
        let mut sim = formed_on_a_lan(nodes, seed);
        let starved = nodes / 2;
        let starved_id = sim.nodes[starved].id;
        for _ in 0..20 {
            sim.pause(starved);
            sim.run_for(Duration::from_secs(2));
            sim.resume_timers_first(starved);
            sim.run_for(Duration::from_millis(1500));
        }
        let others: Vec<_> = sim
            .false_downs
            .iter()
            .filter(|(_, _, id)| *id != starved_id)
            .collect();
        let by_starved = sim
            .false_downs
            .iter()
            .filter(|(_, o, _)| *o == starved)
            .count();
        eprintln!(
            "nodes={nodes} seed={seed}: others declared down {} times ({} by the starved node); the starved node {} times",
            others.len(),
            by_starved,
            sim.false_downs.len() - others.len()
        );
        if !others.is_empty() {
            failed.push(format!("seed {seed}: {:?}", &others[..others.len().min(3)]));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
