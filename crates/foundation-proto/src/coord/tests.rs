use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::NodeId;

fn lease(s: &mut CoordState, owner: u64, ttl_ms: u64) -> LeaseId {
    match s
        .apply(Command::Grant {
            owner: NodeId(owner),
            ttl_ms,
        })
        .response
    {
        Ok(Response::Lease { lease, .. }) => lease,
        other => panic!("grant: {other:?}"),
    }
}

fn claim(lease: LeaseId) -> Claim {
    Claim { lease, ticket: 0 }
}

fn lock(s: &mut CoordState, name: &str, lease: LeaseId) -> Applied {
    s.apply(Command::Lock {
        name: name.into(),
        claim: claim(lease),
    })
}

#[test]
fn a_lock_passes_in_order_with_growing_tokens_and_skips_ended_sessions() {
    let mut s = CoordState::default();
    let (a, b, c) = (
        lease(&mut s, 1, 10_000),
        lease(&mut s, 2, 10_000),
        lease(&mut s, 3, 10_000),
    );
    let Ok(Response::Locked { token: t1 }) = lock(&mut s, "l", a).response else {
        panic!("a gets it")
    };
    assert_eq!(
        lock(&mut s, "l", a).response,
        Ok(Response::Locked { token: t1 }),
        "idempotent"
    );
    assert_eq!(
        lock(&mut s, "l", b).response,
        Ok(Response::Queued { ahead: 0 })
    );
    assert_eq!(
        lock(&mut s, "l", c).response,
        Ok(Response::Queued { ahead: 1 })
    );
    // b's node goes down while it waits: it is skipped.
    s.apply(Command::NodeDown { node: NodeId(2) });
    let unlocked = s.apply(Command::Unlock {
        name: "l".into(),
        claim: claim(a),
    });
    assert_eq!(unlocked.response, Ok(Response::Unlocked));
    let granted: Vec<_> = unlocked
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Granted { claim, token, .. } => Some((*claim, *token)),
            _ => None,
        })
        .collect();
    assert_eq!(granted.len(), 1);
    assert_eq!(granted[0].0, claim(c));
    assert!(granted[0].1 > t1);
    assert_eq!(s.holder("l"), Some(granted[0]));
    // Unlocking by a non-holder changes nothing.
    s.apply(Command::Unlock {
        name: "l".into(),
        claim: claim(a),
    });
    assert_eq!(s.holder("l"), Some(granted[0]));
}

#[test]
fn an_expired_session_loses_its_keys_and_locks_and_cannot_be_kept_alive() {
    let mut s = CoordState::default();
    let a = lease(&mut s, 1, 1_000);
    let put = s.apply(Command::Put {
        key: "svc/a".into(),
        value: b"x".to_vec(),
        lease: Some(a),
        expect: Expect::Absent,
    });
    assert!(put.response.is_ok());
    assert!(lock(&mut s, "l", a).response.is_ok());
    s.apply(Command::Tick { now_ms: 999 });
    assert!(s.get("svc/a").is_some());
    let ended = s.apply(Command::Tick { now_ms: 1_000 });
    assert!(s.get("svc/a").is_none());
    assert_eq!(s.holder("l"), None);
    assert!(ended.events.contains(&Event::LeaseEnded { lease: a }));
    assert!(ended
        .events
        .iter()
        .any(|e| matches!(e, Event::Deleted { key, .. } if key == "svc/a")));
    assert_eq!(
        s.apply(Command::KeepAlive { lease: a }).response,
        Err(Rejected::NoLease(a))
    );
    // Time does not go back.
    s.apply(Command::Tick { now_ms: 10 });
    assert_eq!(s.now_ms(), 1_000);
}

#[test]
fn compare_and_set_holds_or_changes_nothing() {
    let mut s = CoordState::default();
    let put = |s: &mut CoordState, v: &[u8], expect| {
        s.apply(Command::Put {
            key: "k".into(),
            value: v.to_vec(),
            lease: None,
            expect,
        })
        .response
    };
    let Ok(Response::Put { revision: r1 }) = put(&mut s, b"1", Expect::Absent) else {
        panic!()
    };
    assert!(matches!(
        put(&mut s, b"2", Expect::Absent),
        Err(Rejected::CompareFailed { current: Some(r), .. }) if r == r1
    ));
    let before = s.clone();
    assert!(put(&mut s, b"2", Expect::Revision(r1 + 7)).is_err());
    assert_eq!(s, before, "a failed condition changes nothing");
    let Ok(Response::Put { revision: r2 }) = put(&mut s, b"2", Expect::Revision(r1)) else {
        panic!()
    };
    assert!(r2 > r1);
    let e = s.get("k").expect("there");
    assert_eq!((e.created, e.modified, &e.value[..]), (r1, r2, &b"2"[..]));
    let del = s.apply(Command::Delete {
        key: "k".into(),
        expect: Expect::Revision(r1),
    });
    assert!(del.response.is_err());
    let del = s.apply(Command::Delete {
        key: "k".into(),
        expect: Expect::Revision(r2),
    });
    assert!(matches!(
        del.response,
        Ok(Response::Deleted { existed: true, .. })
    ));
}

