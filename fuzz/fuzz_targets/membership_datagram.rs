//! Arbitrary membership datagrams: opening must fail cleanly, and any body
//! that reaches the sans-IO core must be rejected or applied, never panic.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use foundation::config::MembershipConfig;
use foundation_proto::membership::core::{foca_config, MembershipCore};
use foundation_proto::membership::freshness::Freshness;
use foundation_proto::membership::seal::{DatagramKind, Sealer};
use foundation_proto::membership::MemberId;
use foundation::NodeId;
use libfuzzer_sys::fuzz_target;

fn core() -> MembershipCore {
    let addr: SocketAddr = "10.0.0.1:7946".parse().expect("addr");
    let id = MemberId {
        id: NodeId(1),
        addr,
        transport: "10.0.0.1:7947".parse().expect("addr"),
        name: "fuzz".into(),
        roles: vec![],
        version: "fuzz".into(),
        generation: 1,
    };
    let cfg = MembershipConfig {
        probe_period: Duration::from_millis(300),
        probe_rtt: Duration::from_millis(150),
        suspect_to_down: Duration::from_millis(700),
        ..MembershipConfig::default()
    };
    MembershipCore::new(id, foca_config(&cfg), 7)
}

fuzz_target!(|data: &[u8]| {
    let sealer = Sealer::new(&[7; 32]);
    let mut copy = data.to_vec();
    let _ = sealer.open(&mut copy);
    let mut fresh = Freshness::with_capacity(Duration::from_secs(60), 16);
    let mut copy = data.to_vec();
    let _ = sealer.open_fresh(&mut copy, &mut fresh, 1_800_000_000_000);
    let Some((&selector, body)) = data.split_first() else { return };
    let kind = match selector % 9 {
        0 => DatagramKind::Swim,
        1 => DatagramKind::Leave,
        2 => DatagramKind::Hello,
        3 => DatagramKind::Pull,
        4 => DatagramKind::State,
        5 => DatagramKind::Digest,
        6 => DatagramKind::Suspicion,
        7 => DatagramKind::Who,
        _ => DatagramKind::Profile,
    };
    let mut core = core();
    let _ = core.handle_datagram(kind, body, Instant::now());
    while core.poll_output().is_some() {}
});
