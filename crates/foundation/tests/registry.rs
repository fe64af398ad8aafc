//! The registry across in-process clusters: visibility, sync registration,
//! removal, groups, and one winner after a partition heals.

use std::time::Duration;

use foundation::process::{Context, Service, ServiceError, ServiceOptions, StopReason};
use foundation::registry::{RegistryError, RegistryEvent};
use foundation_testkit::{assert_eventually, Cluster};
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(5);
const SETTLE: Duration = Duration::from_secs(20);

/// Answers with its label; reports its stop reasons.
struct Named {
    label: &'static str,
    stops: Option<mpsc::UnboundedSender<StopReason>>,
}

impl Service for Named {
    type Request = ();
    type Reply = String;
    type State = ();

    async fn handle(&mut self, _: &mut Context, _: ()) -> Result<String, ServiceError> {
        Ok(self.label.to_owned())
    }

    async fn stopping(&mut self, _: &mut Context, reason: &StopReason) -> Option<()> {
        if let Some(tx) = &self.stops {
            let _ = tx.send(reason.clone());
        }
        None
    }
}

fn named(label: &'static str) -> impl Fn() -> Named + Send + 'static {
    move || Named { label, stops: None }
}

/// Another protocol, to check typed lookups.
struct Other;

impl Service for Other {
    type Request = u8;
    type Reply = u8;
    type State = ();

    async fn handle(&mut self, _: &mut Context, r: u8) -> Result<u8, ServiceError> {
        Ok(r)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_registered_on_one_node_is_found_and_called_from_every_node() {
    let mut c = Cluster::start(3).await.expect("cluster");
    let svc = c
        .node(0)
        .services()
        .spawn(named("a"), ServiceOptions::default());
    c.node(0)
        .registry()
        .register("svc-a", &svc)
        .expect("register");
    for i in 0..3 {
        let reg = c.node(i).registry();
        assert_eventually(SETTLE, "the name reaches every node", || {
            reg.whereis("svc-a").is_some()
        })
        .await;
        let r = reg.lookup::<Named>("svc-a").expect("typed").expect("found");
        assert_eq!(r.is_local(), i == 0);
        assert_eq!(r.call((), T).await.expect("call"), "a");
    }
    // A lookup with the wrong type is an error, not a wrong ref.
    assert!(matches!(
        c.node(1).registry().lookup::<Other>("svc-a"),
        Err(RegistryError::Protocol { .. })
    ));
    // The name is taken while held.
    let other = c
        .node(1)
        .services()
        .spawn(named("b"), ServiceOptions::default());
    assert!(c.node(1).registry().register("svc-a", &other).is_err());
    // Only the host registers its services.
    let remote = c.node(1).services().get::<Named>(svc.addr());
    assert!(matches!(
        c.node(1).registry().register("x", &remote),
        Err(RegistryError::NotLocal(_))
    ));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_register_sync_every_node_finds_the_name_at_once() {
    let mut c = Cluster::start(4).await.expect("cluster");
    let reg0 = c.node(0).registry();
    for k in 0..20 {
        let svc = c
            .node(0)
            .services()
            .spawn(named("s"), ServiceOptions::default());
        let name = format!("sync-{k}");
        reg0.register_sync(&name, &svc, T)
            .await
            .expect("confirmed by all");
        for i in 1..4 {
            assert_eq!(
                c.node(i).registry().whereis(&name).map(|e| e.service),
                Some(svc.addr()),
                "node {i} misses {name} right after register_sync"
            );
        }
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_go_away_with_their_service_and_with_their_node() {
    let mut c = Cluster::start(3).await.expect("cluster");
    let s0 = c
        .node(0)
        .services()
        .spawn(named("a"), ServiceOptions::default());
    let s1 = c
        .node(1)
        .services()
        .spawn(named("b"), ServiceOptions::default());
    let s2 = c
        .node(2)
        .services()
        .spawn(named("c"), ServiceOptions::default());
    c.node(0)
        .registry()
        .register_sync("a", &s0, T)
        .await
        .expect("a");
    c.node(1)
        .registry()
        .register_sync("b", &s1, T)
        .await
        .expect("b");
    c.node(2)
        .registry()
        .register_sync("c", &s2, T)
        .await
        .expect("c");

    // The service stops: its name is withdrawn everywhere.
    assert!(c.node(0).services().stop(s0.addr()).await);
    let reg2 = c.node(2).registry();
    assert_eventually(SETTLE, "a withdrawn after its service stopped", || {
        reg2.whereis("a").is_none()
    })
    .await;

    // A node crashes: its entries go when it is declared down.
    c.kill(1).await;
    assert_eventually(SETTLE, "b dropped after its node crashed", || {
        reg2.whereis("b").is_none()
    })
    .await;

    // A node leaves: its entries go too.
    let reg0 = c.node(0).registry();
    c.stop(2).await;
    assert_eventually(SETTLE, "c dropped after its node left", || {
        reg0.whereis("c").is_none()
    })
    .await;
    assert!(reg0.snapshot().entries.is_empty());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_collect_members_from_every_node() {
    let mut c = Cluster::start(3).await.expect("cluster");
    let mut refs = Vec::new();
    for i in 0..3 {
        let s = c
            .node(i)
            .services()
            .spawn(named("g"), ServiceOptions::default());
        c.node(i).registry().join("workers", &s).expect("join");
        refs.push(s);
    }
    for i in 0..3 {
        let reg = c.node(i).registry();
        assert_eventually(SETTLE, "three workers everywhere", || {
            reg.members_of::<Named>("workers").len() == 3
        })
        .await;
        assert!(reg.members_of::<Other>("workers").is_empty());
    }
    assert!(c.node(1).registry().leave("workers", &refs[1]));
    let reg = c.node(0).registry();
    assert_eventually(SETTLE, "two workers after one left the group", || {
        reg.members_of::<Named>("workers").len() == 2
    })
    .await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_name_on_both_sides_of_a_partition_has_one_winner_after_heal() {
    let mut c = Cluster::start(3).await.expect("cluster");
    c.partition(&[0], &[1, 2]);
    let (n0, n1) = (c.node(0).clone(), c.node(1).clone());
    assert_eventually(SETTLE, "both sides see the split", || {
        n0.active_members().len() == 1 && n1.active_members().len() == 2
    })
    .await;

    // Each side registers "leader"; node 0's is earlier, so it must win.
    let (tx0, mut stops0) = mpsc::unbounded_channel();
    let (tx1, mut stops1) = mpsc::unbounded_channel();
    let a = n0.services().spawn(
        move || Named {
            label: "zero",
            stops: Some(tx0.clone()),
        },
        ServiceOptions::default(),
    );
    n0.registry().register("leader", &a).expect("side 0");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let b = n1.services().spawn(
        move || Named {
            label: "one",
            stops: Some(tx1.clone()),
        },
        ServiceOptions::default(),
    );
    n1.registry().register("leader", &b).expect("side 1");
    let mut conflicts = n1.registry().events();

    c.heal();
    c.wait_for_members(3, SETTLE).await.expect("healed");
    for i in 0..3 {
        let reg = c.node(i).registry();
        assert_eventually(SETTLE, "every node agrees on node 0's leader", || {
            reg.whereis("leader").map(|e| e.service) == Some(a.addr())
                && reg
                    .snapshot()
                    .entries
                    .iter()
                    .filter(|e| e.name == "leader")
                    .count()
                    == 1
        })
        .await;
    }
    let reason = tokio::time::timeout(SETTLE, stops1.recv())
        .await
        .expect("loser stopped in time")
        .expect("reason");
    assert_eq!(
        reason,
        StopReason::NameConflict {
            name: "leader".into(),
            winner: a.addr()
        }
    );
    let ev = tokio::time::timeout(SETTLE, conflicts.recv())
        .await
        .expect("event in time")
        .expect("event");
    let RegistryEvent::NameConflict { winner, loser } = ev;
    assert_eq!((winner.service, loser.service), (a.addr(), b.addr()));
    assert!(stops0.try_recv().is_err(), "the winner keeps running");
    let r = c
        .node(2)
        .registry()
        .lookup::<Named>("leader")
        .expect("typed")
        .expect("found");
    assert_eq!(r.call((), T).await.expect("call"), "zero");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_registry_service_and_manager_messages_are_dropped_without_harm() {
    use bytes::Bytes;
    use foundation::Channel;
    let mut c = Cluster::start(2).await.expect("cluster");
    let svc = c
        .node(0)
        .services()
        .spawn(named("a"), ServiceOptions::default());
    c.node(0)
        .registry()
        .register_sync("a", &svc, T)
        .await
        .expect("a");
    let to = c.node(0).id();
    for kind in [
        foundation_proto::registry::KIND_MSG,
        *foundation_proto::kinds::SERVICES.start(),
        *foundation_proto::kinds::PROCESS_MANAGER.start(),
    ] {
        for junk in [&b""[..], &b"\xff\xff\xff\xff"[..], &[7u8; 300][..]] {
            c.node(1)
                .send(to, Channel::Control, kind, Bytes::copy_from_slice(junk))
                .await
                .expect("sent");
        }
    }
    // Still serving, still consistent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = c
        .node(1)
        .registry()
        .lookup::<Named>("a")
        .expect("typed")
        .expect("found");
    assert_eq!(r.call((), T).await.expect("call"), "a");
    let b = c
        .node(1)
        .services()
        .spawn(named("b"), ServiceOptions::default());
    c.node(1)
        .registry()
        .register_sync("b", &b, T)
        .await
        .expect("b");
    assert!(c.node(0).registry().whereis("b").is_some());
    c.shutdown().await;
}
