//! Foundation's sans-IO protocol cores.
//!
//! Nothing here does IO, reads a clock or spawns a task: each core is
//! told `now` and its inputs and returns what to do, as quinn-proto and
//! openraft's engine do. The `foundation` crate runs these cores in its
//! tokio shells; the test kit's simulator drives the very same cores for
//! hundreds to thousands of nodes, so what the simulation proves is what
//! ships.
//!
//! - [`NodeId`]: a node's identity; [`Channel`]: the four prioritized
//!   channels; [`PROTOCOL_VERSION`].
//! - [`process`]: child specs and their replicated map, placement by
//!   rendezvous hashing, the split-brain quorum, handoffs, and the
//!   [`Planner`](process::planner::Planner) that decides what a node
//!   starts and stops.
//! - [`registry`]: the registry's state, merge and conflict rules, and its
//!   replication protocol.
//! - [`membership`]: the SWIM core (foca) and datagram sealing.
//! - [`mesh`]: service metadata, discovery criteria, the load balancer
//!   and the retry budget.
//! - [`cache`]: the distributed cache's placement, write order and
//!   handoff rules.
//! - [`context`]: the request context in frame headers (W3C trace
//!   context, the deadline, W3C baggage).
//! - [`coord`]: coordination's replicated state machine (keys with
//!   revisions, session leases, fenced locks, counters).
//! - [`frame`]: the versioned frame codec every node-to-node message
//!   travels in (sans-IO decoder, bounded before it allocates).
//! - [`kinds`]: which subsystem owns which range of message kinds.
//! - [`pubsub`]: the batch codec of published items.
//! - [`readiness`]: when a node that found nobody counts as ready alone.
//!
//! ```
//! use std::collections::{BTreeMap, HashSet};
//! use std::time::{Duration, Instant};
//! use foundation_proto::NodeId;
//! use foundation_proto::process::planner::{Command, Facts, Input, Member, Planner, Presence};
//! use foundation_proto::process::{ChildSpec, SplitBrain, Strategy};
//!
//! // What this node's registry and service host would answer.
//! struct Alone;
//! impl Facts for Alone {
//!     fn holder(&self, _: &str) -> Option<(NodeId, u64)> { None }
//!     fn heard(&self, _: NodeId) -> bool { true }
//!     fn is_running(&self, _: u64) -> bool { false }
//!     fn can_run(&self, _: &str) -> bool { true }
//! }
//!
//! let me = NodeId(1);
//! let mut planner = Planner::new(me, SplitBrain::KeepAll, Duration::from_secs(3));
//! let members = [Member { id: me, roles: vec![], presence: Presence::Active }];
//! let specs = [ChildSpec {
//!     id: "leader".into(), kind: "counter".into(), args: Default::default(),
//!     strategy: Strategy::Singleton, role: None, fenced: false,
//! }];
//! let (running, stopping) = (BTreeMap::new(), HashSet::new());
//! let input = Input { members: &members, specs: &specs, running: &running, stopping: &stopping, ready: true };
//!
//! // A first start waits until the member set has held still.
//! let t0 = Instant::now();
//! let plan = planner.plan(t0, input, &Alone);
//! assert!(plan.commands.is_empty());
//! let later = plan.recheck_at.expect("a recheck is due");
//! let plan = planner.plan(later, input, &Alone);
//! assert!(matches!(&plan.commands[..], [Command::Start { instance, .. }] if instance == "leader"));
//! ```

pub mod cache;
mod channel;
pub mod context;
pub mod coord;
pub mod frame;
mod id;
pub mod kinds;
pub mod membership;
pub mod mesh;
pub mod process;
pub mod pubsub;
pub mod readiness;
pub mod registry;
pub mod telemetry;

pub use channel::Channel;
pub use id::NodeId;

/// Version of the wire formats: frames, discovery beacons and records. A
/// peer speaking another version is rejected.
pub const PROTOCOL_VERSION: u8 = 4;
