//! Two nodes in one process: control round trips idle and under 1 MiB data load.
//!
//! Default layout: each node runs on its own single-threaded tokio runtime
//! in its own OS thread, as two hosts would (one core each on a 2-core
//! machine). `--layout shared` runs both on one multi-threaded runtime.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use foundation::{Channel, Inbox, Node, NodeBuilder, NodeId};
use serde::Serialize;
use tokio::sync::oneshot;

use super::stats::{row, summarize, Summary};
use crate::table;

/// Kind of a control ping (answered with [`PONG`]).
pub(crate) const PING: u16 = 1;
/// Kind of a pong.
pub(crate) const PONG: u16 = 2;
const BULK: u16 = 3;

/// Where the two nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Layout {
    /// Each node on its own single-threaded runtime and OS thread.
    #[default]
    PerNode,
    /// Both nodes on one multi-threaded runtime.
    Shared,
}

/// Control round trip idle and under data load, and data MB/s.
#[derive(Debug, Clone, Args)]
pub(crate) struct TransportBench {
    /// Seconds of data load.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Control round trips measured while idle.
    #[arg(long, default_value_t = 2000)]
    idle_pings: usize,
    /// Size of each data message in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    message_size: usize,
    /// Runtime layout.
    #[arg(long, value_enum, default_value_t)]
    layout: Layout,
    /// Each QUIC stream's receive window in bytes (`transport.stream_window`;
    /// default: the node's default).
    #[arg(long)]
    stream_window: Option<u32>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    idle_rtt_us: Summary,
    loaded_rtt_us: Summary,
    data_mb_s: f64,
    data_messages: u64,
    message_size: usize,
    /// `--stream-window`, or null for the node's default.
    stream_window: Option<u32>,
    duration_s: f64,
    layout: Layout,
}

async fn bench_node(
    name: &str,
    seed: Option<SocketAddr>,
    stream_window: Option<u32>,
) -> anyhow::Result<Node> {
    let keys: Vec<_> = stream_window_key(stream_window).into_iter().collect();
    bench_node_with(name, seed, &keys).await
}

/// The `--stream-window` of a bench as a node setting (none: the default).
pub(crate) fn stream_window_key(window: Option<u32>) -> Option<(&'static str, String)> {
    window.map(|w| ("transport.stream_window", w.to_string()))
}

