//! The resolved configuration: every value concrete and validated.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::defaults;
pub use foundation_proto::membership::MembershipConfig;

/// A fully resolved configuration. Build one with [`super::Resolver`] or
/// [`crate::NodeBuilder`]; every field is public so Wizards can adjust it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Development (default) or production.
    pub profile: Profile,
    /// Cluster identity, secret and discovery.
    pub cluster: ClusterConfig,
    /// This node's name and roles.
    pub node: NodeConfig,
    /// QUIC transport.
    pub transport: TransportConfig,
    /// SWIM membership.
    pub membership: MembershipConfig,
    /// TLS certificate files (instead of the cluster secret).
    pub tls: TlsConfig,
    /// Per-channel buffers.
    pub channels: ChannelsConfig,
    /// The registry of named services.
    pub registry: RegistryConfig,
    /// Publish/subscribe.
    pub pubsub: PubSubConfig,
    /// The process manager.
    pub process: ProcessConfig,
    /// Coordination (Raft).
    pub coord: CoordConfig,
    /// The defaults of caches.
    pub cache: CacheConfig,
    /// HTTP endpoint: health, ready, metrics.
    pub http: HttpConfig,
    /// Traces: sampling of root traces and OTLP export.
    pub tracing: TracingConfig,
    /// The `gossip` discovery strategy.
    pub gossip: GossipConfig,
    /// The `dns` discovery strategy.
    pub dns: DnsConfig,
    /// The `consul` discovery strategy.
    pub consul: ConsulConfig,
    /// The `etcd` discovery strategy.
    pub etcd: EtcdConfig,
    /// The `kubernetes` discovery strategy.
    pub kubernetes: KubernetesConfig,
}

/// Deployment profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Development defaults; a public development secret is used when none is set.
    #[default]
    Development,
    /// Refuses to start without a cluster secret or TLS files.
    Production,
}

impl Profile {
    /// The word used in files and environment variables.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Development => "development",
            Profile::Production => "production",
        }
    }
}

impl FromStr for Profile {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "development" | "dev" => Ok(Profile::Development),
            "production" | "prod" => Ok(Profile::Production),
            _ => Err(()),
        }
    }
}

/// The discovery strategy, named by one word in Apprentice mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiscoveryKind {
    /// A fixed list of seed addresses.
    Static,
    /// mDNS on the local network.
    Mdns,
    /// UDP multicast beacons.
    Gossip,
    /// DNS A/AAAA/SRV records.
    Dns,
    /// The Kubernetes API.
    Kubernetes,
    /// Consul's health API.
    Consul,
    /// etcd leases under a prefix.
    Etcd,
}

impl DiscoveryKind {
    /// Every strategy name the resolver knows.
    pub const ALL: [DiscoveryKind; 7] = [
        DiscoveryKind::Static,
        DiscoveryKind::Mdns,
        DiscoveryKind::Gossip,
        DiscoveryKind::Dns,
        DiscoveryKind::Kubernetes,
        DiscoveryKind::Consul,
        DiscoveryKind::Etcd,
    ];

    /// The strategy's word.
    pub fn as_str(self) -> &'static str {
        match self {
            DiscoveryKind::Static => "static",
            DiscoveryKind::Mdns => "mdns",
            DiscoveryKind::Gossip => "gossip",
            DiscoveryKind::Dns => "dns",
            DiscoveryKind::Kubernetes => "kubernetes",
            DiscoveryKind::Consul => "consul",
            DiscoveryKind::Etcd => "etcd",
        }
    }

    /// Whether the strategy belongs to a deployment (Kubernetes, Consul,
    /// etcd, DNS): it makes the production profile the default.
    pub fn is_deployment(self) -> bool {
        matches!(
            self,
            DiscoveryKind::Kubernetes
                | DiscoveryKind::Consul
                | DiscoveryKind::Etcd
                | DiscoveryKind::Dns
        )
    }

    /// Whether this build contains the strategy.
    pub fn is_built_in(self) -> bool {
        if self == DiscoveryKind::Consul {
            return cfg!(feature = "consul");
        }
        if self == DiscoveryKind::Etcd {
            return cfg!(feature = "etcd");
        }
        if self == DiscoveryKind::Kubernetes {
            return cfg!(feature = "kubernetes");
        }
        matches!(
            self,
            DiscoveryKind::Static
                | DiscoveryKind::Mdns
                | DiscoveryKind::Gossip
                | DiscoveryKind::Dns
        )
    }
}

