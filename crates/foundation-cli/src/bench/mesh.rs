//! `foundation bench mesh`: 3 server processes (`bench mesh-node`) with an
//! echo service each, and a client node in this process with 64
//! concurrent callers:
//!
//! - calls per second and p50 / p99 through plain `ServiceRef`s (each
//!   caller bound to one endpoint, the callers spread evenly) and through
//!   the mesh client (power of two choices on latency): the mesh's cost;
//! - the mesh client with every call in a trace that is not sampled, and
//!   in one that is (spans recorded and handed to an exporter): the cost
//!   of context propagation;
//! - one endpoint's handler slowed by 20 ms per call: client p99 through
//!   power of two choices and through round-robin.
//!
//! Each service handles one call at a time, as every service does, so a
//! slowed endpoint also queues: round-robin waits in that queue.
//!
//! The four healthy variants take turns in rounds of a quarter of a second
//! each (`--seconds` × 8 rounds), each round led by another. An overhead is the median over rounds of the
//! overhead within each round (a shared machine's slow second then weighs
//! on one round, not on one variant); each round's figure is reported
//! too.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use clap::Args;
use foundation::context::RequestContext;
use foundation::mesh::{ClientOptions, Criteria, MeshClient, Strategy};
use foundation::spans::{SpanExporter, SpanRecord};
use foundation::{Node, NodeBuilder, ServiceRef};
use serde::Serialize;

use super::mesh_node::{MeshEcho, MeshReq, GROUP};
use super::stats::{row_with, summarize, Summary};
use crate::cmd::procs::{self, NodeProcess, Ports};
use crate::table;

/// A call that takes longer has failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The mesh client's cost, routing around a slow endpoint, and the cost
/// of context propagation.
#[derive(Debug, Clone, Args)]
pub(crate) struct MeshBench {
    /// Concurrent callers.
    #[arg(long, default_value_t = 64)]
    callers: usize,
    /// Seconds of each slowed-endpoint variant; the four healthy ones take
    /// 8 turns of a quarter of a second per second of it, each round led
    /// by another.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Extra time per call of the slowed endpoint, ms.
    #[arg(long, default_value_t = 20)]
    slow_ms: u64,
    /// First membership port to try.
    #[arg(long, default_value_t = 27946)]
    base_port: u16,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// One phase's figures.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct Phase {
    pub(crate) calls_per_s: f64,
    /// Latency, ms.
    pub(crate) latency_ms: Summary,
    pub(crate) failed: u64,
    /// The latencies (ms) and the time taken, to merge rounds.
    #[serde(skip)]
    samples: Vec<f64>,
    #[serde(skip)]
    seconds: f64,
}

/// The rounds of one variant as one phase.
fn merge(rounds: Vec<Phase>) -> Phase {
    let seconds: f64 = rounds.iter().map(|p| p.seconds).sum();
    let failed = rounds.iter().map(|p| p.failed).sum();
    let samples: Vec<f64> = rounds.into_iter().flat_map(|p| p.samples).collect();
    Phase {
        calls_per_s: if seconds > 0.0 {
            samples.len() as f64 / seconds
        } else {
            0.0
        },
        latency_ms: summarize(samples),
        failed,
        samples: Vec::new(),
        seconds,
    }
}

/// The figures (the keys first).
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) plain_calls_per_s: f64,
    pub(crate) mesh_calls_per_s: f64,
    pub(crate) mesh_overhead_pct: f64,
    pub(crate) healthy_p99_ms: f64,
    pub(crate) slow_p2c_p99_ms: f64,
    pub(crate) slow_round_robin_p99_ms: f64,
    pub(crate) context_overhead_unsampled_pct: f64,
    pub(crate) context_overhead_sampled_pct: f64,
    /// Each round's overheads, % (their medians are the figures above).
    pub(crate) rounds: Rounds,
    pub(crate) plain: Phase,
    pub(crate) mesh: Phase,
    pub(crate) unsampled: Phase,
    pub(crate) sampled: Phase,
    pub(crate) slow_p2c: Phase,
    pub(crate) slow_round_robin: Phase,
    pub(crate) spans_exported: u64,
    pub(crate) callers: usize,
}

