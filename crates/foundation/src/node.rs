//! The node: builder, handle, lifecycle.

mod background;
mod clock;
mod report;
mod sockets;

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

/// How long stopped tasks get to end before shutdown gives up on them.
const TASKS_STOP_WITHIN: Duration = Duration::from_secs(5);
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
    pub(crate) async fn start(
        resolved: Resolved,
        strategy: Box<dyn Strategy>,
        given: Option<Sockets>,
    ) -> Result<Node, StartError> {
        let id = NodeId::random();
        // Every event of this node, from any of its tasks, carries its id
        // and name: several nodes in one process stay apart in the logs.
        let span = tracing::info_span!("node", node = %id, name = %resolved.config.node.name);
        Self::start_in(resolved, strategy, given, id, span.clone())
            .instrument(span)
            .await
    }

    async fn start_in(
        resolved: Resolved,
        strategy: Box<dyn Strategy>,
        given: Option<Sockets>,
        id: NodeId,
        span: tracing::Span,
    ) -> Result<Node, StartError> {
        let config = resolved.config.clone();
        let lease_clock = given.as_ref().and_then(|s| s.lease_clock.clone());
        let disk_inline = given.as_ref().is_some_and(|s| s.coord_disk_inline);
        let cancel = CancellationToken::new();
        let tasks = Tasks::new(span, cancel.clone());
        let stats = Arc::new(Stats::default());
        let faults = crate::faults::Faults::default();
        let exposure = check_exposure(&config)?;
        let tls = TlsIdentity::from_config(&config)?;

        let sockets::Bound {
            membership: m_socket,
            membership_addr: m_local,
            transport,
        } = sockets::bind(&config, &tls, id, &stats, &faults, given)?;
        let advertise = config.transport.advertise.unwrap_or(m_local.ip());
        let local = MemberId {
            id,
            addr: SocketAddr::new(advertise, m_local.port()),
            transport: SocketAddr::new(advertise, transport.local_addr().port()),
            name: config.node.name.clone(),
            roles: config.node.roles.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            generation: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        };
        if config.tls.has_files() && config.cluster.secret.is_none() {
            tracing::warn!("no cluster secret: membership datagrams are keyed from the CA certificate, which keeps other clusters out but is not secret; set FOUNDATION_SECRET");
        }
        let keys = ClusterKeys::derive(&config, &tls);
        let core = MembershipCore::new(
            local.clone(),
            foca_config(&config.membership),
            rand::random(),
        );
        // A leave notice gets one expected round trip to arrive before foca's own
        // down notice (see `MembershipCore::leave`).
        let (membership, m_task) = Membership::start(
            m_socket,
            core,
            Sealer::new(&keys.membership),
            stats.clone(),
            &config.membership,
            faults.clone(),
            tasks.clone(),
        );

        // Not the Messenger: it holds the transport, and the transport
        // holding it back would keep both (and the socket) alive forever.
        transport.accept_members_only(Arc::new(ActiveMembers(membership.clone())));

        let (sink, candidates) = CandidateSink::new();
        let strategy_name = strategy.name();
        let ctx = DiscoveryContext {
            node: id,
            name: config.node.name.clone(),
            cluster: config.cluster.name.clone(),
            membership: local.addr,
            transport: local.transport,
            bind: config.transport.bind,
            key: keys.discovery,
            replay_window: config.membership.replay_window,
            gossip: config.gossip.clone(),
            dns: config.dns.clone(),
            consul: config.consul.clone(),
            etcd: config.etcd.clone(),
            kubernetes: config.kubernetes.clone(),
            stats: stats.clone(),
        };
        tasks.spawn(strategy.run(ctx, sink.clone(), cancel.child_token()));
        let alone_by_config =
            config.cluster.discovery == DiscoveryKind::Static && config.cluster.seeds.is_empty();

        let messenger = Messenger {
            transport: transport.clone(),
            membership: membership.clone(),
            local: local.clone(),
            tasks: tasks.clone(),
            spans: crate::spans::Spans::new(local.id, config.tracing.sample_percent),
            calls: Default::default(),
        };
        start_export(&config, id, &messenger, &tasks, &cancel);
        let registry = Arc::new(RegistryShared::new(
            messenger.clone(),
            Outbox::new(messenger.clone(), cancel.child_token(), "registry"),
        ));
        let host = Arc::new(Host::new(
            messenger.clone(),
            registry.clone(),
            cancel.child_token(),
        ));
        let view = Arc::new(View::new(local, membership.clone(), alone_by_config));
        let sync = SyncTask {
            shared: registry.clone(),
            host: host.clone(),
            inbox: transport.subscribe(InboxFilter::kinds(crate::registry::KINDS)),
            members: membership.subscribe(),
            interval: config.registry.sync_interval,
            cancel: cancel.child_token(),
        };
        let host_inbox = transport.subscribe(InboxFilter::kinds(crate::services::KINDS));
        let manager = Arc::new(ManagerShared::new(
            messenger.clone(),
            registry.outbox.clone(),
            config.process.split_brain,
        ));
        let manager_inbox = transport.subscribe(InboxFilter::kinds(crate::process::MANAGER_KINDS));
        let manager_members = membership.subscribe();
        let registry_changes = registry.changed.subscribe();
        let pubsub = Arc::new(crate::pubsub::Shared::new(
            registry.clone(),
            crate::pubsub::Sender::new(
                messenger.clone(),
                config.pubsub.queue_bytes,
                cancel.child_token(),
            ),
            config.pubsub.clone(),
            config.channels.data_threshold,
            config.transport.max_frame_size as usize,
        ));
        let pubsub_task = crate::pubsub::runtime::ReceiveTask {
            shared: pubsub.clone(),
            inbox: transport.subscribe(InboxFilter::kinds(crate::pubsub::KINDS)),
            members: membership.subscribe(),
            cancel: cancel.child_token(),
        };
        // One wall clock for coordination's leases and the cache's write
        // stamps: the system's, or a simulation's.
        let clock = lease_clock.unwrap_or_else(crate::coord::system_clock);
        let coord = crate::coord::start(crate::coord::Parts {
            messenger: messenger.clone(),
            view: view.clone(),
            config: config.coord.clone(),
            inbox: transport.subscribe(InboxFilter::kinds(crate::coord::KINDS)),
            members: membership.subscribe(),
            cancel: cancel.child_token(),
            clock: clock.clone(),
            disk_inline,
        })
        .await
        .map_err(StartError::Coord)?;
        let caches = crate::cache::start(
            messenger.clone(),
            transport.subscribe(InboxFilter::kinds(crate::cache::KINDS)),
            membership.subscribe(),
            cancel.child_token(),
            clock,
            &config.cache,
        );
        let node = Node {
            inner: Arc::new(Inner {
                id,
                resolved,
                view,
                transport,
                membership,
                faults,
                messenger,
                registry,
                host,
                manager,
                pubsub,
                coord,
                caches,
                mesh: Default::default(),
                stats,
                candidates,
                sink,
                strategy: strategy_name,
                exposure,
                cancel,
                tasks: Mutex::new(vec![m_task]),
                spawned: tasks,
                http_addr: Mutex::new(None),
                stopped: AtomicBool::new(false),
                started: std::time::Instant::now(),
            }),
        };
        node.spawn(sync.run());
        node.spawn(pubsub_task.run());
        node.spawn(
            ManagerTask {
                scope: node.scope(),
                shared: node.inner.manager.clone(),
                inbox: manager_inbox,
                members: manager_members,
                changes: registry_changes,
                interval: config.registry.sync_interval,
                cancel: node.inner.cancel.child_token(),
                planner: foundation_proto::process::planner::Planner::new(
                    id,
                    config.process.split_brain,
                    foundation_proto::process::quorum::stable_window(
                        config.membership.probe_period,
                        config.membership.suspect_to_down,
                        config.membership.probe_rtt,
                    ),
                )
                .with_boot(foundation_proto::process::Boot {
                    expected_members: config.process.expected_members,
                    alone_by_config,
                }),
                said_waiting: false,
                handoff_contexts: Default::default(),
            }
            .run(),
        );
        node.spawn(node.clone().host_loop(host_inbox));
        node.spawn(node.clone().join_loop());
        node.spawn(node.clone().forget_loop());
        node.spawn(clock::responder(node.clone()));
        node.spawn(report::responder(node.clone()));
        tracing::info!(
            node = %id,
            name = %node.inner.view.local().name,
            membership = %node.inner.view.local().addr,
            transport = %node.inner.view.local().transport,
            discovery = strategy_name,
            profile = node.config().profile.as_str(),
            "node started"
        );
        Ok(node)
    }

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

    /// Leaves the cluster gracefully (the others see `Left`), then stops
    /// every task this node started and closes its sockets.
    pub async fn shutdown(&self) {
        let span = self.inner.spawned.span().clone();
        self.shutdown_in().instrument(span).await;
    }

    async fn shutdown_in(&self) {
        if self.inner.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::info!(node = %self.inner.id, "leaving the cluster");
        // Services stop first, so their entries are withdrawn while this
        // node can still tell the others; all at once, within the budget.
        let budget = self.inner.resolved.config.process.shutdown_timeout;
        let stopped = tokio::time::timeout(budget, async {
            hand_off_all(&self.scope(), &self.inner.manager).await;
            self.inner.host.stop_all(StopReason::Shutdown).await;
        })
        .await;
        if stopped.is_err() {
            tracing::warn!(
                ?budget,
                "services not handed off and stopped in time (process.shutdown_timeout_ms): the rest stop without handoff"
            );
        }
        // Its locks and ephemeral keys pass on now, not at the session's
        // deadline.
        self.inner.coord.leave().await;
        // Messages already broadcast go out before the node leaves.
        let within = self.inner.resolved.config.pubsub.shutdown_flush;
        if !self
            .inner
            .pubsub
            .sender
            .flush(tokio::time::Instant::now() + within)
            .await
        {
            tracing::warn!(?within, "pub/sub queues not flushed in time (pubsub.shutdown_flush_ms): some messages are lost");
        }
        if !self.inner.transport.drain(within).await {
            tracing::warn!(
                ?within,
                "peers did not acknowledge everything in time: some messages may be lost"
            );
        }
        self.inner.membership.leave().await;
        self.stop_tasks(Silence::AfterTasks).await;
        tracing::info!(node = %self.inner.id, "node stopped");
    }

    /// Stops abruptly, without leaving: the others see `Down`, as after a
    /// crash. For tests and fault injection.
    pub async fn abort(&self) {
        if self.inner.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        self.stop_tasks(Silence::First).await;
    }

    async fn stop_tasks(&self, silence: Silence) {
        // A crashed node answers nothing: its transport closes before its
        // services are cancelled, or a caller would hear "stopped" from a
        // node that is meant to have vanished. A graceful stop cancels first
        // so callers get that answer instead of a lost connection.
        if silence == Silence::First {
            self.inner.membership.abort();
            self.inner.transport.shutdown().await;
            self.inner.cancel.cancel();
        } else {
            self.inner.cancel.cancel();
            self.inner.membership.abort();
            self.inner.transport.shutdown().await;
        }
        // openraft runs tasks of its own; the storage file is closed. After
        // the transport: an aborted node must fall silent at once.
        self.inner.coord.stop().await;
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.inner.tasks.locked());
        for t in tasks {
            let _ = t.await;
        }
        let left = self.inner.spawned.join(TASKS_STOP_WITHIN).await;
        if left > 0 {
            tracing::warn!(tasks = left, "tasks still running after shutdown");
        }
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

