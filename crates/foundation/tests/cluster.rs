//! In-process clusters over loopback: formation, channels, secrets, failure, leave.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use foundation::{Channel, MemberEvent, MemberState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_form_a_cluster_from_static_seeds() {
    let nodes = cluster(3).await;
    for node in &nodes {
        let members = node.members();
        assert_eq!(members.len(), 3, "{} sees {members:?}", node.name());
        assert!(members.iter().all(|m| m.state == MemberState::Alive));
        assert!(node.is_ready());
        // Metadata travels with membership.
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        for n in ["n0", "n1", "n2"] {
            assert!(names.contains(&n), "{names:?}");
        }
    }
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arrive_on_their_channel_in_order() {
    let nodes = cluster(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut data = b.inbox(Channel::Data);
    let mut control = b.inbox(Channel::Control);
    for i in 0..100u32 {
        a.send(
            b.id(),
            Channel::Data,
            7,
            Bytes::from(i.to_be_bytes().to_vec()),
        )
        .await
        .expect("send data");
    }
    a.send(b.id(), Channel::Control, 9, Bytes::from_static(b"ping"))
        .await
        .expect("send control");
    let msg = tokio::time::timeout(SETTLE, control.recv())
        .await
        .expect("in time")
        .expect("open");
    assert_eq!(
        (msg.from, msg.kind, &msg.payload[..]),
        (a.id(), 9, &b"ping"[..])
    );
    for i in 0..100u32 {
        let msg = tokio::time::timeout(SETTLE, data.recv())
            .await
            .expect("in time")
            .expect("open");
        assert_eq!(msg.channel, Channel::Data);
        assert_eq!(
            &msg.payload[..],
            &i.to_be_bytes()[..],
            "FIFO within a channel"
        );
    }
    let stats = b.raw().stats().clone();
    assert_eq!(stats.received_messages(Channel::Data), 100);
    // Control also carries the registry's and process manager's own
    // messages (kinds from RESERVED_KINDS up), which the inbox filters out.
    assert!(stats.received_messages(Channel::Control) >= 1);
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_unknown_node_gives_the_payload_back() {
    let nodes = cluster(1).await;
    let err = nodes[0]
        .send(
            foundation::NodeId(12345),
            Channel::Control,
            1,
            Bytes::from_static(b"keep me"),
        )
        .await
        .expect_err("unknown node");
    assert_eq!(&err.payload[..], b"keep me");
    assert!(err.to_string().contains("no alive member"), "{err}");
    nodes[0].shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_with_wrong_secret_is_refused() {
    let nodes = cluster(2).await;
    let seed = nodes[0].membership_addr().to_string();
    let intruder = builder("intruder")
        .secret("a-different-secret-entirely-000")
        .seeds([seed.as_str()])
        .start()
        .await
        .expect("intruder starts");
    // Give it ample time to try to join.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        intruder.members().len(),
        1,
        "intruder admitted: {:?}",
        intruder.members()
    );
    for n in &nodes {
        assert!(
            state_of(n, intruder.id()).is_none(),
            "{} admitted the intruder",
            n.name()
        );
        assert_eq!(n.active_members().len(), 2);
    }
    let dropped = nodes[0]
        .raw()
        .stats()
        .datagrams_dropped(foundation::telemetry::DropReason::Unauthenticated);
    assert!(
        dropped > 0,
        "the intruder's datagrams are dropped and counted"
    );
    // Its QUIC connection is refused too: the TLS CA differs.
    let direct = intruder
        .raw()
        .transport()
        .send(
            nodes[0].transport_addr(),
            Channel::Control,
            1,
            Vec::new(),
            Bytes::from_static(b"x"),
        )
        .await;
    assert!(direct.is_err(), "TLS must refuse a foreign certificate");
    intruder.shutdown().await;
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_is_reported_down_by_every_survivor() {
    let nodes = cluster(3).await;
    let victim = nodes[2].clone();
    let mut watchers: Vec<_> = nodes[..2].iter().map(|n| n.events()).collect();
    victim.abort().await;
    for (n, events) in nodes[..2].iter().zip(watchers.iter_mut()) {
        let ev = wait_event(events, victim.id(), |e| {
            matches!(e, MemberEvent::Down(_) | MemberEvent::Left(_))
        })
        .await;
        assert!(
            matches!(ev, MemberEvent::Down(_)),
            "{} saw {ev:?}",
            n.name()
        );
        assert_eq!(state_of(n, victim.id()), Some(MemberState::Down));
    }
    for n in &nodes[..2] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_is_reported_as_left() {
    let nodes = cluster(3).await;
    let leaver = nodes[2].clone();
    let mut watchers: Vec<_> = nodes[..2].iter().map(|n| n.events()).collect();
    leaver.shutdown().await;
    for (n, events) in nodes[..2].iter().zip(watchers.iter_mut()) {
        let ev = wait_event(events, leaver.id(), |e| {
            matches!(e, MemberEvent::Down(_) | MemberEvent::Left(_))
        })
        .await;
        assert!(
            matches!(ev, MemberEvent::Left(_)),
            "{} saw {ev:?}",
            n.name()
        );
    }
    // And it stays Left (foca's own down notice must not turn it into Down).
    tokio::time::sleep(Duration::from_secs(2)).await;
    for n in &nodes[..2] {
        assert_eq!(state_of(n, leaver.id()), Some(MemberState::Left));
    }
    for n in &nodes[..2] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_in_use_fails_start_with_the_key_and_fix() {
    init_tracing();
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let err = builder("clash")
        .port(port)
        .start()
        .await
        .expect_err("port taken");
    assert!(
        matches!(err, foundation::StartError::MembershipPortInUse { addr } if addr.port() == port),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("membership.port") && msg.contains("fix:"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarts_on_the_same_ports_in_process() {
    let nodes = cluster(2).await;
    let old = nodes[1].clone();
    let port = old.membership_addr().port();
    old.shutdown().await;
    let seed = nodes[0].membership_addr().to_string();
    let again = builder("n1-again")
        .port(port)
        .seeds([seed.as_str()])
        .start()
        .await
        .expect("ports were released by shutdown");
    again.wait_for_members(2, SETTLE).await.expect("rejoined");
    assert_eq!(again.membership_addr().port(), port);
    nodes[0]
        .wait_for_members(2, SETTLE)
        .await
        .expect("sees the new node");
    again.shutdown().await;
    nodes[0].shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_after_shutdown_and_tasks_stop() {
    let nodes = cluster(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut events = b.events();
    let mut inbox = b.inbox(Channel::Events);
    a.send(b.id(), Channel::Events, 3, Bytes::from_static(b"last"))
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.shutdown().await;
    // What was received before shutdown is still delivered, then the end.
    let msg = tokio::time::timeout(SETTLE, inbox.recv())
        .await
        .expect("in time");
    assert_eq!(msg.map(|m| m.kind), Some(3));
    assert!(tokio::time::timeout(SETTLE, inbox.recv())
        .await
        .expect("ends")
        .is_none());
    assert!(tokio::time::timeout(SETTLE, events.recv())
        .await
        .expect("ends")
        .is_none());
    // A send after shutdown fails with the payload back.
    let err = b
        .send(a.id(), Channel::Control, 1, Bytes::from_static(b"too late"))
        .await
        .expect_err("shut down");
    assert_eq!(&err.payload[..], b"too late");
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_clock_offsets_are_measured_over_the_control_channel() {
    let nodes = cluster(3).await;
    let offsets = nodes[0].clock_offsets(Duration::from_secs(5)).await;
    assert_eq!(offsets.len(), 2, "{offsets:?}");
    for o in &offsets {
        // One machine, one clock: the offset is within the round trip.
        assert!(o.rtt_ms >= 0.0, "{o:?}");
        assert!(o.offset_ms.abs() <= o.rtt_ms + 1.0, "{o:?}");
        assert!(nodes.iter().any(|n| n.id() == o.node && n.name() == o.name));
    }
    for n in &nodes {
        n.shutdown().await;
    }
}

/// Membership datagrams are sealed with the time they were sent: one sealed
/// ten minutes ago (a capture replayed, or a host whose clock is off) is
/// refused, and so is a fresh one heard a second time. The datagram here
/// is a Pull, which a node answers: the answers show what it took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_or_stale_membership_datagram_is_refused_and_counted() {
    use foundation::security::{derive_key, KeyPurpose};
    use foundation::telemetry::DropReason;
    use foundation_proto::membership::seal::{DatagramKind, Sealer};
    use foundation_proto::membership::MemberId;

    let nodes = cluster(1).await;
    let node = &nodes[0];
    let tap = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let ghost = MemberId {
        id: foundation::NodeId(0x6057),
        addr: tap.local_addr().expect("addr"),
        transport: tap.local_addr().expect("addr"),
        name: "ghost".into(),
        roles: vec![],
        version: "0".into(),
        generation: 1,
    };
    let body = postcard::to_allocvec(&ghost).expect("encode");
    let sealer = Sealer::new(&derive_key(
        SECRET.as_bytes(),
        foundation::config::defaults::CLUSTER_NAME,
        KeyPurpose::Membership,
    ));
    let wall_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as u64
    };
    let raw = node.raw();
    let stats = raw.stats();
    let answered = |tap: &tokio::net::UdpSocket| {
        let mut buf = [0u8; 2048];
        let mut n = 0;
        while tap.try_recv(&mut buf).is_ok() {
            n += 1;
        }
        n
    };

    // Sealed ten minutes ago: refused, unanswered.
    let stale = sealer.seal(DatagramKind::Pull, &body, [1; 12], wall_ms() - 600_000);
    tap.send_to(&stale, node.membership_addr())
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts: Vec<u64> = DropReason::ALL
        .iter()
        .map(|r| stats.datagrams_dropped(*r))
        .collect();
    assert_eq!(stats.datagrams_dropped(DropReason::Stale), 1, "{counts:?}");
    assert_eq!(answered(&tap), 0, "a stale Pull was answered");

    // Fresh: taken and answered (the member list, an announce).
    let fresh = sealer.seal(DatagramKind::Pull, &body, [2; 12], wall_ms());
    tap.send_to(&fresh, node.membership_addr())
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(answered(&tap) > 0, "a fresh Pull was not answered");

    // The same bytes again: refused as a replay.
    tap.send_to(&fresh, node.membership_addr())
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stats.datagrams_dropped(DropReason::Replayed), 1);
    assert_eq!(stats.datagrams_dropped(DropReason::Stale), 1);
    node.shutdown().await;
}
