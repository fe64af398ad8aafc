//! Whole nodes (membership, registry, process manager, pub/sub over the
//! real transport) on turmoil's simulated network and time.
//!
//! Inside a turmoil host, [`builder`] binds the node's two sockets on
//! turmoil's network ([`TurmoilUdp`]) and returns a [`NodeBuilder`] that
//! uses them, with `static` discovery towards the named seed hosts. The
//! node's timers, SWIM's clock and every timeout run on the host's paused
//! tokio clock, which turmoil advances.
//!
//! ```no_run
//! use std::time::Duration;
//! use foundation_testkit::turmoil_node;
//!
//! let mut sim = turmoil::Builder::new().rng_seed(1).build();
//! for name in ["n0", "n1", "n2"] {
//!     sim.host(name, move || async move {
//!         let node = turmoil_node::builder(name, &["n0"], 1)
//!             .await?
//!             .start()
//!             .await?;
//!         std::future::pending::<()>().await;
//!         drop(node);
//!         Ok(())
//!     });
//! }
//! sim.run().ok();
//! ```
//!
//! What turmoil does not simulate: crash detection through "port
//! unreachable" (it needs kernel sockets; SWIM's probes detect crashes
//! here), and the scheduling inside a node. The network's faults follow
//! turmoil's seed, but tokio's `select!` and hash maps inside the nodes
//! draw from unseeded randomness, so a whole-node run is checked by its
//! invariants over several seeds rather than replayed exactly. Exact
//! replay is what the transport-only turmoil test and [`crate::sim`] give.

use std::io;
use std::net::SocketAddr;

use foundation::{NodeBuilder, Sockets};

use crate::cluster::SECRET;
use crate::turmoil_udp::{Loss, TurmoilUdp};

/// The seeds a whole-node turmoil test runs: `TURMOIL_SEED=n` runs one,
/// `TURMOIL_SEEDS=k` runs 0..k and `TURMOIL_SEEDS=a..b` runs a..b (a sweep
/// split over processes); three by default.
///
/// # Panics
///
/// If a variable is set but not a number or a range: a sweep must not
/// silently run the default seeds.
pub fn seeds() -> Vec<u64> {
    let var = |k: &str| std::env::var(k).ok();
    let number = |k: &str, v: &str| {
        v.trim()
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("{k}={v:?} is not a number, n, or a range, a..b"))
    };
    if let Some(one) = var("TURMOIL_SEED") {
        return vec![number("TURMOIL_SEED", &one)];
    }
    match var("TURMOIL_SEEDS") {
        Some(v) => match v.split_once("..") {
            Some((a, b)) => (number("TURMOIL_SEEDS", a)..number("TURMOIL_SEEDS", b)).collect(),
            None => (0..number("TURMOIL_SEEDS", &v)).collect(),
        },
        None => (0..3).collect(),
    }
}

/// Every simulated node's membership port.
pub const MEMBERSHIP_PORT: u16 = 7946;
/// Every simulated node's transport port.
pub const TRANSPORT_PORT: u16 = 7947;

/// A builder for the node of the current turmoil host `name`: its sockets
/// bound on turmoil's network, `static` discovery towards the hosts named
/// in `seeds`, the test kit's secret, HTTP off. `seed` seeds quinn's
/// randomness (mixed with the host's address).
pub async fn builder(name: &str, seeds: &[&str], seed: u64) -> io::Result<NodeBuilder> {
    builder_with_loss(name, seeds, seed, Loss::default()).await
}

/// Like [`builder`], with both sockets losing each datagram they send
/// with the probability `loss` holds (independent losses; see [`Loss`]).
pub async fn builder_with_loss(
    name: &str,
    seeds: &[&str],
    seed: u64,
    loss: Loss,
) -> io::Result<NodeBuilder> {
    let ip = turmoil::lookup(name);
    let host = match ip {
        std::net::IpAddr::V4(v4) => u32::from(v4),
        std::net::IpAddr::V6(v6) => v6.octets()[12..]
            .iter()
            .fold(0, |a, b| a << 8 | u32::from(*b)),
    };
    let any = |port| SocketAddr::from(([0, 0, 0, 0], port));
    let socket_seed = |port: u16| seed ^ u64::from(host) << 16 ^ u64::from(port);
    let membership = TurmoilUdp::bind_with_loss(
        any(MEMBERSHIP_PORT),
        loss.clone(),
        socket_seed(MEMBERSHIP_PORT),
    )
    .await?;
    let transport =
        TurmoilUdp::bind_with_loss(any(TRANSPORT_PORT), loss, socket_seed(TRANSPORT_PORT)).await?;
    let mut quic_seed = [0u8; 32];
    quic_seed[..8].copy_from_slice(&seed.to_le_bytes());
    quic_seed[8..12].copy_from_slice(&host.to_le_bytes());
    let seeds: Vec<String> = seeds
        .iter()
        .map(|s| SocketAddr::new(turmoil::lookup(*s), MEMBERSHIP_PORT).to_string())
        .collect();
    Ok(NodeBuilder::isolated()
        .cluster("static")
        .seeds(seeds)
        .name(name)
        .secret(SECRET)
        .http(false)
        .port(MEMBERSHIP_PORT)
        .set("transport.advertise", &ip.to_string())
        .sockets(Sockets {
            membership,
            transport,
            quic_seed: Some(quic_seed),
            // Leases follow simulated time, one clock for every host.
            lease_clock: Some(std::sync::Arc::new(|| {
                1_000_000 + turmoil::sim_elapsed().map_or(0, |d| d.as_millis() as u64)
            })),
            coord_disk_inline: true,
        }))
}