/// Per round: the mesh's overhead over plain refs, and the context's over
/// the mesh without one, %.
#[derive(Debug, Serialize, Default)]
pub(crate) struct Rounds {
    pub(crate) mesh_overhead_pct: Vec<f64>,
    pub(crate) context_overhead_unsampled_pct: Vec<f64>,
    pub(crate) context_overhead_sampled_pct: Vec<f64>,
}

/// How much slower `other` ran than `base`, %.
fn overhead(base: f64, other: f64) -> f64 {
    if base > 0.0 {
        (base - other) / base * 100.0
    } else {
        0.0
    }
}

/// The median (0 for none).
fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Counts the spans it is handed (the cost of recording, not of a wire).
#[derive(Debug, Default)]
struct CountSpans(AtomicU64);

impl SpanExporter for CountSpans {
    fn export(&self, _: SpanRecord) {
        self.0.fetch_add(1, Relaxed);
    }
}

/// How a phase's callers call.
#[derive(Clone)]
enum Target {
    /// Caller `i` calls endpoint `i % n`.
    Plain(Vec<ServiceRef<MeshEcho>>),
    Mesh(MeshClient<MeshEcho>, Trace),
}

#[derive(Clone, Copy)]
enum Trace {
    None,
    Unsampled,
    Sampled,
}

