//! Membership under loss and latency, simulated: no live member may be
//! declared down (issue 22).

use std::time::Duration;

use foundation_testkit::sim::{NetConfig, Sim};

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

#[test]
fn no_live_member_is_declared_down_under_ten_percent_loss_and_50_ms() {
    let nodes = env_u64("FOUNDATION_SIM_NODES", 30) as usize;
    let minutes = env_u64("FOUNDATION_SIM_MINUTES", 2);
    let seeds = env_u64("FOUNDATION_SIM_SEEDS", 3);
    let mut failed = Vec::new();
    for seed in 0..seeds {
        let mut sim = Sim::new(nodes, seed, NetConfig::lan());
        sim.start_all();
        sim.run_for(Duration::from_secs(10));
        sim.false_downs.clear();
        sim.set_net(lossy());
        let wall = std::time::Instant::now();
        sim.run_for(Duration::from_secs(60 * minutes));
        eprintln!(
            "nodes={nodes} seed={seed} minutes={minutes}: {} false downs, {} steps, wall {:?}",
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
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