impl FromStr for DiscoveryKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        DiscoveryKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(())
    }
}

impl fmt::Display for DiscoveryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A seed's address: `host:port`, where the port is the seed's membership port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeedAddr {
    /// Host name or IP address.
    pub host: String,
    /// Membership (SWIM) port.
    pub port: u16,
}

impl FromStr for SeedAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("`{s}` has no port; write host:port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("`{s}` has no host; write host:port"));
        }
        if host.contains(char::is_whitespace) {
            return Err(format!("`{s}` has a space in its host"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{port}` in `{s}` is not a port (1-65535)"))?;
        if port == 0 {
            return Err(format!("`{s}` has port 0; a seed needs its real port"));
        }
        Ok(SeedAddr {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for SeedAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The cluster secret. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }
    /// A fresh random secret: 32 bytes from the operating system's
    /// generator, hex-encoded (what `openssl rand -hex 32` makes). For
    /// throwaway clusters such as `foundation dev`.
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        Secret(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The secret's bytes, for key derivation.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
    /// A rough measure of how hard the secret is to guess, in bits: its
    /// length times the entropy of its own character frequencies. Random
    /// hex scores 4 bits a character; `aaaa…` scores 0 and `passwordpassword`
    /// 44. It cannot see that a dictionary word is a word, so it only
    /// catches the worst secrets.
    pub fn estimated_bits(&self) -> f64 {
        let bytes = self.0.as_bytes();
        let mut counts = [0usize; 256];
        for &b in bytes {
            counts[usize::from(b)] += 1;
        }
        let n = bytes.len() as f64;
        let per_char: f64 = counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| {
                let p = c as f64 / n;
                -p * p.log2()
            })
            .sum();
        per_char * n
    }

    /// Whether this is the public development secret.
    pub fn is_development(&self) -> bool {
        self.0 == defaults::DEVELOPMENT_SECRET
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Cluster identity, secret and discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Cluster name; nodes of other names never join.
    pub name: String,
    /// Shared secret from which TLS and membership keys derive.
    pub secret: Option<Secret>,
    /// The discovery strategy.
    pub discovery: DiscoveryKind,
    /// Seeds for the `static` strategy.
    pub seeds: Vec<SeedAddr>,
}

impl ClusterConfig {
    /// The DNS name node certificates of this cluster carry with TLS
    /// files, `<name>.cluster.foundation`; `None` when the name cannot be
    /// a DNS label (letters, digits and inner hyphens, at most 63).
    pub fn certificate_name(&self) -> Option<String> {
        certificate_name(&self.name)
    }
}

/// The DNS name under which node certificates name their cluster.
pub const CERTIFICATE_NAME_SUFFIX: &str = "cluster.foundation";

/// `<cluster>.cluster.foundation`, lower case, if `cluster` is a DNS label.
pub(crate) fn certificate_name(cluster: &str) -> Option<String> {
    let label_ok = !cluster.is_empty()
        && cluster.len() <= 63
        && cluster
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !cluster.starts_with('-')
        && !cluster.ends_with('-');
    label_ok.then(|| format!("{}.{CERTIFICATE_NAME_SUFFIX}", cluster.to_ascii_lowercase()))
}

/// This node's identity in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Human-readable name (need not be unique; the node id is).
    pub name: String,
    /// Roles, for placement by later layers.
    pub roles: Vec<String>,
}

/// QUIC transport settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// Address to bind both sockets to.
    pub bind: IpAddr,
    /// QUIC port; `None` means membership port + 1 (or any free port when
    /// the membership port is 0).
    pub port: Option<u16>,
    /// Address peers should use to reach this node, when `bind` is a wildcard.
    pub advertise: Option<IpAddr>,
    /// Largest accepted frame in bytes.
    pub max_frame_size: u32,
    /// Per-stream QUIC receive window in bytes.
    pub stream_window: u32,
    /// QUIC idle timeout.
    pub idle_timeout: Duration,
    /// QUIC keep-alive interval.
    pub keep_alive: Duration,
    /// Handshake timeout.
    pub connect_timeout: Duration,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Largest reconnect delay.
    pub reconnect_max: Duration,
}

impl Config {
    /// The QUIC port to bind: `transport.port`, or else the membership
    /// port + 1 (any free port when the membership port is 0). Every user
    /// of the transport port (the node, `config explain`, `doctor`, the
    /// discovery context) asks here.
    pub fn transport_port(&self) -> u16 {
        match (self.transport.port, self.membership.port) {
            (Some(p), _) => p,
            (None, 0) => 0,
            (None, m) => m.saturating_add(1),
        }
    }
}

/// TLS files for Wizard mode. When all three are set they replace the
/// certificates derived from the cluster secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// CA certificate (PEM) that signs every node's certificate.
    pub ca_file: Option<PathBuf>,
    /// This node's certificate (PEM).
    pub cert_file: Option<PathBuf>,
    /// This node's private key (PEM, PKCS#8).
    pub key_file: Option<PathBuf>,
    /// Certificate revocation lists (PEM) both ends check, with TLS files.
    pub crl_file: Option<PathBuf>,
    /// Server name that node certificates carry.
    pub server_name: String,
}

impl TlsConfig {
    /// Whether all three files are set.
    pub fn has_files(&self) -> bool {
        self.ca_file.is_some() && self.cert_file.is_some() && self.key_file.is_some()
    }
}

/// HTTP endpoint settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Whether to serve `/health`, `/ready` and `/metrics`.
    pub enabled: bool,
    /// Bind address.
    pub bind: IpAddr,
    /// Port; 0 picks a free one.
    pub port: u16,
}

/// Trace settings (issue 19, ADR 025).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracingConfig {
    /// When set, a call or publish made outside any request context starts
    /// a new trace, sampled (recorded) with this probability in percent;
    /// when unset, only traces the application starts exist.
    pub sample_percent: Option<u8>,
    /// OTLP/HTTP collector base URL (`/v1/traces` is appended), as the
    /// standard `OTEL_EXPORTER_OTLP_ENDPOINT`. Export needs the `otlp`
    /// cargo feature.
    pub otlp_endpoint: Option<String>,
    /// OTLP/HTTP traces URL, used as given (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`);
    /// wins over `otlp_endpoint`.
    pub otlp_traces_endpoint: Option<String>,
    /// The `service.name` resource attribute of exported spans.
    pub service_name: String,
}

impl TracingConfig {
    /// The URL spans are posted to, if export is configured.
    pub fn traces_url(&self) -> Option<String> {
        self.otlp_traces_endpoint.clone().or_else(|| {
            self.otlp_endpoint
                .as_ref()
                .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
        })
    }
}

/// Channel settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelsConfig {
    /// Capacity of each inbox, in messages, before the reader waits.
    pub inbox_capacity: usize,
    /// Offer LZ4 compression of large data-channel payloads to peers.
    pub compression: bool,
    /// Data-channel payloads above this many bytes are compressed.
    pub compress_above: usize,
    /// Messages that name no channel go to data above this many bytes.
    pub data_threshold: usize,
    /// Every channel on one QUIC stream (a benchmark baseline only).
    pub single_stream: bool,
}

