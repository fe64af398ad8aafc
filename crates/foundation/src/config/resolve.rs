//! The resolver: merges the layers by precedence and records each value's source.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::defaults as d;
use super::detect::{detect_advertise, detect_strategy, is_service_link};
use super::error::ConfigError;
use super::keys::{self, CONFIG_FILE_ENV};
use super::layer::{Layer, Value};
use super::types::*;
use super::validate;

/// Where a resolved value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// Set in code through [`crate::NodeBuilder`] (or a CLI flag).
    Builder,
    /// Changed in code by a [`NodeBuilder::config`](crate::NodeBuilder::config)
    /// closure, after every layer was merged.
    Code,
    /// Set by an environment variable.
    Env(String),
    /// Set in a configuration file.
    File(PathBuf),
    /// Detected from the environment, with the reason.
    Detected(String),
    /// The documented default.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Builder => f.write_str("builder"),
            Source::Code => f.write_str("code (NodeBuilder::config)"),
            Source::Env(var) => write!(f, "env {var}"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Detected(why) => write!(f, "detected: {why}"),
            Source::Default => f.write_str("default"),
        }
    }
}

/// How much the user configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Nothing set: everything detected or defaulted.
    Mortal,
    /// Only one-word settings (strategy, seeds, secret, name, ports).
    Apprentice,
    /// Full per-subsystem tables.
    Wizard,
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tier::Mortal => "mortal",
            Tier::Apprentice => "apprentice",
            Tier::Wizard => "wizard",
        })
    }
}

/// A resolved configuration with the source of every value.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The configuration.
    pub config: Config,
    /// Source of each key (dotted names as in foundation.toml).
    pub sources: BTreeMap<&'static str, Source>,
    /// The tier the user is in.
    pub tier: Tier,
    /// The configuration file that was read, if any.
    pub file: Option<PathBuf>,
    /// What the resolver noticed and set aside, such as Kubernetes service
    /// links that look like `FOUNDATION_*` settings (`config explain`
    /// prints them).
    pub notes: Vec<String>,
}

/// Merges builder, environment, file, detection and defaults.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    builder: Layer,
    defaults: Layer,
    env: BTreeMap<String, String>,
    file: Option<PathBuf>,
    no_file_detection: bool,
    /// `FOUNDATION_*` variables whose value is not UTF-8.
    not_utf8: Vec<String>,
}

impl Resolver {
    /// A resolver that reads no environment (tests, embedded use).
    pub fn new() -> Self {
        Self::default()
    }

