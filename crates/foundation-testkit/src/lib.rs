//! Test harnesses for Foundation.
//!
//! - [`Cluster`]: in-process nodes on loopback, with kill, restart and
//!   transport-level partitions; [`assert_eventually`].
//! - [`netns::Lab`]: hosts in Linux network namespaces joined by a bridge,
//!   for running `foundation node` processes across real network stacks.

pub mod cluster;
pub mod netns;

pub use cluster::{assert_eventually, assert_eventually_async, builder, init_tracing, Cluster};
