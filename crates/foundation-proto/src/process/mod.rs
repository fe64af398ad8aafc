//! The process manager's cores: child specs and their replicated map,
//! placement, the split-brain quorum, handoffs, and the planner that
//! turns them into commands.

pub mod handoffs;
pub mod placement;
pub mod planner;
#[cfg(test)]
mod planner_tests;
pub mod quorum;
pub mod spec;

pub use quorum::SplitBrain;
pub use spec::{ChildSpec, Strategy};
