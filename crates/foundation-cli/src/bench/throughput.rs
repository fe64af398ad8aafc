//! Pub/sub throughput of 100-byte messages: one way between two nodes on
//! each channel, then fan-out from one publisher to subscribers on two
//! other nodes.
//!
//! Each node runs on its own single-threaded runtime and OS thread. Every
//! message carries its send time; the one-way latency of every 1,000th
//! message under load is compared with that of lone messages, which shows
//! what batching costs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use bytes::Bytes;
use clap::Args;
use foundation::pubsub::Publish;
use foundation::{Channel, Node};
use serde::Serialize;
use tokio::sync::{oneshot, watch};

use super::stats::{row, summarize, Summary};
use super::transport::{bench_node_with, on_own_runtime};
use crate::table;

/// Serialized size of each message: 8-byte sequence, 8-byte send time,
/// padding; postcard adds one length byte to 99 bytes.
const BODY: usize = 99;
const TOPIC: &str = "bench.throughput";
/// Every this many messages, one latency sample.
const SAMPLE_EVERY: u64 = 1000;

/// Messages per second between nodes.
#[derive(Debug, Clone, Args)]
pub(crate) struct ThroughputBench {
    /// Seconds of publishing per run.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Upper bound on messages per run.
    #[arg(long, default_value_t = 50_000_000)]
    max_messages: u64,
    /// Messages per second of the paced latency run.
    #[arg(long, default_value_t = 200_000)]
    paced_rate: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Serialize)]
struct Run {
    channel: Channel,
    subscribers: usize,
    published: u64,
    delivered: u64,
    dropped: u64,
    msgs_per_s: f64,
    mb_s: f64,
    latency_us: Summary,
}

#[derive(Debug, Serialize)]
struct Report {
    message_size: usize,
    /// Events channel, two nodes (the default channel of small messages).
    msgs_per_s: f64,
    mb_s: f64,
    /// Deliveries per second, one publisher, subscribers on two other nodes.
    fanout_msgs_per_s: f64,
    /// One-way latency of lone messages (no batching).
    idle_latency_us: Summary,
    /// Messages per second of the paced run.
    paced_rate: u64,
    /// One-way latency at `paced_rate` (batches form, queues stay short).
    paced_latency_us: Summary,
    runs: Vec<Run>,
}

