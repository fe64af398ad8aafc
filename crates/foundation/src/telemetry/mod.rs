//! Per-node counters, rendered as Prometheus text by `/metrics`.
//!
//! Counters live in the node (no global state, so several nodes can run in
//! one process) and are mirrored to the `metrics` facade, so an application
//! that installs a recorder sees them too (summed over the process's nodes).

mod prometheus;
mod stats;

pub use prometheus::{render, render_pubsub};
pub use stats::{DropReason, Stats};