    /// A resolver that reads this process's environment variables.
    /// A variable whose value is not UTF-8 never panics: a `FOUNDATION_*`
    /// one makes [`resolve`](Self::resolve) fail with its name, any other is
    /// read lossily.
    pub fn from_process_env() -> Self {
        let mut not_utf8 = Vec::new();
        let vars: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(name, value)| {
                // A name that is not UTF-8 is not one of ours.
                let name = name.into_string().ok()?;
                match value.into_string() {
                    Ok(v) => Some((name, v)),
                    Err(_) if name.starts_with("FOUNDATION_") => {
                        not_utf8.push(name);
                        None
                    }
                    Err(v) => Some((name, v.to_string_lossy().into_owned())),
                }
            })
            .collect();
        let mut resolver = Self::new().env(vars);
        resolver.not_utf8 = not_utf8;
        resolver
    }

    /// Uses these environment variables instead of the process's.
    pub fn env<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }

    /// Reads this configuration file (overrides FOUNDATION_CONFIG).
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Does not look for ./foundation.toml when no file is named.
    pub fn no_file_detection(mut self) -> Self {
        self.no_file_detection = true;
        self
    }

    /// The builder layer (highest precedence).
    pub fn builder_layer(&mut self) -> &mut Layer {
        &mut self.builder
    }

    /// Changes a default (the CLI turns HTTP on this way, so env and file
    /// still override it).
    pub fn default_value(mut self, key: &'static str, value: Value) -> Self {
        self.defaults.set(key, value);
        self
    }

    /// Resolves and validates.
    pub fn resolve(&self) -> Result<Resolved, ConfigError> {
        if let Some(var) = self.not_utf8.first() {
            return Err(ConfigError::InvalidValue(Box::new(
                super::error::InvalidValue {
                    key: var.clone(),
                    value: "<not UTF-8>".into(),
                    origin: format!("environment variable {var}"),
                    expected: "UTF-8 text".into(),
                    fix: format!("unset {var} or set it to UTF-8 text"),
                },
            )));
        }
        let mut notes = Vec::new();
        let env_layer = Layer::from_env(self.env.iter().filter_map(|(k, v)| {
            if is_service_link(k, v) {
                notes.push(format!(
                    "ignored {k}={v}: a Kubernetes service link (a Service named foundation*), not a setting"
                ));
                return None;
            }
            Some((k.as_str(), v.as_str()))
        }))?;
        let file = self.file_path();
        let file_layer = match &file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                Layer::from_toml(&text, path)?
            }
            None => Layer::new(),
        };
        let explicit: Vec<(Source, &Layer)> = vec![
            (Source::Builder, &self.builder),
            (Source::Env(String::new()), &env_layer),
            (Source::File(file.clone().unwrap_or_default()), &file_layer),
        ];
        let mut m = Merge {
            explicit,
            defaults: &self.defaults,
            sources: BTreeMap::new(),
        };
        let config = self.build(&mut m)?;
        let tier = tier(&[&self.builder, &env_layer, &file_layer]);
        validate::validate(&config, &m.sources)?;
        Ok(Resolved {
            config,
            sources: m.sources,
            tier,
            file,
            notes,
        })
    }

    fn file_path(&self) -> Option<PathBuf> {
        if let Some(p) = &self.file {
            return Some(p.clone());
        }
        if let Some(p) = self.env.get(CONFIG_FILE_ENV) {
            return Some(PathBuf::from(p));
        }
        let local = Path::new("foundation.toml");
        (!self.no_file_detection && local.is_file()).then(|| local.to_owned())
    }

    fn build(&self, m: &mut Merge<'_>) -> Result<Config, ConfigError> {
        let seeds = match m.value("seeds", || (Value::Seeds(Vec::new()), None)) {
            Value::Seeds(s) => s,
            _ => Vec::new(),
        };
        let dns_query = match m.opt("dns.query") {
            Some(Value::Text(q)) => Some(q),
            _ => None,
        };
        let detected = detect_strategy(&self.env, seeds.is_empty(), dns_query.is_some());
        let consul_addr = match m.opt("consul.addr") {
            Some(Value::Text(a)) => a,
            _ => match self.env.get("CONSUL_HTTP_ADDR") {
                Some(a) => {
                    m.sources
                        .insert("consul.addr", Source::Detected("CONSUL_HTTP_ADDR".into()));
                    a.clone()
                }
                None => {
                    m.sources.insert("consul.addr", Source::Default);
                    d::CONSUL_ADDR.to_owned()
                }
            },
        };
        let consul_addr = if consul_addr.contains("://") {
            consul_addr
        } else {
            format!("http://{consul_addr}")
        };
        let consul_token = match m.opt("consul.token") {
            Some(Value::Text(t)) => Some(t),
            _ => self.env.get("CONSUL_HTTP_TOKEN").cloned(),
        };
        let discovery_word = m.text("cluster", || (d_text(detected.0), Some(detected.1)));
        let discovery = discovery_word.parse().unwrap_or(DiscoveryKind::Static);
        // A cluster found through Kubernetes, Consul, etcd or DNS is a
        // deployment, not a laptop: it never runs on the public development
        // secret by accident. An explicit profile still wins.
        let profile = m
            .text("profile", || {
                if discovery.is_deployment() {
                    (
                        d_text("production"),
                        Some(format!("{discovery} discovery means a deployment")),
                    )
                } else {
                    (d_text("development"), None)
                }
            })
            .parse()
            .unwrap_or_default();
        let secret = match m.opt("secret") {
            Some(Value::Text(s)) => Some(Secret::new(s)),
            _ if profile == Profile::Development => {
                m.sources.insert("secret", Source::Default);
                Some(Secret::new(d::DEVELOPMENT_SECRET))
            }
            _ => None,
        };
        let hostname = self.hostname();
        let name = m.text("node.name", || {
            (Value::Text(hostname.clone()), Some("host name".to_owned()))
        });
        let roles = match m.value("node.roles", || (Value::List(Vec::new()), None)) {
            Value::List(r) => r,
            _ => Vec::new(),
        };
        let bind = m.ip("transport.bind", || (ip(d::BIND), None));
        let advertise = match m.opt("transport.advertise") {
            Some(Value::Ip(ip)) => Some(ip),
            _ if !bind.is_unspecified() => Some(bind),
            _ => {
                let (ip, why) = detect_advertise(&hostname);
                m.sources
                    .insert("transport.advertise", Source::Detected(why));
                Some(ip)
            }
        };
        let membership_port = m.int("membership.port", d::MEMBERSHIP_PORT.into()) as u16;
        let transport_port = match m.opt("transport.port") {
            Some(Value::Int(p)) => Some(p as u16),
            _ => {
                m.sources.insert(
                    "transport.port",
                    Source::Detected("membership port + 1".into()),
                );
                None
            }
        };
        let cluster_name = m.text("cluster_name", || (d_text(d::CLUSTER_NAME), None));
        let config = Config {
            profile,
            cluster: ClusterConfig {
                name: cluster_name.clone(),
                secret,
                discovery,
                seeds,
            },
            node: NodeConfig {
                name: name.clone(),
                roles,
            },
            transport: TransportConfig {
                bind,
                port: transport_port,
                advertise,
                max_frame_size: m.int("transport.max_frame_size", d::MAX_FRAME_SIZE.into()) as u32,
                stream_window: m.int("transport.stream_window", d::STREAM_WINDOW.into()) as u32,
                idle_timeout: m.ms("transport.idle_timeout_ms", d::IDLE_TIMEOUT_MS),
                keep_alive: m.ms("transport.keep_alive_ms", d::KEEP_ALIVE_MS),
                connect_timeout: m.ms("transport.connect_timeout_ms", d::CONNECT_TIMEOUT_MS),
                reconnect_min: m.ms("transport.reconnect_min_ms", d::RECONNECT_MIN_MS),
                reconnect_max: m.ms("transport.reconnect_max_ms", d::RECONNECT_MAX_MS),
            },
            membership: MembershipConfig {
                port: membership_port,
                probe_period: m.ms("membership.probe_period_ms", d::PROBE_PERIOD_MS),
                probe_rtt: m.ms("membership.probe_rtt_ms", d::PROBE_RTT_MS),
                suspect_to_down: m.ms("membership.suspect_to_down_ms", d::SUSPECT_TO_DOWN_MS),
                indirect_probes: m.int("membership.indirect_probes", d::INDIRECT_PROBES.into())
                    as u32,
                max_packet_size: m.int("membership.max_packet_size", d::MAX_PACKET_SIZE.into())
                    as u32,
                gossip_period: m.ms("membership.gossip_period_ms", d::GOSSIP_PERIOD_MS),
                port_unreachable: m.bool("membership.port_unreachable", true),
                replay_window: m.ms("membership.replay_window_ms", d::REPLAY_WINDOW_MS),
            },
            tls: TlsConfig {
                ca_file: m.path("tls.ca_file"),
                cert_file: m.path("tls.cert_file"),
                key_file: m.path("tls.key_file"),
                crl_file: m.path("tls.crl_file"),
                server_name: m.text("tls.server_name", || (d_text(d::TLS_SERVER_NAME), None)),
            },
            process: ProcessConfig {
                split_brain: match m
                    .text("process.split_brain", || (d_text("keep-majority"), None))
                    .as_str()
                {
                    "keep-all" => foundation_proto::process::SplitBrain::KeepAll,
                    "static-quorum" => foundation_proto::process::SplitBrain::StaticQuorum(
                        m.int("process.quorum", 1) as usize,
                    ),
                    _ => foundation_proto::process::SplitBrain::KeepMajority,
                },
                expected_members: m.int("process.expected_members", 0) as usize,
                shutdown_timeout: m.ms(
                    "process.shutdown_timeout_ms",
                    d::PROCESS_SHUTDOWN_TIMEOUT_MS,
                ),
            },
            coord: CoordConfig {
                storage: {
                    let default = match profile {
                        Profile::Production => "durable",
                        Profile::Development => "memory",
                    };
                    match m.text("coord.storage", || (d_text(default), None)).as_str() {
                        "durable" => CoordStorage::Durable(
                            m.path("coord.data_dir")
                                .unwrap_or_else(|| PathBuf::from(format!("{}.coord", name))),
                        ),
                        _ => CoordStorage::Memory,
                    }
                },
                voters: m.int("coord.voters", d::COORD_VOTERS) as usize,
                role: match m.opt("coord.role") {
                    Some(Value::Text(s)) => Some(s),
                    _ => None,
                },
                replace_after: m.ms("coord.replace_after_ms", d::COORD_REPLACE_AFTER_MS),
                session_ttl: m.ms("coord.session_ttl_ms", d::COORD_SESSION_TTL_MS),
                timeout: m.ms("coord.timeout_ms", d::COORD_TIMEOUT_MS),
                election_timeout: m.ms("coord.election_timeout_ms", d::COORD_ELECTION_TIMEOUT_MS),
            },
            cache: CacheConfig {
                tier: {
                    let default = match profile {
                        Profile::Production => "partitioned",
                        Profile::Development => "local",
                    };
                    match m.text("cache.tier", || (d_text(default), None)).as_str() {
                        "partitioned" => CacheTier::Partitioned,
                        "replicated" => CacheTier::Replicated,
                        "near" => CacheTier::Near,
                        _ => CacheTier::Local,
                    }
                },
                replicas: m.int("cache.replicas", d::CACHE_REPLICAS) as usize,
                max_entries: m.int("cache.max_entries", d::CACHE_MAX_ENTRIES),
                timeout: m.ms("cache.timeout_ms", d::CACHE_TIMEOUT_MS),
                reconcile: m.ms("cache.reconcile_ms", d::CACHE_RECONCILE_MS),
            },
            registry: RegistryConfig {
                sync_interval: m.ms("registry.sync_interval_ms", d::REGISTRY_SYNC_INTERVAL_MS),
            },
            channels: ChannelsConfig {
                inbox_capacity: m.int("channels.inbox_capacity", d::INBOX_CAPACITY as u64) as usize,
                compression: m.text("channels.compression", || (d_text("lz4"), None)) == "lz4",
                compress_above: m.int("channels.compress_above", d::COMPRESS_ABOVE as u64) as usize,
                data_threshold: m.int("channels.data_threshold", d::DATA_THRESHOLD as u64) as usize,
                single_stream: m.bool("channels.single_stream", false),
            },
            pubsub: PubSubConfig {
                buffer: m.int("pubsub.buffer", d::PUBSUB_BUFFER as u64) as usize,
                queue_bytes: m.int("pubsub.queue_bytes", d::PUBSUB_QUEUE_BYTES as u64) as usize,
                publish_timeout: m.ms("pubsub.publish_timeout_ms", d::PUBSUB_PUBLISH_TIMEOUT_MS),
                shutdown_flush: m.ms("pubsub.shutdown_flush_ms", d::PUBSUB_SHUTDOWN_FLUSH_MS),
            },
            gossip: GossipConfig {
                group: match m.ip("gossip.group", || (ip(d::GOSSIP_GROUP), None)) {
                    IpAddr::V4(g) => g,
                    IpAddr::V6(_) => d::GOSSIP_GROUP.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
                },
                port: m.int("gossip.port", d::GOSSIP_PORT.into()) as u16,
                ttl: m.int("gossip.ttl", d::GOSSIP_TTL.into()) as u32,
                interval: m.ms("gossip.interval_ms", d::GOSSIP_INTERVAL_MS),
                with_mdns: m.bool("gossip.with_mdns", true),
            },
            dns: DnsConfig {
                query: dns_query,
                record: match m.text("dns.record", || (d_text("a"), None)).as_str() {
                    "srv" => DnsRecord::Srv,
                    _ => DnsRecord::A,
                },
                port: match m.opt("dns.port") {
                    Some(Value::Int(p)) => Some(p as u16),
                    _ => None,
                },
                server: match m.opt("dns.server") {
                    Some(Value::Text(s)) => Some(parse_dns_server(&s)?),
                    _ => None,
                },
                interval: m.ms("dns.interval_ms", d::DNS_INTERVAL_MS),
            },
            consul: ConsulConfig {
                addr: consul_addr,
                service: match m.opt("consul.service") {
                    Some(Value::Text(s)) => Some(s),
                    _ => None,
                },
                token: consul_token,
                wait: m.ms("consul.wait_ms", d::CONSUL_WAIT_MS),
            },
            etcd: EtcdConfig {
                endpoint: m.text("etcd.endpoint", || (d_text(d::ETCD_ENDPOINT), None)),
                prefix: {
                    let default = format!("/foundation/{}/", cluster_name);
                    let mut p = m.text("etcd.prefix", || (Value::Text(default), None));
                    if !p.ends_with('/') {
                        p.push('/');
                    }
                    p
                },
                ttl: Duration::from_secs(m.int("etcd.ttl_s", d::ETCD_TTL_S)),
            },
            kubernetes: KubernetesConfig {
                selector: match m.opt("kubernetes.selector") {
                    Some(Value::Text(s)) => s,
                    _ => String::new(),
                },
                namespace: m.text("kubernetes.namespace", || {
                    match std::fs::read_to_string(
                        "/var/run/secrets/kubernetes.io/serviceaccount/namespace",
                    ) {
                        Ok(ns) if !ns.trim().is_empty() => (
                            Value::Text(ns.trim().to_owned()),
                            Some("the pod's service-account namespace".into()),
                        ),
                        _ => (d_text("default"), None),
                    }
                }),
                port: match m.opt("kubernetes.port") {
                    Some(Value::Int(p)) => Some(p as u16),
                    _ => None,
                },
                api: match m.opt("kubernetes.api") {
                    Some(Value::Text(a)) => Some(a),
                    _ => None,
                },
            },
            http: HttpConfig {
                enabled: m.bool("http.enabled", false),
                bind: m.ip("http.bind", || (IpAddr::V4(Ipv4Addr::LOCALHOST), None)),
                port: m.int("http.port", d::HTTP_PORT.into()) as u16,
            },
            tracing: TracingConfig {
                sample_percent: match m.opt("tracing.sample_percent") {
                    Some(Value::Int(p)) => Some(p.min(100) as u8),
                    _ => None,
                },
                otlp_endpoint: match m.opt("tracing.otlp_endpoint") {
                    Some(Value::Text(u)) => Some(u),
                    _ => None,
                },
                otlp_traces_endpoint: match m.opt("tracing.otlp_traces_endpoint") {
                    Some(Value::Text(u)) => Some(u),
                    _ => None,
                },
                service_name: m.text("tracing.service_name", || {
                    (Value::Text("foundation".into()), None)
                }),
            },
        };
        Ok(config)
    }

    fn hostname(&self) -> String {
        self.env
            .get("HOSTNAME")
            .cloned()
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|s| s.trim().to_owned())
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "node".to_owned())
    }
}

