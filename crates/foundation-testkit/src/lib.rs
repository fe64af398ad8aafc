//! Test harnesses for Foundation.
//!
//! - [`netns::Lab`]: hosts in Linux network namespaces joined by a bridge,
//!   for running `foundation node` processes across real network stacks.
//!
//! In-process clusters, fault injection and deterministic simulation join
//! this crate with the test-kit issue.

pub mod netns;
