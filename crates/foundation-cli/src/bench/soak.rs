//! `foundation bench soak`: five processes under a steady mixed load for a
//! long time, one of them restarted every few minutes, to see whether
//! memory, tasks or latency drift.
//!
//! Each process is a `bench soak-node` ([`super::soak_node`]): pub/sub,
//! calls to services on the other processes and to a singleton, registry
//! churn, and one JSON line of figures per window. Every
//! `--restart-every-s`, one process other than the first leaves gracefully
//! and a fresh one takes its name (so the first process runs the whole
//! time: its memory is the one that could grow). At the end the windows of
//! the stretch after warm-up ("start") and of the last stretch ("end") are
//! compared, and the run is shown in intervals.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use serde::Serialize;
use tokio::time::Instant;

use super::histogram::Histogram;
use super::soak_node::{unix_us, WindowLine};
use crate::cmd::procs::{self, NodeProcess, Ports};
use crate::table;

/// Processes under mixed load for a long run: RSS, tasks, p99s at the
/// start and at the end.
#[derive(Debug, Clone, Args)]
pub(crate) struct SoakBench {
    /// Minutes to run (fractions allowed).
    #[arg(long, default_value_t = 60.0)]
    minutes: f64,
    /// Processes.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Seconds between restarts of one process (never the first); 0 for
    /// none.
    #[arg(long, default_value_t = 180)]
    restart_every_s: u64,
    /// Seconds per window of figures.
    #[arg(long, default_value_t = 10)]
    window_s: u64,
    /// First membership port to try.
    #[arg(long, default_value_t = 25946)]
    base_port: u16,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Figures of one stretch of the run.
#[derive(Debug, Serialize)]
pub(crate) struct Point {
    /// Resident memory of the first process (never restarted), mean over
    /// the stretch, MB.
    pub(crate) rss_mb: f64,
    /// Resident memory, mean over every process and window, MB.
    pub(crate) cluster_rss_mb: f64,
    /// Live tokio tasks of the first process, mean over the stretch.
    pub(crate) tasks: f64,
    /// Calls to echo services on other processes, every process's.
    pub(crate) call_p99_ms: f64,
    pub(crate) call_p50_ms: f64,
    /// Calls to the singleton.
    pub(crate) singleton_p99_ms: f64,
    /// Broadcast to delivery.
    pub(crate) publish_p99_ms: f64,
    pub(crate) publish_p50_ms: f64,
    /// Samples behind the latencies (calls, singleton calls, deliveries).
    pub(crate) samples: u64,
    /// Calls, singleton calls, registry changes and broadcasts that failed.
    pub(crate) failed: u64,
}

/// One interval of the run.
#[derive(Debug, Serialize)]
pub(crate) struct Interval {
    pub(crate) from_min: f64,
    pub(crate) to_min: f64,
    #[serde(flatten)]
    pub(crate) point: Point,
}

/// The figures.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) minutes: f64,
    pub(crate) nodes: usize,
    pub(crate) restarts: usize,
    pub(crate) warmup_s: f64,
    pub(crate) start: Point,
    pub(crate) end: Point,
    /// Growth of the first process's resident memory from start to end.
    pub(crate) rss_growth_pct: f64,
    pub(crate) intervals: Vec<Interval>,
}

