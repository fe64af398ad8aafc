//! Transport tests over real QUIC on loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::id::NodeId;
use crate::security::TlsIdentity;
use crate::telemetry::Stats;

fn settings(max_frame_size: usize) -> TransportSettings {
    TransportSettings {
        compression: true,
        compress_above: 16 * 1024,
        single_stream: false,
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        max_frame_size,
        stream_window: 256 * 1024,
        idle_timeout: Duration::from_secs(10),
        keep_alive: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(3),
        reconnect_min: Duration::from_millis(100),
        reconnect_max: Duration::from_secs(1),
        inbox_capacity: 64,
        faults: Default::default(),
    }
}

fn transport(secret: &[u8], id: u64, max: usize) -> (Transport, Arc<Stats>) {
    bind_transport(secret, id, settings(max))
}

fn bind_transport(secret: &[u8], id: u64, cfg: TransportSettings) -> (Transport, Arc<Stats>) {
    let tls = TlsIdentity::from_secret(secret, "test", "foundation.node").expect("tls");
    let stats = Arc::new(Stats::default());
    let bind = cfg.bind;
    let t = Transport::bind(cfg, &tls, NodeId(id), stats.clone())
        .unwrap_or_else(|e| panic!("bind node {id} at {bind}: {e}"));
    (t, stats)
}

