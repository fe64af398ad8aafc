//! The process manager facade: `node.processes()`. Child specs replicated
//! cluster-wide, placed by rendezvous hashing, restarted on their new
//! owner when a node goes down, migrated with handoff when ownership
//! changes, and stopped on the minority side of a partition.

use crate::context::RequestContext;
use crate::locks::Locked as _;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Notify;

use super::manager_wire::{ManagerMsg, KIND_MSG};
use super::placement::shard_of;
use super::quorum::SplitBrain;
use super::scope::Scope;
use super::spec::{ChildSpec, SpecEntry, SpecMap, Stamp, Strategy};
use crate::messenger::Messenger;
use crate::peers::Outbox;
use crate::registry::{RegistryError, ServiceAddr};
use crate::services::{Service, ServiceOptions, ServiceRef, StopReason};

pub use foundation_proto::process::{SpecError, MAX_ARGS, MAX_SHARDS};

/// Which instance a factory is making.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// The spec's id.
    pub spec: String,
    /// The instance's registered name.
    pub name: String,
    /// The shard, for partitioned specs.
    pub shard: Option<u32>,
}

/// Why a process manager call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// No kind of that name was defined on this node.
    #[error(
        "no kind {0:?} is defined on this node; call processes().define(..) on every node first"
    )]
    UnknownKind(String),
    /// The arguments do not serialize or are too large.
    #[error("arguments of {id:?}: {why}")]
    Args {
        /// The spec id.
        id: String,
        /// What is wrong.
        why: String,
    },
    /// The spec is out of bounds (id, kind, role, argument size, shards).
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Lookup failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Starts an instance: spawns the service, registers its name; its local id.
/// Starts an instance: with its handoff state, if any, and the request
/// context its `started` hook runs in (the placement's or the handoff's
/// trace).
pub(crate) type Starter = Arc<
    dyn Fn(
            &Scope,
            &ChildSpec,
            &Instance,
            Option<Bytes>,
            Option<RequestContext>,
        ) -> Result<u64, String>
        + Send
        + Sync,
>;

pub(crate) use super::planner::Running;

#[derive(Debug)]
pub(crate) struct ManagerShared {
    specs: Mutex<SpecMap>,
    kinds: Mutex<HashMap<String, KindEntry>>,
    pub(crate) running: Mutex<BTreeMap<String, Running>>,
    pub(crate) wake: Notify,
    /// Handoffs sent and not yet acknowledged, by instance.
    pub(crate) handoff_acks: Mutex<HashMap<String, tokio::sync::oneshot::Sender<()>>>,
    pub(crate) outbox: Outbox,
    pub(crate) messenger: Messenger,
    pub(crate) policy: SplitBrain,
    pub(crate) quorum: std::sync::atomic::AtomicBool,
    /// The membership keep-majority counts against, as of the last pass.
    pub(crate) quorum_base: Mutex<Vec<crate::NodeId>>,
    /// Set by node shutdown: placement stops starting instances.
    pub(crate) shutting_down: std::sync::atomic::AtomicBool,
}

struct KindEntry(Starter);

impl std::fmt::Debug for KindEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Starter")
    }
}