/// Refuses the public development secret on a public address, and warns
/// (once, at start) when it is in use on a LAN.
fn check_exposure(config: &Config) -> Result<Exposure, StartError> {
    let interfaces: Vec<std::net::IpAddr> = match if_addrs::get_if_addrs() {
        Ok(list) => list.into_iter().map(|i| i.ip()).collect(),
        // Unknown interfaces: judged as a LAN (warned), not refused.
        Err(e) => {
            tracing::debug!(error = %e, "cannot list network interfaces");
            vec![std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)]
        }
    };
    let exposure = development_exposure(config, &interfaces);
    match &exposure {
        Exposure::Public { addr, key } => {
            return Err(StartError::PublicDevelopmentSecret {
                addr: *addr,
                key,
            })
        }
        Exposure::Lan(addrs) => tracing::warn!(
            ?addrs,
            "INSECURE: the public development secret is in use on a network address: anyone on this network can join the cluster and read its traffic; set FOUNDATION_SECRET (e.g. `openssl rand -hex 32`) or bind to 127.0.0.1"
        ),
        _ => {}
    }
    Ok(exposure)
}

/// When a stopping node's transport falls silent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Silence {
    /// Before anything else: a crash.
    First,
    /// After the node's tasks were told to stop: a graceful shutdown.
    AfterTasks,
}

/// Starts OTLP export of this node's spans when it is configured.
fn start_export(
    config: &Config,
    id: NodeId,
    messenger: &Messenger,
    tasks: &Tasks,
    cancel: &CancellationToken,
) {
    let Some(url) = config.tracing.traces_url() else {
        return;
    };
    #[cfg(feature = "otlp")]
    {
        let resource = vec![
            ("service.name", config.tracing.service_name.clone()),
            ("service.instance.id", id.to_string()),
            ("foundation.node.name", config.node.name.clone()),
        ];
        let (exporter, task) =
            crate::spans::otlp::OtlpExporter::start(url, resource, cancel.child_token());
        tasks.spawn(task);
        messenger.spans.add(exporter);
    }
    #[cfg(not(feature = "otlp"))]
    {
        let _ = (id, messenger, tasks, cancel);
        tracing::warn!(%url, "an OTLP endpoint is set, but this build has no `otlp` cargo feature: spans are not exported");
    }
}
