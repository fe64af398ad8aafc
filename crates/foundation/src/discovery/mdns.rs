//! The `mdns` strategy: zero configuration on a LAN, through mdns-sd.
//!
//! Each node advertises `_foundation._udp.local.` with its membership port.
//! The TXT record carries the node id (`id`), a hash of the cluster name
//! (`cluster`), the protocol version (`proto`) and the QUIC port (`quic`).
//! Each node browses for the same service. It keeps instances of its own
//! cluster and protocol, and drops an instance when its record is withdrawn
//! or expires.
//!
//! Announcements and queries stay on the interface of the bind address (every
//! interface when bound to a wildcard). Note: mdns-sd joins the mDNS group
//! on every interface when its daemon starts, before the selection applies,
//! so each interface sees one group membership report.
//!
//! The strategy sends gossip beacons (see [`super::Gossip`]) at the same
//! time, on the same network, and publishes the union of what both found.
//! mdns-sd answers only after probing for name conflicts (RFC 6762 §8.1:
//! three probes 250 ms apart), so five nodes took about 930 ms to see each
//! other over mDNS alone; a beacon goes out at once. Where mDNS cannot
//! start, the beacons carry on alone. `gossip.with_mdns = false` runs mDNS
//! alone.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio_util::sync::CancellationToken;

use super::sink::{CandidateSink, Candidates, DiscoveryError};
use super::{DiscoveryContext, Gossip, Probe, ProbeTask, Strategy, StrategyTask};
use foundation_proto::PROTOCOL_VERSION;

/// The service type every node advertises and browses.
pub const SERVICE_TYPE: &str = "_foundation._udp.local.";

/// How long to wait before re-creating the daemon after it failed.
const RETRY: Duration = Duration::from_secs(5);

/// The mDNS strategy.
#[derive(Debug, Clone, Default)]
pub struct Mdns {}

impl Mdns {
    /// The strategy with its defaults.
    pub fn new() -> Self {
        Mdns {}
    }

    /// Whether an mDNS daemon can start here (`foundation doctor`).
    fn check() -> Result<(), String> {
        let daemon =
            ServiceDaemon::new().map_err(|e| format!("mDNS cannot start (mdns-sd): {e}"))?;
        let _ = daemon.shutdown();
        Ok(())
    }
}

impl Strategy for Mdns {
    fn name(&self) -> &'static str {
        "mdns"
    }

    fn probe<'a>(&'a self, _ctx: &'a DiscoveryContext) -> ProbeTask<'a> {
        Box::pin(async move {
            match Mdns::check() {
                Ok(()) => Probe::Ok("mDNS daemon starts".into()),
                Err(e) => Probe::failed(e, "use FOUNDATION_CLUSTER=gossip or static seeds"),
            }
        })
    }

    fn run(
        self: Box<Self>,
        ctx: DiscoveryContext,
        sink: CandidateSink,
        cancel: CancellationToken,
    ) -> StrategyTask {
        Box::pin(async move {
            if !ctx.gossip.with_mdns {
                return sessions(&ctx, sink, &cancel).await;
            }
            let (mdns, mdns_found) = sink.part();
            let (beacons, beacons_found) = sink.part();
            let beaconing = Box::new(Gossip::new()).run(ctx.clone(), beacons, cancel.clone());
            tokio::join!(
                sessions(&ctx, mdns, &cancel),
                beaconing,
                sink.union(vec![mdns_found, beacons_found]),
            );
        })
    }
}