impl SoakBench {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        if self.nodes < 2 {
            bail!("--nodes {}: at least 2", self.nodes);
        }
        if !(self.minutes > 0.0 && self.minutes.is_finite()) {
            bail!("--minutes {}: a positive number", self.minutes);
        }
        let log_dir = procs::log_dir(None, "bench-soak")?;
        let report = self
            .soak(&log_dir)
            .await
            .with_context(|| format!("node logs and stats in {}", log_dir.display()))?;
        super::emit(self.json, &report, print_table)
    }

    fn spawn(
        &self,
        i: usize,
        ports: &mut Ports,
        seed: Option<u16>,
        dir: &Path,
    ) -> anyhow::Result<NodeProcess> {
        let stats = stats_file(dir, i);
        let (nodes, window) = (self.nodes.to_string(), self.window_s.to_string());
        let extra = [
            "--nodes",
            &nodes,
            "--window-s",
            &window,
            "--stats",
            stats.to_str().context("log directory is not UTF-8")?,
        ];
        let seed = seed.map(|p| std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, p)));
        procs::spawn_command(
            &["bench", "soak-node"],
            &format!("soak-{i}"),
            ports,
            seed,
            dir,
            &extra,
            &[],
        )
    }

    async fn soak(&self, dir: &Path) -> anyhow::Result<Report> {
        let mut ports = Ports::new(self.base_port, self.base_port.wrapping_add(2000));
        let mut nodes = Vec::new();
        for i in 1..=self.nodes {
            let seed = nodes.first().map(|n: &NodeProcess| n.port);
            nodes.push(self.spawn(i, &mut ports, seed, dir)?);
        }
        let seed = nodes[0].port;
        let result = async {
            super::detect::wait_converged(&nodes, self.nodes).await?;
            let began = unix_us() / 1000;
            let start = Instant::now();
            let total = Duration::from_secs_f64(self.minutes * 60.0);
            let every = Duration::from_secs(self.restart_every_s);
            let mut restarts = 0;
            let mut next_restart = start + every;
            while start.elapsed() < total {
                tokio::time::sleep(Duration::from_secs(1)).await;
                for n in &mut nodes {
                    if let Some(status) = n.child.try_wait()? {
                        bail!("{} exited ({status})", n.name);
                    }
                }
                if self.restart_every_s > 0 && Instant::now() >= next_restart {
                    // Processes 2..=N in turn; the first runs throughout.
                    let i = 1 + restarts % (self.nodes - 1);
                    let old = std::mem::replace(
                        &mut nodes[i],
                        self.spawn(i + 1, &mut ports, Some(seed), dir)?,
                    );
                    procs::stop_all(vec![old], false).await;
                    restarts += 1;
                    next_restart += every;
                }
            }
            Ok((began, start.elapsed(), restarts))
        }
        .await;
        procs::stop_all(nodes, false).await;
        let (began, elapsed, restarts) = result?;
        let mut lines = Vec::new();
        for i in 1..=self.nodes {
            lines.extend(read_lines(&stats_file(dir, i))?);
        }
        Ok(analyse(
            &lines,
            began,
            elapsed.as_secs_f64(),
            self.window_s as f64,
            self.nodes,
            restarts,
        ))
    }
}

fn stats_file(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("soak-{i}.jsonl"))
}

fn read_lines(path: &Path) -> anyhow::Result<Vec<WindowLine>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("bad line in {}", path.display())))
        .collect()
}

