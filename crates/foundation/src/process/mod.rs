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
mod options;
mod reconcile;
mod service;
mod service_ref;

use foundation_proto::process::{
    manager_wire, placement, planner, quorum, service_wire as wire, spec,
};

pub use api::Services;
pub use event::ServiceEvent;
pub use foundation_proto::process::{ChildSpec, SplitBrain, Strategy};
pub use manager::{Instance, ProcessError, ProcessManager, MAX_ARGS};
pub(crate) use manager_wire::KINDS as MANAGER_KINDS;
pub use options::{Intensity, Restart, ServiceOptions};
pub use service::{Context, Service, ServiceError, StopReason};
pub use service_ref::{CallError, ServiceRef};
pub(crate) use wire::KINDS;

pub(crate) use host::Host;
pub(crate) use manager::ManagerShared;
pub(crate) use reconcile::{hand_off_all, ManagerTask};