/// `ip:port` or `ip` (port 53).
fn parse_dns_server(s: &str) -> Result<std::net::SocketAddr, ConfigError> {
    s.parse::<std::net::SocketAddr>()
        .or_else(|_| {
            s.parse::<IpAddr>()
                .map(|ip| std::net::SocketAddr::new(ip, 53))
        })
        .map_err(|_| {
            ConfigError::InvalidValue(Box::new(super::error::InvalidValue {
                key: "dns.server".into(),
                value: format!("`{s}`"),
                origin: "configuration".into(),
                expected: "an IP address with an optional port, e.g. 10.0.0.2:53".into(),
                fix: "set dns.server (FOUNDATION_DNS_SERVER) to ip or ip:port".into(),
            }))
        })
}

fn d_text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

fn tier(explicit: &[&Layer]) -> Tier {
    let mut tier = Tier::Mortal;
    for key in explicit.iter().flat_map(|l| l.keys()) {
        match keys::spec(key) {
            Some(spec) if !spec.apprentice => return Tier::Wizard,
            _ => tier = Tier::Apprentice,
        }
    }
    tier
}

/// Walks the layers for one key at a time, recording the winning source.
struct Merge<'a> {
    explicit: Vec<(Source, &'a Layer)>,
    defaults: &'a Layer,
    sources: BTreeMap<&'static str, Source>,
}