/// Publish/subscribe settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubSubConfig {
    /// Messages buffered per subscription; beyond it the oldest are
    /// dropped and counted (rounded up to a power of two).
    pub buffer: usize,
    /// Bytes queued per peer and stream before a broadcast waits.
    pub queue_bytes: usize,
    /// Longest a broadcast waits for room in a peer's queue before the
    /// message is dropped for that peer (and counted).
    pub publish_timeout: Duration,
    /// Longest a graceful shutdown waits for queued messages to be sent;
    /// what is still queued then is lost (and logged).
    pub shutdown_flush: Duration,
}

/// Coordination settings: the Raft group every node takes part in (as a
/// voter or a learner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordConfig {
    /// Where the log and snapshots live.
    pub storage: CoordStorage,
    /// How many voters the group keeps (1 to 7; an even count is rounded
    /// down, and it is capped by the eligible members).
    pub voters: usize,
    /// Only members with this role vote (the others are learners).
    pub role: Option<String>,
    /// A voter declared down this long is replaced.
    pub replace_after: Duration,
    /// A session's time to live: how long a silent node keeps its locks.
    pub session_ttl: Duration,
    /// How long a call waits unless given its own timeout.
    pub timeout: Duration,
    /// Raft's election timeout (minimum; the maximum is twice it).
    pub election_timeout: Duration,
}