/// mDNS sessions until cancelled: a failed one is retried after
/// [`RETRY`]; where no daemon can start at all, it stops (the beacons go
/// on).
async fn sessions(ctx: &DiscoveryContext, sink: CandidateSink, cancel: &CancellationToken) {
    let mut first = true;
    loop {
        match session(ctx, &sink, cancel).await {
            Ok(()) => return,
            // mDNS that cannot even start will not start later either.
            Err(Failure::NoDaemon(e)) if first => {
                tracing::warn!(error = %e, "mDNS unavailable; discovery goes on with gossip beacons alone");
                return;
            }
            Err(Failure::NoDaemon(message) | Failure::Session(message)) => {
                sink.fail(DiscoveryError {
                    strategy: "mdns",
                    message,
                })
            }
        }
        first = false;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

enum Failure {
    /// The daemon could not be created at all.
    NoDaemon(String),
    /// It ran and failed.
    Session(String),
}

/// One daemon's life: advertise, browse, publish, until cancelled (Ok) or
/// the daemon fails (Err, retried by the caller; the last set stays).
///
/// mdns-sd joins the mDNS group on every interface when the daemon starts
/// (an IGMP/MLD membership report per interface); the interface selection
/// below applies before anything is announced or queried.
async fn session(
    ctx: &DiscoveryContext,
    sink: &CandidateSink,
    cancel: &CancellationToken,
) -> Result<(), Failure> {
    let daemon = ServiceDaemon::new()
        .map_err(|e| Failure::NoDaemon(format!("cannot start mDNS (mdns-sd): {e}")))?;
    let result = advertise_and_browse(&daemon, ctx, sink, cancel)
        .await
        .map_err(Failure::Session);
    if let Ok(done) = daemon.shutdown() {
        let _ = tokio::time::timeout(Duration::from_secs(1), done.recv_async()).await;
    }
    result
}

async fn advertise_and_browse(
    daemon: &ServiceDaemon,
    ctx: &DiscoveryContext,
    sink: &CandidateSink,
    cancel: &CancellationToken,
) -> Result<(), String> {
    if !ctx.bind.is_unspecified() {
        daemon
            .disable_interface(IfKind::All)
            .and_then(|()| daemon.enable_interface(IfKind::Addr(ctx.bind)))
            .map_err(|e| format!("cannot select the interface of {} (mdns-sd): {e}", ctx.bind))?;
    }
    let info = service_info(ctx)?;
    let fullname = info.get_fullname().to_owned();
    daemon
        .register(info)
        .map_err(|e| format!("cannot advertise {fullname} (mdns-sd): {e}"))?;
    let events = daemon
        .browse(SERVICE_TYPE)
        .map_err(|e| format!("cannot browse {SERVICE_TYPE} (mdns-sd): {e}"))?;
    tracing::debug!(%fullname, "mDNS: advertising and browsing");
    let mut peers: HashMap<String, Vec<SocketAddr>> = HashMap::new();
    let mut published = false;
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => {
                if let Ok(done) = daemon.unregister(&fullname) {
                    let _ = tokio::time::timeout(Duration::from_millis(500), done.recv_async()).await;
                }
                return Ok(());
            }
            ev = events.recv_async() => ev.map_err(|_| "mDNS daemon stopped".to_owned())?,
        };
        let changed = match event {
            ServiceEvent::ServiceResolved(service) => match accept(ctx, &service) {
                Ok(Some(addrs)) => peers.insert(service.fullname.clone(), addrs).is_none(),
                Ok(None) => false,
                Err(why) => {
                    tracing::warn!(instance = %service.fullname, reason = %why, "mDNS: record rejected");
                    false
                }
            },
            ServiceEvent::ServiceRemoved(_, name) => peers.remove(&name).is_some(),
            _ => false,
        };
        if changed || !published {
            published = true;
            let set: Candidates = peers.values().flatten().copied().collect();
            sink.publish(set);
        }
    }
}

fn service_info(ctx: &DiscoveryContext) -> Result<ServiceInfo, String> {
    // Node names need not be unique; mDNS instance names must be.
    let instance = format!("{}-{}", ctx.name, ctx.node);
    let host = format!("foundation-{}.local.", ctx.node);
    let cluster_hash = ctx.cluster_hash();
    let proto = PROTOCOL_VERSION.to_string();
    let node = ctx.node.to_string();
    let quic = ctx.transport.port().to_string();
    let properties = [
        ("id", node.as_str()),
        ("cluster", cluster_hash.as_str()),
        ("proto", proto.as_str()),
        ("quic", quic.as_str()),
    ];
    ServiceInfo::new(
        SERVICE_TYPE,
        &instance,
        &host,
        ctx.membership.ip(),
        ctx.membership.port(),
        &properties[..],
    )
    .map_err(|e| format!("invalid mDNS service record for {instance} (mdns-sd): {e}"))
}