impl ManagerShared {
    pub(crate) fn new(messenger: Messenger, outbox: Outbox, policy: SplitBrain) -> Self {
        ManagerShared {
            specs: Mutex::default(),
            kinds: Mutex::default(),
            running: Mutex::default(),
            wake: Notify::new(),
            handoff_acks: Mutex::default(),
            outbox,
            messenger,
            policy,
            quorum: std::sync::atomic::AtomicBool::new(true),
            quorum_base: Mutex::default(),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(crate) fn specs(&self) -> MutexGuard<'_, SpecMap> {
        self.specs.locked()
    }

    pub(crate) fn starter(&self, kind: &str) -> Option<Starter> {
        self.kinds.locked().get(kind).map(|k| k.0.clone())
    }

    /// Merges entries; pushes them on when they changed the map.
    pub(crate) fn merge(&self, entries: Vec<(String, SpecEntry)>) -> bool {
        let changed = self.specs().merge_all(entries);
        if changed {
            self.wake.notify_one();
        }
        changed
    }

    fn write(&self, id: &str, spec: Option<ChildSpec>) {
        let stamp = Stamp {
            at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            by: self.messenger.id(),
        };
        // Never behind the current entry, even with a clock that went back.
        let stamp = match self.specs().entries().find(|(i, _)| *i == id) {
            Some((_, cur)) if cur.stamp >= stamp => Stamp {
                at: cur.stamp.at.saturating_add(1),
                by: stamp.by,
            },
            _ => stamp,
        };
        let entry = SpecEntry { spec, stamp };
        self.specs().merge(id, entry.clone());
        let bytes = ManagerMsg::Specs(vec![(id.to_owned(), entry)]).encode();
        for p in self.messenger.peers() {
            self.outbox.send(p, KIND_MSG, bytes.clone());
        }
        self.wake.notify_one();
    }
}

/// Runs children across the cluster: singletons, replicated, partitioned
/// and local services (`node.processes()`).
///
/// Every node defines the same kinds (as every Erlang node loads the same
/// code); a child spec names a kind and its arguments, so any node can
/// start it. Specs are replicated to every member, so none is forgotten
/// when the node that started it dies.
///
/// ```
/// use std::time::Duration;
/// use foundation::process::{Context, Instance, Service, ServiceError, StopReason};
///
/// /// Counts, and hands its count to the next owner when it moves.
/// struct Count(u64);
/// impl Service for Count {
///     type Request = u64;
///     type Reply = u64;
///     type State = u64;
///     async fn started(&mut self, _: &mut Context, handoff: Option<u64>) -> Result<(), ServiceError> {
///         self.0 = handoff.unwrap_or(0);
///         Ok(())
///     }
///     async fn handle(&mut self, _: &mut Context, n: u64) -> Result<u64, ServiceError> {
///         self.0 += n;
///         Ok(self.0)
///     }
///     async fn stopping(&mut self, _: &mut Context, _: &StopReason) -> Option<u64> {
///         Some(self.0) // handed to the next owner on migration or shutdown
///     }
/// }
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let node = foundation::NodeBuilder::isolated()
///     .cluster("static")
///     .secret("doc-example-secret-0123456789")
///     .bind("127.0.0.1".parse()?)
///     .port(0)
///     .start()
///     .await?;
/// // Define on every node; start from any node, once.
/// node.processes().define("count", |_: &(), _: &Instance| Count(0));
/// node.processes().start_singleton("visits", "count", &())?;
/// node.processes().start_partitioned("carts", "count", &(), 4)?;
/// let visits = loop {
///     match node.processes().lookup_singleton::<Count>("visits")? {
///         Some(r) => break r,
///         None => tokio::time::sleep(Duration::from_millis(20)).await,
///     }
/// };
/// assert_eq!(visits.call(1, Duration::from_secs(5)).await?, 1);
/// // A partitioned child: the shard that owns a key.
/// let cart = loop {
///     match node.processes().lookup_shard::<Count>("carts", "customer-7")? {
///         Some(r) => break r,
///         None => tokio::time::sleep(Duration::from_millis(20)).await,
///     }
/// };
/// assert_eq!(cart.call(2, Duration::from_secs(5)).await?, 2);
/// node.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ProcessManager {
    pub(crate) shared: Arc<ManagerShared>,
    pub(crate) scope: Scope,
}

