//! The service mesh: discovery by criteria and load-balanced calls
//! (issue 19, ADR 025). `node.mesh()`.
//!
//! Services register with a version, capabilities and metadata
//! ([`Registry::join_with`](crate::Registry::join_with)); callers find them
//! by [`Criteria`] ([`Mesh::discover`], [`Mesh::watch`]) and call them
//! through a [`MeshClient`], which picks an endpoint per call with a
//! [`Balancer`] (power of two choices on a peak-EWMA latency by default),
//! skips endpoints on nodes that are not alive, ejects endpoints that keep
//! failing, honours the call's deadline over all attempts, and retries
//! idempotent calls within a [`RetryBudget`].
//!
//! The balancer, the budget, the metadata and the criteria are sans-IO
//! parts of `foundation_proto::mesh`, re-exported here.
//!
//! ```
//! use std::time::Duration;
//! use foundation::mesh::{Criteria, ServiceMeta};
//! use foundation::process::{Context, Service, ServiceError, ServiceOptions};
//!
//! struct Resize;
//! impl Service for Resize {
//!     type Request = u32;
//!     type Reply = u32;
//!     type State = ();
//!     async fn handle(&mut self, _: &mut Context, px: u32) -> Result<u32, ServiceError> {
//!         Ok(px / 2)
//!     }
//! }
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node = foundation::NodeBuilder::isolated()
//!     .cluster("static")
//!     .secret("doc-example-secret-0123456789")
//!     .bind("127.0.0.1".parse()?)
//!     .port(0)
//!     .start()
//!     .await?;
//! let svc = node.services().spawn(|| Resize, ServiceOptions::default());
//! let meta = ServiceMeta::new().version("1.4.0").capability("gpu");
//! node.registry().join_with("resize", &svc, meta)?;
//!
//! let wanted = Criteria::name("resize").version("^1.2")?.capability("gpu");
//! assert_eq!(node.mesh().discover(&wanted).len(), 1);
//! let client = node.mesh().client::<Resize>(wanted);
//! assert_eq!(client.call(640, Duration::from_secs(5)).await?, 320);
//! node.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod client;
mod discover;

use std::sync::{Arc, Mutex, Weak};

pub use client::{ClientOptions, ClientView, MeshClient, MeshError};
pub use discover::{Discovery, Endpoint};
pub use foundation_proto::mesh::{
    Balancer, BalancerConfig, Breaker, BudgetConfig, Criteria, CriteriaError, EndpointView,
    MetaError, NoEndpoint, Outcome, RetryBudget, ServiceMeta, Strategy,
};

use crate::id::NodeId;
use crate::locks::Locked as _;
use crate::services::{Host, Service};
use client::ClientInner;
use discover::Sources;

/// Most clients `GET /mesh` lists per node (the oldest live ones).
const MAX_LISTED: usize = 256;

/// The clients a node made, for `GET /mesh` (weak: a client dropped by its
/// user disappears from the list).
#[derive(Debug, Default)]
pub(crate) struct Shared {
    clients: Mutex<Vec<Weak<ClientInner>>>,
    seed: std::sync::atomic::AtomicU64,
}

/// The mesh facade: `node.mesh()`.
#[derive(Clone, Debug)]
pub struct Mesh {
    pub(crate) sources: Sources,
    pub(crate) host: Arc<Host>,
    pub(crate) local: NodeId,
    pub(crate) shared: Arc<Shared>,
}

impl Mesh {
    pub(crate) fn new(
        registry: crate::Registry,
        view: Arc<crate::membership::View>,
        membership: crate::membership::Membership,
        host: Arc<Host>,
        local: NodeId,
        shared: Arc<Shared>,
    ) -> Self {
        Mesh {
            sources: Sources {
                registry,
                view,
                membership,
            },
            host,
            local,
            shared,
        }
    }

    /// The registrations matching `criteria` on alive or suspect nodes,
    /// now.
    pub fn discover(&self, criteria: &Criteria) -> Vec<Endpoint> {
        self.sources.discover(criteria)
    }

    /// A live view of the registrations matching `criteria`:
    /// [`Discovery::changed`] returns each new set.
    pub fn watch(&self, criteria: Criteria) -> Discovery {
        Discovery::new(self.sources.clone(), criteria)
    }

    /// A client of the services speaking `S` that match `criteria`, with
    /// the default options (power of two choices on latency).
    pub fn client<S: Service>(&self, criteria: Criteria) -> MeshClient<S> {
        self.client_with(criteria, ClientOptions::default())
    }

    /// A client with `options`.
    pub fn client_with<S: Service>(
        &self,
        criteria: Criteria,
        options: ClientOptions,
    ) -> MeshClient<S> {
        let n = self
            .shared
            .seed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let seed = self.local.0 ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let client = MeshClient::new(
            self.sources.clone(),
            self.host.clone(),
            self.local,
            criteria,
            options,
            seed,
        );
        let mut clients = self.shared.clients.locked();
        clients.retain(|c| c.strong_count() > 0);
        if clients.len() < MAX_LISTED {
            clients.push(Arc::downgrade(&client.inner));
        }
        client
    }

    /// Every live client of this node with its balancer's state
    /// (`GET /mesh`).
    pub fn clients(&self) -> Vec<ClientView> {
        let clients: Vec<Arc<ClientInner>> = self
            .shared
            .clients
            .locked()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        clients.iter().map(|c| c.view()).collect()
    }
}
