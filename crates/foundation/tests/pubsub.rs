//! Pub/sub across in-process clusters: delivery, interest routing, order,
//! slow subscribers, compression negotiation, interleaving on the data
//! channel, malformed frames, and the messaging facade.

use std::time::{Duration, Instant};

use bytes::Bytes;
use foundation::messaging::{MessagingError, Name, Topic};
use foundation::process::ServiceOptions;
use foundation::pubsub::{lane_of, Publish};
use foundation::{Channel, Node};
use foundation_demo::Counter;
use foundation_testkit::{assert_eventually, Cluster};

const T: Duration = Duration::from_secs(10);

/// Waits until `publisher` knows that `n` other nodes subscribe to `topic`.
async fn interest(publisher: &Node, topic: &str, n: usize) {
    assert_eventually(T, &format!("{n} interested nodes for {topic}"), || {
        publisher.pubsub().interested_nodes(topic).len() == n
    })
    .await;
}

async fn next<T: Send + Sync + 'static>(s: &mut foundation::Subscription<T>) -> std::sync::Arc<T> {
    tokio::time::timeout(T, s.recv())
        .await
        .expect("a message in time")
        .expect("subscription open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_reaches_subscribers_on_every_node() {
    let mut c = Cluster::start(3).await.expect("cluster");
    let mut subs: Vec<_> = (0..3)
        .map(|i| {
            c.node(i)
                .pubsub()
                .subscribe::<String>("news")
                .expect("subscribe")
        })
        .collect();
    for i in 0..3 {
        interest(c.node(i), "news", 2).await;
    }
    let p = c
        .node(0)
        .pubsub()
        .broadcast("news", "hello".to_owned())
        .await
        .expect("broadcast");
    assert_eq!((p.local, p.nodes, p.dropped.len()), (1, 2, 0));
    for s in &mut subs {
        assert_eq!(*next(s).await, "hello");
    }

    // broadcast_from skips the publisher's own subscription only.
    let own = subs[1].id();
    c.node(1)
        .pubsub()
        .broadcast_from(own, "news", "from 1".to_owned())
        .await
        .expect("broadcast_from");
    assert_eq!(*next(&mut subs[0]).await, "from 1");
    assert_eq!(*next(&mut subs[2]).await, "from 1");

    // local_broadcast stays on its node.
    let reached = c
        .node(2)
        .pubsub()
        .local_broadcast("news", "local".to_owned())
        .expect("local");
    assert_eq!(reached, 1);
    assert_eq!(*next(&mut subs[2]).await, "local");
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in [0, 1] {
        assert!(
            subs[i].try_recv().is_none(),
            "node {i} got a message meant for others"
        );
    }

    // A stopped node's subscription ends; the others forget its interest.
    c.stop(2).await;
    assert!(tokio::time::timeout(T, subs[2].recv())
        .await
        .expect("ends")
        .is_none());
    interest(c.node(0), "news", 1).await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_subscribers_receives_no_traffic_for_the_topic() {
    let mut c = Cluster::start(3).await.expect("cluster");
    let mut sub = c.node(1).pubsub().subscribe::<u32>("orders").expect("sub");
    interest(c.node(0), "orders", 1).await;
    let before: u64 = Channel::ALL
        .iter()
        .map(|&ch| c.node(2).raw().stats().received_messages(ch))
        .sum();
    for i in 0..100u32 {
        let p = c
            .node(0)
            .pubsub()
            .broadcast("orders", i)
            .await
            .expect("broadcast");
        assert_eq!(p.nodes, 1, "only the subscriber's node is sent to");
    }
    for i in 0..100u32 {
        assert_eq!(*next(&mut sub).await, i);
    }
    let sent = c.node(0).pubsub().topic_stats("orders");
    assert_eq!((sent.published, sent.sent), (100, 100));
    assert_eq!(c.node(1).pubsub().topic_stats("orders").received, 100);
    assert_eq!(c.node(2).pubsub().topic_stats("orders").received, 0);
    let after: u64 = Channel::ALL
        .iter()
        .map(|&ch| c.node(2).raw().stats().received_messages(ch))
        .sum();
    // Node 2 sees only cluster upkeep (registry digests), nowhere near 100.
    assert!(
        after - before < 20,
        "node 2 received {} frames",
        after - before
    );

    // Dropping the last subscription withdraws the interest.
    sub.unsubscribe();
    interest(c.node(0), "orders", 0).await;
    let p = c
        .node(0)
        .pubsub()
        .broadcast("orders", 7u32)
        .await
        .expect("broadcast");
    assert_eq!(p.nodes, 0);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_one_publisher_arrive_in_order_on_each_channel() {
    let mut c = Cluster::start_with(2, |b, _| b.set("pubsub.buffer", "32768"))
        .await
        .expect("cluster");
    let mut events = c
        .node(1)
        .pubsub()
        .subscribe::<(u32, Bytes)>("seq")
        .expect("sub");
    let mut data = c
        .node(1)
        .pubsub()
        .subscribe::<(u32, Bytes)>("seq.data")
        .expect("sub");
    interest(c.node(0), "seq", 1).await;
    interest(c.node(0), "seq.data", 1).await;
    const N: u32 = 10_000;
    let ps = c.node(0).pubsub();
    for i in 0..N {
        ps.broadcast("seq", (i, Bytes::from_static(b"x")))
            .await
            .expect("events");
        if i % 10 == 0 {
            // Above the 10 KiB threshold: the data channel.
            ps.broadcast("seq.data", (i, Bytes::from(vec![1u8; 12 * 1024])))
                .await
                .expect("data");
        }
    }
    for i in 0..N {
        assert_eq!(next(&mut events).await.0, i, "events out of order");
    }
    for i in (0..N).step_by(10) {
        assert_eq!(next(&mut data).await.0, i, "data out of order");
    }
    assert_eq!((events.dropped(), data.dropped()), (0, 0));
    let stats = c.node(1).raw().stats().clone();
    // The large ones took the data channel (batched, compressed).
    assert!(stats.received_messages(Channel::Data) > 0);
    // Batching: far fewer event frames than messages.
    assert!(stats.received_messages(Channel::Events) < u64::from(N));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_keeps_only_its_buffer() {
    let mut c = Cluster::start_with(2, |b, _| b.set("pubsub.buffer", "16"))
        .await
        .expect("cluster");
    let mut slow = c.node(1).pubsub().subscribe::<u32>("ticks").expect("sub");
    interest(c.node(0), "ticks", 1).await;
    const N: u32 = 10_000;
    for i in 0..N {
        c.node(0)
            .pubsub()
            .broadcast("ticks", i)
            .await
            .expect("broadcast");
    }
    assert_eventually(T, "every tick reached node 1", || {
        c.node(1).pubsub().topic_stats("ticks").received == u64::from(N)
    })
    .await;
    assert_eq!(slow.lag(), 16);
    assert_eq!(slow.dropped(), u64::from(N - 16));
    // The oldest were dropped: what is left is the newest 16, in order.
    let left: Vec<u32> = std::iter::from_fn(|| slow.try_recv().map(|m| *m)).collect();
    assert_eq!(left, (N - 16..N).collect::<Vec<_>>());
    assert_eq!(slow.dropped(), u64::from(N - 16));
    assert_eq!(
        c.node(1).pubsub().topic_stats("ticks").dropped,
        u64::from(N - 16)
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_is_used_only_between_nodes_that_both_offer_it() {
    let mut c = Cluster::start_with(3, |b, i| {
        b.set("channels.compression", if i == 2 { "off" } else { "lz4" })
    })
    .await
    .expect("cluster");
    let mut subs: Vec<_> = [1, 2]
        .iter()
        .map(|&i| c.node(i).pubsub().subscribe::<Bytes>("blobs").expect("sub"))
        .collect();
    interest(c.node(0), "blobs", 2).await;
    let blob = Bytes::from(b"compressible ".repeat(80_000)); // ~1 MiB
    c.node(0)
        .pubsub()
        .broadcast("blobs", blob.clone())
        .await
        .expect("broadcast");
    for s in &mut subs {
        assert_eq!(*next(s).await, blob);
    }
    let on_wire = |i: usize| c.node(i).raw().stats().received_bytes(Channel::Data);
    assert!(
        on_wire(1) < blob.len() as u64 / 10,
        "lz4 peer got {} bytes",
        on_wire(1)
    );
    assert!(
        on_wire(2) > blob.len() as u64,
        "plain peer got {} bytes",
        on_wire(2)
    );
    c.shutdown().await;
}

/// Raw bytes go out without being serialized (a short item header, then
/// the message itself) and come back as a slice of the frame; subscribers
/// of another type with the same encoding (`Vec<u8>`) still read them, on
/// the publishing node and on the others, large or batched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_messages_cross_uncopied_and_other_types_still_read_them() {
    let mut c = Cluster::start_with(2, |b, _| b.set("channels.compression", "off"))
        .await
        .expect("cluster");
    let raw = |i: usize| c.node(i).pubsub().subscribe::<Bytes>("raw").expect("sub");
    let vec = |i: usize| c.node(i).pubsub().subscribe::<Vec<u8>>("raw").expect("sub");
    let (mut raw0, mut raw1, mut vec0, mut vec1) = (raw(0), raw(1), vec(0), vec(1));
    interest(c.node(0), "raw", 1).await;
    let large = Bytes::from(foundation_proto::frame::noise(300_000));
    let small: Vec<Bytes> = (0..20u8).map(|i| Bytes::from(vec![i; 100])).collect();
    let sent: Vec<Bytes> = std::iter::once(large).chain(small).collect();
    for m in &sent {
        let p = c
            .node(0)
            .pubsub()
            .broadcast_with("raw", m.clone(), Publish::on(Channel::Data))
            .await
            .expect("broadcast");
        assert_eq!((p.local, p.nodes), (2, 1));
    }
    for m in &sent {
        assert_eq!(*next(&mut raw0).await, *m);
        assert_eq!(*next(&mut raw1).await, *m);
        assert_eq!(next(&mut vec0).await.as_slice(), &m[..]);
        assert_eq!(next(&mut vec1).await.as_slice(), &m[..]);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_message_does_not_hold_the_data_channel() {
    let mut c = Cluster::start_with(2, |b, _| {
        b.set("transport.max_frame_size", &(128u32 << 20).to_string())
    })
    .await
    .expect("cluster");
    let big_topic = "big";
    let small_topic = (0..)
        .map(|i| format!("small-{i}"))
        .find(|t| lane_of(t) != lane_of(big_topic))
        .expect("a topic on another lane");
    let mut big = c
        .node(1)
        .pubsub()
        .subscribe::<Bytes>(big_topic)
        .expect("sub");
    let mut small = c
        .node(1)
        .pubsub()
        .subscribe::<u32>(&small_topic)
        .expect("sub");
    interest(c.node(0), big_topic, 1).await;
    interest(c.node(0), &small_topic, 1).await;

    // Incompressible: LZ4 looks back 64 KiB, the block repeats every MiB.
    let block: Vec<u8> = {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let payload = Bytes::from(block.repeat(100));
    let ps = c.node(0).pubsub();
    let start = Instant::now();
    let sender = {
        let ps = ps.clone();
        let payload = payload.clone();
        tokio::spawn(async move {
            ps.broadcast_with(big_topic, payload, Publish::on(Channel::Data))
                .await
        })
    };
    // Once the big message is queued for node 1, a small one on another lane.
    assert_eventually(T, "the big message queued", || {
        ps.topic_stats(big_topic).sent == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    ps.broadcast_with(&small_topic, 1u32, Publish::on(Channel::Data))
        .await
        .expect("small");
    let small_at = {
        assert_eq!(*next(&mut small).await, 1);
        start.elapsed()
    };
    assert!(
        big.try_recv().is_none(),
        "the small message waited for the 100 MiB one ({small_at:?})"
    );
    let got = tokio::time::timeout(Duration::from_secs(60), big.recv())
        .await
        .expect("the big message in time")
        .expect("open");
    assert_eq!(got.len(), payload.len());
    assert!(*got == payload);
    assert!(sender.await.expect("task").is_ok());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_pubsub_frames_are_rejected_without_harm() {
    let mut c = Cluster::start(2).await.expect("cluster");
    let mut sub = c.node(0).pubsub().subscribe::<String>("t").expect("sub");
    interest(c.node(1), "t", 1).await;
    let to = c.node(0).id();
    let kind = *foundation_proto::kinds::PUBSUB.start();
    for junk in [
        &b"\xff\xff\xff\xff\xff"[..],
        &b"\x00\x00"[..],
        &[7u8; 300][..],
    ] {
        c.node(1)
            .send(to, Channel::Events, kind, Bytes::copy_from_slice(junk))
            .await
            .expect("sent");
    }
    assert_eventually(T, "3 frames rejected", || {
        c.node(0).pubsub().rejected_frames() == 3
    })
    .await;
    // A message of the wrong type is not delivered, and nothing breaks.
    c.node(1)
        .pubsub()
        .broadcast("t", 12345u64)
        .await
        .expect("wrong type");
    c.node(1)
        .pubsub()
        .broadcast("t", "still fine".to_owned())
        .await
        .expect("broadcast");
    assert_eq!(*next(&mut sub).await, "still fine");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messaging_sends_to_a_service_a_name_or_a_topic() {
    let mut c = Cluster::start(2).await.expect("cluster");
    let counter = c
        .node(0)
        .services()
        .spawn(Counter::new, ServiceOptions::default());
    c.node(0)
        .registry()
        .register_sync("counter", &counter, T)
        .await
        .expect("register");
    let m = c.node(1).messaging();
    let remote = c
        .node(1)
        .registry()
        .lookup::<Counter>("counter")
        .expect("typed")
        .expect("found");
    m.send(&remote, 2).await.expect("to a service ref");
    m.send(&Name::<Counter>::new("counter"), 3)
        .await
        .expect("to a name");
    assert_eq!(remote.call(0, T).await.expect("call").total, 5);

    let err = m
        .send(&Name::<Counter>::new("nobody"), 1)
        .await
        .expect_err("not registered");
    assert!(matches!(err, MessagingError::NotRegistered { .. }));
    assert!(err.to_string().contains("name \"nobody\""), "{err}");

    let mut sub = c.node(0).pubsub().subscribe::<u64>("totals").expect("sub");
    interest(c.node(1), "totals", 1).await;
    let p = m
        .send(&Topic::<u64>::new("totals"), 9)
        .await
        .expect("to a topic");
    assert_eq!(p.nodes, 1);
    assert_eq!(*next(&mut sub).await, 9);
    let err = m
        .send(&Topic::<u64>::new(""), 9)
        .await
        .expect_err("empty topic");
    assert!(err.to_string().contains("topic \"\""), "{err}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_sends_what_was_broadcast_before_it() {
    // The flush is bounded (2 s by default); a loaded test machine may
    // need longer for 5 MB, and the bound is not what this test is about.
    let mut c = Cluster::start_with(2, |b, _| {
        b.set("pubsub.buffer", "8192")
            .set("pubsub.shutdown_flush_ms", "30000")
    })
    .await
    .expect("cluster");
    let mut sub = c
        .node(1)
        .pubsub()
        .subscribe::<(u32, Bytes)>("last words")
        .expect("sub");
    interest(c.node(0), "last words", 1).await;
    const N: u32 = 5_000;
    for i in 0..N {
        c.node(0)
            .pubsub()
            .broadcast("last words", (i, Bytes::from(vec![0u8; 1000])))
            .await
            .expect("broadcast");
    }
    c.stop(0).await;
    for i in 0..N {
        assert_eq!(next(&mut sub).await.0, i);
    }
    assert_eq!(sub.dropped(), 0);
    c.shutdown().await;
}

/// A message queued for a live peer that cannot be reached (its QUIC
/// endpoint refuses connections while membership still sees it alive) is
/// counted as dropped on its topic, not lost silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_for_an_unreachable_peer_are_counted_as_dropped() {
    let c = Cluster::start(2).await.expect("cluster");
    let (a, b) = (c.node(0), c.node(1));
    let _sub = b.pubsub().subscribe::<u32>("lost").expect("subscribe");
    interest(a, "lost", 1).await;
    // B stops accepting connections; A's connection to it goes.
    b.raw().endpoint().set_server_config(None);
    a.raw().transport().forget(b.transport_addr());
    let sent: u32 = 20;
    for i in 0..sent {
        let p = a.pubsub().broadcast("lost", i).await.expect("broadcast");
        assert_eq!(p.nodes, 1, "queued for B, which membership still lists");
    }
    assert_eventually(T, "every message counted as dropped", || {
        a.pubsub().topic_stats("lost").dropped == u64::from(sent)
    })
    .await;
    let stats = a.pubsub().topic_stats("lost");
    assert_eq!(stats.sent, u64::from(sent), "{stats:?}");
}
