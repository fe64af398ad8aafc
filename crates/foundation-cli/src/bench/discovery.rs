//! Zero-configuration convergence: N `foundation node` processes in network
//! namespaces, started at once with only the strategy set; time until every
//! node sees all N alive.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use clap::Args;
use foundation::{Member, MemberState};
use foundation_testkit::netns::Lab;
use serde::Serialize;

use super::stats::{row, summarize, Summary};
use crate::table;

/// Time from starting N nodes until every node sees N members.
#[derive(Debug, Clone, Args)]
pub(crate) struct DiscoveryBench {
    /// Nodes per run (each in its own network namespace).
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Runs (a fresh lab each).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Discovery strategy: mdns (with gossip beacons, the default), gossip,
    /// or mdns-alone (`gossip.with_mdns = false`).
    #[arg(long, default_value = "mdns")]
    strategy: String,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    nodes: usize,
    runs: usize,
    strategy: String,
    /// Start of the processes to every node seeing all N, ms.
    converged_ms: Summary,
}

/// How often nodes are polled (each poll runs `foundation status` in the
/// namespace, which itself takes a few ms).
const POLL: Duration = Duration::from_millis(20);

fn alive(lab: &Lab, exe: &str, i: usize) -> usize {
    lab.run(i, exe, &["status", "--json"])
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice::<Vec<Member>>(&o.stdout).ok())
        .map(|m| m.iter().filter(|m| m.state == MemberState::Alive).count())
        .unwrap_or(0)
}

impl DiscoveryBench {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.nodes >= 2 && self.nodes <= 32,
            "--nodes must be 2..=32"
        );
        anyhow::ensure!(
            ["mdns", "gossip", "mdns-alone"].contains(&self.strategy.as_str()),
            "--strategy must be mdns, gossip or mdns-alone"
        );
        let exe = std::env::current_exe().context("cannot find the foundation binary")?;
        let exe = exe.to_string_lossy().into_owned();
        let cfg = self.clone();
        let times = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<f64>> {
            let mut times = Vec::new();
            for run in 0..cfg.runs {
                let mut lab = Lab::new(cfg.nodes).map_err(|e| anyhow!("{e}"))?;
                let start = Instant::now();
                for i in 0..cfg.nodes {
                    let env: &[(&str, &str)] = match cfg.strategy.as_str() {
                        "mdns-alone" => &[
                            ("FOUNDATION_CLUSTER", "mdns"),
                            ("FOUNDATION_GOSSIP_WITH_MDNS", "false"),
                        ],
                        s => &[("FOUNDATION_CLUSTER", s)],
                    };
                    lab.spawn(i, &exe, &["node"], env);
                }
                let deadline = start + Duration::from_secs(30);
                let mut done = vec![false; cfg.nodes];
                while done.iter().any(|d| !d) {
                    if Instant::now() > deadline {
                        return Err(anyhow!("run {run}: not converged within 30 s"));
                    }
                    for (i, d) in done.iter_mut().enumerate() {
                        if !*d && alive(&lab, &exe, i) == cfg.nodes {
                            *d = true;
                        }
                    }
                    std::thread::sleep(POLL);
                }
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
            Ok(times)
        })
        .await??;
        let report = Report {
            nodes: self.nodes,
            runs: self.runs,
            strategy: self.strategy.clone(),
            converged_ms: summarize(times),
        };
        if self.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            println!(
                "foundation bench discovery: {} unconfigured nodes ({}) in network namespaces, {} runs\n",
                report.nodes, report.strategy, report.runs
            );
            print!(
                "{}",
                table::render(
                    &[
                        "START TO ALL SEE ALL",
                        "P50 ms",
                        "P99 ms",
                        "MAX ms",
                        "SAMPLES"
                    ],
                    &[row("every node sees every node", &report.converged_ms)],
                )
            );
            println!(
                "\n(includes process start; polled every {} ms)",
                POLL.as_millis()
            );
        }
        Ok(())
    }
}