impl MeshBench {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        let report = self.measure().await?;
        super::emit(self.json, &report, table)
    }

    async fn measure(&self) -> anyhow::Result<Report> {
        let mut ports = Ports::new(self.base_port, self.base_port.wrapping_add(2000));
        let log_dir = procs::log_dir(None, "bench-mesh")?;
        let mut servers: Vec<NodeProcess> = Vec::new();
        for i in 1..=3 {
            let seed = servers
                .first()
                .map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, p.port)));
            servers.push(procs::spawn_command(
                &["bench", "mesh-node"],
                &format!("mesh-{i}"),
                &mut ports,
                seed,
                &log_dir,
                &[],
                &[],
            )?);
        }
        let seed = SocketAddr::from((Ipv4Addr::LOCALHOST, servers[0].port));
        let secret = String::from_utf8_lossy(ports.secret.expose()).into_owned();
        let client = NodeBuilder::isolated()
            .cluster("static")
            .name("bench-mesh-client")
            .bind(Ipv4Addr::LOCALHOST.into())
            .port(0)
            .seeds([seed.to_string()])
            .secret(&secret)
            .start()
            .await
            .context("the client node did not start")?;
        let result = self.phases(&client).await;
        client.shutdown().await;
        procs::stop_all(servers, false).await;
        result.with_context(|| format!("node logs in {}", log_dir.display()))
    }

    async fn phases(&self, client: &Node) -> anyhow::Result<Report> {
        let endpoints = wait_for_endpoints(client, 3).await?;
        let secs = Duration::from_secs(self.seconds.max(1));
        let mesh = client.mesh().client::<MeshEcho>(Criteria::name(GROUP));
        // Warm every connection and the balancer's estimates.
        self.phase(
            Target::Mesh(mesh.clone(), Trace::None),
            Duration::from_secs(1),
        )
        .await;
        // The four healthy variants take turns, so that what the machine
        // does meanwhile weighs on all of them alike.
        let spans = Arc::new(CountSpans::default());
        client.add_span_exporter(spans.clone());
        let variants = [
            Target::Plain(endpoints.clone()),
            Target::Mesh(mesh.clone(), Trace::None),
            Target::Mesh(mesh.clone(), Trace::Unsampled),
            Target::Mesh(mesh.clone(), Trace::Sampled),
        ];
        let mut runs: Vec<Vec<Phase>> = vec![Vec::new(); variants.len()];
        for round in 0..secs.as_secs() * 8 {
            for k in 0..variants.len() {
                // A different variant leads each round.
                let i = (k + round as usize) % variants.len();
                runs[i].push(
                    self.phase(variants[i].clone(), Duration::from_millis(250))
                        .await,
                );
            }
        }
        let per_round = |a: usize, b: usize| -> Vec<f64> {
            runs[a]
                .iter()
                .zip(&runs[b])
                .map(|(x, y)| overhead(x.calls_per_s, y.calls_per_s))
                .collect()
        };
        let rounds = Rounds {
            mesh_overhead_pct: per_round(0, 1),
            context_overhead_unsampled_pct: per_round(1, 2),
            context_overhead_sampled_pct: per_round(1, 3),
        };
        let mut merged = runs.into_iter().map(merge);
        let (plain, mesh_p, unsampled, sampled) = (
            merged.next().unwrap_or_default(),
            merged.next().unwrap_or_default(),
            merged.next().unwrap_or_default(),
            merged.next().unwrap_or_default(),
        );

        let slow = &endpoints[2];
        slow.call(MeshReq::SetDelay(self.slow_ms), CALL_TIMEOUT)
            .await
            .map_err(|e| anyhow!("cannot slow endpoint 3: {e}"))?;
        // A fresh client, so what it learnt of the healthy run does not help.
        let p2c = client.mesh().client::<MeshEcho>(Criteria::name(GROUP));
        let slow_p2c = self.phase(Target::Mesh(p2c, Trace::None), secs).await;
        let rr = client.mesh().client_with::<MeshEcho>(
            Criteria::name(GROUP),
            ClientOptions::default().strategy(Strategy::RoundRobin),
        );
        let slow_rr = self.phase(Target::Mesh(rr, Trace::None), secs).await;
        let _ = slow.call(MeshReq::SetDelay(0), CALL_TIMEOUT).await;

        Ok(Report {
            plain_calls_per_s: plain.calls_per_s,
            mesh_calls_per_s: mesh_p.calls_per_s,
            mesh_overhead_pct: median(rounds.mesh_overhead_pct.clone()),
            healthy_p99_ms: mesh_p.latency_ms.p99,
            slow_p2c_p99_ms: slow_p2c.latency_ms.p99,
            slow_round_robin_p99_ms: slow_rr.latency_ms.p99,
            context_overhead_unsampled_pct: median(rounds.context_overhead_unsampled_pct.clone()),
            context_overhead_sampled_pct: median(rounds.context_overhead_sampled_pct.clone()),
            rounds,
            spans_exported: spans.0.load(Relaxed),
            plain,
            mesh: mesh_p,
            unsampled,
            sampled,
            slow_p2c,
            slow_round_robin: slow_rr,
            callers: self.callers,
        })
    }

    /// `callers` callers calling back to back for `length`. Only calls
    /// that end within it count, over exactly `length`: waiting for the
    /// last calls in flight would add the slowest call's time to a short
    /// phase (tens of ms in a quarter of a second) and count it as calls
    /// not made.
    async fn phase(&self, target: Target, length: Duration) -> Phase {
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let end = start + length;
        let mut tasks = Vec::with_capacity(self.callers);
        for i in 0..self.callers {
            let (target, latencies, failed) = (target.clone(), latencies.clone(), failed.clone());
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                let mut n = 0u64;
                while Instant::now() < end {
                    let t = Instant::now();
                    let ok = call(&target, i, n).await;
                    let done = Instant::now();
                    if done > end {
                        break;
                    }
                    if ok {
                        mine.push((done - t).as_secs_f64() * 1e3);
                    } else {
                        failed.fetch_add(1, Relaxed);
                    }
                    n += 1;
                }
                if let Ok(mut l) = latencies.lock() {
                    l.extend(mine);
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let seconds = length.as_secs_f64();
        let samples = latencies.lock().map(|l| l.clone()).unwrap_or_default();
        Phase {
            calls_per_s: samples.len() as f64 / seconds,
            latency_ms: summarize(samples.clone()),
            failed: failed.load(Relaxed),
            samples,
            seconds,
        }
    }
}

async fn call(target: &Target, caller: usize, n: u64) -> bool {
    match target {
        Target::Plain(refs) => {
            let r = &refs[caller % refs.len()];
            r.call(MeshReq::Echo(n), CALL_TIMEOUT).await.ok() == Some(n)
        }
        Target::Mesh(client, trace) => {
            let fut = client.call(MeshReq::Echo(n), CALL_TIMEOUT);
            let reply = match trace {
                Trace::None => fut.await,
                Trace::Unsampled => RequestContext::new_trace(false).scope(fut).await,
                Trace::Sampled => RequestContext::new_trace(true).scope(fut).await,
            };
            reply.ok() == Some(n)
        }
    }
}

/// The `n` echo services as this node sees them, once it sees them all.
async fn wait_for_endpoints(node: &Node, n: usize) -> anyhow::Result<Vec<ServiceRef<MeshEcho>>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let refs = node.registry().members_of::<MeshEcho>(GROUP);
        if refs.len() == n {
            let mut refs = refs;
            refs.sort_by_key(|r| r.addr());
            return Ok(refs);
        }
        if Instant::now() > deadline {
            return Err(anyhow!(
                "the client sees {} of {n} echo services after 60 s",
                refs.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn table(r: &Report) {
    println!(
        "foundation bench mesh: 3 server processes and a client node on loopback, {} concurrent callers\n",
        r.callers
    );
    let rows: Vec<(&str, &Phase)> = vec![
        ("plain ServiceRef (callers spread evenly)", &r.plain),
        ("mesh client, power of two choices", &r.mesh),
        ("mesh, every call in an unsampled trace", &r.unsampled),
        ("mesh, every call in a sampled trace", &r.sampled),
        ("one endpoint slowed: power of two choices", &r.slow_p2c),
        ("one endpoint slowed: round-robin", &r.slow_round_robin),
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(name, p)| {
            let mut row = row_with(name, &p.latency_ms, 2);
            row.insert(1, format!("{:.0}", p.calls_per_s));
            row.push(p.failed.to_string());
            row
        })
        .collect();
    print!(
        "{}",
        table::render(
            &["", "CALLS/S", "P50 MS", "P99 MS", "MAX MS", "CALLS", "FAILED"],
            &cells
        )
    );
    println!(
        "\nmedians over {} rounds: mesh overhead {:.1}% of calls/s (rounds {}); context propagation {:.1}% unsampled (rounds {}), {:.1}% sampled (rounds {}; {} spans recorded)\nslowed endpoint: p99 {:.2} ms with power of two choices ({:.2}x the healthy {:.2} ms), {:.2} ms with round-robin",
        r.rounds.mesh_overhead_pct.len(),
        r.mesh_overhead_pct,
        spread(&r.rounds.mesh_overhead_pct),
        r.context_overhead_unsampled_pct,
        spread(&r.rounds.context_overhead_unsampled_pct),
        r.context_overhead_sampled_pct,
        spread(&r.rounds.context_overhead_sampled_pct),
        r.spans_exported,
        r.slow_p2c_p99_ms,
        if r.healthy_p99_ms > 0.0 { r.slow_p2c_p99_ms / r.healthy_p99_ms } else { 0.0 },
        r.healthy_p99_ms,
        r.slow_round_robin_p99_ms
    );
}

/// The lowest and highest of per-round figures, as text.
fn spread(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if v.is_empty() {
        "none".to_owned()
    } else {
        format!("{lo:.1} to {hi:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overheads_and_their_median() {
        assert_eq!(overhead(100.0, 97.0), 3.0);
        assert_eq!(overhead(100.0, 110.0), -10.0);
        assert_eq!(overhead(0.0, 5.0), 0.0);
        assert_eq!(median(vec![9.0, -1.0, 3.0]), 3.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
        assert_eq!(spread(&[2.0, -1.5, 7.25]), "-1.5 to 7.2");
    }
}