#[test]
fn bad_input_is_refused_with_the_limit() {
    let mut s = CoordState::default();
    let long = "k".repeat(MAX_KEY + 1);
    for name in [String::new(), long] {
        let r = s.apply(Command::Put {
            key: name.clone(),
            value: vec![],
            lease: None,
            expect: Expect::Any,
        });
        assert!(matches!(r.response, Err(Rejected::BadName { .. })));
        let r = s.apply(Command::Add { name, delta: 1 });
        assert!(matches!(r.response, Err(Rejected::BadName { .. })));
    }
    let r = s.apply(Command::Put {
        key: "k".into(),
        value: vec![0; MAX_VALUE + 1],
        lease: None,
        expect: Expect::Any,
    });
    assert!(matches!(r.response, Err(Rejected::ValueTooLarge { .. })));
    let r = s.apply(Command::Lock {
        name: "l".into(),
        claim: claim(42),
    });
    assert_eq!(r.response, Err(Rejected::NoLease(42)));
    s.apply(Command::Add {
        name: "c".into(),
        delta: i64::MAX,
    });
    let r = s.apply(Command::Add {
        name: "c".into(),
        delta: 1,
    });
    assert!(matches!(r.response, Err(Rejected::Overflow(_))));
    assert_eq!(s.counter("c"), i64::MAX);
    assert_eq!(s.revision(), 1, "only the first addition changed the state");
}

#[test]
fn range_returns_the_keys_under_a_prefix_in_order() {
    let mut s = CoordState::default();
    for k in ["a/2", "a/1", "b/1", "a"] {
        s.apply(Command::Put {
            key: k.into(),
            value: vec![],
            lease: None,
            expect: Expect::Any,
        });
    }
    let keys: Vec<&str> = s.range("a/").map(|(k, _)| k).collect();
    assert_eq!(keys, ["a/1", "a/2"]);
}

#[test]
fn two_acquisitions_by_one_session_exclude_each_other() {
    let mut s = CoordState::default();
    let a = lease(&mut s, 1, 10_000);
    let (first, second) = (
        Claim {
            lease: a,
            ticket: 1,
        },
        Claim {
            lease: a,
            ticket: 2,
        },
    );
    let take = |s: &mut CoordState, c: Claim| {
        s.apply(Command::Lock {
            name: "l".into(),
            claim: c,
        })
        .response
    };
    let Ok(Response::Locked { token }) = take(&mut s, first) else {
        panic!("first")
    };
    assert_eq!(take(&mut s, second), Ok(Response::Queued { ahead: 0 }));
    // Releasing the first passes the lock to the second, with a new token.
    s.apply(Command::Unlock {
        name: "l".into(),
        claim: first,
    });
    let (holder, t2) = s.holder("l").expect("passed on");
    assert_eq!(holder, second);
    assert!(t2 > token);
    // A late release of the first (a retry) does not release the second.
    s.apply(Command::Unlock {
        name: "l".into(),
        claim: first,
    });
    assert_eq!(s.holder("l"), Some((second, t2)));
    // The session ending releases everything it held and waited for.
    s.apply(Command::Revoke { lease: a });
    assert_eq!(s.holder("l"), None);
}

#[test]
fn a_down_node_keeps_its_locks_until_its_deadline() {
    let mut s = CoordState::default();
    s.apply(Command::Tick { now_ms: 1_000 });
    let a = lease(&mut s, 1, 3_000);
    let b = lease(&mut s, 2, 3_000);
    let Ok(Response::Locked { token }) = lock(&mut s, "l", a).response else {
        panic!("a locks")
    };
    s.apply(Command::NodeDown { node: NodeId(1) });
    // Still held: node 1 may be running, and its clock says it holds the
    // lock until the deadline.
    assert_eq!(s.holder("l"), Some((claim(a), token)));
    // No renewal, nothing new.
    assert_eq!(
        s.apply(Command::KeepAlive { lease: a }).response,
        Err(Rejected::NoLease(a))
    );
    assert_eq!(lock(&mut s, "m", a).response, Err(Rejected::NoLease(a)));
    assert_eq!(
        lock(&mut s, "l", b).response,
        Ok(Response::Queued { ahead: 0 })
    );
    // A new leader does not extend a doomed lease, but does extend b's.
    s.apply(Command::Tick { now_ms: 3_900 });
    s.apply(Command::Promote { now_ms: 3_900 });
    assert_eq!(s.lease_deadline(a), Some(4_000));
    assert_eq!(s.lease_deadline(b), Some(6_900));
    s.apply(Command::Tick { now_ms: 4_000 });
    let (holder, t2) = s.holder("l").expect("passed on at the deadline");
    assert_eq!(holder, claim(b));
    assert!(t2 > token);
    assert_eq!(s.lease_owner(a), None);
}

