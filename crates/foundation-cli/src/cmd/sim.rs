//! `foundation sim`: the chaos scenarios under deterministic simulation
//! (foundation-testkit's `sim`), with a seed sweep. Prints settle times and
//! losses per scenario; exits non-zero if any invariant broke, printing the
//! command that replays each failing seed.

use std::time::Duration;

use anyhow::bail;
use clap::Args;
use foundation_testkit::sim::{scenario, Outcome, Scenario};
use serde::Serialize;

use crate::bench::stats::{summarize, Summary};

/// Options of `foundation sim`.
#[derive(Debug, Args)]
pub(crate) struct SimCmd {
    /// Scenario: form, join, crash, partition, pause, loss, rolling, or all.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Nodes in the simulated cluster.
    #[arg(long, default_value_t = 50)]
    nodes: usize,
    /// Run only this seed (to replay a failure).
    #[arg(long)]
    seed: Option<u64>,
    /// Otherwise, sweep seeds 0..seeds.
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// What `foundation sim` prints.
#[derive(Debug, Serialize)]
struct Report {
    rows: Vec<Row>,
}

#[derive(Debug, Serialize)]
struct Row {
    scenario: &'static str,
    nodes: usize,
    runs: usize,
    /// Virtual milliseconds until every invariant held again.
    settled_ms: Summary,
    /// Virtual milliseconds a singleton ran twice during the fault.
    overlap_ms: Summary,
    /// Lowest delivery ratio over the runs.
    delivery_ratio_min: f64,
    /// `form` only: sealed membership bytes per node per second in the
    /// formed cluster, over the runs.
    membership_bytes_per_node_s: Option<Summary>,
    /// `form` only, first run: (carried, datagrams/s, bytes/s) per node.
    membership_by_kind: Vec<(String, f64, f64)>,
    /// Wall-clock seconds of the slowest run.
    wall_s_max: f64,
    failures: Vec<String>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn row(s: Scenario, nodes: usize, outs: &[Outcome]) -> Row {
    Row {
        scenario: s.name(),
        nodes,
        runs: outs.len(),
        settled_ms: summarize(
            outs.iter()
                .filter_map(|o| o.settled_after)
                .map(ms)
                .collect(),
        ),
        overlap_ms: summarize(outs.iter().map(|o| ms(o.overlap)).collect()),
        delivery_ratio_min: outs.iter().map(|o| o.delivery_ratio).fold(1.0, f64::min),
        membership_bytes_per_node_s: {
            let v: Vec<f64> = outs
                .iter()
                .filter_map(|o| o.membership_bytes_per_node_s)
                .collect();
            (!v.is_empty()).then(|| summarize(v))
        },
        membership_by_kind: outs
            .first()
            .map(|o| o.membership_by_kind.clone())
            .unwrap_or_default(),
        wall_s_max: outs
            .iter()
            .map(|o| o.wall.as_secs_f64())
            .fold(0.0, f64::max),
        failures: outs
            .iter()
            .filter(|o| !o.passed())
            .map(|o| format!("{}\n    replay: {}", o.failures.join("; "), o.replay()))
            .collect(),
    }
}

fn table(report: &Report) {
    let body: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|r| {
            vec![
                r.scenario.to_owned(),
                r.nodes.to_string(),
                r.runs.to_string(),
                format!("{:.0}", r.settled_ms.p50),
                format!("{:.0}", r.settled_ms.p99),
                format!("{:.0}", r.overlap_ms.p50),
                format!("{:.0}", r.overlap_ms.p99),
                format!("{:.4}", r.delivery_ratio_min),
                format!("{:.1}", r.wall_s_max),
                r.failures.len().to_string(),
            ]
        })
        .collect();
    println!(
        "{}",
        crate::table::render(
            &[
                "scenario",
                "nodes",
                "runs",
                "settle p50 ms",
                "settle p99 ms",
                "overlap p50 ms",
                "overlap p99 ms",
                "delivery min",
                "wall max s",
                "failed",
            ],
            &body
        )
    );
    println!("(virtual time; settle = until one member set, one registry and one holder per singleton everywhere)");
    for r in &report.rows {
        if let Some(m) = &r.membership_bytes_per_node_s {
            println!(
                "membership traffic of a formed {}-node cluster: p50 {:.0} B/s sent per node (max {:.0}; sealed UDP payload, no canary nudges)",
                r.nodes, m.p50, m.max
            );
            for (what, n, bytes) in &r.membership_by_kind {
                println!("  {what:<24} {n:>8.2} datagrams/s {bytes:>8.0} B/s");
            }
        }
    }
}

impl SimCmd {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        let scenarios: Vec<Scenario> = if self.scenario == "all" {
            Scenario::ALL.to_vec()
        } else {
            match Scenario::from_name(&self.scenario) {
                Some(s) => vec![s],
                None => bail!(
                    "unknown scenario {:?}: use one of {} or all",
                    self.scenario,
                    Scenario::ALL.map(|s| s.name()).join(", ")
                ),
            }
        };
        if self.nodes < 5 {
            bail!(
                "--nodes {}: the scenarios need at least 5 nodes",
                self.nodes
            );
        }
        let seeds: Vec<u64> = match self.seed {
            Some(s) => vec![s],
            None => (0..self.seeds.max(1)).collect(),
        };
        let mut rows = Vec::new();
        for s in scenarios {
            // One worker per core: the runs are independent.
            let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
            let mut outs: Vec<Outcome> = Vec::new();
            for chunk in seeds.chunks(workers) {
                let nodes = self.nodes;
                let done: Vec<Outcome> = std::thread::scope(|scope| {
                    let handles: Vec<_> = chunk
                        .iter()
                        .map(|&seed| scope.spawn(move || scenario::run(s, nodes, seed)))
                        .collect();
                    handles.into_iter().filter_map(|h| h.join().ok()).collect()
                });
                outs.extend(done);
            }
            if outs.len() != seeds.len() {
                bail!("a simulation thread panicked in scenario {}", s.name());
            }
            if !self.json {
                eprintln!("{}: {} runs done", s.name(), outs.len());
            }
            rows.push(row(s, self.nodes, &outs));
        }
        let report = Report { rows };
        crate::bench::emit(self.json, &report, table)?;
        let rows = report.rows;
        let failures: Vec<&String> = rows.iter().flat_map(|r| &r.failures).collect();
        if !failures.is_empty() {
            for f in &failures {
                eprintln!("FAILED: {f}");
            }
            bail!("{} simulated runs broke an invariant", failures.len());
        }
        Ok(())
    }
}
