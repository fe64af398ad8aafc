//! The one source of truth for default values, with the reason for each.

/// Default cluster name. Nodes only talk to nodes of the same cluster name
/// (it is mixed into every derived key).
pub const CLUSTER_NAME: &str = "foundation";

/// Secret used by the development profile when none is given. It is public,
/// so it only keeps separate development clusters apart; the production
/// profile refuses to start with it.
pub const DEVELOPMENT_SECRET: &str = "foundation-development-secret-not-for-production";

/// Membership (SWIM, UDP) port: 7946, the port memberlist and Serf use, so
/// firewall rules written for them fit.
pub const MEMBERSHIP_PORT: u16 = 7946;

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

/// SWIM probe period: 300 ms. With [`PROBE_RTT_MS`] and
/// [`SUSPECT_TO_DOWN_MS`] a SIGKILLed node is declared Down by every
/// survivor within about 1.5 s on a LAN (measured: docs/RELIABILITY.md),
/// under the 2 s target. memberlist's LAN default is 1 s / 500 ms / ~4 s.
pub const PROBE_PERIOD_MS: u64 = 300;

/// Time to wait for a direct probe ack before asking others to probe.
pub const PROBE_RTT_MS: u64 = 150;

/// How long a member stays Suspect before it is declared Down.
pub const SUSPECT_TO_DOWN_MS: u64 = 700;

/// WAN preset ([`MembershipConfig::wan`](super::MembershipConfig::wan)),
/// for round trips around 100 ms: probe period 1 s. With 10% loss and
/// 50 ms each way for 30 s under pub/sub, whole nodes under turmoil saw 0
/// Down events in 10 of 10 seeds with 1 s / 400 ms / 3 s, against 0–22 per
/// run with the LAN defaults (docs/RELIABILITY.md). A crash takes about 4 s
/// to detect with them.
pub const WAN_PROBE_PERIOD_MS: u64 = 1_000;

/// WAN preset: direct probe timeout, long enough for the round trip.
pub const WAN_PROBE_RTT_MS: u64 = 400;

/// WAN preset: a suspect gets 3 s to refute.
pub const WAN_SUSPECT_TO_DOWN_MS: u64 = 3_000;

/// Members asked to probe indirectly when a direct probe fails.
pub const INDIRECT_PROBES: u32 = 3;

/// Largest membership datagram: 1400 bytes fits a 1500-byte Ethernet MTU
/// with IP, UDP and sealing overhead.
pub const MAX_PACKET_SIZE: u32 = 1400;

/// Interval of the extra gossip rounds that spread updates fast.
pub const GOSSIP_PERIOD_MS: u64 = 100;

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
