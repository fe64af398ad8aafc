//! The services facade: `node.services()`.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::event::ServiceEvent;
use super::host::Host;
use super::options::ServiceOptions;
use super::service::{Service, StopReason};
use super::service_ref::ServiceRef;
use crate::registry::ServiceAddr;
use crate::Node;

/// Starts and stops this node's services.
#[derive(Clone, Debug)]
pub struct Services {
    pub(crate) host: Arc<Host>,
    pub(crate) node: Node,
}

impl Services {
    /// Starts a supervised service on this node. `factory` makes each
    /// instance: the first, and one per restart.
    pub fn spawn<S, F>(&self, factory: F, options: ServiceOptions) -> ServiceRef<S>
    where
        S: Service,
        F: Fn() -> S + Send + 'static,
    {
        self.host.spawn(self.node.clone(), factory, options, None)
    }

    /// Stops a local service (its stopping hook sees
    /// [`StopReason::Normal`]) and waits until it ended. False if it was
    /// not running here.
    pub async fn stop(&self, addr: ServiceAddr) -> bool {
        if addr.node != self.node.id() || !self.host.is_running(addr.local) {
            return false;
        }
        self.host.stop(addr.local, StopReason::Normal).await;
        true
    }

    /// A ref to a service by address, typed. Whether it exists shows on
    /// the first call.
    pub fn get<S: Service>(&self, addr: ServiceAddr) -> ServiceRef<S> {
        self.host.ref_for(addr)
    }

    /// Service lifecycle events on this node from now on.
    pub fn events(&self) -> broadcast::Receiver<ServiceEvent> {
        self.host.events()
    }
}
