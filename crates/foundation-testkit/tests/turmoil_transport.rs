//! The real transport (quinn, mutual TLS, frames, channels) of ten nodes
//! under turmoil: simulated time, seeded latency and loss, a partition.
//! Every node sends numbered messages to every other; each receiver checks
//! what arrived, per sender.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use foundation::security::TlsIdentity;
use foundation::telemetry::Stats;
use foundation::transport::{Transport, TransportSettings};
use foundation::{Channel, InboxFilter, NodeId};
use foundation_testkit::turmoil_udp::TurmoilUdp;

const NODES: usize = 10;
const PORT: u16 = 7947;
const KIND: u16 = 42;

fn settings() -> TransportSettings {
    TransportSettings {
        compression: true,
        compress_above: 16 * 1024,
        single_stream: false,
        bind: SocketAddr::from(([0, 0, 0, 0], PORT)),
        max_frame_size: 1 << 20,
        stream_window: 256 * 1024,
        idle_timeout: Duration::from_secs(10),
        keep_alive: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(3),
        reconnect_min: Duration::from_millis(100),
        reconnect_max: Duration::from_secs(1),
        inbox_capacity: 1024,
        faults: Default::default(),
    }
}

/// Per receiver, per sender: the sequence numbers in arrival order.
type Arrivals = Arc<Mutex<BTreeMap<usize, BTreeMap<u64, Vec<u64>>>>>;

/// What a run showed.
#[derive(Debug, PartialEq)]
struct Run {
    arrivals: BTreeMap<usize, BTreeMap<u64, Vec<u64>>>,
    /// Simulated time until every node had everything.
    done_at: Duration,
}

fn name(i: usize) -> String {
    format!("n{i}")
}

/// A scenario.
#[derive(Clone, Copy)]
struct Case {
    seed: u64,
    /// Messages each node sends each other node.
    per_peer: u64,
    /// turmoil's per-datagram failure rate.
    loss: f64,
    /// Nodes 0–4 and 5–9 cut apart from 1 s to 4 s of simulated time.
    partition: bool,
    /// When the senders start (simulated).
    start: Duration,
    /// Stop observing then, complete or not (simulated).
    limit: Duration,
}

impl Case {
    fn new(seed: u64, per_peer: u64, loss: f64) -> Case {
        Case {
            seed,
            per_peer,
            loss,
            partition: false,
            start: Duration::ZERO,
            limit: Duration::from_secs(100),
        }
    }
}