/// The figures of the windows that ended in `(from, to]` seconds into the
/// run.
fn point(lines: &[(f64, &WindowLine)], from: f64, to: f64) -> Point {
    let inside: Vec<&WindowLine> = lines
        .iter()
        .filter(|(t, _)| *t > from && *t <= to)
        .map(|(_, l)| *l)
        .collect();
    let first: Vec<&&WindowLine> = inside.iter().filter(|l| l.node == "soak-1").collect();
    let mean = |xs: &mut dyn Iterator<Item = f64>| {
        let (sum, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
        if n == 0 {
            0.0
        } else {
            sum / n as f64
        }
    };
    let (mut call, mut singleton, mut publish) = (
        Histogram::default(),
        Histogram::default(),
        Histogram::default(),
    );
    for l in &inside {
        call.merge(&l.call);
        singleton.merge(&l.singleton);
        publish.merge(&l.publish);
    }
    Point {
        rss_mb: mean(&mut first.iter().map(|l| l.rss_bytes as f64 / 1e6)),
        cluster_rss_mb: mean(&mut inside.iter().map(|l| l.rss_bytes as f64 / 1e6)),
        tasks: mean(&mut first.iter().map(|l| l.tasks as f64)),
        call_p99_ms: call.quantile_ms(0.99),
        call_p50_ms: call.quantile_ms(0.5),
        singleton_p99_ms: singleton.quantile_ms(0.99),
        publish_p99_ms: publish.quantile_ms(0.99),
        publish_p50_ms: publish.quantile_ms(0.5),
        samples: call.count() + singleton.count() + publish.count(),
        failed: inside
            .iter()
            .map(|l| l.calls_failed + l.singleton_failed + l.churn_failed + l.publish_failed)
            .sum(),
    }
}

/// Start, end and intervals of a run of `total` seconds that began at
/// `began` (Unix ms).
pub(crate) fn analyse(
    lines: &[WindowLine],
    began: u64,
    total: f64,
    window: f64,
    nodes: usize,
    restarts: usize,
) -> Report {
    let timed: Vec<(f64, &WindowLine)> = lines
        .iter()
        .map(|l| ((l.unix_ms as f64 - began as f64) / 1000.0, l))
        .collect();
    let warmup = (total * 0.1).clamp(window, 300.0);
    let stretch = ((total - warmup) * 0.1).clamp(window, 300.0);
    let start = point(&timed, warmup, warmup + stretch);
    // Windows that end after the run (the last, cut short) count as its end.
    let end = point(&timed, total - stretch, f64::INFINITY);
    let count = ((total - warmup) / 300.0).round().clamp(1.0, 12.0);
    let step = (total - warmup) / count;
    let intervals = (0..count as usize)
        .map(|k| {
            let from = warmup + step * k as f64;
            let to = if k + 1 == count as usize {
                f64::INFINITY
            } else {
                from + step
            };
            Interval {
                from_min: from / 60.0,
                to_min: to.min(total) / 60.0,
                point: point(&timed, from, to),
            }
        })
        .collect();
    let rss_growth_pct = if start.rss_mb > 0.0 {
        (end.rss_mb - start.rss_mb) / start.rss_mb * 100.0
    } else {
        0.0
    };
    Report {
        minutes: total / 60.0,
        nodes,
        restarts,
        warmup_s: warmup,
        start,
        end,
        rss_growth_pct,
        intervals,
    }
}

fn cells(name: String, p: &Point) -> Vec<String> {
    vec![
        name,
        format!("{:.1}", p.rss_mb),
        format!("{:.1}", p.cluster_rss_mb),
        format!("{:.0}", p.tasks),
        format!("{:.2}", p.call_p99_ms),
        format!("{:.2}", p.singleton_p99_ms),
        format!("{:.2}", p.publish_p99_ms),
        p.samples.to_string(),
        p.failed.to_string(),
    ]
}

fn print_table(r: &Report) {
    println!(
        "foundation bench soak: {} processes on loopback for {:.1} min, {} restarts, warm-up {:.0} s\n",
        r.nodes, r.minutes, r.restarts, r.warmup_s
    );
    let mut rows: Vec<Vec<String>> = r
        .intervals
        .iter()
        .map(|i| cells(format!("{:.1}-{:.1}", i.from_min, i.to_min), &i.point))
        .collect();
    rows.push(cells("start".into(), &r.start));
    rows.push(cells("end".into(), &r.end));
    print!(
        "{}",
        table::render(
            &[
                "MINUTES",
                "RSS 1st MB",
                "RSS MEAN MB",
                "TASKS 1st",
                "CALL P99 ms",
                "SINGLETON P99 ms",
                "PUBLISH P99 ms",
                "SAMPLES",
                "FAILED",
            ],
            &rows,
        )
    );
    println!(
        "\nresident memory of the first process (never restarted): {:.1} MB at the start, {:.1} MB at the end ({:+.1} %)",
        r.start.rss_mb, r.end.rss_mb, r.rss_growth_pct
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(node: &str, at_s: u64, rss_mb: u64, call_us: f64) -> WindowLine {
        let mut l = WindowLine {
            node: node.into(),
            unix_ms: 1_000_000 + at_s * 1000,
            rss_bytes: rss_mb * 1_000_000,
            tasks: 100,
            ..WindowLine::default()
        };
        l.call.record(call_us);
        l
    }

    #[test]
    fn start_and_end_come_from_their_stretches() {
        // 600 s: warm-up 60 s, stretches of 54 s.
        let mut lines = Vec::new();
        for t in (10..=600).step_by(10) {
            let late = t > 546;
            lines.push(line("soak-1", t, if late { 22 } else { 20 }, 1000.0));
            lines.push(line("soak-2", t, 30, if late { 8000.0 } else { 1000.0 }));
        }
        let r = analyse(&lines, 1_000_000, 600.0, 10.0, 2, 3);
        assert_eq!(r.warmup_s, 60.0);
        assert_eq!((r.start.rss_mb, r.end.rss_mb), (20.0, 22.0));
        assert!((r.rss_growth_pct - 10.0).abs() < 1e-9);
        assert_eq!(r.start.cluster_rss_mb, 25.0);
        assert!(r.start.call_p99_ms < 1.1 && r.end.call_p99_ms >= 8.0);
        assert_eq!(r.intervals.len(), 2);
        let windows: u64 = r.intervals.iter().map(|i| i.point.samples).sum();
        assert_eq!(
            windows,
            2 * 54,
            "every window after warm-up in one interval"
        );
    }
}