impl Merge<'_> {
    fn opt(&mut self, key: &'static str) -> Option<Value> {
        for (source, layer) in &self.explicit {
            if let Some(v) = layer.get(key) {
                let source = match source {
                    Source::Env(_) => Source::Env(
                        keys::spec(key)
                            .and_then(|s| s.env)
                            .unwrap_or_default()
                            .to_owned(),
                    ),
                    other => other.clone(),
                };
                self.sources.insert(key, source);
                return Some(v.clone());
            }
        }
        if let Some(v) = self.defaults.get(key) {
            self.sources.insert(key, Source::Default);
            return Some(v.clone());
        }
        None
    }

    /// The value, or the detected/default one (`Some(reason)` = detected).
    fn value(
        &mut self,
        key: &'static str,
        fallback: impl FnOnce() -> (Value, Option<String>),
    ) -> Value {
        if let Some(v) = self.opt(key) {
            return v;
        }
        let (v, why) = fallback();
        self.sources
            .insert(key, why.map_or(Source::Default, Source::Detected));
        v
    }

    fn text(
        &mut self,
        key: &'static str,
        fallback: impl FnOnce() -> (Value, Option<String>),
    ) -> String {
        match self.value(key, fallback) {
            Value::Text(s) => s,
            _ => String::new(),
        }
    }

    fn int(&mut self, key: &'static str, default: u64) -> u64 {
        match self.value(key, || (Value::Int(default), None)) {
            Value::Int(n) => n,
            _ => default,
        }
    }

    fn ms(&mut self, key: &'static str, default: u64) -> Duration {
        Duration::from_millis(self.int(key, default))
    }

    fn bool(&mut self, key: &'static str, default: bool) -> bool {
        match self.value(key, || (Value::Bool(default), None)) {
            Value::Bool(b) => b,
            _ => default,
        }
    }

    fn ip(
        &mut self,
        key: &'static str,
        fallback: impl FnOnce() -> (IpAddr, Option<String>),
    ) -> IpAddr {
        let (default, why) = fallback();
        match self.value(key, || (Value::Ip(default), why)) {
            Value::Ip(ip) => ip,
            _ => default,
        }
    }

    fn path(&mut self, key: &'static str) -> Option<PathBuf> {
        match self.opt(key) {
            Some(Value::Path(p)) => Some(p),
            _ => None,
        }
    }
}

impl Default for Config {
    /// What a node resolves with nothing set: no environment, no file, the
    /// development profile, this host's name ([`Resolver::new`]).
    fn default() -> Self {
        // Nothing here comes from input (no environment, no file): the
        // defaults always resolve and validate, which a test checks.
        #[allow(clippy::expect_used)]
        Resolver::new()
            .no_file_detection()
            .resolve()
            .expect("the defaults resolve and validate")
            .config
    }
}

impl Config {
    /// For a LAN: the defaults.
    pub fn lan() -> Self {
        Config::default()
    }

    /// For round trips around 100 ms: the defaults with
    /// [`MembershipConfig::wan`] timings.
    pub fn wan() -> Self {
        Config {
            membership: super::MembershipConfig::wan(),
            ..Config::default()
        }
    }

    /// Checks that the values make sense together (what the resolver checks
    /// after merging its layers); call it after changing fields by hand.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::validate(self, &BTreeMap::new())
    }
}
