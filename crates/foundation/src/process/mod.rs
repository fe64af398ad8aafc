//! Services: long-lived, supervised handlers of typed requests, reachable
//! from any node through a [`ServiceRef`].
//!
//! - [`Service`] is the trait: `started`, `handle`, `stopping`.
//! - The local supervisor restarts failed instances by [`Restart`] policy
//!   and [`Intensity`], as OTP does, and contains panics.
//! - [`Services`] is the facade: `node.services()`.
//! - [`ProcessManager`] (`node.processes()`) runs child specs across the
//!   cluster: singleton, replicated, partitioned, with placement by
//!   rendezvous hashing, failover, migration with handoff, and a
//!   split-brain policy ([`SplitBrain`]).

mod api;
mod event;
mod host;
mod instance;
mod manager;
mod manager_wire;
mod options;
mod reconcile;
mod service;
mod service_ref;
mod wire;
#[cfg(test)]
mod wire_tests;

use foundation_proto::process::{placement, planner, quorum, spec};

pub use api::Services;
pub use event::ServiceEvent;
pub use foundation_proto::process::{ChildSpec, SplitBrain, Strategy};
pub use manager::{Instance, ProcessError, ProcessManager, MAX_ARGS};
pub use manager_wire::{ManagerMsg, KINDS as MANAGER_KINDS, KIND_MSG as MANAGER_KIND_MSG};
pub use options::{Intensity, Restart, ServiceOptions};
pub use service::{Context, Service, ServiceError, StopReason};
pub use service_ref::{CallError, ServiceRef};
pub use wire::{RemoteFailure, ServiceMsg, KINDS, KIND_MSG};

pub(crate) use host::Host;
pub(crate) use manager::ManagerShared;
pub(crate) use reconcile::{hand_off_all, ManagerTask};
