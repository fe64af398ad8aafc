//! Table-driven and property tests of the registry core.

use proptest::prelude::*;

use super::*;
use crate::NodeId;

fn entry(node: u64, local: u64, name: &str, at: u64) -> Entry {
    Entry {
        name: name.to_owned(),
        kind: EntryKind::Unique,
        service: ServiceAddr {
            node: NodeId(node),
            local,
        },
        protocol: "p".to_owned(),
        registered_at: at,
        meta: Default::default(),
    }
}

fn group(node: u64, local: u64, name: &str) -> Entry {
    Entry {
        kind: EntryKind::Group,
        ..entry(node, local, name, 0)
    }
}

#[test]
fn the_earliest_registration_wins_then_the_lowest_owner_then_the_lowest_service() {
    // (entries as (node, local, registered_at), expected winner index)
    type Row = (&'static [(u64, u64, u64)], usize);
    let table: &[Row] = &[
        (&[(1, 1, 100)], 0),
        (&[(2, 1, 100), (1, 1, 200)], 0),
        (&[(2, 1, 200), (1, 1, 100)], 1),
        (&[(2, 1, 100), (1, 1, 100)], 1),
        (&[(1, 2, 100), (1, 1, 100)], 1),
        (&[(3, 1, 50), (2, 1, 50), (1, 9, 60)], 1),
    ];
    for (entries, want) in table {
        let es: Vec<Entry> = entries
            .iter()
            .map(|(n, l, at)| entry(*n, *l, "x", *at))
            .collect();
        assert_eq!(winner(&es), Some(&es[*want]), "table row {entries:?}");
        // Order of candidates does not matter.
        let rev: Vec<Entry> = es.iter().rev().cloned().collect();
        assert_eq!(winner(&rev), Some(&es[*want]));
    }
    assert_eq!(winner(&[]), None);
}

#[test]
fn a_unique_name_is_refused_while_held_and_registering_twice_is_a_no_op() {
    let mut s = RegistryState::new(NodeId(1));
    let d = s
        .register(entry(1, 1, "a", 10))
        .expect("free")
        .expect("delta");
    assert_eq!((d.base, d.version), (0, 1));
    assert_eq!(s.register(entry(1, 1, "a", 11)), Ok(None));
    let err = s.register(entry(1, 2, "a", 12)).expect_err("taken");
    assert!(matches!(err, RegisterError::Taken { ref holder, .. } if holder.local == 1));
    // Held by another owner.
    let snap = Snapshot {
        owner: NodeId(2),
        version: 1,
        entries: vec![entry(2, 1, "b", 5)],
    };
    assert_eq!(s.merge_snapshot(&snap), Ok(true));
    assert!(matches!(
        s.register(entry(1, 3, "b", 20)),
        Err(RegisterError::Taken { .. })
    ));
    // Groups take any number of members.
    assert!(s.register(group(1, 1, "g")).expect("ok").is_some());
    assert!(s.register(group(1, 2, "g")).expect("ok").is_some());
    assert_eq!(s.members_of("g").len(), 2);
}

#[test]
fn names_must_be_non_empty_and_bounded() {
    let mut s = RegistryState::new(NodeId(1));
    assert!(matches!(
        s.register(entry(1, 1, "", 1)),
        Err(RegisterError::InvalidName { .. })
    ));
    let long = "x".repeat(MAX_NAME_LEN + 1);
    assert!(matches!(
        s.register(entry(1, 1, &long, 1)),
        Err(RegisterError::InvalidName { .. })
    ));
}

#[test]
fn metadata_travels_with_the_entry_is_bounded_and_a_change_replaces_it() {
    use crate::mesh::ServiceMeta;
    let mut owner = RegistryState::new(NodeId(2));
    let v1 = ServiceMeta::new().version("1.0.0").capability("gpu");
    let e = Entry {
        meta: v1.clone(),
        ..group(2, 1, "resize")
    };
    let d1 = owner.register(e.clone()).expect("ok").expect("delta");
    assert_eq!(owner.register(e.clone()), Ok(None), "same metadata: no-op");
    let v2 = ServiceMeta::new().version("1.1.0").capability("gpu");
    let d2 = owner
        .register(Entry {
            meta: v2.clone(),
            ..e.clone()
        })
        .expect("ok")
        .expect("a metadata change is a new delta");
    assert_eq!(owner.members_of("resize").len(), 1, "replaced, not added");

    let mut s = RegistryState::new(NodeId(1));
    assert_eq!(s.apply_delta(&d1), Applied::Applied);
    assert_eq!(s.members_of("resize")[0].meta, v1);
    assert_eq!(s.apply_delta(&d2), Applied::Applied);
    assert_eq!(s.members_of("resize").len(), 1);
    assert_eq!(s.members_of("resize")[0].meta, v2);

    // Invalid metadata: refused locally with the reason, and from a peer.
    let bad = Entry {
        meta: ServiceMeta::new().version("one"),
        ..group(2, 2, "resize")
    };
    assert!(matches!(
        owner.register(bad.clone()),
        Err(RegisterError::InvalidMeta { .. })
    ));
    let forged = Delta {
        owner: NodeId(2),
        base: 2,
        version: 3,
        ops: vec![Op::Put(bad.clone())],
    };
    assert!(matches!(s.apply_delta(&forged), Applied::Refused(_)));
    let snap = Snapshot {
        owner: NodeId(2),
        version: 9,
        entries: vec![bad],
    };
    assert!(s.merge_snapshot(&snap).is_err());
    assert_eq!(s.members_of("resize")[0].meta, v2);
}

#[test]
fn deltas_apply_in_order_and_report_duplicates_gaps_and_refusals() {
    let mut owner = RegistryState::new(NodeId(2));
    let d1 = owner.register(entry(2, 1, "a", 1)).expect("ok").expect("d");
    let d2 = owner.register(entry(2, 2, "b", 2)).expect("ok").expect("d");
    let d3 = owner.unregister_service(1).expect("d");

    let mut s = RegistryState::new(NodeId(1));
    assert_eq!(s.apply_delta(&d2), Applied::Gap { have: 0 });
    assert_eq!(s.apply_delta(&d1), Applied::Applied);
    assert_eq!(s.apply_delta(&d1), Applied::Duplicate);
    assert_eq!(s.apply_delta(&d2), Applied::Applied);
    assert_eq!(s.apply_delta(&d3), Applied::Applied);
    assert!(s.lookup("a").is_none());
    assert_eq!(s.lookup("b").map(|e| e.service.local), Some(2));
    assert_eq!(s.owners().get(&NodeId(2)), owner.owners().get(&NodeId(2)));

    // Refusals: our own entries, an entry owned by someone else, a skip.
    let mut mine = RegistryState::new(NodeId(1));
    let own = mine.register(entry(1, 1, "m", 1)).expect("ok").expect("d");
    assert!(matches!(s.apply_delta(&own), Applied::Refused(_)));
    let forged = Delta {
        owner: NodeId(2),
        base: 3,
        version: 4,
        ops: vec![Op::Put(entry(3, 1, "f", 1))],
    };
    assert!(matches!(s.apply_delta(&forged), Applied::Refused(_)));
    let skip = Delta {
        owner: NodeId(2),
        base: 3,
        version: 9,
        ops: vec![],
    };
    assert!(matches!(s.apply_delta(&skip), Applied::Refused(_)));
    // A base at the end of the range cannot be advanced: refused, no
    // overflow.
    for version in [0, u64::MAX] {
        let wrap = Delta {
            owner: NodeId(2),
            base: u64::MAX,
            version,
            ops: vec![],
        };
        assert!(matches!(s.apply_delta(&wrap), Applied::Refused(_)));
    }
}

#[test]
fn a_down_owner_loses_its_entries_and_relays_are_refused_until_it_is_back() {
    let mut s = RegistryState::new(NodeId(1));
    let snap = Snapshot {
        owner: NodeId(2),
        version: 3,
        entries: vec![entry(2, 1, "a", 1), group(2, 1, "g")],
    };
    assert_eq!(s.merge_snapshot(&snap), Ok(true));
    assert_eq!(s.len(), 2);
    assert!(s.owner_down(NodeId(2)));
    assert!(s.lookup("a").is_none() && s.members_of("g").is_empty());
    assert_eq!(s.merge_snapshot(&snap), Ok(false), "relayed copy refused");
    s.owner_up(NodeId(2));
    assert_eq!(s.merge_snapshot(&snap), Ok(true));
    assert!(s.lookup("a").is_some());
    assert!(!s.owner_down(NodeId(1)), "this node never drops itself");
}

#[test]
fn older_snapshots_never_replace_newer_state_and_forged_entries_are_refused() {
    let mut s = RegistryState::new(NodeId(1));
    let new = Snapshot {
        owner: NodeId(2),
        version: 5,
        entries: vec![entry(2, 1, "new", 1)],
    };
    let old = Snapshot {
        owner: NodeId(2),
        version: 4,
        entries: vec![entry(2, 1, "old", 1)],
    };
    assert_eq!(s.merge_snapshot(&new), Ok(true));
    assert_eq!(s.merge_snapshot(&old), Ok(false));
    assert!(s.lookup("new").is_some() && s.lookup("old").is_none());
    let forged = Snapshot {
        owner: NodeId(2),
        version: 9,
        entries: vec![entry(3, 1, "x", 1)],
    };
    assert!(s.merge_snapshot(&forged).is_err());
}

#[test]
fn a_local_entry_that_loses_a_conflict_is_reported_with_its_winner() {
    let mut s = RegistryState::new(NodeId(5));
    s.register(entry(5, 1, "leader", 200)).expect("ok");
    s.register(entry(5, 2, "other", 200)).expect("ok");
    let remote = Snapshot {
        owner: NodeId(9),
        version: 1,
        entries: vec![entry(9, 7, "leader", 100), entry(9, 8, "other", 300)],
    };
    assert_eq!(s.merge_snapshot(&remote), Ok(true));
    let losers = s.local_losers();
    assert_eq!(losers.len(), 1);
    assert_eq!(losers[0].0.name, "leader");
    assert_eq!(losers[0].1.service.node, NodeId(9));
    assert_eq!(s.lookup("other").map(|e| e.owner()), Some(NodeId(5)));
}

#[test]
fn digests_say_who_sends_what() {
    let mut a = RegistryState::new(NodeId(1));
    a.register(entry(1, 1, "a", 1)).expect("ok");
    a.merge_snapshot(&Snapshot {
        owner: NodeId(3),
        version: 2,
        entries: vec![entry(3, 1, "c", 1)],
    })
    .expect("ok");
    let mut b = RegistryState::new(NodeId(2));
    b.register(entry(2, 1, "b", 1)).expect("ok");
    let diff = a.compare(NodeId(2), &b.digest());
    assert_eq!(diff.send, vec![NodeId(1), NodeId(3)]);
    assert!(diff.behind, "b holds its own set, newer than ours");
    let diff = b.compare(NodeId(1), &a.digest());
    assert_eq!(diff.send, vec![NodeId(2)]);
    assert!(diff.behind);
    // After exchanging, nothing differs.
    for o in [NodeId(1), NodeId(3)] {
        b.merge_snapshot(&a.snapshot(o).expect("snap")).expect("ok");
    }
    a.merge_snapshot(&b.snapshot(NodeId(2)).expect("snap"))
        .expect("ok");
    assert_eq!(a.compare(NodeId(2), &b.digest()), DigestDiff::default());
    assert_eq!(b.compare(NodeId(1), &a.digest()), DigestDiff::default());
}

#[test]
fn wire_messages_round_trip_and_garbage_is_an_error() {
    let msg = RegistryMsg::Delta {
        delta: Delta {
            owner: NodeId(2),
            base: 0,
            version: 1,
            ops: vec![Op::Put(entry(2, 1, "a", 1))],
        },
        ack: true,
    };
    assert_eq!(RegistryMsg::decode(&msg.encode()).expect("decode"), msg);
    let holding = RegistryMsg::Holding { version: 7 };
    assert_eq!(
        RegistryMsg::decode(&holding.encode()).expect("decode"),
        holding
    );
    assert!(RegistryMsg::decode(&[0xff, 0xff, 0xff]).is_err());
}

#[test]
fn a_member_that_holds_a_stale_set_gets_the_owner_snapshot_and_a_current_one_nothing() {
    let mut owner = RegistryState::new(NodeId(1));
    owner.register(entry(1, 1, "a", 1)).expect("register");
    owner.register(entry(1, 2, "b", 2)).expect("register");
    let v = owner.local_version();
    let stale = sync::on_message(
        &mut owner,
        NodeId(2),
        RegistryMsg::Holding { version: v - 1 },
        |_| true,
    );
    match stale.send.as_slice() {
        [(to, RegistryMsg::Snapshot(s))] => {
            assert_eq!(*to, NodeId(2));
            assert_eq!((s.owner, s.version, s.entries.len()), (NodeId(1), v, 2));
        }
        other => panic!("expected one snapshot, got {other:?}"),
    }
    let current = sync::on_message(
        &mut owner,
        NodeId(2),
        RegistryMsg::Holding { version: v },
        |_| true,
    );
    assert!(current.send.is_empty());
}

#[test]
fn member_up_sends_the_own_set_and_the_version_held_not_a_digest() {
    let mut st = RegistryState::new(NodeId(1));
    st.register(entry(1, 1, "a", 1)).expect("register");
    // Sets of many third parties: none of them is sent on member up.
    for o in 3..50 {
        st.merge_snapshot(&snapshot_of(o, 5)).expect("valid");
    }
    let send = sync::on_member_up(&mut st, NodeId(2));
    assert_eq!(send.len(), 2);
    assert!(matches!(&send[0], (NodeId(2), RegistryMsg::Snapshot(s)) if s.owner == NodeId(1)));
    assert_eq!(send[1], (NodeId(2), RegistryMsg::Holding { version: 0 }));
}

/// Every owner's history: version i holds a deterministic set of entries.
fn snapshot_of(owner: u64, version: u64) -> Snapshot {
    let entries = (0..version % 4)
        .map(|i| {
            entry(
                owner,
                i,
                &format!("n{}", (owner + i + version) % 5),
                version * 10 + i,
            )
        })
        .collect();
    Snapshot {
        owner: NodeId(owner),
        version,
        entries,
    }
}

fn merged(local: u64, snaps: &[Snapshot]) -> RegistryState {
    let mut s = RegistryState::new(NodeId(local));
    for snap in snaps {
        s.merge_snapshot(snap).expect("valid");
    }
    s
}

fn snaps() -> impl Strategy<Value = Vec<Snapshot>> {
    prop::collection::vec((2u64..6, 1u64..8), 0..12)
        .prop_map(|v| v.into_iter().map(|(o, ver)| snapshot_of(o, ver)).collect())
}

proptest! {
    /// Arbitrary bytes decode to a message or an error, never a panic; a
    /// message that decodes encodes back to bytes that decode to it.
    #[test]
    fn registry_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(msg) = RegistryMsg::decode(&bytes) {
            prop_assert_eq!(RegistryMsg::decode(&msg.encode()).ok(), Some(msg));
        }
    }

    /// Merge is commutative and associative: any order of the same
    /// snapshots gives the same state.
    #[test]
    fn merge_order_does_not_matter(a in snaps(), b in snaps(), seed in any::<u64>()) {
        let mut all: Vec<Snapshot> = a.iter().chain(&b).cloned().collect();
        let x = merged(1, &all);
        // A seeded shuffle.
        let mut rng = seed;
        for i in (1..all.len()).rev() {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            all.swap(i, (rng >> 33) as usize % (i + 1));
        }
        let y = merged(1, &all);
        prop_assert_eq!(x.owners(), y.owners());
        // (a then b) equals (b then a).
        let ab: Vec<Snapshot> = a.iter().chain(&b).cloned().collect();
        let ba: Vec<Snapshot> = b.iter().chain(&a).cloned().collect();
        let (m_ab, m_ba) = (merged(1, &ab), merged(1, &ba));
        prop_assert_eq!(m_ab.owners(), m_ba.owners());
    }

    /// Merge is idempotent: merging the same snapshots again changes nothing.
    #[test]
    fn merge_is_idempotent(a in snaps()) {
        let mut s = merged(1, &a);
        let before = s.owners().clone();
        for snap in &a {
            prop_assert_eq!(s.merge_snapshot(snap), Ok(false));
        }
        prop_assert_eq!(s.owners(), &before);
    }

    /// Lookups agree on every node that merged the same snapshots, in
    /// whatever order: one winner per unique name.
    #[test]
    fn every_node_picks_the_same_winner(a in snaps()) {
        let mut rev = a.clone();
        rev.reverse();
        let x = merged(1, &a);
        let y = merged(7, &rev);
        for n in 0..5 {
            let name = format!("n{n}");
            prop_assert_eq!(x.lookup(&name), y.lookup(&name));
        }
    }

    /// Deltas delivered out of order, with duplicates, converge to the
    /// owner's state once gaps are repaired by a snapshot.
    #[test]
    fn deltas_in_any_order_converge_with_gap_repair(
        ops in prop::collection::vec((0u64..4, any::<bool>()), 1..30),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..60),
    ) {
        let mut owner = RegistryState::new(NodeId(2));
        let mut deltas = Vec::new();
        for (i, (svc, add)) in ops.iter().enumerate() {
            let d = if *add {
                owner.register(group(2, *svc, &format!("g{}", i % 3))).expect("valid")
            } else {
                owner.unregister_service(*svc)
            };
            deltas.extend(d);
        }
        let mut s = RegistryState::new(NodeId(1));
        for idx in &order {
            if deltas.is_empty() { break; }
            let d = &deltas[idx.index(deltas.len())];
            if let Applied::Gap { .. } = s.apply_delta(d) {
                let snap = owner.snapshot(NodeId(2)).expect("snap");
                s.merge_snapshot(&snap).expect("valid");
            }
        }
        // Final anti-entropy round.
        let diff = owner.compare(NodeId(1), &s.digest());
        for o in diff.send {
            s.merge_snapshot(&owner.snapshot(o).expect("snap")).expect("valid");
        }
        let entries = |st: &RegistryState| st.snapshot(NodeId(2)).map(|x| x.entries).unwrap_or_default();
        prop_assert_eq!(s.version_of(NodeId(2)), owner.version_of(NodeId(2)));
        prop_assert_eq!(entries(&s), entries(&owner));
    }
}

