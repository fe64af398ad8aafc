//! Head-of-line blocking: control round trips while two publishers keep
//! the data channel saturated with 1 MiB messages, then the same with every
//! channel forced onto one QUIC stream (`channels.single_stream`).
//!
//! Two nodes in this process, each on its own single-threaded runtime and
//! OS thread (one core each on a 2-core machine), QUIC over loopback.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use bytes::Bytes;
use clap::Args;
use foundation::pubsub::{lane_of, Publish};
use foundation::{Channel, Inbox, Node, NodeId};
use serde::Serialize;
use tokio::sync::oneshot;

use super::stats::{row, summarize, Summary};
use super::transport::{answer_pings, bench_node_with, on_own_runtime, stream_window_key, PING};
use crate::table;

/// Control round trips under a saturated data channel, with and without
/// separate streams.
#[derive(Debug, Clone, Args)]
pub(crate) struct HolBench {
    /// Seconds of data load per run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Size of each data message in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    message_size: usize,
    /// Size of each control ping in bytes.
    #[arg(long, default_value_t = 1024)]
    ping_size: usize,
    /// Each QUIC stream's receive window in bytes (`transport.stream_window`;
    /// default: the node's default).
    #[arg(long)]
    stream_window: Option<u32>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Run {
    idle_rtt_us: Summary,
    loaded_rtt_us: Summary,
    data_mb_s: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    idle_rtt_us: Summary,
    loaded_rtt_us: Summary,
    data_mb_s: f64,
    single_stream_idle_rtt_us: Summary,
    single_stream_loaded_rtt_us: Summary,
    single_stream_data_mb_s: f64,
    message_size: usize,
    /// `--stream-window`, or null for the node's default.
    stream_window: Option<u32>,
    ping_size: usize,
    duration_s: u64,
}

/// Two topics on different data lanes: the two publishers.
fn topics() -> [String; 2] {
    let a = "hol.a".to_owned();
    let b = (0..)
        .map(|i| format!("hol.b{i}"))
        .find(|t| lane_of(t) != lane_of(&a))
        .unwrap_or_else(|| "hol.b".into());
    [a, b]
}

fn keys(single_stream: bool, stream_window: Option<u32>) -> Vec<(&'static str, String)> {
    let mut keys = vec![
        ("channels.single_stream", single_stream.to_string()),
        // Random payloads: compression would only cost CPU.
        ("channels.compression", "off".to_owned()),
        ("pubsub.buffer", "64".to_owned()),
    ];
    keys.extend(stream_window_key(stream_window));
    keys
}

/// Node B: answers pings, reads both topics, until `stop`.
async fn run_b(
    keys: Vec<(&'static str, String)>,
    ready: oneshot::Sender<(SocketAddr, NodeId)>,
    stop: oneshot::Receiver<()>,
    received: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let b = bench_node_with("hol-b", None, &keys).await?;
    let control = b.inbox(Channel::Control);
    let [ta, tb] = topics();
    let mut subs = Vec::new();
    for t in [&ta, &tb] {
        subs.push(b.pubsub().subscribe::<Bytes>(t)?);
    }
    let _ = ready.send((b.membership_addr(), b.id()));
    let responder = answer_pings(&b, control);
    let sink = |mut s: foundation::Subscription<Bytes>| {
        let received = received.clone();
        async move {
            while let Some(m) = s.recv().await {
                received.fetch_add(m.len() as u64, Ordering::Relaxed);
            }
        }
    };
    let sb = subs.pop().context("subscription")?;
    let sa = subs.pop().context("subscription")?;
    let sinks = async { tokio::join!(sink(sa), sink(sb)) };
    tokio::select! {
        _ = stop => {}
        _ = responder => {}
        _ = sinks => {}
    }
    b.shutdown().await;
    Ok(())
}

/// Node A: publishes and measures.
async fn run_a(
    cfg: HolBench,
    single_stream: bool,
    seed: SocketAddr,
    b_id: NodeId,
    received: Arc<AtomicU64>,
) -> anyhow::Result<Run> {
    let a = bench_node_with("hol-a", Some(seed), &keys(single_stream, cfg.stream_window)).await?;
    a.wait_for_members(2, Duration::from_secs(10))
        .await
        .map_err(|m| anyhow!("nodes did not see each other: {m:?}"))?;
    let topics = topics();
    let deadline = Instant::now() + Duration::from_secs(10);
    while topics
        .iter()
        .any(|t| a.pubsub().interested_nodes(t).is_empty())
    {
        if Instant::now() > deadline {
            return Err(anyhow!("node b's subscriptions did not arrive"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut pongs = a.inbox(Channel::Control);
    let ping = Bytes::from(vec![0x5Au8; cfg.ping_size]);
    round_trips(&a, b_id, &ping, &mut pongs, 50).await?;
    let idle = round_trips(&a, b_id, &ping, &mut pongs, 500).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let payload = Bytes::from(super::noise(cfg.message_size));
    let publishers: Vec<_> = topics
        .iter()
        .map(|t| {
            let (ps, stop, payload, t) = (a.pubsub(), stop.clone(), payload.clone(), t.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let _ = ps
                        .broadcast_with(&t, payload.clone(), Publish::on(Channel::Data))
                        .await;
                }
            })
        })
        .collect();
    // Let the data channel fill before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = received.load(Ordering::Relaxed);
    let window = Instant::now();
    let until = window + Duration::from_secs(cfg.duration);
    let mut loaded = Vec::new();
    while Instant::now() < until {
        loaded.extend(round_trips(&a, b_id, &ping, &mut pongs, 1).await?);
    }
    let elapsed = window.elapsed().as_secs_f64();
    let bytes = received.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    for p in publishers {
        let _ = p.await;
    }
    a.shutdown().await;
    Ok(Run {
        idle_rtt_us: summarize(idle),
        loaded_rtt_us: summarize(loaded),
        data_mb_s: bytes as f64 / elapsed / 1e6,
    })
}

/// `n` control round trips, 1 ms apart, in microseconds.
async fn round_trips(
    a: &Node,
    b_id: NodeId,
    ping: &Bytes,
    pongs: &mut Inbox,
    n: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        a.send(b_id, Channel::Control, PING, ping.clone()).await?;
        pongs.recv().await.context("pong")?;
        out.push(start.elapsed().as_secs_f64() * 1e6);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(out)
}

impl HolBench {
    async fn run_one(&self, single_stream: bool) -> anyhow::Result<Run> {
        let received = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let b = on_own_runtime(
            "hol-b",
            run_b(
                keys(single_stream, self.stream_window),
                ready_tx,
                stop_rx,
                received.clone(),
            ),
        );
        let (seed, b_id) = ready_rx.await.context("node b did not start")?;
        let a = on_own_runtime(
            "hol-a",
            run_a(self.clone(), single_stream, seed, b_id, received),
        );
        let run = tokio::task::spawn_blocking(move || a.join())
            .await?
            .map_err(|_| anyhow!("node a panicked"))?;
        let _ = stop_tx.send(());
        let _ = tokio::task::spawn_blocking(move || b.join()).await?;
        run
    }

    pub(crate) async fn run(self) -> anyhow::Result<()> {
        crate::logging::init(crate::logging::LogFormat::Text, "warn");
        let split = self.run_one(false).await?;
        let single = self.run_one(true).await?;
        let report = Report {
            idle_rtt_us: split.idle_rtt_us,
            loaded_rtt_us: split.loaded_rtt_us,
            data_mb_s: split.data_mb_s,
            single_stream_idle_rtt_us: single.idle_rtt_us,
            single_stream_loaded_rtt_us: single.loaded_rtt_us,
            single_stream_data_mb_s: single.data_mb_s,
            message_size: self.message_size,
            stream_window: self.stream_window,
            ping_size: self.ping_size,
            duration_s: self.duration,
        };
        super::emit(self.json, &report, print_table)
    }
}

fn print_table(r: &Report) {
    println!(
        "foundation bench hol: two nodes, two publishers of {} KiB messages on the data channel, {} B control pings\n",
        r.message_size / 1024,
        r.ping_size
    );
    print!(
        "{}",
        table::render(
            &[
                "CONTROL ROUND TRIP",
                "P50 µs",
                "P99 µs",
                "MAX µs",
                "SAMPLES"
            ],
            &[
                row("idle, channel streams", &r.idle_rtt_us),
                row("loaded, channel streams", &r.loaded_rtt_us),
                row("idle, single stream", &r.single_stream_idle_rtt_us),
                row("loaded, single stream", &r.single_stream_loaded_rtt_us),
            ],
        )
    );
    println!(
        "\ndata delivered: {:.1} MB/s with channel streams, {:.1} MB/s on a single stream ({} s each)",
        r.data_mb_s, r.single_stream_data_mb_s, r.duration_s
    );
}
