//! Services and the process manager.
//!
//! - [`Service`] is the trait: `started`, `handle`, `stopping`. A
//!   [`ServiceRef`] reaches an instance from any node.
//! - The local supervisor restarts failed instances by [`Restart`] policy
//!   and [`Intensity`], as OTP does, and contains panics.
//! - [`Services`] is the facade: `node.services()`.
//! - [`ProcessManager`] (`node.processes()`) runs child specs across the
//!   cluster: singleton, replicated, partitioned, with placement by
//!   rendezvous hashing, failover, migration with handoff, and a
//!   split-brain policy ([`SplitBrain`]).
//!
//! The service runtime itself sits a layer below the registry; this module
//! re-exports it and adds the manager on top of the registry.

mod manager;
mod quorum_log;
mod reconcile;
mod scope;

use foundation_proto::process::{manager_wire, placement, planner, quorum, spec};

pub use crate::services::{
    CallError, Context, Fence, Intensity, Restart, Service, ServiceError, ServiceEvent,
    ServiceOptions, ServiceRef, Services, StopReason,
};
pub use foundation_proto::process::{ChildSpec, SplitBrain, Strategy};
pub use manager::{Instance, ProcessError, ProcessManager, SpecError, MAX_ARGS, MAX_SHARDS};
pub(crate) use manager_wire::KINDS as MANAGER_KINDS;

pub(crate) use manager::ManagerShared;
pub(crate) use reconcile::{hand_off_all, ManagerTask};
pub(crate) use scope::Scope;
