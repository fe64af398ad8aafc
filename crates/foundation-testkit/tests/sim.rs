//! The simulated chaos scenarios over a bounded seed sweep. A failing seed
//! is printed with the command that replays it; `FOUNDATION_SIM_SEED=<n>`
//! runs only that seed, `FOUNDATION_SIM_SEEDS=<k>` sweeps `k` seeds.

use foundation_testkit::sim::{scenario, Scenario};

fn seeds() -> Vec<u64> {
    if let Some(s) = std::env::var("FOUNDATION_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![s];
    }
    let k = std::env::var("FOUNDATION_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4u64);
    (0..k).collect()
}

fn sweep(s: Scenario, nodes: usize) {
    let mut failed = Vec::new();
    for seed in seeds() {
        let out = scenario::run(s, nodes, seed);
        eprintln!(
            "{} nodes={} seed={seed}: settled after {:?}, overlap {:?}, {} sent, delivery ratio {:.4}, {} steps, wall {:?}",
            s.name(),
            out.nodes,
            out.settled_after,
            out.overlap,
            out.sent,
            out.delivery_ratio,
            out.steps,
            out.wall
        );
        if !out.passed() {
            failed.push(format!("{:?}\n  replay: {}", out.failures, out.replay()));
        }
    }
    assert!(failed.is_empty(), "failing seeds:\n{}", failed.join("\n"));
}

#[test]
fn form() {
    sweep(Scenario::Form, 12);
}
#[test]
fn join() {
    sweep(Scenario::Join, 12);
}
#[test]
fn crash() {
    sweep(Scenario::Crash, 12);
}
#[test]
fn partition() {
    sweep(Scenario::Partition, 12);
}
#[test]
fn pause() {
    sweep(Scenario::Pause, 12);
}
#[test]
fn loss() {
    sweep(Scenario::Loss, 12);
}
#[test]
fn rolling() {
    sweep(Scenario::Rolling, 8);
}

#[test]
fn the_same_seed_gives_the_same_run_and_another_seed_another() {
    let a = scenario::run(Scenario::Crash, 10, 7);
    let b = scenario::run(Scenario::Crash, 10, 7);
    let c = scenario::run(Scenario::Crash, 10, 8);
    assert_eq!(
        (a.settled_after, a.steps, a.sent),
        (b.settled_after, b.steps, b.sent)
    );
    // Another seed, another run (steps alone once matched by chance).
    assert_ne!(
        (a.settled_after, a.steps, a.sent),
        (c.settled_after, c.steps, c.sent)
    );
    assert_eq!(
        a.replay(),
        "foundation sim --scenario crash --nodes 10 --seed 7"
    );
}

#[test]
fn the_checkers_catch_a_duplicate_singleton_a_lost_entry_and_a_split_view() {
    use foundation_testkit::sim::{check, NetConfig, Sim};
    use std::time::Duration;

    let mut sim = Sim::new(5, 3, NetConfig::lan());
    sim.singletons = vec!["one".into()];
    sim.start_all();
    sim.run_for(Duration::from_secs(10));
    check::settled(&sim).expect("a quiet cluster settles");

    // A second copy of the singleton.
    let holder = sim
        .nodes
        .iter()
        .position(|n| n.running.contains_key("one"))
        .expect("runs somewhere");
    let other = (holder + 1) % 5;
    sim.nodes[other].running.insert("one".into(), 999);
    assert!(check::at_most_one_owner(&sim).is_err());
    sim.nodes[other].running.remove("one");

    // A registry that lost a live owner's entry.
    let holder_id = sim.nodes[holder].id;
    sim.nodes[other].registry.owner_down(holder_id);
    assert!(check::registries_agree(&sim).is_err());

    // A partition splits the views.
    sim.partition(&[0, 1], &[2, 3, 4]);
    sim.run_for(Duration::from_secs(5));
    assert!(check::same_members(&sim).is_err());
    sim.heal();
}