/// Ten nodes; each sends `per_peer` numbered messages to every other on
/// the events channel, from `start`.
fn run(case: Case) -> Run {
    let Case {
        seed,
        per_peer,
        loss,
        partition,
        start,
        limit,
    } = case;
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(120))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(20))
        .fail_rate(loss)
        .repair_rate(1.0)
        .build();
    let arrivals: Arrivals = Arc::default();
    for i in 0..NODES {
        let arrivals = arrivals.clone();
        sim.host(name(i), move || {
            let arrivals = arrivals.clone();
            async move {
                let tls = TlsIdentity::from_secret(b"turmoil-secret", "turmoil", "foundation.node")
                    .map_err(|e| e.to_string())?;
                let socket = TurmoilUdp::bind(SocketAddr::from(([0, 0, 0, 0], PORT))).await?;
                let mut rng = [0u8; 32];
                rng[..8].copy_from_slice(&seed.to_le_bytes());
                rng[8] = i as u8;
                let transport = Transport::with_socket(
                    settings(),
                    &tls,
                    NodeId(i as u64 + 1),
                    Arc::new(Stats::default()),
                    socket,
                    Arc::new(quinn::TokioRuntime),
                    Some(rng),
                )
                .map_err(|e| e.to_string())?;
                let mut inbox = transport.subscribe(InboxFilter::channel(Channel::Events));
                let sender = transport.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(start).await;
                    for j in (0..NODES).filter(|j| *j != i) {
                        let to = SocketAddr::new(turmoil::lookup(name(j)), PORT);
                        for seq in 1..=per_peer {
                            // At most once: a send that fails (the peer
                            // unreachable) is retried until it is handed
                            // to QUIC; what QUIC has, it delivers in order.
                            while sender
                                .send(
                                    to,
                                    Channel::Events,
                                    KIND,
                                    vec![],
                                    Bytes::copy_from_slice(&seq.to_le_bytes()),
                                )
                                .await
                                .is_err()
                            {
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                        }
                    }
                });
                while let Some(m) = inbox.recv().await {
                    let seq = u64::from_le_bytes(m.payload[..8].try_into().unwrap_or_default());
                    arrivals
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(i)
                        .or_default()
                        .entry(m.from.0)
                        .or_default()
                        .push(seq);
                }
                Ok(())
            }
        });
    }
    let watch = arrivals.clone();
    let done_at = Arc::new(Mutex::new(Duration::ZERO));
    let done = done_at.clone();
    sim.client("observer", async move {
        let all = |a: &BTreeMap<usize, BTreeMap<u64, Vec<u64>>>| {
            a.len() == NODES
                && a.values().all(|from| {
                    from.len() == NODES - 1
                        && from.values().all(|seqs| seqs.len() as u64 >= per_peer)
                })
        };
        let halves = || (0..5).flat_map(|a| (5..10).map(move |b| (name(a), name(b))));
        let (mut cut, mut healed) = (!partition, !partition);
        loop {
            let elapsed = turmoil::elapsed();
            if !cut && elapsed >= Duration::from_secs(1) {
                halves().for_each(|(a, b)| turmoil::partition(a, b));
                cut = true;
            }
            if !healed && elapsed >= Duration::from_secs(4) {
                halves().for_each(|(a, b)| turmoil::repair(a, b));
                healed = true;
            }
            if elapsed >= limit || all(&watch.lock().unwrap_or_else(|e| e.into_inner())) {
                *done.lock().unwrap_or_else(|e| e.into_inner()) = elapsed;
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    if let Err(e) = sim.run() {
        let got = arrivals.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let counts: BTreeMap<usize, BTreeMap<u64, usize>> = got
            .iter()
            .map(|(r, from)| (*r, from.iter().map(|(s, v)| (*s, v.len())).collect()))
            .collect();
        panic!("seed {seed}: {e}; messages per receiver, per sender: {counts:?}");
    }
    let arrivals = arrivals.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let done_at = *done_at.lock().unwrap_or_else(|e| e.into_inner());
    Run { arrivals, done_at }
}

/// Every sender's messages arrived exactly once each, in order.
fn assert_complete_in_order(r: &Run, per_peer: u64) {
    let want: Vec<u64> = (1..=per_peer).collect();
    assert_eq!(r.arrivals.len(), NODES, "every node received");
    for (receiver, from) in &r.arrivals {
        assert_eq!(
            from.len(),
            NODES - 1,
            "receiver {receiver}: senders {from:?}"
        );
        for (sender, seqs) in from {
            assert_eq!(
                seqs, &want,
                "receiver {receiver} from node {sender}: not 1..={per_peer} in order"
            );
        }
    }
}

#[test]
fn ten_nodes_under_five_and_ten_percent_loss_get_every_message_in_order() {
    let per_peer = 30;
    for loss in [0.05, 0.10] {
        for seed in 0..3 {
            let r = run(Case::new(seed, per_peer, loss));
            assert_complete_in_order(&r, per_peer);
            eprintln!(
                "{:.0}% loss, seed {seed}: {} messages complete and in order after {:?} simulated",
                loss * 100.0,
                NODES * (NODES - 1) * per_peer as usize,
                r.done_at
            );
        }
    }
}

#[test]
fn a_partition_between_halves_delays_but_loses_nothing_once_repaired() {
    let per_peer = 20;
    let mut case = Case::new(7, per_peer, 0.0);
    case.partition = true;
    case.start = Duration::from_millis(1500);
    let r = run(case);
    assert_complete_in_order(&r, per_peer);
    assert!(
        r.done_at >= Duration::from_secs(4),
        "everything arrived before the repair at 4 s: {:?}",
        r.done_at
    );
    eprintln!(
        "partition 1 s to 4 s, sending from 1.5 s: complete and in order after {:?} simulated",
        r.done_at
    );
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let a = run(Case::new(3, 10, 0.05));
    let b = run(Case::new(3, 10, 0.05));
    assert_eq!(a.done_at, b.done_at);
    assert_eq!(a.arrivals, b.arrivals);
}
