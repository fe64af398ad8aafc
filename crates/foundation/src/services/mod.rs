//! The service runtime of one node: supervised instances of a [`Service`],
//! their mailboxes, and the routing of calls and casts to them, local or
//! remote ([`ServiceRef`]).
//!
//! It sits below the registry and the process manager
//! (docs/adr/016-layers-and-the-proto-crate.md): both name services by
//! their addresses, and neither is needed to run one. The host learns of
//! the names it must withdraw when a service ends through [`Withdraw`],
//! which the registry implements. The public items are re-exported from
//! [`crate::process`].

mod api;
mod event;
mod host;
mod instance;
mod options;
mod service;
mod service_ref;

use foundation_proto::process::service_wire as wire;

pub use api::Services;
pub use event::ServiceEvent;
pub(crate) use host::{Host, Withdraw};
pub(crate) use instance::Gate;
pub use options::{Intensity, Restart, ServiceOptions};
pub use service::{Context, Fence, Service, ServiceError, StopReason};
pub use service_ref::{CallError, ServiceRef};
pub(crate) use wire::KINDS;
