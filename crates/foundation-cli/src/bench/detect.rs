//! Failure detection: SIGKILL one `foundation node` process, time until
//! every survivor reports it Down.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use clap::Args;
use foundation::MemberState;
use serde::Serialize;

use super::stats::{row, summarize, Summary};
use crate::cmd::procs::{self, Ports};
use crate::cmd::status::fetch_members;
use crate::table;

/// Time from SIGKILL of a node to Down on every survivor.
#[derive(Debug, Clone, Args)]
pub(crate) struct DetectBench {
    /// Nodes per run.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Runs (a fresh cluster each).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// First membership port to try.
    #[arg(long, default_value_t = 17946)]
    base_port: u16,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    nodes: usize,
    runs: usize,
    /// Per survivor: SIGKILL to Down, in milliseconds.
    detect_ms: Summary,
    /// Per run: SIGKILL to Down on the last survivor, in milliseconds.
    all_survivors_ms: Summary,
}

/// How often survivors are polled; the figures are this coarse.
const POLL: Duration = Duration::from_millis(10);

impl DetectBench {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.nodes >= 2 && self.nodes <= 32,
            "--nodes must be 2..=32"
        );
        let log_dir = procs::log_dir(None, "bench-detect")?;
        let mut ports = Ports::new(self.base_port, self.base_port.wrapping_add(2000));
        let mut per_survivor = Vec::new();
        let mut per_run = Vec::new();
        for run in 0..self.runs {
            let mut nodes =
                procs::spawn_cluster(self.nodes, &format!("r{run}"), &mut ports, &log_dir)?;
            wait_converged(&nodes, self.nodes).await?;
            let mut victim = nodes.pop().context("no victim")?;
            let victim_name = victim.name.clone();
            let killed = Instant::now();
            victim.child.start_kill().context("SIGKILL")?;
            let mut seen: Vec<Option<Duration>> = vec![None; nodes.len()];
            let deadline = killed + Duration::from_secs(20);
            while seen.iter().any(Option::is_none) && Instant::now() < deadline {
                for (i, n) in nodes.iter().enumerate() {
                    if seen[i].is_some() {
                        continue;
                    }
                    if let Ok(members) = fetch_members(&n.http.to_string()).await {
                        if members
                            .iter()
                            .any(|m| m.name == victim_name && m.state == MemberState::Down)
                        {
                            seen[i] = Some(killed.elapsed());
                        }
                    }
                }
                tokio::time::sleep(POLL).await;
            }
            let times: Vec<Duration> = seen.iter().flatten().copied().collect();
            if times.len() != nodes.len() {
                return Err(anyhow!(
                    "run {run}: not every survivor saw the kill within 20 s (logs in {})",
                    log_dir.display()
                ));
            }
            per_survivor.extend(times.iter().map(|d| d.as_secs_f64() * 1e3));
            per_run.push(times.iter().max().map_or(0.0, |d| d.as_secs_f64() * 1e3));
            let _ = victim.child.wait().await;
            procs::stop_all(nodes, false).await;
        }
        let report = Report {
            nodes: self.nodes,
            runs: self.runs,
            detect_ms: summarize(per_survivor),
            all_survivors_ms: summarize(per_run),
        };
        if self.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            println!(
                "foundation bench detect: {} node processes on loopback, SIGKILL one, {} runs (polled every {} ms)\n",
                report.nodes, report.runs, POLL.as_millis()
            );

            print!(
                "{}",
                table::render(
                    &["SIGKILL TO DOWN", "P50 ms", "P99 ms", "MAX ms", "SAMPLES"],
                    &[
                        row("each survivor", &report.detect_ms),
                        row("all survivors", &report.all_survivors_ms),
                    ],
                )
            );
        }
        Ok(())
    }
}

pub(crate) async fn wait_converged(nodes: &[procs::NodeProcess], n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut ok = 0;
        for node in nodes {
            if let Ok(m) = fetch_members(&node.http.to_string()).await {
                if m.iter().filter(|m| m.state == MemberState::Alive).count() == n {
                    ok += 1;
                }
            }
        }
        if ok == nodes.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(anyhow!("cluster did not converge within 20 s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
