//! Starting a node: sockets, keys, transport, membership, every
//! subsystem and their tasks, wired together.

use super::*;

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
                quorum_log: Default::default(),
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
