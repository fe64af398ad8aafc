//! Every configuration key, declared once: file key, environment variable,
//! kind and documentation. The resolver, the error messages, the CLI's
//! `config explain` and the README's tables all read this list.

use super::defaults as d;

/// What kind of value a key holds, and how to check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Free text that must not be empty.
    Text,
    /// One of a fixed set of words.
    Word(&'static [&'static str]),
    /// An integer between the bounds (inclusive).
    Int {
        /// Smallest allowed value.
        min: u64,
        /// Largest allowed value.
        max: u64,
    },
    /// `true` or `false`.
    Bool,
    /// An IP address.
    Ip,
    /// A list of `host:port` seed addresses.
    Seeds,
    /// A list of words.
    List,
    /// A file path.
    Path,
}

impl KeyKind {
    /// What a value of this kind looks like, for error messages.
    pub fn expected(&self) -> String {
        match self {
            KeyKind::Text => "a non-empty string".into(),
            KeyKind::Word(words) => format!("one of: {}", words.join(", ")),
            KeyKind::Int { min, max } => format!("an integer from {min} to {max}"),
            KeyKind::Bool => "true or false".into(),
            KeyKind::Ip => "an IP address such as 127.0.0.1 or ::1".into(),
            KeyKind::Seeds => "a list of host:port addresses".into(),
            KeyKind::List => "a list of words".into(),
            KeyKind::Path => "a file path".into(),
        }
    }
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// Dotted name as in foundation.toml (`membership.port`).
    pub key: &'static str,
    /// Environment variable, if the key has one.
    pub env: Option<&'static str>,
    /// Kind of value.
    pub kind: KeyKind,
    /// Whether setting it is still Apprentice-level (one-liners).
    pub apprentice: bool,
    /// One-line documentation, including the default.
    pub doc: &'static str,
}

const PORT: KeyKind = KeyKind::Int { min: 0, max: 65535 };
const MS: KeyKind = KeyKind::Int {
    min: 1,
    max: 3_600_000,
};

/// Environment variable naming the configuration file.
pub(crate) const CONFIG_FILE_ENV: &str = "FOUNDATION_CONFIG";

/// Discovery strategy names.
pub(crate) const DISCOVERY_WORDS: &[&str] = &[
    "static",
    "mdns",
    "gossip",
    "dns",
    "kubernetes",
    "consul",
    "etcd",
];

macro_rules! key {
    ($key:literal, $env:expr, $kind:expr, $app:literal, $doc:expr) => {
        KeySpec {
            key: $key,
            env: $env,
            kind: $kind,
            apprentice: $app,
            doc: $doc,
        }
    };
}

