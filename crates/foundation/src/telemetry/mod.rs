//! Per-node counters (`http` renders them as Prometheus text at `/metrics`).
//!
//! Counters live in the node (no global state, so several nodes can run in
//! one process) and are mirrored to the `metrics` facade, so an application
//! that installs a recorder sees them too (summed over the process's nodes).

mod calls;
pub mod process;
mod stats;
mod traffic;

pub use calls::{CallOutcome, CallStats, ProtocolCalls, BUCKETS, MAX_PROTOCOLS, OTHER_PROTOCOL};
pub use stats::{DropReason, MemberEventKind, Stats};
pub use traffic::{MembershipTraffic, Traffic};
pub(crate) use traffic::{RateMeter, RATE_WINDOW};
