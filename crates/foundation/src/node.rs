//! The node: builder, handle, lifecycle.

mod background;
mod boot;
mod clock;
mod report;
mod sockets;
mod stop;

pub use clock::{ClockOffset, CLOCK_PING, CLOCK_PONG};
pub use report::{PeerReport, REPORT, REPORT_ASK};
pub use sockets::Sockets;

use crate::locks::Locked as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, DiscoveryKind, Resolved};
use crate::discovery::{CandidateSink, Candidates, DiscoveryContext, Strategy};
use crate::error::StartError;
use crate::id::NodeId;
use crate::membership::core::{foca_config, MembershipCore};
use crate::membership::seal::Sealer;
use crate::membership::{Member, MemberEvent, MemberId, MemberState, Membership, View};
use crate::messenger::Messenger;
use crate::peers::Outbox;
use crate::process::{hand_off_all, ManagerShared, ManagerTask, ProcessManager, Scope};
use crate::registry::{Registry, RegistryShared, SyncTask};
use crate::security::{development_exposure, ClusterKeys, Exposure, TlsIdentity};
use crate::services::{Host, Services, StopReason};
use crate::tasks::Tasks;
use crate::telemetry::Stats;
use crate::transport::{Channel, Inbox, InboxFilter, SendError, Transport};
use tracing::Instrument as _;

/// Interval of join attempts while this node has no active member.
const JOIN_INTERVAL_ALONE: Duration = Duration::from_millis(500);
/// Interval of join attempts to candidates that are not members yet.
const JOIN_INTERVAL: Duration = Duration::from_secs(3);

/// The transport's view of who may send frames: active members.
#[derive(Debug)]
struct ActiveMembers(Membership);

impl crate::transport::Members for ActiveMembers {
    fn is_member(&self, id: NodeId) -> bool {
        self.0.is_active(id)
    }
}

/// A running node. Clone it freely; every clone is the same node.
#[derive(Clone, Debug)]
pub struct Node {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    id: NodeId,
    resolved: Resolved,
    view: Arc<View>,
    transport: Transport,
    membership: Membership,
    faults: crate::faults::Faults,
    messenger: Messenger,
    registry: Arc<RegistryShared>,
    host: Arc<Host>,
    manager: Arc<ManagerShared>,
    pubsub: Arc<crate::pubsub::Shared>,
    coord: crate::coord::Coord,
    caches: Arc<crate::cache::Shared>,
    mesh: Arc<crate::mesh::Shared>,
    stats: Arc<Stats>,
    candidates: watch::Receiver<Candidates>,
    sink: CandidateSink,
    strategy: &'static str,
    exposure: Exposure,
    cancel: CancellationToken,
    /// Tasks that spawn themselves (membership shell, HTTP server).
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Everything else the node runs.
    spawned: Tasks,
    http_addr: Mutex<Option<SocketAddr>>,
    stopped: AtomicBool,
    /// When the node started (its reports' uptime).
    started: std::time::Instant,
}

/// Reach-through to the tools underneath (ADR 001).
#[derive(Debug)]
pub struct Raw<'a> {
    node: &'a Node,
}

impl Raw<'_> {
    /// The quinn endpoint carrying all channels.
    pub fn endpoint(&self) -> &quinn::Endpoint {
        self.node.inner.transport.endpoint()
    }

    /// The transport (connections, inboxes).
    pub fn transport(&self) -> &Transport {
        &self.node.inner.transport
    }

    /// The membership handle; [`Membership::inspect`] reaches foca.
    pub fn membership(&self) -> &Membership {
        &self.node.inner.membership
    }

    /// The node's counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.node.inner.stats
    }

    /// Fault injection: blocked peers (partitions in tests).
    pub fn faults(&self) -> &crate::faults::Faults {
        &self.node.inner.faults
    }
}

