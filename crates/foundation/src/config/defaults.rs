//! The one source of truth for default values, with the reason for each.

// The membership defaults live with the membership core.
pub use foundation_proto::membership::defaults::{
    GOSSIP_PERIOD_MS, INDIRECT_PROBES, MAX_PACKET_SIZE, MAX_REPLAY_WINDOW_MS, MEMBERSHIP_PORT,
    MIN_REPLAY_WINDOW_MS, PROBE_PERIOD_MS, PROBE_RTT_MS, REPLAY_WINDOW_MS, SUSPECT_TO_DOWN_MS,
    WAN_PROBE_PERIOD_MS, WAN_PROBE_RTT_MS, WAN_SUSPECT_TO_DOWN_MS,
};

/// Default cluster name. Nodes only talk to nodes of the same cluster name
/// (it is mixed into every derived key).
pub const CLUSTER_NAME: &str = "foundation";

/// Secret used by the development profile when none is given. It is public,
/// so it only keeps separate development clusters apart; the production
/// profile refuses to start with it.
pub const DEVELOPMENT_SECRET: &str = "foundation-development-secret-not-for-production";

/// Bind address: all IPv4 interfaces, so peers on other hosts can reach us.
pub const BIND: &str = "0.0.0.0";

/// Largest frame a node accepts: 16 MiB. Larger messages are rejected
/// before any allocation; later layers split bulk data into frames.
pub const MAX_FRAME_SIZE: u32 = 16 * 1024 * 1024;

/// Per-stream QUIC receive window: 256 KiB. It bounds how much data can
/// queue ahead of a control message at the receiver: measured on loopback,
/// 256 KiB gave a loaded control round trip p99 of 0.44-0.50 ms against
/// 1.0-1.8 ms with 1 MiB, at the same 1.3 GB/s. One stream's throughput is at
/// most window / RTT (about 260 MB/s at 1 ms RTT): raise it for bulk
/// transfers over long links.
pub const STREAM_WINDOW: u32 = 256 * 1024;

/// QUIC idle timeout: 10 s. Keep-alives (below) keep healthy idle
/// connections open; a dead peer's connection is closed after this.
pub const IDLE_TIMEOUT_MS: u64 = 10_000;

/// QUIC keep-alive interval: 2 s, well under the idle timeout.
pub const KEEP_ALIVE_MS: u64 = 2_000;

/// Time allowed for a QUIC handshake before a connect attempt fails.
pub const CONNECT_TIMEOUT_MS: u64 = 3_000;

/// First delay before re-trying a failed connection.
pub const RECONNECT_MIN_MS: u64 = 100;

/// Ceiling of the exponential reconnect backoff.
pub const RECONNECT_MAX_MS: u64 = 5_000;

/// Capacity of each inbox (messages) before the reader waits for the
/// consumer; QUIC flow control then slows the sender. Nothing is dropped.
pub const INBOX_CAPACITY: usize = 1024;
/// Data-channel payloads above this are compressed (bytes).
pub const COMPRESS_ABOVE: usize = 16 * 1024;
/// Messages naming no channel go to data above this (bytes).
pub const DATA_THRESHOLD: usize = 10 * 1024;
/// Messages buffered per subscription.
pub const PUBSUB_BUFFER: usize = 1024;
/// Bytes queued per peer stream by pub/sub.
pub const PUBSUB_QUEUE_BYTES: usize = 64 << 20;
/// Longest a broadcast waits for queue room (ms).
pub const PUBSUB_PUBLISH_TIMEOUT_MS: u64 = 1000;
/// Longest a graceful shutdown waits for queued messages (ms).
pub const PUBSUB_SHUTDOWN_FLUSH_MS: u64 = 2000;
/// `process.shutdown_timeout_ms`: a graceful shutdown's budget for handing
/// off and stopping services (all at once).
pub const PROCESS_SHUTDOWN_TIMEOUT_MS: u64 = 10_000;

/// HTTP port (health, ready, metrics) when the HTTP endpoint is on.
pub const HTTP_PORT: u16 = 9090;

/// TLS server name every node certificate carries.
pub const TLS_SERVER_NAME: &str = "foundation.node";

/// Gossip beacons' multicast group: in 239.255.0.0/16, the IPv4
/// organization-local scope (RFC 2365), which routers do not forward out of
/// the site.
pub const GOSSIP_GROUP: &str = "239.255.70.77";

/// Gossip beacons' UDP port: next to the membership port.
pub const GOSSIP_PORT: u16 = 7945;

/// Gossip multicast TTL: 1 keeps beacons on the local link.
pub const GOSSIP_TTL: u32 = 1;

/// Interval between gossip beacons. Peers not heard for five intervals are
/// dropped from the candidate set (membership still decides who is down).
pub const GOSSIP_INTERVAL_MS: u64 = 1000;

/// DNS polling interval: 5 s, short enough to follow a scaling deployment,
/// long enough not to load the DNS server.
pub const DNS_INTERVAL_MS: u64 = 5000;

/// Consul agent address when neither consul.addr nor CONSUL_HTTP_ADDR is set:
/// the local agent, as Consul is usually deployed.
pub const CONSUL_ADDR: &str = "http://127.0.0.1:8500";

/// Consul blocking query wait: 30 s, well under Consul's 10 min maximum.
pub const CONSUL_WAIT_MS: u64 = 30_000;

/// etcd client URL when none is set: a local etcd.
pub const ETCD_ENDPOINT: &str = "http://127.0.0.1:2379";

/// etcd lease TTL: a crashed node's key disappears within 10 s (membership
/// has declared it down long before; this only keeps the prefix clean).
pub const ETCD_TTL_S: u64 = 10;

/// Registry anti-entropy period: 500 ms.
pub const REGISTRY_SYNC_INTERVAL_MS: u64 = 500;

/// Coordination voters: three survive one failure; five (`coord.voters =
/// 5`) survive two at the cost of one more round trip's worth of acks.
pub const COORD_VOTERS: u64 = 3;

/// A voter declared down this long is replaced by a learner: long enough
/// that a restart or a short partition does not churn the group.
pub const COORD_REPLACE_AFTER_MS: u64 = 5000;

/// A node's session lease: its locks and ephemeral keys survive a pause
/// this long. Shorter fails over faster, but a stalled node (GC-free as
/// Rust is, a long fsync or a paused VM) loses its locks sooner.
pub const COORD_SESSION_TTL_MS: u64 = 3000;

/// How long a coordination call waits by default (through an election).
pub const COORD_TIMEOUT_MS: u64 = 5000;

/// Raft election timeout (the minimum; the maximum is twice it). Leader
/// heartbeats go every quarter of it. openraft 0.9 keeps a leader lease of
/// the maximum: a follower refuses votes that long after the last
/// heartbeat, then waits its own timeout. So a crashed leader is replaced
/// 3 to 4 timeouts after its last heartbeat: 300-400 ms with 100 ms
/// (measured with 300 ms: failover p50 1,035 ms, p99 1,218 ms).
pub const COORD_ELECTION_TIMEOUT_MS: u64 = 100;

/// Cache replicas beyond the owner's: one survives a crash.
pub const CACHE_REPLICAS: u64 = 1;

/// Entries one node keeps per cache.
pub const CACHE_MAX_ENTRIES: u64 = 100_000;

/// How long a cache call waits for a peer.
pub const CACHE_TIMEOUT_MS: u64 = 2000;

/// How often a near tier reconciles its copies with their owners.
pub const CACHE_RECONCILE_MS: u64 = 5000;
