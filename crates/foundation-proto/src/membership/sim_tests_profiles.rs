//! Metadata carried once (ADR 024): SWIM headers hold slim identities,
//! and a member's `Up` waits until its metadata is known.

use std::time::Duration;

use super::{DatagramKind, MemberEvent, MemberId, Sim};

/// Gives every node of `sim` a long name, several roles and a version of
/// its own, as a real deployment's metadata would be.
fn with_metadata(n: usize, seed: u64) -> Sim {
    let mut sim = Sim::new(n, seed);
    for (i, core) in sim.cores.iter_mut().enumerate() {
        let mut id = core.local().clone();
        id.name = format!("{i}-{}", "n".repeat(120));
        id.roles = vec!["web".into(), format!("shard-{i}")];
        id.version = format!("1.{i}.0");
        *core = super::MembershipCore::new(
            id,
            super::foca_config(&super::lan()),
            seed.wrapping_add(i as u64),
        );
    }
    sim
}

fn identities(sim: &Sim) -> Vec<MemberId> {
    sim.cores.iter().map(|c| c.local().clone()).collect()
}

/// Every member reported up carries the metadata its node really has,
/// though SWIM's packets carry none of it: with names of 120 bytes, no
/// SWIM datagram of a formed cluster's probe rounds grows with them.
#[test]
fn every_up_carries_the_real_metadata_and_swim_packets_carry_none() {
    for seed in 0..5 {
        let mut sim = with_metadata(6, seed);
        let real = identities(&sim);
        sim.join_all_via(0);
        sim.run_with_sync(Duration::from_secs(6));
        for i in 0..6 {
            assert_eq!(sim.alive_view(i), 5, "seed {seed}: node {i}");
        }
        for (_, who, ev) in &sim.log {
            let MemberEvent::Up(m) = ev else { continue };
            let node = real.iter().find(|r| r.id == m.id).expect("a real node");
            assert_eq!(
                (&m.name, m.transport, &m.roles, &m.version),
                (&node.name, node.transport, &node.roles, &node.version),
                "seed {seed}: node {who}'s Up of {}",
                m.id
            );
        }
        sim.tap = Some(Vec::new());
        sim.run_for(Duration::from_secs(5));
        let tapped = sim.tap.take().expect("tap");
        let swim: Vec<usize> = tapped
            .iter()
            .filter(|t| t.3 == DatagramKind::Swim)
            .map(|t| t.4.len())
            .collect();
        assert!(!swim.is_empty(), "seed {seed}: probes ran");
        let largest = swim.iter().copied().max().unwrap_or(0);
        assert!(
            largest < 120,
            "seed {seed}: a SWIM datagram of {largest} bytes carries metadata"
        );
    }
}

/// A member heard of whose Profile is lost stays out of the view (no Up
/// without its metadata), and is asked again each sync round: once
/// Profiles get through, it comes up with its metadata. State lists, the
/// other way metadata travels, are lost throughout.
#[test]
fn a_member_whose_profile_is_lost_is_asked_again_and_comes_up_complete() {
    let mut sim = with_metadata(4, 11);
    let real = identities(&sim);
    sim.lose = vec![DatagramKind::Profile, DatagramKind::State];
    sim.join_all_via(0);
    sim.run_with_sync(Duration::from_secs(6));
    // Node 1 knows the seed only from its announce, and the seed's
    // Profiles are lost: the seed is not a member in node 1's view.
    assert!(
        sim.cores[1].members().all(|m| m.id != real[0].id),
        "node 1 reported a member whose metadata it never received"
    );
    assert!(
        !sim.log
            .iter()
            .any(|(_, who, ev)| *who == 1 && matches!(ev, MemberEvent::Up(m) if m.id == real[0].id)),
        "an Up without metadata"
    );
    sim.lose = vec![DatagramKind::State];
    sim.cores[1].take_dirty();
    sim.run_with_sync(Duration::from_secs(5));
    // The shell republishes the view when it is dirty: the seed's late
    // Up must mark it so.
    assert!(sim.cores[1].take_dirty(), "the view changed unannounced");
    for i in 0..4 {
        assert_eq!(sim.alive_view(i), 3, "node {i}");
    }
    let seed = sim.cores[1]
        .members()
        .find(|m| m.id == real[0].id)
        .expect("the seed is a member");
    assert_eq!(
        (&seed.name, seed.transport),
        (&real[0].name, real[0].transport)
    );
}
