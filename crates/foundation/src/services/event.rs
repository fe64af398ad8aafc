//! Service lifecycle events.

use serde::{Deserialize, Serialize};

use super::service::StopReason;
use foundation_proto::registry::ServiceAddr;

/// What happened to a service on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceEvent {
    /// An instance started (`restarts` = 0 for the first).
    Started {
        /// The service.
        addr: ServiceAddr,
        /// Its label.
        label: String,
        /// Restarts so far.
        restarts: u32,
    },
    /// An instance ended and the supervisor starts another.
    Restarting {
        /// The service.
        addr: ServiceAddr,
        /// Its label.
        label: String,
        /// Why the last one ended.
        reason: StopReason,
    },
    /// The service ended for good.
    Stopped {
        /// The service.
        addr: ServiceAddr,
        /// Its label.
        label: String,
        /// Why.
        reason: StopReason,
    },
    /// Restart intensity exceeded: the supervisor gave up on the service.
    GaveUp {
        /// The service.
        addr: ServiceAddr,
        /// Its label.
        label: String,
        /// The last failure.
        reason: StopReason,
    },
}