/// A node on loopback with the bench secret, seeded by `seed`, with
/// extra configuration `keys`.
pub(crate) async fn bench_node_with(
    name: &str,
    seed: Option<SocketAddr>,
    keys: &[(&str, impl AsRef<str>)],
) -> anyhow::Result<Node> {
    let mut b = NodeBuilder::isolated()
        .cluster("static")
        .name(name)
        .secret("foundation-bench-secret-0123456789")
        .bind(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .port(0);
    if let Some(seed) = seed {
        b = b.seeds([seed.to_string()]);
    }
    for (k, v) in keys {
        b = b.set(k, v.as_ref());
    }
    b.start().await.context("bench node did not start")
}

/// Answers every control ping with a pong carrying its payload.
pub(crate) async fn answer_pings(node: &Node, mut control: Inbox) {
    while let Some(msg) = control.recv().await {
        if msg.kind == PING {
            let _ = node
                .send(msg.from, Channel::Control, PONG, msg.payload)
                .await;
        }
    }
}

/// Node B: answers pings, swallows bulk data, until `stop`.
async fn run_b(
    stream_window: Option<u32>,
    ready: oneshot::Sender<(SocketAddr, NodeId)>,
    stop: oneshot::Receiver<()>,
    received: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let b = bench_node("bench-b", None, stream_window).await?;
    let control = b.inbox(Channel::Control);
    let mut data = b.inbox(Channel::Data);
    let _ = ready.send((b.membership_addr(), b.id()));
    let responder = answer_pings(&b, control);
    let sink = async move {
        while let Some(msg) = data.recv().await {
            received.fetch_add(msg.payload.len() as u64, Ordering::Relaxed);
        }
    };
    tokio::select! {
        _ = stop => {}
        _ = responder => {}
        _ = sink => {}
    }
    b.shutdown().await;
    Ok(())
}

/// Node A: measures.
async fn run_a(
    cfg: TransportBench,
    seed: SocketAddr,
    b_id: NodeId,
    received: Arc<AtomicU64>,
) -> anyhow::Result<Report> {
    let a = bench_node("bench-a", Some(seed), cfg.stream_window).await?;
    a.wait_for_members(2, Duration::from_secs(10))
        .await
        .map_err(|m| anyhow!("nodes did not see each other: {m:?}"))?;
    let mut pongs = a.inbox(Channel::Control);
    let round_trip = |a: Node| async move {
        let start = Instant::now();
        a.send(b_id, Channel::Control, PING, Bytes::from_static(b"ping"))
            .await?;
        anyhow::Ok(start)
    };
    for _ in 0..50 {
        round_trip(a.clone()).await?;
        pongs.recv().await.context("pong")?;
    }
    let mut idle = Vec::with_capacity(cfg.idle_pings);
    for _ in 0..cfg.idle_pings {
        let start = round_trip(a.clone()).await?;
        pongs.recv().await.context("pong")?;
        idle.push(start.elapsed().as_secs_f64() * 1e6);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flooder = {
        let (a, stop, sent) = (a.clone(), stop.clone(), sent.clone());
        let payload = Bytes::from(super::noise(cfg.message_size));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if a.send(b_id, Channel::Data, BULK, payload.clone())
                    .await
                    .is_ok()
                {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    // Let the data channel fill before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = received.load(Ordering::Relaxed);
    let sent_before = sent.load(Ordering::Relaxed);
    let window = Instant::now();
    let until = window + Duration::from_secs(cfg.duration);
    let mut loaded = Vec::new();
    while Instant::now() < until {
        let start = round_trip(a.clone()).await?;
        pongs.recv().await.context("pong")?;
        loaded.push(start.elapsed().as_secs_f64() * 1e6);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = window.elapsed().as_secs_f64();
    let bytes = received.load(Ordering::Relaxed) - before;
    let messages = sent.load(Ordering::Relaxed) - sent_before;
    stop.store(true, Ordering::Relaxed);
    let _ = flooder.await;
    a.shutdown().await;
    Ok(Report {
        idle_rtt_us: summarize(idle),
        loaded_rtt_us: summarize(loaded),
        data_mb_s: bytes as f64 / elapsed / 1e6,
        data_messages: messages,
        message_size: cfg.message_size,
        stream_window: cfg.stream_window,
        duration_s: elapsed,
        layout: cfg.layout,
    })
}

pub(crate) fn on_own_runtime<T: Send + 'static>(
    name: &str,
    fut: impl std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
) -> std::thread::JoinHandle<anyhow::Result<T>> {
    let name = name.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .with_context(|| format!("runtime for {name}"))?;
        rt.block_on(fut)
    })
}

impl TransportBench {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        crate::logging::init(crate::logging::LogFormat::Text, "warn");
        let received = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let report = match self.layout {
            Layout::PerNode => {
                let b = on_own_runtime(
                    "bench-b",
                    run_b(self.stream_window, ready_tx, stop_rx, received.clone()),
                );
                let (seed, b_id) = ready_rx.await.context("node b did not start")?;
                let a = on_own_runtime("bench-a", run_a(self.clone(), seed, b_id, received));
                let report = tokio::task::spawn_blocking(move || a.join())
                    .await?
                    .map_err(|_| anyhow!("node a panicked"))?;
                let _ = stop_tx.send(());
                let _ = tokio::task::spawn_blocking(move || b.join()).await?;
                report?
            }
            Layout::Shared => {
                let b = tokio::spawn(run_b(
                    self.stream_window,
                    ready_tx,
                    stop_rx,
                    received.clone(),
                ));
                let (seed, b_id) = ready_rx.await.context("node b did not start")?;
                let report = run_a(self.clone(), seed, b_id, received).await;
                let _ = stop_tx.send(());
                let _ = b.await;
                report?
            }
        };
        super::emit(self.json, &report, print_table)
    }
}

fn print_table(r: &Report) {
    let layout = match r.layout {
        Layout::PerNode => "each node on its own single-threaded runtime",
        Layout::Shared => "both nodes on one multi-threaded runtime",
    };
    println!(
        "foundation bench transport: two nodes in one process, QUIC over loopback, {layout}\n"
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
                row("idle", &r.idle_rtt_us),
                row(
                    &format!("under {} KiB data load", r.message_size / 1024),
                    &r.loaded_rtt_us
                ),
            ],
        )
    );
    println!(
        "\ndata channel: {:.1} MB/s ({} messages of {} bytes in {:.1} s)",
        r.data_mb_s, r.data_messages, r.message_size, r.duration_s
    );
}