impl Node {
    fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        self.inner.spawned.spawn(fut);
    }

    /// Serves the HTTP endpoint's task as one of the node's own: shutdown
    /// stops and joins it.
    pub(crate) fn attach_http(&self, bound: SocketAddr, task: JoinHandle<()>) {
        *self.inner.http_addr.locked() = Some(bound);
        self.push_task(task);
    }

    /// The node's span: its id and name, on every event of its tasks.
    pub(crate) fn span(&self) -> &tracing::Span {
        self.inner.spawned.span()
    }

    /// A token cancelled when the node stops.
    pub(crate) fn cancel_token(&self) -> CancellationToken {
        self.inner.cancel.child_token()
    }

    fn push_task(&self, task: JoinHandle<()>) {
        self.inner.tasks.locked().push(task);
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.inner.view.local().name
    }

    /// The resolved configuration.
    pub fn config(&self) -> &Config {
        &self.inner.resolved.config
    }

    /// The resolved configuration with the source of every value.
    pub fn resolved(&self) -> &Resolved {
        &self.inner.resolved
    }

    /// The membership address (what other nodes list as a seed).
    pub fn membership_addr(&self) -> SocketAddr {
        self.inner.view.local().addr
    }

    /// The QUIC transport address.
    pub fn transport_addr(&self) -> SocketAddr {
        self.inner.view.local().transport
    }

    /// The HTTP endpoint's address, when enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        *self.inner.http_addr.locked()
    }

    /// This node as a member.
    pub fn local_member(&self) -> Member {
        self.inner.view.local_member()
    }

    /// Every member this node knows, itself first: alive, suspect, and
    /// recently down or left ones.
    pub fn members(&self) -> Vec<Member> {
        self.inner.view.members()
    }

    /// Alive and suspect members, this node included.
    pub fn active_members(&self) -> Vec<Member> {
        self.members()
            .into_iter()
            .filter(|m| m.state.is_active())
            .collect()
    }

    /// Membership events from now on. The stream is bounded: a subscriber
    /// that falls more than 1024 events behind skips the oldest.
    pub fn events(&self) -> Events {
        Events {
            rx: self.inner.membership.subscribe(),
            stopped: self.inner.cancel.clone(),
        }
    }

    /// Discovery now: the strategy's name, its current candidate addresses,
    /// and how many times it has failed (each failure kept the last set).
    pub fn discovery(&self) -> (&'static str, Candidates, u64) {
        (
            self.inner.strategy,
            self.inner.candidates.borrow().clone(),
            self.inner.sink.errors(),
        )
    }

    /// Where the public development secret is in use beyond loopback
    /// (`/health`'s `insecure_development_secret` check): `None` when
    /// another secret is in use.
    pub(crate) fn development_exposure(&self) -> Option<Vec<std::net::IpAddr>> {
        match &self.inner.exposure {
            Exposure::Lan(addrs) => Some(addrs.clone()),
            Exposure::LoopbackOnly => Some(Vec::new()),
            _ => None,
        }
    }

    /// Whether the node has joined a cluster (or runs alone by configuration).
    pub fn is_ready(&self) -> bool {
        self.inner.view.is_ready()
    }

    /// Sends `payload` of `kind` to member `to` on `channel`. Returns once
    /// the frame is handed to QUIC. Fails with the payload given back if
    /// `to` is not an active member or cannot be reached.
    pub async fn send(
        &self,
        to: NodeId,
        channel: Channel,
        kind: u16,
        payload: Bytes,
    ) -> Result<(), SendError> {
        self.send_with_headers(to, channel, kind, Vec::new(), payload)
            .await
    }

    /// [`Node::send`] with headers (e.g. W3C `traceparent`).
    pub async fn send_with_headers(
        &self,
        to: NodeId,
        channel: Channel,
        kind: u16,
        headers: Vec<(String, String)>,
        payload: Bytes,
    ) -> Result<(), SendError> {
        self.inner
            .messenger
            .send(to, channel, kind, headers, payload)
            .await
    }

    /// This node's services: start, stop, events.
    pub fn services(&self) -> Services {
        Services {
            host: self.inner.host.clone(),
            node: self.inner.id,
        }
    }

    /// The process manager: singletons, replicated and partitioned
    /// children across the cluster.
    pub fn processes(&self) -> ProcessManager {
        ProcessManager {
            shared: self.inner.manager.clone(),
            scope: self.scope(),
        }
    }

    /// What the process manager may use of this node.
    fn scope(&self) -> Scope {
        Scope {
            host: self.inner.host.clone(),
            registry: self.registry(),
            view: self.inner.view.clone(),
            coord: self.inner.coord.clone(),
        }
    }

    /// Send to a service, a registered name or a topic through one call.
    pub fn messaging(&self) -> crate::Messaging {
        crate::Messaging {
            registry: self.registry(),
            pubsub: self.pubsub(),
        }
    }

    /// Cluster-wide publish/subscribe.
    pub fn pubsub(&self) -> crate::PubSub {
        crate::PubSub {
            shared: self.inner.pubsub.clone(),
        }
    }

    /// The cluster-wide registry of named services.
    pub fn registry(&self) -> Registry {
        Registry {
            shared: self.inner.registry.clone(),
            host: self.inner.host.clone(),
        }
    }

    /// A new inbox of every application message arriving on `channel`
    /// (kinds below [`RESERVED_KINDS`](crate::transport::RESERVED_KINDS)).
    pub fn inbox(&self, channel: Channel) -> Inbox {
        self.inner
            .transport
            .subscribe(InboxFilter::channel(channel))
    }

    /// A new inbox of messages matching `filter` (e.g. a layer's kinds).
    pub fn subscribe(&self, filter: InboxFilter) -> Inbox {
        self.inner.transport.subscribe(filter)
    }

    /// Reach-through to quinn, the membership handle and the counters.
    pub fn raw(&self) -> Raw<'_> {
        Raw { node: self }
    }

    /// Coordination: locks with fencing tokens, a linearizable key-value
    /// store, counters ([`crate::coord`]).
    pub fn coord(&self) -> crate::coord::Coord {
        self.inner.coord.clone()
    }

    /// Call latencies and outcomes by service protocol, as callers on
    /// this node saw them.
    pub fn calls(&self) -> &Arc<crate::telemetry::CallStats> {
        &self.inner.messenger.calls
    }

    /// Hands every span this node records (for sampled traces) to
    /// `exporter` too: calls, handlers, casts, publishes and deliveries
    /// ([`crate::spans`]).
    pub fn add_span_exporter(&self, exporter: Arc<dyn crate::spans::SpanExporter>) {
        self.inner.messenger.spans.add(exporter);
    }

    /// The service mesh: discovery by criteria and load-balanced calls
    /// ([`crate::mesh`]).
    pub fn mesh(&self) -> crate::mesh::Mesh {
        crate::mesh::Mesh::new(
            self.registry(),
            self.inner.view.clone(),
            self.inner.membership.clone(),
            self.inner.host.clone(),
            self.inner.id,
            self.inner.mesh.clone(),
        )
    }

    /// The node's caches ([`crate::cache`]).
    pub fn caches(&self) -> crate::cache::Caches {
        crate::cache::Caches {
            shared: self.inner.caches.clone(),
        }
    }

    /// Opens cache `name` of `V` by `K`: `node.caches().open(name, options)`.
    pub fn cache<K, V>(
        &self,
        name: &str,
        options: crate::cache::CacheOptions,
    ) -> Result<crate::cache::Cache<K, V>, crate::cache::CacheError>
    where
        K: serde::Serialize,
        V: serde::Serialize + serde::de::DeserializeOwned,
    {
        self.caches().open(name, options)
    }

    /// Waits until at least `n` members (this node included) are alive.
    pub async fn wait_for_members(&self, n: usize, timeout: Duration) -> Result<(), Vec<Member>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let alive = self
                .members()
                .iter()
                .filter(|m| m.state == MemberState::Alive)
                .count();
            if alive >= n {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.members());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A stream of membership events.
#[derive(Debug)]
pub struct Events {
    rx: broadcast::Receiver<MemberEvent>,
    stopped: CancellationToken,
}

impl Events {
    /// The next event; `None` once the node has stopped. If this receiver
    /// fell behind, the missed events are skipped (and logged).
    pub async fn recv(&mut self) -> Option<MemberEvent> {
        loop {
            // Events already queued are delivered before the end of stream.
            let next = tokio::select! {
                biased;
                ev = self.rx.recv() => ev,
                _ = self.stopped.cancelled() => return None,
            };
            match next {
                Ok(ev) => return Some(ev),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "membership event subscriber fell behind");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