#[tokio::test]
async fn malformed_frame_stops_only_that_stream_and_is_counted() {
    let (a, _) = transport(b"s", 1, 4096);
    let (b, b_stats) = transport(b"s", 2, 4096);
    let mut inbox = b.subscribe(InboxFilter::channel(Channel::Control));
    // A good frame first, so the connection exists.
    a.send(
        b.local_addr(),
        Channel::Control,
        1,
        vec![],
        Bytes::from_static(b"ok"),
    )
    .await
    .expect("send");
    assert_eq!(inbox.recv().await.map(|m| m.kind), Some(1));
    // Now garbage on a fresh stream of the same connection: an oversized
    // length prefix, then a wrong version.
    let conn = a.connection(b.local_addr()).await.expect("conn");
    for garbage in [&u32::MAX.to_be_bytes()[..], &[0, 0, 0, 2, 99, 0][..]] {
        let mut s = conn.open_uni().await.expect("stream");
        s.write_all(garbage).await.expect("write");
        let _ = s.finish();
    }
    tokio::time::timeout(Duration::from_secs(5), async {
        while b_stats.frame_errors() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("both bad frames counted");
    // The connection and the control stream still work.
    a.send(
        b.local_addr(),
        Channel::Control,
        2,
        vec![],
        Bytes::from_static(b"still"),
    )
    .await
    .expect("send after garbage");
    assert_eq!(inbox.recv().await.map(|m| m.kind), Some(2));
    a.shutdown().await;
    b.shutdown().await;
}

/// Writes one frame claiming `from` on a fresh stream of `conn`.
async fn write_as(conn: &quinn::Connection, from: u64, kind: u16) {
    let parts = frame::encode_parts(
        Channel::Control,
        kind,
        NodeId(from),
        &[],
        (frame::Codec::Plain, &Bytes::from_static(b"x")),
        4096,
    )
    .expect("encode");
    let mut s = conn.open_uni().await.expect("stream");
    for part in parts {
        s.write_all(&part).await.expect("write");
    }
    let _ = s.finish();
}

#[tokio::test]
async fn a_frame_that_claims_another_sender_is_dropped_and_counted() {
    let (a, _) = transport(b"s", 1, 4096);
    let (b, b_stats) = transport(b"s", 2, 4096);
    // An impostor on another address of this host.
    let (c, _) = transport_at(SocketAddr::from(([127, 0, 0, 2], 0)), 3);
    let mut inbox = b.subscribe(InboxFilter::channel(Channel::Control));
    a.send(b.local_addr(), Channel::Control, 1, vec![], Bytes::new())
        .await
        .expect("send");
    let got = inbox.recv().await.expect("first frame");
    assert_eq!((got.kind, got.from), (1, NodeId(1)));

    // On A's own connection, in C's name: dropped.
    let conn = a.connection(b.local_addr()).await.expect("conn");
    write_as(&conn, 3, 2).await;
    // From C's address, in A's name while A is connected: dropped.
    c.send(b.local_addr(), Channel::Control, 3, vec![], Bytes::new())
        .await
        .expect("C's own frame");
    let c_conn = c.connection(b.local_addr()).await.expect("conn");
    write_as(&c_conn, 1, 4).await;
    // Honest frames after them still arrive, each under its sender.
    write_as(&conn, 1, 5).await;
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        while seen.len() < 2 || b_stats.spoofed_senders() < 2 {
            tokio::select! {
                m = inbox.recv() => seen.extend(m.map(|m| (m.kind, m.from))),
                () = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
        }
    })
    .await
    .expect("two honest frames and two counted refusals");
    seen.sort();
    assert_eq!(seen, vec![(3, NodeId(3)), (5, NodeId(1))]);
    assert_eq!(b_stats.spoofed_senders(), 2);
    for t in [a, b, c] {
        t.shutdown().await;
    }
}

#[tokio::test]
async fn oversized_send_is_refused_with_the_payload_back() {
    let (a, _) = transport(b"s", 1, 1024);
    let (b, _) = transport(b"s", 2, 1024);
    let err = a
        .send(
            b.local_addr(),
            Channel::Data,
            1,
            vec![],
            Bytes::from(vec![0u8; 4096]),
        )
        .await
        .expect_err("too large");
    assert!(matches!(err.reason, SendFailure::TooLarge { .. }), "{err}");
    assert_eq!(err.payload.len(), 4096);
    a.shutdown().await;
    b.shutdown().await;
}

fn transport_at(addr: SocketAddr, id: u64) -> (Transport, Arc<Stats>) {
    let mut cfg = settings(4096);
    cfg.bind = addr;
    bind_transport(b"s", id, cfg)
}

/// Sends until one succeeds and is received (bounded), across backoff.
async fn deliver_eventually(a: &Transport, to: SocketAddr, inbox: &mut Inbox, kind: u16) {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if a.send(to, Channel::Control, kind, vec![], Bytes::from_static(b"x"))
                .await
                .is_ok()
            {
                if let Ok(Some(m)) =
                    tokio::time::timeout(Duration::from_millis(500), inbox.recv()).await
                {
                    assert_eq!(m.kind, kind);
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("delivered within 10 s");
}

#[tokio::test]
async fn unreachable_peer_backs_off_then_reconnects() {
    let (a, stats) = transport(b"s", 1, 4096);
    // Reserve a port, then free it: nobody answers there.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = dead.local_addr().expect("addr");
    drop(dead);
    let first = a
        .send(addr, Channel::Control, 1, vec![], Bytes::from_static(b"x"))
        .await;
    assert!(
        matches!(first, Err(ref e) if matches!(e.reason, SendFailure::Connect(_))),
        "{first:?}"
    );
    let second = a
        .send(addr, Channel::Control, 1, vec![], Bytes::from_static(b"x"))
        .await;
    assert!(
        matches!(second, Err(ref e) if matches!(e.reason, SendFailure::Backoff { .. })),
        "{second:?}"
    );
    assert_eq!(stats.connect_failures(), 1);

    // The peer appears: after the backoff, the next send connects.
    let (b, _) = transport_at(addr, 2);
    let mut inbox = b.subscribe(InboxFilter::channel(Channel::Control));
    deliver_eventually(&a, addr, &mut inbox, 2).await;

    // The peer restarts at the same address: the lost connection is re-made.
    b.shutdown().await;
    drop(inbox);
    let (b2, _) = transport_at(addr, 3);
    let mut inbox = b2.subscribe(InboxFilter::channel(Channel::Control));
    deliver_eventually(&a, addr, &mut inbox, 3).await;
    assert!(stats.connections_opened() >= 2);
    a.shutdown().await;
    b2.shutdown().await;
}

#[tokio::test]
async fn foreign_certificate_cannot_connect() {
    let (a, _) = transport(b"one secret", 1, 4096);
    let (b, b_stats) = transport(b"another secret", 2, 4096);
    let err = a
        .send(
            b.local_addr(),
            Channel::Control,
            1,
            vec![],
            Bytes::from_static(b"x"),
        )
        .await
        .expect_err("TLS refuses");
    assert!(matches!(err.reason, SendFailure::Connect(_)), "{err}");
    assert_eq!(b_stats.connections_opened(), 0);
    tokio::time::timeout(Duration::from_secs(5), async {
        while b_stats.handshakes_failed() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the refused handshake is counted");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_handshake_flood_is_answered_with_retry_and_honest_clients_still_connect() {
    let (b, b_stats) = transport(b"s", 2, 4096);
    let tls = TlsIdentity::from_secret(b"s", "test", "foundation.node").expect("tls");
    let mut client =
        quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).expect("client");
    client.set_default_client_config(tls.quic_client(&[b"foundation/2"]).expect("config"));
    // Twice the rate limit, all at once: every one connects, the later
    // ones after proving their address with a Retry round trip.
    let attempts: Vec<_> = (0..2 * super::endpoint::RETRY_ABOVE)
        .map(|_| {
            let c = client
                .connect(b.local_addr(), "foundation.node")
                .expect("connect");
            // Generous: 128 handshakes of a debug build take 3 s alone on
            // this machine and 6 s with five more copies of this test
            // beside it; under CI's parallel tests one took over 10 s.
            async move { tokio::time::timeout(Duration::from_secs(60), c).await }
        })
        .collect();
    let results = futures_util::future::join_all(attempts).await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| match r {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("not connected within 60 s".to_owned()),
        })
        .collect();
    assert!(
        failed.is_empty(),
        "every honest client connects: {failed:?}"
    );
    assert!(b_stats.handshakes_retried() > 0, "some were asked to Retry");
    assert!(
        b_stats.handshakes_retried() <= u64::from(super::endpoint::RETRY_ABOVE),
        "only those above the rate: {}",
        b_stats.handshakes_retried()
    );
    drop(results);
    client.close(0u32.into(), b"done");
    b.shutdown().await;
}
