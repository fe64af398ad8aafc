//! The `gossip` strategy: UDP multicast beacons, for networks where mDNS is
//! blocked (or unavailable, see the mdns strategy's fallback).
//!
//! Every interval each node sends a beacon to the group (default
//! 239.255.70.77:7945, TTL 1). A beacon carries the node id, a hash of the
//! cluster name, the protocol version, the membership address, and the
//! time it was sent with a random nonce. It is authenticated with
//! HMAC-SHA256 keyed from the cluster secret:
//!
//! ```text
//! +--------+---------+------------------+-------------------------+
//! | "FNDB" | version | postcard(Beacon) | HMAC-SHA256(key, all before) |
//! +--------+---------+------------------+-------------------------+
//! ```
//!
//! A beacon that fails authentication (another secret, forged, corrupted)
//! is dropped and counted, and so is one sent outside the replay window of
//! this node's clock or heard twice (a replay:
//! [`foundation_proto::membership::freshness`]). Peers not heard from for five intervals leave the
//! candidate set; membership, not discovery, decides whether they are down.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ring::hmac;
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::context::cluster_hash;
use super::sink::{CandidateSink, Candidates, DiscoveryError};
use super::{DiscoveryContext, Probe, ProbeTask, Strategy, StrategyTask};
use crate::id::NodeId;
use crate::shell_time::wall_ms;
use foundation_proto::membership::freshness::{Freshness, Refused};
use foundation_proto::PROTOCOL_VERSION;

const MAGIC: &[u8; 4] = b"FNDB";
/// Version 2 added the sending time and nonce.
const VERSION: u8 = 2;
/// Beacons remembered for replay detection: one per node per interval
/// over the window (60 per node at the defaults).
const REMEMBERED: usize = 16_384;
const TAG: usize = 32;
/// Largest beacon read; real ones are under 100 bytes.
const MAX_BEACON: usize = 512;
/// Intervals without a beacon after which a peer leaves the candidate set.
const EXPIRE_AFTER: u32 = 5;

/// What a beacon says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beacon {
    /// Sender's node id.
    pub node: NodeId,
    /// Hash of the sender's cluster name (see [`DiscoveryContext::cluster_hash`]).
    pub cluster: String,
    /// Sender's protocol version.
    pub proto: u8,
    /// Sender's membership address.
    pub membership: SocketAddr,
    /// When it was sent, in ms since the Unix epoch (the sender's clock).
    pub sent_ms: u64,
    /// Random per beacon: two beacons of one millisecond differ.
    pub nonce: [u8; 12],
}

/// Why a beacon was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BeaconError {
    /// Too short, or not a Foundation beacon.
    #[error("not a beacon")]
    NotABeacon,
    /// Another format version.
    #[error("beacon version {0}")]
    Version(u8),
    /// The HMAC does not verify: another secret, forged or corrupted.
    #[error("beacon failed authentication")]
    Unauthenticated,
    /// Authenticated but undecodable.
    #[error("malformed beacon body")]
    Malformed,
    /// Authenticated but not fresh: replayed, or sent outside the replay
    /// window of this node's clock.
    #[error("beacon refused: {0}")]
    Refused(#[from] Refused),
}

impl Beacon {
    /// Encodes and authenticates.
    pub fn seal(&self, key: &hmac::Key) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        // Encoding a struct of plain fields into a Vec cannot fail.
        out.extend_from_slice(&postcard::to_allocvec(self).unwrap_or_default());
        let tag = hmac::sign(key, &out);
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Verifies and decodes.
    pub fn open(data: &[u8], key: &hmac::Key) -> Result<Beacon, BeaconError> {
        if data.len() < MAGIC.len() + 1 + TAG || &data[..MAGIC.len()] != MAGIC {
            return Err(BeaconError::NotABeacon);
        }
        let version = data[MAGIC.len()];
        if version != VERSION {
            return Err(BeaconError::Version(version));
        }
        let (signed, tag) = data.split_at(data.len() - TAG);
        hmac::verify(key, signed, tag).map_err(|_| BeaconError::Unauthenticated)?;
        postcard::from_bytes(&signed[MAGIC.len() + 1..]).map_err(|_| BeaconError::Malformed)
    }

    /// Verifies, decodes, and refuses a replay (what the strategy calls).
    pub fn open_fresh(
        data: &[u8],
        key: &hmac::Key,
        freshness: &mut Freshness,
        now_ms: u64,
    ) -> Result<Beacon, BeaconError> {
        let b = Beacon::open(data, key)?;
        freshness.check(b.sent_ms, b.nonce, now_ms)?;
        Ok(b)
    }
}

/// The gossip strategy.
#[derive(Debug, Clone, Default)]
pub struct Gossip {}

impl Gossip {
    /// The strategy (its settings come from the `gossip.*` keys).
    pub fn new() -> Self {
        Gossip {}
    }

    /// Whether this host can join the beacon group (`foundation doctor`).
    fn check(ctx: &DiscoveryContext) -> Result<(), String> {
        socket(ctx).map(drop)
    }
}

impl Strategy for Gossip {
    fn name(&self) -> &'static str {
        "gossip"
    }

    fn probe<'a>(&'a self, ctx: &'a DiscoveryContext) -> ProbeTask<'a> {
        Box::pin(async move {
            match Gossip::check(ctx) {
                Ok(()) => Probe::Ok(format!(
                    "joined multicast group {}:{}",
                    ctx.gossip.group, ctx.gossip.port
                )),
                Err(e) => {
                    Probe::failed(e, "use static seeds or dns where multicast is not routable")
                }
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
            loop {
                if let Err(message) = beacons(&ctx, &sink, &cancel).await {
                    sink.fail(DiscoveryError {
                        strategy: "gossip",
                        message,
                    });
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(ctx.gossip.interval * EXPIRE_AFTER) => {}
                }
            }
        })
    }
}

