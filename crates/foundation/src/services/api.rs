//! The services facade: `node.services()`.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::event::ServiceEvent;
use super::host::Host;
use super::options::ServiceOptions;
use super::service::{Service, StopReason};
use super::service_ref::ServiceRef;
use crate::id::NodeId;
use foundation_proto::registry::ServiceAddr;

/// Starts and stops this node's services.
///
/// ```
/// use std::time::Duration;
/// use foundation::process::{Context, Restart, Service, ServiceError, ServiceOptions};
///
/// /// Sums what it is sent; restarted from zero if it fails.
/// struct Sum(u64);
/// impl Service for Sum {
///     type Request = u64;
///     type Reply = u64;
///     type State = ();
///     async fn handle(&mut self, _: &mut Context, n: u64) -> Result<u64, ServiceError> {
///         self.0 += n;
///         Ok(self.0)
///     }
/// }
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let node = foundation::NodeBuilder::isolated()
///     .cluster("static")
///     .secret("doc-example-secret-0123456789")
///     .bind("127.0.0.1".parse()?)
///     .port(0)
///     .start()
///     .await?;
/// let options = ServiceOptions { restart: Restart::Permanent, ..Default::default() };
/// let sum = node.services().spawn(|| Sum(0), options);
/// sum.call(2, Duration::from_secs(5)).await?;
/// assert_eq!(sum.call(3, Duration::from_secs(5)).await?, 5);
/// assert!(node.services().stop(sum.addr()).await);
/// node.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Services {
    pub(crate) host: Arc<Host>,
    pub(crate) node: NodeId,
}

impl Services {
    /// Starts a supervised service on this node. `factory` makes each
    /// instance: the first, and one per restart.
    pub fn spawn<S, F>(&self, factory: F, options: ServiceOptions) -> ServiceRef<S>
    where
        S: Service,
        F: Fn() -> S + Send + 'static,
    {
        self.host.spawn(factory, options, None)
    }

    /// Stops a local service (its stopping hook sees
    /// [`StopReason::Normal`]) and waits until it ended. False if it was
    /// not running here.
    pub async fn stop(&self, addr: ServiceAddr) -> bool {
        if addr.node != self.node || !self.host.is_running(addr.local) {
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
