//! Deterministic simulation of a cluster's sans-IO cores.
//!
//! Each [`SimNode`] runs the real membership core (foca), the real registry
//! state and sync protocol, the real quorum tracker and placement; the
//! world connects them through a seeded network with virtual time. No
//! sockets and no sleeps: a 1,000-node cluster runs minutes of cluster time
//! in seconds, and the same seed gives the same trace.
//!
//! The parts of the tokio shells the cores need are written down in
//! `world.rs` and `node.rs` (join loop, anti-entropy tick, the process
//! manager's start/stop rule for singletons, pub/sub routing by interest);
//! ADR 011 lists what they leave out.
//!
//! ```
//! use std::time::Duration;
//! use foundation_testkit::sim::{check, scenario, NetConfig, Scenario, Sim};
//!
//! // A whole scenario, as `foundation sim` and the seed sweep run it.
//! let out = scenario::run(Scenario::Crash, 8, 42);
//! assert!(out.passed(), "{:?}\nreplay: {}", out.failures, out.replay());
//!
//! // Or by hand: five nodes, a partition, a heal.
//! let mut sim = Sim::new(5, 7, NetConfig::lan());
//! sim.start_all();
//! sim.run_for(Duration::from_secs(5));
//! sim.partition(&[0, 1], &[2, 3, 4]);
//! sim.run_for(Duration::from_secs(5));
//! assert!(check::same_members(&sim).is_err());
//! sim.heal();
//! let took = scenario::settle(&mut sim, Duration::from_secs(60)).expect("heals");
//! assert!(took < Duration::from_secs(60));
//! ```

pub mod check;
mod manager;
mod net;
mod node;
mod pubsub;
pub mod scenario;
mod world;

pub use net::NetConfig;
pub use node::SimNode;
pub use scenario::{Outcome, Scenario};
pub use world::{Sim, TICK};
