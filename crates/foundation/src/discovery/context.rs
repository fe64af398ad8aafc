//! What a strategy knows about the node it runs for.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::config::{ConsulConfig, DnsConfig, EtcdConfig, GossipConfig, KubernetesConfig};
use crate::id::NodeId;
use crate::telemetry::Stats;

/// This node, as discovery strategies need to know it.
#[derive(Clone)]
pub struct DiscoveryContext {
    /// Node id.
    pub node: NodeId,
    /// Node name.
    pub name: String,
    /// Cluster name; strategies ignore nodes of other clusters.
    pub cluster: String,
    /// Advertised membership address (what peers should announce to).
    pub membership: SocketAddr,
    /// Advertised QUIC address.
    pub transport: SocketAddr,
    /// Bind address: strategies that multicast stay on its interface
    /// (all interfaces when it is a wildcard).
    pub bind: IpAddr,
    /// Key authenticating discovery messages (derived from the cluster
    /// secret, and the CA with TLS files).
    pub key: [u8; 32],
    /// Replay window of authenticated discovery messages (gossip beacons):
    /// `membership.replay_window_ms`.
    pub replay_window: std::time::Duration,
    /// Settings of the gossip strategy.
    pub gossip: GossipConfig,
    /// Settings of the dns strategy.
    pub dns: DnsConfig,
    /// Settings of the consul strategy.
    pub consul: ConsulConfig,
    /// Settings of the etcd strategy.
    pub etcd: EtcdConfig,
    /// Settings of the kubernetes strategy.
    pub kubernetes: KubernetesConfig,
    /// The node's counters (dropped discovery messages are counted here).
    pub stats: Arc<Stats>,
}

impl std::fmt::Debug for DiscoveryContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscoveryContext")
            .field("node", &self.node)
            .field("name", &self.name)
            .field("cluster", &self.cluster)
            .field("membership", &self.membership)
            .field("bind", &self.bind)
            .finish_non_exhaustive()
    }
}

impl DiscoveryContext {
    /// A short, stable hash of the cluster name (16 hex digits of SHA-256),
    /// published instead of the name itself.
    pub fn cluster_hash(&self) -> String {
        cluster_hash(&self.cluster)
    }

    /// A context for probing strategies from a configuration alone (no
    /// running node): `foundation doctor` uses it. The keys are the ones a
    /// node of this configuration derives (with TLS files, from the CA
    /// too), so a failure to read the files is an error here as well.
    pub fn for_config(config: &crate::config::Config) -> Result<Self, crate::security::TlsError> {
        let ip = config.transport.advertise.unwrap_or(config.transport.bind);
        let port = config.membership.port;
        let tls = crate::security::TlsIdentity::from_config(config)?;
        let keys = crate::security::ClusterKeys::derive(config, &tls);
        Ok(DiscoveryContext {
            node: NodeId::random(),
            name: config.node.name.clone(),
            cluster: config.cluster.name.clone(),
            membership: SocketAddr::new(ip, port),
            transport: SocketAddr::new(ip, config.transport_port()),
            bind: config.transport.bind,
            key: keys.discovery,
            replay_window: config.membership.replay_window,
            gossip: config.gossip.clone(),
            dns: config.dns.clone(),
            consul: config.consul.clone(),
            etcd: config.etcd.clone(),
            kubernetes: config.kubernetes.clone(),
            stats: Arc::new(Stats::default()),
        })
    }

    /// A context for tests of strategies that ignore it.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        DiscoveryContext {
            node: NodeId(1),
            name: "test".into(),
            cluster: "test".into(),
            membership: SocketAddr::from(([127, 0, 0, 1], 7946)),
            transport: SocketAddr::from(([127, 0, 0, 1], 7947)),
            bind: IpAddr::from([127, 0, 0, 1]),
            key: [7; 32],
            replay_window: std::time::Duration::from_secs(60),
            gossip: GossipConfig {
                group: std::net::Ipv4Addr::new(239, 255, 70, 77),
                port: 7945,
                ttl: 1,
                interval: std::time::Duration::from_millis(100),
                with_mdns: true,
            },
            dns: DnsConfig {
                query: None,
                record: crate::config::DnsRecord::A,
                port: None,
                server: None,
                interval: std::time::Duration::from_millis(100),
            },
            consul: ConsulConfig {
                addr: "http://127.0.0.1:8500".into(),
                service: None,
                token: None,
                wait: std::time::Duration::from_secs(1),
            },
            etcd: EtcdConfig {
                endpoint: "http://127.0.0.1:2379".into(),
                prefix: "/foundation/test/".into(),
                ttl: std::time::Duration::from_secs(10),
            },
            kubernetes: KubernetesConfig {
                selector: "app=test".into(),
                namespace: "default".into(),
                port: None,
                api: None,
            },
            stats: Arc::new(Stats::default()),
        }
    }
}

/// 16 hex digits of SHA-256 of the cluster name.
pub(crate) fn cluster_hash(cluster: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cluster.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