#[test]
fn a_stamped_command_moves_time_first() {
    let mut s = CoordState::default();
    let a = s.apply_at(
        1_000_000,
        Command::Grant {
            owner: NodeId(1),
            ttl_ms: 500,
        },
    );
    assert_eq!(
        a.response,
        Ok(Response::Lease {
            lease: 1,
            expires_ms: 1_000_500
        })
    );
    // The next stamp past the deadline ends the lease before the command.
    let b = s.apply_at(1_000_600, Command::KeepAlive { lease: 1 });
    assert_eq!(b.response, Err(Rejected::NoLease(1)));
    assert_eq!(b.events, vec![Event::LeaseEnded { lease: 1 }]);
}

fn command() -> impl Strategy<Value = Command> {
    let name = prop::sample::select(vec!["a", "b", "c"]).prop_map(String::from);
    let lease = 1u64..6;
    prop_oneof![
        (0u64..3_000).prop_map(|now_ms| Command::Tick { now_ms }),
        (1u64..4, 100u64..2_000).prop_map(|(o, ttl_ms)| Command::Grant {
            owner: NodeId(o),
            ttl_ms
        }),
        lease.clone().prop_map(|lease| Command::KeepAlive { lease }),
        lease.clone().prop_map(|lease| Command::Revoke { lease }),
        (1u64..4).prop_map(|n| Command::NodeDown { node: NodeId(n) }),
        (0u64..3_000).prop_map(|now_ms| Command::Promote { now_ms }),
        (name.clone(), prop::option::of(lease.clone()), 0u64..8).prop_map(|(key, lease, r)| {
            Command::Put {
                key,
                value: vec![1],
                lease,
                expect: if r == 0 {
                    Expect::Any
                } else {
                    Expect::Revision(r)
                },
            }
        }),
        name.clone().prop_map(|key| Command::Delete {
            key,
            expect: Expect::Any
        }),
        (name.clone(), lease.clone(), 0u64..3).prop_map(|(name, lease, ticket)| Command::Lock {
            name,
            claim: Claim { lease, ticket }
        }),
        (name.clone(), lease, 0u64..3).prop_map(|(name, lease, ticket)| Command::Unlock {
            name,
            claim: Claim { lease, ticket }
        }),
        (name, -5i64..5).prop_map(|(name, delta)| Command::Add { name, delta }),
    ]
}

proptest! {
    /// Any sequence of commands: two replicas stay equal, a snapshot
    /// restores the same state, every lock holder's session exists, every
    /// leased key's session exists, and each lock's fencing tokens only
    /// grow.
    #[test]
    fn replicas_agree_and_locks_stay_fenced(commands in prop::collection::vec(command(), 1..200)) {
        let (mut one, mut two) = (CoordState::default(), CoordState::default());
        let mut last_token: BTreeMap<String, Revision> = BTreeMap::new();
        for c in commands {
            let a = one.apply(c.clone());
            let b = two.apply(c);
            prop_assert_eq!(&a, &b);
            for e in &a.events {
                if let Event::Granted { name, token, .. } = e {
                    let last = last_token.insert(name.clone(), *token);
                    prop_assert!(last.is_none_or(|l| l < *token), "token went from {:?} to {}", last, token);
                }
            }
            for name in ["a", "b", "c"] {
                if let Some((c, _)) = one.holder(name) {
                    prop_assert!(one.lease_owner(c.lease).is_some(), "lock {} held by ended lease {}", name, c.lease);
                }
                if let Some(l) = one.get(name).and_then(|e| e.lease) {
                    prop_assert!(one.lease_owner(l).is_some(), "key {} kept by ended lease {}", name, l);
                }
            }
        }
        prop_assert_eq!(&one, &two);
        let bytes = postcard::to_allocvec(&one).expect("snapshot");
        let back: CoordState = postcard::from_bytes(&bytes).expect("restore");
        prop_assert_eq!(back, one);
    }

    /// A snapshot decoder never panics on garbage.
    #[test]
    fn garbage_snapshots_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = postcard::from_bytes::<CoordState>(&bytes);
        let _ = postcard::from_bytes::<Command>(&bytes);
    }
}
