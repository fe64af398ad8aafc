//! The service trait: a long-lived, supervised handler of typed requests.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::id::NodeId;
use foundation_proto::registry::ServiceAddr;

/// A long-lived service: it handles typed requests one at a time, in
/// arrival order, and is restarted by its supervisor when it fails.
///
/// Requests, replies and handoff state are serde types, so a
/// [`ServiceRef`](super::ServiceRef) can reach the service from any node.
/// A local ref passes them in memory, without serialization.
///
/// Returning `Err` from [`handle`](Service::handle) ends this instance,
/// like a crash: the caller gets [`CallError::Failed`](super::CallError)
/// and the supervisor restarts a fresh instance by its policy. Put errors
/// the caller should handle in `Reply` (e.g. `Result<T, MyError>`).
///
/// ```
/// use foundation::process::{Context, Service, ServiceError};
///
/// struct Counter(u64);
///
/// impl Service for Counter {
///     type Request = u64;
///     type Reply = u64;
///     type State = u64;
///
///     async fn started(&mut self, _: &mut Context, handoff: Option<u64>) -> Result<(), ServiceError> {
///         self.0 = handoff.unwrap_or(0);
///         Ok(())
///     }
///
///     async fn handle(&mut self, _: &mut Context, add: u64) -> Result<u64, ServiceError> {
///         self.0 += add;
///         Ok(self.0)
///     }
///
///     async fn stopping(&mut self, _: &mut Context, _: &foundation::process::StopReason) -> Option<u64> {
///         Some(self.0) // handed to the next instance on migration or shutdown
///     }
/// }
/// ```
pub trait Service: Send + Sized + 'static {
    /// What callers send.
    type Request: Serialize + DeserializeOwned + Send + 'static;
    /// What `handle` answers.
    type Reply: Serialize + DeserializeOwned + Send + 'static;
    /// State handed to the next instance on graceful stop or migration;
    /// `()` if none.
    type State: Serialize + DeserializeOwned + Send + 'static;

    /// Runs before the first request. `handoff` is the previous instance's
    /// state when this instance takes over after a migration or a graceful
    /// shutdown elsewhere. An error counts as a failure.
    fn started(
        &mut self,
        ctx: &mut Context,
        handoff: Option<Self::State>,
    ) -> impl Future<Output = Result<(), ServiceError>> + Send {
        let _ = (ctx, handoff);
        async { Ok(()) }
    }

    /// Handles one request. For a cast, the reply is dropped.
    fn handle(
        &mut self,
        ctx: &mut Context,
        request: Self::Request,
    ) -> impl Future<Output = Result<Self::Reply, ServiceError>> + Send;

    /// Runs when the instance stops for any reason but a panic. State
    /// returned here is handed to the next instance when the reason is a
    /// migration or a node shutdown.
    fn stopping(
        &mut self,
        ctx: &mut Context,
        reason: &StopReason,
    ) -> impl Future<Output = Option<Self::State>> + Send {
        let _ = (ctx, reason);
        async { None }
    }
}

/// A service's failure, as returned from its hooks: a message, and the
/// error that caused it when there is one (its `source()`).
///
/// ```
/// use foundation::process::ServiceError;
///
/// let io = std::io::Error::new(std::io::ErrorKind::NotFound, "ledger.db");
/// let e = ServiceError::with_source("cannot open the ledger", io);
/// assert_eq!(e.to_string(), "cannot open the ledger");
/// assert_eq!(e.chain(), "cannot open the ledger: ledger.db");
/// assert!(std::error::Error::source(&e).is_some());
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl ServiceError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        ServiceError {
            message: message.into(),
            source: None,
        }
    }

    /// An error with this message, caused by `source`.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ServiceError {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// The message, without its causes.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message followed by each cause, `: `-separated (what a stop
    /// reason and a remote caller see).
    pub fn chain(&self) -> String {
        let mut out = self.message.clone();
        let mut next = std::error::Error::source(self);
        while let Some(e) = next {
            out.push_str(": ");
            out.push_str(&e.to_string());
            next = e.source();
        }
        out
    }
}