fn socket(ctx: &DiscoveryContext) -> Result<UdpSocket, String> {
    let g = &ctx.gossip;
    let iface = match ctx.bind {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    let setup = || -> std::io::Result<UdpSocket> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        // Several nodes on one host share the beacon port.
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, g.port)).into())?;
        s.join_multicast_v4(&g.group, &iface)?;
        s.set_multicast_ttl_v4(g.ttl)?;
        if !iface.is_unspecified() {
            s.set_multicast_if_v4(&iface)?;
        }
        s.set_multicast_loop_v4(true)?;
        s.set_nonblocking(true)?;
        UdpSocket::from_std(s.into())
    };
    setup().map_err(|e| {
        format!(
            "cannot join multicast group {}:{} on {iface}: {e} (is multicast routable here? `foundation doctor` checks)",
            g.group, g.port
        )
    })
}

/// Sends and receives beacons until cancelled (Ok) or the socket fails.
async fn beacons(
    ctx: &DiscoveryContext,
    sink: &CandidateSink,
    cancel: &CancellationToken,
) -> Result<(), String> {
    let udp = socket(ctx)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &ctx.key);
    let cluster = cluster_hash(&ctx.cluster);
    let mut own = Beacon {
        node: ctx.node,
        cluster: cluster.clone(),
        proto: PROTOCOL_VERSION,
        membership: ctx.membership,
        sent_ms: 0,
        nonce: [0; 12],
    };
    let mut freshness = Freshness::with_capacity(ctx.replay_window, REMEMBERED);
    let group = SocketAddr::from((ctx.gossip.group, ctx.gossip.port));
    let mut ticker = tokio::time::interval(ctx.gossip.interval);
    let mut heard: HashMap<NodeId, (SocketAddr, Instant)> = HashMap::new();
    let mut buf = [0u8; MAX_BEACON];
    let mut published = false;
    loop {
        let mut changed = false;
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = ticker.tick() => {
                own.sent_ms = wall_ms();
                own.nonce = rand::random();
                if let Err(e) = udp.send_to(&own.seal(&key), group).await {
                    return Err(format!("cannot send beacon to {group}: {e}"));
                }
                let horizon = ctx.gossip.interval * EXPIRE_AFTER;
                let before = heard.len();
                heard.retain(|_, (_, at)| at.elapsed() < horizon);
                changed = heard.len() != before;
            }
            r = udp.recv_from(&mut buf) => {
                let (n, from) = r.map_err(|e| format!("beacon socket failed: {e}"))?;
                match Beacon::open_fresh(&buf[..n], &key, &mut freshness, wall_ms()) {
                    Ok(b) if b.node == ctx.node => {}
                    Ok(b) if b.cluster != cluster || b.proto != PROTOCOL_VERSION => {
                        tracing::debug!(%from, node = %b.node, "beacon of another cluster or protocol ignored");
                    }
                    Ok(b) => {
                        changed = heard.insert(b.node, (b.membership, Instant::now()))
                            .is_none_or(|(addr, _)| addr != b.membership);
                    }
                    Err(e) => {
                        ctx.stats.discovery_dropped();
                        tracing::debug!(%from, error = %e, "beacon dropped");
                    }
                }
            }
        }
        if changed || !published {
            published = true;
            sink.publish(heard.values().map(|(a, _)| *a).collect::<Candidates>());
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn beacon() -> Beacon {
        Beacon {
            node: NodeId(9),
            cluster: cluster_hash("c"),
            proto: PROTOCOL_VERSION,
            membership: SocketAddr::from(([10, 0, 0, 9], 7946)),
            sent_ms: T0,
            nonce: [4; 12],
        }
    }

    const T0: u64 = 1_800_000_000_000;

    #[test]
    fn a_replayed_or_stale_beacon_is_refused() {
        let k = hmac::Key::new(hmac::HMAC_SHA256, &[1; 32]);
        let mut f = Freshness::new(std::time::Duration::from_secs(60));
        let sealed = beacon().seal(&k);
        assert_eq!(
            Beacon::open_fresh(&sealed, &k, &mut f, T0 + 3),
            Ok(beacon())
        );
        assert_eq!(
            Beacon::open_fresh(&sealed, &k, &mut f, T0 + 900),
            Err(BeaconError::Refused(Refused::Replayed))
        );
        // A beacon of a node that left ten minutes ago.
        let old = Beacon {
            nonce: [5; 12],
            ..beacon()
        }
        .seal(&k);
        assert_eq!(
            Beacon::open_fresh(&old, &k, &mut f, T0 + 600_000),
            Err(BeaconError::Refused(Refused::Old { age_ms: 600_000 }))
        );
    }

    #[test]
    fn round_trip_and_other_keys_rejected() {
        let k = hmac::Key::new(hmac::HMAC_SHA256, &[1; 32]);
        let other = hmac::Key::new(hmac::HMAC_SHA256, &[2; 32]);
        let sealed = beacon().seal(&k);
        assert_eq!(Beacon::open(&sealed, &k), Ok(beacon()));
        assert_eq!(
            Beacon::open(&sealed, &other),
            Err(BeaconError::Unauthenticated)
        );
        let mut tampered = sealed.clone();
        tampered[7] ^= 1;
        assert_eq!(
            Beacon::open(&tampered, &k),
            Err(BeaconError::Unauthenticated)
        );
        assert_eq!(Beacon::open(b"FNDB", &k), Err(BeaconError::NotABeacon));
    }

    proptest! {
        #[test]
        fn open_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let k = hmac::Key::new(hmac::HMAC_SHA256, &[1; 32]);
            let _ = Beacon::open(&data, &k);
        }
    }
}