/// The defaults a node opens caches with (`node.caches().defaults()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// The tier: local in development, partitioned in production.
    pub tier: CacheTier,
    /// Copies beyond the owner's (partitioned and near).
    pub replicas: usize,
    /// Most entries per cache on one node.
    pub max_entries: u64,
    /// Longest wait for a peer's answer.
    pub timeout: Duration,
    /// How often a near tier reconciles with the owners.
    pub reconcile: Duration,
}

/// A cache tier, as configuration names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheTier {
    /// This node only.
    Local,
    /// Owner and replicas by rendezvous hashing.
    Partitioned,
    /// Every node holds every key.
    Replicated,
    /// Partitioned, with a local tier in front.
    Near,
}

/// Where coordination keeps its Raft log, vote and snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoordStorage {
    /// In memory: lost when the process exits (tests, the dev cluster).
    Memory,
    /// In one file under this directory, fsynced before a write counts.
    Durable(std::path::PathBuf),
}

/// Registry settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Anti-entropy period: each period, one digest goes to one peer, in
    /// turn. Changes are pushed at once; this only repairs what was missed.
    pub sync_interval: Duration,
}

/// Process manager settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessConfig {
    /// The split-brain policy.
    pub split_brain: foundation_proto::process::SplitBrain,
    /// Members the cluster should have (`process.expected_members`): what
    /// keep-majority counts against at boot; 0 when not said.
    pub expected_members: usize,
    /// A graceful shutdown's budget for handing off and stopping services
    /// (`process.shutdown_timeout_ms`).
    pub shutdown_timeout: Duration,
}

/// Settings of the `gossip` strategy (UDP multicast beacons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipConfig {
    /// IPv4 multicast group.
    pub group: std::net::Ipv4Addr,
    /// UDP port.
    pub port: u16,
    /// Multicast TTL.
    pub ttl: u32,
    /// Beacon interval.
    pub interval: Duration,
    /// Whether the `mdns` strategy sends beacons too (and uses what either
    /// finds).
    pub with_mdns: bool,
}

/// Which DNS records the `dns` strategy queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsRecord {
    /// A and AAAA records; the port is `dns.port`.
    A,
    /// SRV records; targets and ports come from them.
    Srv,
}

/// Settings of the `dns` strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// The name to query.
    pub query: Option<String>,
    /// A/AAAA or SRV.
    pub record: DnsRecord,
    /// Membership port for A/AAAA answers (`None`: this node's own).
    pub port: Option<u16>,
    /// Name server instead of the system configuration.
    pub server: Option<std::net::SocketAddr>,
    /// Polling interval.
    pub interval: Duration,
}

/// Settings of the `consul` strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsulConfig {
    /// Agent address, `http://host:port`.
    pub addr: String,
    /// Service name (`None`: the cluster name).
    pub service: Option<String>,
    /// ACL token.
    pub token: Option<String>,
    /// Blocking query wait.
    pub wait: Duration,
}

/// Settings of the `etcd` strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Client URL, `http://host:port`.
    pub endpoint: String,
    /// Key prefix.
    pub prefix: String,
    /// Lease TTL.
    pub ttl: Duration,
}

/// Settings of the `kubernetes` strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// Label selector of the cluster's pods.
    pub selector: String,
    /// Namespace.
    pub namespace: String,
    /// Membership port when pods name none.
    pub port: Option<u16>,
    /// API server URL (`None`: in-cluster or kubeconfig).
    pub api: Option<String>,
}