/// Microseconds since `epoch` (all nodes share this process's clock).
fn micros(epoch: Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

fn message(seq: u64, epoch: Instant) -> Bytes {
    let mut m = Vec::with_capacity(BODY);
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend_from_slice(&micros(epoch).to_le_bytes());
    m.resize(BODY, 0xAB);
    Bytes::from(m)
}

fn fields(m: &[u8]) -> (u64, u64) {
    let word = |r: std::ops::Range<usize>| {
        m.get(r)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    (word(0..8), word(8..16))
}

const KEYS: &[(&str, &str)] = &[("pubsub.buffer", "65536")];

/// What one subscriber saw.
struct Seen {
    delivered: u64,
    dropped: u64,
    last_at: Instant,
    latencies: Vec<f64>,
}

/// A subscriber node: reports its address, subscribes, counts until
/// `stop`.
async fn subscriber(
    name: String,
    seed: Option<SocketAddr>,
    addr_tx: oneshot::Sender<SocketAddr>,
    epoch: Instant,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Seen> {
    let node = bench_node_with(&name, seed, KEYS).await?;
    let mut sub = node.pubsub().subscribe::<Bytes>(TOPIC)?;
    let _ = addr_tx.send(node.membership_addr());
    let mut seen = Seen {
        delivered: 0,
        dropped: 0,
        last_at: Instant::now(),
        latencies: Vec::new(),
    };
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            m = sub.recv() => {
                let Some(m) = m else { break };
                seen.delivered += 1;
                seen.last_at = Instant::now();
                let (seq, sent) = fields(&m);
                if seq % SAMPLE_EVERY == 0 {
                    seen.latencies.push(micros(epoch).saturating_sub(sent) as f64);
                }
            }
        }
    }
    seen.dropped = sub.dropped();
    node.shutdown().await;
    Ok(seen)
}

async fn wait_interest(node: &Node, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.pubsub().interested_nodes(TOPIC).len() < n {
        if Instant::now() > deadline {
            return Err(anyhow!("subscriptions did not reach the publisher"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Publishes as fast as the queues take it; returns (published, start).
async fn publish(
    node: &Node,
    channel: Channel,
    cfg: &ThroughputBench,
    epoch: Instant,
) -> anyhow::Result<(u64, Instant)> {
    let ps = node.pubsub();
    let opts = Publish::on(channel);
    let start = Instant::now();
    let until = start + Duration::from_secs(cfg.duration);
    let mut seq = 0;
    while seq < cfg.max_messages {
        // Check the clock every 1,000 messages.
        if seq % 1000 == 0 && Instant::now() >= until {
            break;
        }
        ps.broadcast_with(TOPIC, message(seq, epoch), opts).await?;
        seq += 1;
    }
    Ok((seq, start))
}

/// `rate` messages per second on events, in bursts every millisecond.
async fn paced(
    node: &Node,
    rate: u64,
    cfg: &ThroughputBench,
    epoch: Instant,
) -> anyhow::Result<(u64, Instant)> {
    let ps = node.pubsub();
    let per_tick = (rate / 1000).max(1);
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut seq = 0;
    while start.elapsed() < Duration::from_secs(cfg.duration) && seq < cfg.max_messages {
        tick.tick().await;
        for _ in 0..per_tick {
            ps.broadcast(TOPIC, message(seq, epoch)).await?;
            seq += 1;
        }
    }
    Ok((seq, start))
}

/// Lone messages published by the idle run.
const LONE: u64 = 500;

/// Lone messages, 1 ms apart: one-way latency without batching.
async fn idle_latency(node: &Node, epoch: Instant) -> anyhow::Result<()> {
    let ps = node.pubsub();
    for _ in 0..LONE {
        // Sequence 0 marks a sample.
        ps.broadcast(TOPIC, message(0, epoch)).await?;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

enum Work {
    Idle,
    Load(Channel),
    /// This many messages per second, in bursts every millisecond.
    Paced(u64),
}

/// One run: `subs` subscriber nodes, one publisher node.
async fn run(cfg: &ThroughputBench, subs: usize, work: Work) -> anyhow::Result<Run> {
    let epoch = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut threads = Vec::new();
    let mut seed = None;
    for i in 0..subs {
        let (tx, rx) = oneshot::channel();
        threads.push(on_own_runtime(
            "sub",
            subscriber(format!("tp-sub-{i}"), seed, tx, epoch, stop_rx.clone()),
        ));
        let addr = rx.await.context("subscriber did not start")?;
        seed.get_or_insert(addr);
    }
    let seed = seed.ok_or_else(|| anyhow!("no subscriber"))?;
    let cfg2 = cfg.clone();
    let publisher = on_own_runtime("pub", async move {
        let node = bench_node_with("tp-pub", Some(seed), KEYS).await?;
        node.wait_for_members(subs + 1, Duration::from_secs(10))
            .await
            .map_err(|m| anyhow!("cluster did not form: {m:?}"))?;
        wait_interest(&node, subs).await?;
        let out = match work {
            Work::Idle => {
                idle_latency(&node, epoch).await?;
                (LONE, Instant::now(), Channel::Events)
            }
            Work::Load(channel) => {
                let (n, start) = publish(&node, channel, &cfg2, epoch).await?;
                (n, start, channel)
            }
            Work::Paced(rate) => {
                let (n, start) = paced(&node, rate, &cfg2, epoch).await?;
                (n, start, Channel::Events)
            }
        };
        // Let the queues drain before the subscribers stop.
        tokio::time::sleep(Duration::from_millis(500)).await;
        node.shutdown().await;
        anyhow::Ok(out)
    });
    let (published, start, channel) = tokio::task::spawn_blocking(move || publisher.join())
        .await?
        .map_err(|_| anyhow!("publisher panicked"))??;
    let _ = stop_tx.send(true);
    let mut delivered = 0;
    let mut dropped = 0;
    let mut last = start;
    let mut latencies = Vec::new();
    for t in threads {
        let seen = tokio::task::spawn_blocking(move || t.join())
            .await?
            .map_err(|_| anyhow!("subscriber panicked"))??;
        delivered += seen.delivered;
        dropped += seen.dropped;
        last = last.max(seen.last_at);
        latencies.extend(seen.latencies);
    }
    let elapsed = last.duration_since(start).as_secs_f64().max(1e-9);
    Ok(Run {
        channel,
        subscribers: subs,
        published,
        delivered,
        dropped,
        msgs_per_s: delivered as f64 / elapsed,
        mb_s: delivered as f64 * (BODY + 1) as f64 / elapsed / 1e6,
        latency_us: summarize(latencies),
    })
}

impl ThroughputBench {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        crate::logging::init(crate::logging::LogFormat::Text, "warn");
        let idle = run(&self, 1, Work::Idle).await?;
        let mut runs = Vec::new();
        for channel in [Channel::Events, Channel::Control, Channel::Data] {
            runs.push(run(&self, 1, Work::Load(channel)).await?);
        }
        let fanout = run(&self, 2, Work::Load(Channel::Events)).await?;
        let paced = run(&self, 1, Work::Paced(self.paced_rate)).await?;
        let report = Report {
            message_size: BODY + 1,
            msgs_per_s: runs[0].msgs_per_s,
            mb_s: runs[0].mb_s,
            fanout_msgs_per_s: fanout.msgs_per_s,
            idle_latency_us: idle.latency_us,
            paced_rate: self.paced_rate,
            paced_latency_us: paced.latency_us,
            runs: runs.into_iter().chain([fanout]).collect(),
        };
        super::emit(self.json, &report, print_table)
    }
}

fn print_table(r: &Report) {
    println!(
        "foundation bench throughput: {}-byte pub/sub messages, each node on its own runtime and thread\n",
        r.message_size
    );
    let rows: Vec<Vec<String>> = r
        .runs
        .iter()
        .map(|run| {
            vec![
                format!("{} → {} node(s)", run.channel, run.subscribers),
                format!("{:.0}", run.msgs_per_s),
                format!("{:.1}", run.mb_s),
                run.delivered.to_string(),
                run.dropped.to_string(),
                format!("{:.0}", run.latency_us.p50),
                format!("{:.0}", run.latency_us.p99),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "RUN",
                "MSGS/S",
                "MB/S",
                "DELIVERED",
                "DROPPED",
                "LAT P50 µs",
                "LAT P99 µs"
            ],
            &rows,
        )
    );
    println!();
    print!(
        "{}",
        table::render(
            &["ONE-WAY LATENCY", "P50 µs", "P99 µs", "MAX µs", "SAMPLES"],
            &[
                row("lone messages (no batching)", &r.idle_latency_us),
                row(
                    &format!("{} msgs/s paced (batched)", r.paced_rate),
                    &r.paced_latency_us
                ),
            ],
        )
    );
}