/// Candidate addresses of a resolved instance: `Ok(None)` for our own or
/// another cluster's, `Err` for a malformed record.
fn accept(
    ctx: &DiscoveryContext,
    service: &mdns_sd::ResolvedService,
) -> Result<Option<Vec<SocketAddr>>, String> {
    let announced = Announced {
        txt: &service.txt_properties,
        port: service.port,
        ips: service.addresses.iter().map(|a| a.to_ip_addr()).collect(),
    };
    announced.accept(&ctx.cluster_hash(), &ctx.node.to_string())
}

/// What an mDNS answer says about an instance: its TXT record (decoded by
/// mdns-sd from the peer's bytes), SRV port and addresses.
pub(crate) struct Announced<'a> {
    pub(crate) txt: &'a mdns_sd::TxtProperties,
    pub(crate) port: u16,
    pub(crate) ips: Vec<IpAddr>,
}

impl Announced<'_> {
    /// Candidate addresses if it is a peer of cluster `cluster_hash` other
    /// than `own_id`: see [`accept`].
    pub(crate) fn accept(
        &self,
        cluster_hash: &str,
        own_id: &str,
    ) -> Result<Option<Vec<SocketAddr>>, String> {
        let txt = |key: &str| {
            self.txt
                .get_property_val_str(key)
                .ok_or_else(|| format!("TXT record has no `{key}`"))
        };
        let cluster = txt("cluster")?;
        if cluster != cluster_hash {
            return Ok(None);
        }
        let id = txt("id")?;
        if id == own_id {
            return Ok(None);
        }
        let proto: u8 = txt("proto")?
            .parse()
            .map_err(|_| "TXT `proto` is not a number".to_owned())?;
        if proto != PROTOCOL_VERSION {
            return Err(format!(
                "protocol version {proto}, this node speaks {PROTOCOL_VERSION}"
            ));
        }
        if self.port == 0 {
            return Err("SRV record has port 0".into());
        }
        let addrs: Vec<SocketAddr> = self
            .ips
            .iter()
            .filter(|ip| !ip.is_unspecified())
            .map(|ip| SocketAddr::new(*ip, self.port))
            .collect();
        if addrs.is_empty() {
            return Err("no address in the answer".into());
        }
        Ok(Some(addrs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TXT record bytes as on the wire: length-prefixed `key=value`.
    fn txt(pairs: &[(&str, &str)]) -> mdns_sd::TxtProperties {
        let mut wire = Vec::new();
        for (k, v) in pairs {
            let one = format!("{k}={v}");
            wire.push(one.len() as u8);
            wire.extend_from_slice(one.as_bytes());
        }
        mdns_sd::TxtProperties::from(&wire[..])
    }

    #[test]
    fn an_answer_is_a_peer_only_with_our_cluster_another_id_and_our_protocol() {
        let hash = super::super::context::cluster_hash("shop");
        let proto = PROTOCOL_VERSION.to_string();
        let ips = vec![IpAddr::from([10, 0, 0, 2]), IpAddr::from([0, 0, 0, 0])];
        let good = txt(&[("cluster", &hash), ("id", "2"), ("proto", &proto)]);
        let a = Announced {
            txt: &good,
            port: 7946,
            ips: ips.clone(),
        };
        assert_eq!(
            a.accept(&hash, "1"),
            Ok(Some(vec![SocketAddr::from(([10, 0, 0, 2], 7946))]))
        );
        assert_eq!(a.accept(&hash, "2"), Ok(None), "our own answer");
        assert_eq!(a.accept("other", "1"), Ok(None), "another cluster");

        let old = txt(&[("cluster", &hash), ("id", "2"), ("proto", "1")]);
        let a = Announced {
            txt: &old,
            port: 7946,
            ips: ips.clone(),
        };
        assert!(a.accept(&hash, "1").is_err(), "another protocol");
        let missing = txt(&[("cluster", &hash)]);
        let a = Announced {
            txt: &missing,
            port: 7946,
            ips,
        };
        assert!(a.accept(&hash, "1").is_err(), "no id");
        let a = Announced {
            txt: &good,
            port: 0,
            ips: vec![IpAddr::from([10, 0, 0, 2])],
        };
        assert!(a.accept(&hash, "1").is_err(), "port 0");
    }
}
