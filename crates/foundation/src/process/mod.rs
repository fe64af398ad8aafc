//! Services: long-lived, supervised handlers of typed requests, reachable
//! from any node through a [`ServiceRef`].
//!
//! - [`Service`] is the trait: `started`, `handle`, `stopping`.
//! - The local supervisor restarts failed instances by [`Restart`] policy
//!   and [`Intensity`], as OTP does, and contains panics.
//! - [`Services`] is the facade: `node.services()`.

mod api;
mod event;
mod host;
mod instance;
mod options;
mod service;
mod service_ref;
mod wire;

pub use api::Services;
pub use event::ServiceEvent;
pub use options::{Intensity, Restart, ServiceOptions};
pub use service::{Context, Service, ServiceError, StopReason};
pub use service_ref::{CallError, ServiceRef};
pub use wire::{RemoteFailure, ServiceMsg, KINDS, KIND_MSG};

pub(crate) use host::Host;
