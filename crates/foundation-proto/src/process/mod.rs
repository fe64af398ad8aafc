//! The process manager's cores: child specs and their replicated map,
//! placement, the split-brain quorum, handoffs, and the planner that
//! turns them into commands.

pub mod handoffs;
pub mod manager_wire;
pub mod placement;
pub mod planner;
#[cfg(test)]
mod planner_tests;
pub mod quorum;
pub mod service_wire;
pub mod spec;
#[cfg(test)]
mod wire_tests;

pub use quorum::{Boot, SplitBrain};
pub use spec::{ChildSpec, SpecError, Strategy, MAX_ARGS, MAX_SHARDS};