#[test]
fn a_set_sent_by_a_node_that_is_no_member_is_dropped_after_the_grace() {
    // Node 2 sends its set directly, then crashes; the snapshot lands after
    // node 1 saw it go (or node 1 never saw it as a member).
    let mut other = RegistryState::new(NodeId(2));
    other.register(entry(2, 7, "orphan", 5)).expect("register");
    let snap = other.snapshot(NodeId(2)).expect("own set");
    let mut st = RegistryState::new(NodeId(1));
    let r = sync::on_message(&mut st, NodeId(2), RegistryMsg::Snapshot(snap), |_| false);
    assert!(r.changed, "a direct snapshot is taken at once");
    assert!(st.lookup("orphan").is_some());

    let t0 = std::time::Instant::now();
    let mut strays = std::collections::HashMap::new();
    assert!(sync::prune_strays(&mut st, |_| false, &mut strays, t0).is_empty());
    let before = t0 + sync::STRAY_GRACE - std::time::Duration::from_millis(1);
    assert!(sync::prune_strays(&mut st, |_| false, &mut strays, before).is_empty());
    assert!(st.lookup("orphan").is_some(), "kept within the grace");
    // A member's set is never dropped, however long.
    let later = t0 + 3 * sync::STRAY_GRACE;
    let mut member_strays = std::collections::HashMap::new();
    assert!(sync::prune_strays(
        &mut st.clone(),
        |id| id == NodeId(2),
        &mut member_strays,
        later
    )
    .is_empty());
    assert_eq!(
        sync::prune_strays(&mut st, |_| false, &mut strays, t0 + sync::STRAY_GRACE),
        vec![NodeId(2)]
    );
    assert!(st.lookup("orphan").is_none());
}