impl ProcessManager {
    /// Defines kind `kind`: how this node makes an instance from the
    /// spec's arguments. Define the same kinds on every node.
    pub fn define<S, A, F>(&self, kind: &str, make: F)
    where
        S: Service,
        A: DeserializeOwned + Send + Sync + 'static,
        F: Fn(&A, &Instance) -> S + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        let starter: Starter = Arc::new(move |scope, spec, inst, handoff, context| {
            let args: A = postcard::from_bytes(&spec.args).map_err(|e| {
                format!(
                    "arguments of {:?} do not decode as {}: {e}",
                    spec.id,
                    std::any::type_name::<A>()
                )
            })?;
            let args = Arc::new(args);
            let make = make.clone();
            let for_factory = inst.clone();
            // A fenced instance starts once it holds `@fence/<name>`.
            let gate = spec
                .fenced
                .then(|| scope.coord.fence_gate(format!("@fence/{}", inst.name)));
            let r: ServiceRef<S> = scope.host.spawn_gated(
                move || make(&args, &for_factory),
                ServiceOptions::labelled(inst.name.clone()),
                handoff,
                gate,
                context,
            );
            match scope.registry.register(&inst.name, &r) {
                Ok(()) => Ok(r.addr().local),
                Err(e) => {
                    let host = scope.host.clone();
                    let local = r.addr().local;
                    host.clone().tasks().spawn(async move {
                        host.stop(local, StopReason::Normal).await;
                    });
                    Err(e.to_string())
                }
            }
        });
        self.shared
            .kinds
            .locked()
            .insert(kind.to_owned(), KindEntry(starter));
        self.shared.wake.notify_one();
    }

    /// A spec for kind `kind` with `args`.
    pub fn spec<A: Serialize>(
        &self,
        id: &str,
        kind: &str,
        args: &A,
        strategy: Strategy,
    ) -> Result<ChildSpec, ProcessError> {
        super::spec::check_id(id)?;
        let args = postcard::to_allocvec(args).map_err(|e| ProcessError::Args {
            id: id.to_owned(),
            why: e.to_string(),
        })?;
        let spec = ChildSpec {
            id: id.to_owned(),
            kind: kind.to_owned(),
            args: Bytes::from(args),
            strategy,
            role: None,
            fenced: false,
        };
        spec.check()?;
        Ok(spec)
    }

    /// Starts (or replaces) a child anywhere in the cluster. Returns at
    /// once; placement runs on every node.
    pub fn start_child(&self, spec: ChildSpec) -> Result<(), ProcessError> {
        spec.check()?;
        if self.shared.starter(&spec.kind).is_none() {
            return Err(ProcessError::UnknownKind(spec.kind));
        }
        let id = spec.id.clone();
        self.shared.write(&id, Some(spec));
        Ok(())
    }

    /// Exactly one instance in the cluster, registered as `id`.
    pub fn start_singleton<A: Serialize>(
        &self,
        id: &str,
        kind: &str,
        args: &A,
    ) -> Result<(), ProcessError> {
        self.start_child(self.spec(id, kind, args, Strategy::Singleton)?)
    }

    /// Exactly one instance in the cluster, registered as `id`, run under
    /// a coordination lock: a new instance starts only once the previous
    /// one's lock is released or its session has expired, so two never
    /// run at once where a coordination majority exists, even across a
    /// partition. The instance's [`Context::fence`](crate::process::Context::fence)
    /// carries the fencing token. The price is failover time: after a
    /// crash, the successor waits for the crashed node's session to end
    /// (up to `coord.session_ttl_ms` after its last keep-alive).
    pub fn start_singleton_fenced<A: Serialize>(
        &self,
        id: &str,
        kind: &str,
        args: &A,
    ) -> Result<(), ProcessError> {
        let mut spec = self.spec(id, kind, args, Strategy::Singleton)?;
        spec.fenced = true;
        self.start_child(spec)
    }

    /// One instance per node, registered as `id@<node>`.
    pub fn start_replicated<A: Serialize>(
        &self,
        id: &str,
        kind: &str,
        args: &A,
    ) -> Result<(), ProcessError> {
        self.start_child(self.spec(id, kind, args, Strategy::Replicated)?)
    }

    /// `shards` instances (1 to [`MAX_SHARDS`]), registered as
    /// `id#<shard>`; see [`lookup_shard`](Self::lookup_shard).
    pub fn start_partitioned<A: Serialize>(
        &self,
        id: &str,
        kind: &str,
        args: &A,
        shards: u32,
    ) -> Result<(), ProcessError> {
        self.start_child(self.spec(id, kind, args, Strategy::Partitioned { shards })?)
    }

    /// A service on this node only, supervised locally.
    pub fn start_local<S, F>(&self, factory: F, options: ServiceOptions) -> ServiceRef<S>
    where
        S: Service,
        F: Fn() -> S + Send + 'static,
    {
        self.scope.host.spawn(factory, options, None)
    }

    /// Stops child `id` everywhere and forgets its spec; whether it existed.
    pub fn stop_child(&self, id: &str) -> bool {
        let existed = self.shared.specs().get(id).is_some();
        if existed {
            self.shared.write(id, None);
        }
        existed
    }

    /// Every child spec in the cluster.
    pub fn children(&self) -> Vec<ChildSpec> {
        self.shared.specs().specs().cloned().collect()
    }

    /// Managed instances running on this node: (instance name, address).
    pub fn running(&self) -> Vec<(String, ServiceAddr)> {
        let me = self.scope.id();
        self.shared
            .running
            .locked()
            .iter()
            .map(|(name, r)| {
                (
                    name.clone(),
                    ServiceAddr {
                        node: me,
                        local: r.local,
                    },
                )
            })
            .collect()
    }

    /// The singleton `id`, wherever it runs. Never blocks: it reads this
    /// node's registry view.
    pub fn lookup_singleton<S: Service>(
        &self,
        id: &str,
    ) -> Result<Option<ServiceRef<S>>, ProcessError> {
        Ok(self.scope.registry.lookup(id)?)
    }

    /// The shard of partitioned child `id` that owns `key`.
    pub fn lookup_shard<S: Service>(
        &self,
        id: &str,
        key: &str,
    ) -> Result<Option<ServiceRef<S>>, ProcessError> {
        let shards = match self.shared.specs().get(id).map(|s| s.strategy) {
            Some(Strategy::Partitioned { shards }) => shards,
            _ => return Ok(None),
        };
        let name = format!("{id}#{}", shard_of(key, shards));
        Ok(self.scope.registry.lookup(&name)?)
    }

    /// Whether this side of the cluster has quorum under the split-brain
    /// policy (singletons and shards run only with quorum).
    pub fn has_quorum(&self) -> bool {
        self.shared
            .quorum
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The members keep-majority counts against (the last agreed view;
    /// it follows membership once the view has been stable for a while,
    /// ADR 008). Empty until a view has been stable once (the cluster is
    /// forming and every side keeps quorum) and under other policies.
    pub fn quorum_base(&self) -> Vec<crate::NodeId> {
        self.shared.quorum_base.locked().clone()
    }

    /// The split-brain policy.
    pub fn split_brain(&self) -> SplitBrain {
        self.shared.policy
    }
}