/// Why an instance stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum StopReason {
    /// It asked to stop ([`Context::stop`]) or was stopped through its ref.
    Normal,
    /// Its node is shutting down; the state may be handed off.
    Shutdown,
    /// It is moving to another node; the state is handed off.
    Migrate {
        /// The node taking over.
        to: NodeId,
    },
    /// Its unique name lost a conflict after a partition healed.
    NameConflict {
        /// The name.
        name: String,
        /// The service that keeps it.
        winner: ServiceAddr,
    },
    /// Its placement rule no longer runs it here (e.g. quorum lost).
    Unplaced(String),
    /// A hook returned an error.
    Error(String),
    /// A hook panicked.
    Panic(String),
}

impl StopReason {
    /// Whether the instance failed (error or panic).
    pub fn is_failure(&self) -> bool {
        matches!(self, StopReason::Error(_) | StopReason::Panic(_))
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Normal => f.write_str("normal"),
            StopReason::Shutdown => f.write_str("node shutdown"),
            StopReason::Migrate { to } => write!(f, "migrating to {to}"),
            StopReason::NameConflict { name, winner } => {
                write!(f, "name conflict on {name:?}, kept by {winner}")
            }
            StopReason::Unplaced(why) => write!(f, "unplaced: {why}"),
            StopReason::Error(e) => write!(f, "error: {e}"),
            StopReason::Panic(p) => write!(f, "panic: {p}"),
        }
    }
}

/// What a running instance can see and do: its address, its restarts,
/// and a way to stop itself. Deliberately narrow: a service that needs the
/// registry, pub/sub or other services takes those handles in its factory
/// (they are cheap clones), so what it depends on shows in its type.
///
/// ```
/// use foundation::process::{Context, Service, ServiceError};
/// use foundation::PubSub;
///
/// /// Announces every order it takes on the "orders" topic.
/// struct Orders {
///     pubsub: PubSub,
/// }
///
/// impl Service for Orders {
///     type Request = String;
///     type Reply = ();
///     type State = ();
///
///     async fn handle(&mut self, ctx: &mut Context, order: String) -> Result<(), ServiceError> {
///         let line = format!("{order} taken on {}", ctx.node_id());
///         self.pubsub
///             .broadcast("orders", line)
///             .await
///             .map(|_| ())
///             .map_err(|e| ServiceError::with_source("cannot announce", e))
///     }
/// }
///
/// // Started with the handle it needs:
/// // let pubsub = node.pubsub();
/// // node.services().spawn(move || Orders { pubsub: pubsub.clone() }, Default::default());
/// ```
#[derive(Debug)]
pub struct Context {
    pub(crate) addr: ServiceAddr,
    pub(crate) stop: bool,
    pub(crate) restarts: u32,
    pub(crate) fence: Option<Fence>,
}

/// The coordination lock a fenced instance runs under
/// ([`Context::fence`]): its fencing token, and whether it is still held.
/// Pass the token to what the instance writes to, and have it refuse
/// smaller ones: a former holder cut off by a partition then cannot
/// overwrite the new one's work.
#[derive(Debug, Clone)]
pub struct Fence {
    token: u64,
    held: tokio::sync::watch::Receiver<bool>,
}

impl Fence {
    /// A fence with `token`, held while `held` says so.
    pub fn new(token: u64, held: tokio::sync::watch::Receiver<bool>) -> Self {
        Fence { token, held }
    }

    /// The fencing token: larger for every later holder.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// Whether the lock is still held (by this node's clock).
    pub fn is_held(&self) -> bool {
        *self.held.borrow()
    }

    /// Resolves when the lock is lost.
    pub async fn lost(&mut self) {
        let _ = self.held.wait_for(|h| !*h).await;
    }
}

impl Context {
    /// This service's address (stable across restarts).
    pub fn addr(&self) -> ServiceAddr {
        self.addr
    }

    /// The node it runs on.
    pub fn node_id(&self) -> NodeId {
        self.addr.node
    }

    /// How many times the supervisor restarted this service.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Stops after the current request, with [`StopReason::Normal`].
    pub fn stop(&mut self) {
        self.stop = true;
    }

    /// The lock a fenced instance runs under (a fenced singleton), set
    /// before [`Service::started`] runs; `None` for others.
    pub fn fence(&self) -> Option<&Fence> {
        self.fence.as_ref()
    }

    /// Sets the fence: the instance stops as soon as it is lost.
    pub fn set_fence(&mut self, fence: Fence) {
        self.fence = Some(fence);
    }
}
