//! Test harnesses for Foundation.
//!
//! - [`Cluster`]: in-process nodes on loopback, with kill, restart and
//!   transport-level partitions; [`assert_eventually`].
//! - [`netns::Lab`]: hosts in Linux network namespaces joined by a bridge,
//!   for running `foundation node` processes across real network stacks;
//!   [`netdelay`] adds latency there where the kernel has no `netem`.
//! - [`sim`]: deterministic simulation of the sans-IO cores at up to
//!   thousands of nodes, with invariant checkers and chaos scenarios.
//! - [`turmoil_udp`]: the real transport (quinn, TLS, frames) on turmoil's
//!   simulated network, for a few dozen nodes with seeded loss, latency
//!   and partitions (`tests/turmoil_transport.rs`).
//! - [`skip`]: a test whose tool is missing says so, and fails under
//!   `CI=true`.
//! - [`turmoil_node`]: whole nodes on turmoil's network and time
//!   (`tests/turmoil_cluster.rs`).
//! - [`linearizability`]: a checker for recorded histories (Wing and
//!   Gong's search with Lowe's cache).

pub mod cluster;
pub mod exclusion;
pub mod linearizability;
pub mod netdelay;
pub mod netns;
pub mod sim;
pub mod skip;
pub mod turmoil_node;
pub mod turmoil_udp;

pub use cluster::{assert_eventually, assert_eventually_async, builder, init_tracing, Cluster};