/// Every key the resolver knows.
pub const KEYS: &[KeySpec] = &[
    key!(
        "profile",
        Some("FOUNDATION_PROFILE"),
        KeyKind::Word(&["development", "production"]),
        true,
        "development (default) or production; production needs a secret or TLS files"
    ),
    key!(
        "cluster",
        Some("FOUNDATION_CLUSTER"),
        KeyKind::Word(DISCOVERY_WORDS),
        true,
        "discovery strategy in one word; detected when unset"
    ),
    key!(
        "cluster_name",
        Some("FOUNDATION_CLUSTER_NAME"),
        KeyKind::Text,
        true,
        "cluster name; nodes of other clusters never join (default: foundation)"
    ),
    key!(
        "secret",
        Some("FOUNDATION_SECRET"),
        KeyKind::Text,
        true,
        "cluster secret: TLS CA and membership keys derive from it"
    ),
    key!(
        "seeds",
        Some("FOUNDATION_SEEDS"),
        KeyKind::Seeds,
        true,
        "static seeds, host:port of their membership port, comma-separated in env"
    ),
    key!(
        "node.name",
        Some("FOUNDATION_NAME"),
        KeyKind::Text,
        true,
        "node name (default: the host name)"
    ),
    key!(
        "node.roles",
        Some("FOUNDATION_ROLES"),
        KeyKind::List,
        true,
        "roles, comma-separated in env"
    ),
    key!(
        "membership.port",
        Some("FOUNDATION_PORT"),
        PORT,
        true,
        "membership UDP port, the address seeds name (default: 7946; 0 = any free port)"
    ),
    key!(
        "membership.probe_period_ms",
        None,
        MS,
        false,
        "SWIM probe period (default: 200)"
    ),
    key!(
        "membership.probe_rtt_ms",
        None,
        MS,
        false,
        "direct probe timeout (default: 100)"
    ),
    key!(
        "membership.suspect_to_down_ms",
        None,
        MS,
        false,
        "suspicion timeout (default: 700)"
    ),
    key!(
        "membership.indirect_probes",
        None,
        KeyKind::Int { min: 1, max: 16 },
        false,
        "members asked to probe indirectly (default: 3)"
    ),
    key!(
        "membership.max_packet_size",
        None,
        KeyKind::Int {
            min: 512,
            max: 65000
        },
        false,
        "largest membership datagram in bytes (default: 1400)"
    ),
    key!(
        "membership.gossip_period_ms",
        None,
        MS,
        false,
        "extra gossip period (default: 100)"
    ),
    key!(
        "membership.port_unreachable",
        None,
        KeyKind::Bool,
        false,
        "declare a member down at once when its port refuses datagrams twice, the second time on a fresh socket (default: true; false: SWIM timeouts only)"
    ),
    key!(
        "membership.replay_window_ms",
        None,
        MS,
        false,
        "membership datagrams and gossip beacons sealed further than this from this node's clock are refused, and any seen twice within it; also the clock skew tolerated between hosts (default: 60000; 1000 to 240000)"
    ),
    key!(
        "transport.bind",
        Some("FOUNDATION_BIND"),
        KeyKind::Ip,
        false,
        "address both sockets bind to (default: 0.0.0.0)"
    ),
    key!(
        "transport.port",
        Some("FOUNDATION_TRANSPORT_PORT"),
        PORT,
        false,
        "QUIC port (default: membership port + 1)"
    ),
    key!(
        "transport.advertise",
        Some("FOUNDATION_ADVERTISE"),
        KeyKind::Ip,
        false,
        "address peers use to reach this node (default: detected)"
    ),
    key!(
        "transport.max_frame_size",
        None,
        KeyKind::Int {
            min: 1024,
            max: 1 << 30
        },
        false,
        "largest accepted frame in bytes (default: 16 MiB)"
    ),
    key!(
        "transport.stream_window",
        None,
        KeyKind::Int {
            min: 16 * 1024,
            max: 64 << 20
        },
        false,
        "per-stream QUIC receive window in bytes (default: 262144); throughput per stream <= window / RTT; smaller keeps less bulk data ahead of control traffic under load"
    ),
    key!(
        "transport.idle_timeout_ms",
        None,
        MS,
        false,
        "QUIC idle timeout (default: 10000)"
    ),
    key!(
        "transport.keep_alive_ms",
        None,
        MS,
        false,
        "QUIC keep-alive interval (default: 2000)"
    ),
    key!(
        "transport.connect_timeout_ms",
        None,
        MS,
        false,
        "QUIC handshake timeout (default: 3000)"
    ),
    key!(
        "transport.reconnect_min_ms",
        None,
        MS,
        false,
        "first reconnect delay (default: 100)"
    ),
    key!(
        "transport.reconnect_max_ms",
        None,
        MS,
        false,
        "largest reconnect delay (default: 5000)"
    ),
    key!(
        "tls.ca_file",
        Some("FOUNDATION_TLS_CA"),
        KeyKind::Path,
        false,
        "CA certificate PEM"
    ),
    key!(
        "tls.cert_file",
        Some("FOUNDATION_TLS_CERT"),
        KeyKind::Path,
        false,
        "node certificate PEM"
    ),
    key!(
        "tls.key_file",
        Some("FOUNDATION_TLS_KEY"),
        KeyKind::Path,
        false,
        "node private key PEM (PKCS#8)"
    ),
    key!(
        "tls.crl_file",
        Some("FOUNDATION_TLS_CRL"),
        KeyKind::Path,
        false,
        "certificate revocation lists (PEM, one or more) checked on both ends of every connection, with TLS files"
    ),
    key!(
        "tls.server_name",
        None,
        KeyKind::Text,
        false,
        "server name in node certificates (default: foundation.node)"
    ),
    key!(
        "channels.inbox_capacity",
        None,
        KeyKind::Int {
            min: 1,
            max: 1 << 20
        },
        false,
        "messages buffered per inbox before the reader waits (default: 1024)"
    ),
    key!(
        "channels.compression",
        None,
        KeyKind::Word(&["lz4", "off"]),
        false,
        "offer LZ4 for large data-channel payloads; used when both ends offer it (default: lz4)"
    ),
    key!(
        "channels.compress_above",
        None,
        KeyKind::Int {
            min: 64,
            max: 1 << 30
        },
        false,
        "data-channel payloads above this many bytes are compressed (default: 16384)"
    ),
    key!(
        "channels.data_threshold",
        None,
        KeyKind::Int {
            min: 0,
            max: 1 << 30
        },
        false,
        "messages that name no channel go to data above this many bytes (default: 10240)"
    ),
    key!(
        "channels.single_stream",
        None,
        KeyKind::Bool,
        false,
        "every channel on one QUIC stream: the head-of-line baseline of bench hol, never for production (default: false)"
    ),
    key!(
        "pubsub.buffer",
        None,
        KeyKind::Int {
            min: 1,
            max: 1 << 20
        },
        false,
        "messages buffered per subscription; the oldest are dropped and counted beyond it (default: 1024)"
    ),
    key!(
        "pubsub.queue_bytes",
        None,
        KeyKind::Int {
            min: 1024,
            max: 1 << 31
        },
        false,
        "bytes queued per peer stream before a broadcast waits (default: 67108864)"
    ),
    key!(
        "pubsub.publish_timeout_ms",
        None,
        MS,
        false,
        "longest a broadcast waits for room in a peer's queue before dropping for that peer (default: 1000)"
    ),
    key!(
        "pubsub.shutdown_flush_ms",
        None,
        MS,
        false,
        "longest a graceful shutdown waits for queued messages to go out, then again for peers to acknowledge them (default: 2000)"
    ),
    key!(
        "registry.sync_interval_ms",
        None,
        MS,
        false,
        "registry anti-entropy period: one digest to one peer per period (default: 500)"
    ),
    key!(
        "process.split_brain",
        Some("FOUNDATION_SPLIT_BRAIN"),
        KeyKind::Word(&["keep-majority", "static-quorum", "keep-all"]),
        false,
        "who runs singletons during a partition: keep-majority (default), static-quorum (see process.quorum) or keep-all"
    ),
    key!(
        "process.quorum",
        None,
        KeyKind::Int { min: 1, max: 100_000 },
        false,
        "static-quorum: active members needed to run singletons and shards"
    ),
    key!(
        "process.expected_members",
        Some("FOUNDATION_EXPECTED_MEMBERS"),
        KeyKind::Int { min: 0, max: 100_000 },
        false,
        "keep-majority at boot: how many members the cluster should have; until the first membership is agreed, singletons need a majority of them (0, the default: a node that never saw a peer has no quorum unless static discovery has no seeds; 1: a cluster of one)"
    ),
    key!(
        "process.shutdown_timeout_ms",
        None,
        MS,
        false,
        "longest a graceful shutdown spends handing off and stopping this node's services, all at once; what is still running then is stopped without handoff (default: 10000)"
    ),
    key!(
        "coord.storage",
        Some("FOUNDATION_COORD_STORAGE"),
        KeyKind::Word(&["memory", "durable"]),
        false,
        "where coordination keeps its Raft log and snapshots: durable (fsynced under coord.data_dir; the production default) or memory (lost on exit; the development default)"
    ),
    key!(
        "coord.data_dir",
        Some("FOUNDATION_COORD_DATA_DIR"),
        KeyKind::Path,
        false,
        "directory of durable coordination storage, one per node (default: <node.name>.coord in the working directory, as etcd does)"
    ),
    key!(
        "coord.voters",
        None,
        KeyKind::Int { min: 1, max: 7 },
        false,
        "voters the coordination group keeps; even counts round down (default: 3)"
    ),
    key!(
        "coord.role",
        Some("FOUNDATION_COORD_ROLE"),
        KeyKind::Text,
        false,
        "only members with this role vote in coordination; the others are learners (default: any member)"
    ),
    key!(
        "coord.replace_after_ms",
        None,
        MS,
        false,
        "a voter declared down this long is replaced by a learner (default: 5000)"
    ),
    key!(
        "coord.session_ttl_ms",
        None,
        KeyKind::Int { min: 100, max: 3_600_000 },
        false,
        "a node's coordination session: how long its locks outlive its silence (default: 3000)"
    ),
    key!(
        "coord.timeout_ms",
        None,
        MS,
        false,
        "how long a coordination call waits unless given its own timeout (default: 5000)"
    ),
    key!(
        "coord.election_timeout_ms",
        None,
        KeyKind::Int { min: 20, max: 60_000 },
        false,
        "Raft election timeout, the minimum (the maximum is twice it); heartbeats every quarter; a crashed leader is replaced 3-4 timeouts after its last heartbeat (default: 100)"
    ),
    key!(
        "cache.tier",
        Some("FOUNDATION_CACHE_TIER"),
        KeyKind::Word(&["local", "partitioned", "replicated", "near"]),
        false,
        "tier of caches opened with the node's defaults (node.caches().defaults()): local (the development default), partitioned (the production default), replicated or near"
    ),
    key!(
        "cache.replicas",
        None,
        KeyKind::Int { min: 0, max: 16 },
        false,
        "copies beyond the owner's in partitioned and near caches; 0 loses a key with its owner (default: 1)"
    ),
    key!(
        "cache.max_entries",
        Some("FOUNDATION_CACHE_MAX_ENTRIES"),
        KeyKind::Int { min: 1, max: 1_000_000_000 },
        false,
        "most entries one node keeps per cache, unless a cache is opened with its own bound (default: 100000)"
    ),
    key!(
        "cache.timeout_ms",
        None,
        MS,
        false,
        "longest a cache call waits for a peer's answer (default: 2000)"
    ),
    key!(
        "cache.reconcile_ms",
        None,
        MS,
        false,
        "how often a near tier checks its copies with their owners: the longest a copy whose invalidation was lost is served (default: 5000)"
    ),
    key!(
        "dns.query",
        Some("FOUNDATION_DNS_QUERY"),
        KeyKind::Text,
        true,
        "dns strategy: the name to query, e.g. a headless service (setting it selects dns)"
    ),
    key!(
        "dns.record",
        Some("FOUNDATION_DNS_RECORD"),
        KeyKind::Word(&["a", "srv"]),
        false,
        "dns strategy: a (A/AAAA, port = dns.port) or srv (targets and ports from SRV) (default: a)"
    ),
    key!(
        "dns.port",
        Some("FOUNDATION_DNS_PORT"),
        KeyKind::Int { min: 1, max: 65535 },
        false,
        "dns strategy: membership port of the A/AAAA addresses (default: this node's membership port)"
    ),
    key!(
        "dns.server",
        Some("FOUNDATION_DNS_SERVER"),
        KeyKind::Text,
        false,
        "dns strategy: name server ip:port instead of /etc/resolv.conf"
    ),
    key!(
        "dns.interval_ms",
        None,
        KeyKind::Int {
            min: 100,
            max: 3_600_000
        },
        false,
        "dns strategy: polling interval (default: 5000)"
    ),
    key!(
        "consul.addr",
        Some("FOUNDATION_CONSUL_ADDR"),
        KeyKind::Text,
        false,
        "consul strategy: agent address (default: CONSUL_HTTP_ADDR, else http://127.0.0.1:8500)"
    ),
    key!(
        "consul.service",
        Some("FOUNDATION_CONSUL_SERVICE"),
        KeyKind::Text,
        true,
        "consul strategy: service whose passing instances are the peers (default: cluster_name)"
    ),
    key!(
        "consul.token",
        Some("FOUNDATION_CONSUL_TOKEN"),
        KeyKind::Text,
        false,
        "consul strategy: ACL token (default: CONSUL_HTTP_TOKEN)"
    ),
    key!(
        "consul.wait_ms",
        None,
        KeyKind::Int {
            min: 100,
            max: 600_000
        },
        false,
        "consul strategy: blocking query wait (default: 30000)"
    ),
    key!(
        "etcd.endpoint",
        Some("FOUNDATION_ETCD_ENDPOINT"),
        KeyKind::Text,
        true,
        "etcd strategy: client URL (default: http://127.0.0.1:2379)"
    ),
    key!(
        "etcd.prefix",
        Some("FOUNDATION_ETCD_PREFIX"),
        KeyKind::Text,
        false,
        "etcd strategy: key prefix (default: /foundation/<cluster_name>/)"
    ),
    key!(
        "etcd.ttl_s",
        None,
        KeyKind::Int { min: 2, max: 3600 },
        false,
        "etcd strategy: lease TTL in seconds (default: 10)"
    ),
    key!(
        "kubernetes.selector",
        Some("FOUNDATION_K8S_SELECTOR"),
        KeyKind::Text,
        true,
        "kubernetes strategy: label selector of the cluster's pods, e.g. app=shop (required)"
    ),
    key!(
        "kubernetes.namespace",
        Some("FOUNDATION_K8S_NAMESPACE"),
        KeyKind::Text,
        false,
        "kubernetes strategy: namespace (default: the pod's own, else default)"
    ),
    key!(
        "kubernetes.port",
        Some("FOUNDATION_K8S_PORT"),
        KeyKind::Int { min: 1, max: 65535 },
        false,
        "kubernetes strategy: membership port when pods name none `foundation` (default: this node's)"
    ),
    key!(
        "kubernetes.api",
        Some("FOUNDATION_K8S_API"),
        KeyKind::Text,
        false,
        "kubernetes strategy: API server URL (default: in-cluster or kubeconfig)"
    ),
    key!(
        "gossip.group",
        Some("FOUNDATION_GOSSIP_GROUP"),
        KeyKind::Ip,
        false,
        "gossip strategy: IPv4 multicast group (default: 239.255.70.77, administratively scoped)"
    ),
    key!(
        "gossip.port",
        Some("FOUNDATION_GOSSIP_PORT"),
        KeyKind::Int { min: 1, max: 65535 },
        false,
        "gossip strategy: UDP port of the beacons (default: 7945)"
    ),
    key!(
        "gossip.ttl",
        Some("FOUNDATION_GOSSIP_TTL"),
        KeyKind::Int { min: 1, max: 255 },
        false,
        "gossip strategy: multicast TTL (default: 1, the local link)"
    ),
    key!(
        "gossip.interval_ms",
        None,
        KeyKind::Int {
            min: 50,
            max: 60_000
        },
        false,
        "gossip strategy: beacon interval (default: 1000)"
    ),
    key!(
        "gossip.with_mdns",
        Some("FOUNDATION_GOSSIP_WITH_MDNS"),
        KeyKind::Bool,
        false,
        "mdns strategy: also send gossip beacons and use what either finds (default: true; mDNS answers after ~1 s of probing, a beacon at once)"
    ),
    key!(
        "http.enabled",
        Some("FOUNDATION_HTTP"),
        KeyKind::Bool,
        true,
        "serve /health, /ready, /metrics (default: false in the library, true in the CLI)"
    ),
    key!(
        "http.bind",
        Some("FOUNDATION_HTTP_BIND"),
        KeyKind::Ip,
        false,
        "HTTP bind address (default: 127.0.0.1)"
    ),
    key!(
        "http.port",
        Some("FOUNDATION_HTTP_PORT"),
        PORT,
        true,
        "HTTP port (default: 9090)"
    ),
    key!(
        "tracing.sample_percent",
        Some("FOUNDATION_TRACE_SAMPLE_PERCENT"),
        KeyKind::Int { min: 0, max: 100 },
        false,
        "start a trace for each call or publish made outside one, recorded with this probability in percent (default: unset, only traces the application starts)"
    ),
    key!(
        "tracing.otlp_endpoint",
        Some("OTEL_EXPORTER_OTLP_ENDPOINT"),
        KeyKind::Text,
        false,
        "OTLP/HTTP collector URL; spans go to <url>/v1/traces (needs the otlp feature, on in the foundation binary)"
    ),
    key!(
        "tracing.otlp_traces_endpoint",
        Some("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        KeyKind::Text,
        false,
        "OTLP/HTTP traces URL, used as given; wins over tracing.otlp_endpoint"
    ),
    key!(
        "tracing.service_name",
        Some("OTEL_SERVICE_NAME"),
        KeyKind::Text,
        false,
        "service.name of exported spans (default: foundation)"
    ),
];

/// Looks a key up by its dotted name.
pub(crate) fn spec(key: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.key == key)
}

/// Looks a key up by its environment variable.
pub(crate) fn spec_for_env(var: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.env == Some(var))
}

// Defaults referenced so the docs above cannot drift silently.
const _: () = {
    assert!(d::PROBE_PERIOD_MS == 200);
    assert!(d::PROBE_RTT_MS == 100);
    assert!(d::SUSPECT_TO_DOWN_MS == 700);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_and_env_var_is_unique() {
        for (i, a) in KEYS.iter().enumerate() {
            for b in &KEYS[i + 1..] {
                assert_ne!(a.key, b.key);
                if a.env.is_some() {
                    assert_ne!(a.env, b.env, "{} and {}", a.key, b.key);
                }
            }
        }
    }
}
