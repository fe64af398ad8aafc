//! Singleton failover: a 3-node cluster of `foundation node` processes
//! runs the demo counter as a singleton; each trial SIGKILLs (or
//! SIGSTOPs) the process hosting it and times, from the signal:
//!
//! - recovery: a survivor runs the singleton (its own registry shows it);
//! - consistency: every survivor's registry resolves it to the new holder.
//!
//! Survivors are polled over HTTP (`GET /registry`) every few
//! milliseconds; each poll has a 1 s timeout, and the slowest answer is
//! reported: lookups never wait on the hung or dead node.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use clap::{Args, ValueEnum};
use foundation::registry::RegistrySnapshot;
use foundation::{MemberState, NodeId};
use serde::Serialize;

use super::stats::{row, summarize, Summary};
use crate::cmd::http_get;
use crate::cmd::procs::{self, NodeProcess, Ports};
use crate::cmd::status::fetch_members;
use crate::table;

const SINGLETON: &str = "bench-singleton";
/// How often survivors are polled; the figures are this coarse.
const POLL: Duration = Duration::from_millis(5);
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);
/// Quiet time before each trial (see keep-majority's stable view, ADR 008).
const STABLE_WAIT: Duration = Duration::from_secs(3);

/// How the host fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Signal {
    /// SIGKILL: a crashed process.
    #[default]
    Kill,
    /// SIGSTOP (SIGCONT after the trial): a hung host that answers nothing.
    Stop,
}

/// Time for a singleton to run again elsewhere, and for every survivor to
/// agree, after its host is killed or hung.
#[derive(Debug, Clone, Args)]
pub(crate) struct FailoverBench {
    /// SIGKILL or SIGSTOP the host.
    #[arg(long, value_enum, default_value_t)]
    signal: Signal,
    /// Trials.
    #[arg(long, default_value_t = 20)]
    trials: usize,
    /// First membership port to try.
    #[arg(long, default_value_t = 21946)]
    base_port: u16,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    signal: Signal,
    trials: usize,
    recovery_ms: Summary,
    consistency_ms: Summary,
    /// The slowest `/registry` answer from a survivor during the trials.
    slowest_lookup_ms: f64,
    /// Live nodes (neither the victim nor a dead incarnation) that some
    /// survivor reported Down, summed over the trials.
    false_downs: usize,
}

/// Who holds the singleton in `node`'s registry view.
async fn holder(node: &NodeProcess) -> (Option<NodeId>, Duration) {
    let t = Instant::now();
    let got = http_get::get(&node.http.to_string(), "/registry", LOOKUP_TIMEOUT).await;
    let took = t.elapsed();
    let h = got
        .ok()
        .and_then(|body| serde_json::from_str::<RegistrySnapshot>(&body).ok())
        .and_then(|s| {
            s.entries
                .into_iter()
                .find(|e| e.name == SINGLETON)
                .map(|e| e.service.node)
        });
    (h, took)
}

/// Node ids by process index.
async fn ids(nodes: &[NodeProcess]) -> anyhow::Result<HashMap<NodeId, usize>> {
    let mut out = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        let members = fetch_members(&n.http.to_string()).await?;
        let me = members.first().context("empty member list")?;
        out.insert(me.id, i);
    }
    Ok(out)
}

/// Waits until every node sees `n` alive and one holder of the singleton.
async fn settled(nodes: &[NodeProcess], n: usize) -> anyhow::Result<NodeId> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut holders = Vec::new();
        let mut alive_ok = true;
        for node in nodes {
            let alive = fetch_members(&node.http.to_string())
                .await
                .map(|m| m.iter().filter(|m| m.state == MemberState::Alive).count())
                .unwrap_or(0);
            alive_ok &= alive == n;
            holders.push(holder(node).await.0);
        }
        if alive_ok && holders[0].is_some() && holders.iter().all(|h| *h == holders[0]) {
            return holders[0].context("holder");
        }
        if Instant::now() > deadline {
            return Err(anyhow!(
                "the cluster did not settle within 30 s: holders {holders:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .context("kill")?
        .success();
    anyhow::ensure!(ok, "kill {sig} {pid} failed");
    Ok(())
}

impl FailoverBench {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        let log_dir = procs::log_dir(None, "bench-failover")?;
        let mut ports = Ports::new(self.base_port, self.base_port.wrapping_add(2000));
        let extra = ["--singleton", SINGLETON];
        let mut nodes = Vec::new();
        for i in 1..=3 {
            let seed = nodes
                .first()
                .map(|f: &NodeProcess| SocketAddr::from((Ipv4Addr::LOCALHOST, f.port)));
            nodes.push(procs::spawn_node_with(
                &format!("f-{i}"),
                &mut ports,
                seed,
                &log_dir,
                &extra,
            )?);
        }
        let result = self.trials(&mut nodes, &mut ports, &log_dir).await;
        procs::stop_all(nodes, false).await;
        let report = result.with_context(|| format!("node logs in {}", log_dir.display()))?;
        if self.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            println!(
                "foundation bench failover: 3 node processes on loopback, {} the singleton's host, {} trials (polled every {} ms)\n",
                match report.signal {
                    Signal::Kill => "SIGKILL",
                    Signal::Stop => "SIGSTOP",
                },
                report.trials,
                POLL.as_millis()
            );
            print!(
                "{}",
                table::render(
                    &["", "P50 ms", "P99 ms", "MAX ms", "SAMPLES"],
                    &[
                        row("recovery (runs elsewhere)", &report.recovery_ms),
                        row(
                            "consistency (every survivor agrees)",
                            &report.consistency_ms
                        ),
                    ],
                )
            );
            println!(
                "\nslowest lookup on a survivor: {:.1} ms; live nodes reported down: {}",
                report.slowest_lookup_ms, report.false_downs
            );
        }
        Ok(())
    }

    async fn trials(
        &self,
        nodes: &mut [NodeProcess],
        ports: &mut Ports,
        log_dir: &std::path::Path,
    ) -> anyhow::Result<Report> {
        let mut recovery = Vec::new();
        let mut consistency = Vec::new();
        let mut slowest = Duration::ZERO;
        let mut false_downs = 0;
        for trial in 0..self.trials {
            settled(nodes, 3).await?;
            // keep-majority counts a restarted node only once the view has
            // been stable (about 2.2 s with the default timings): wait, or
            // a second kill soon after the first would leave no majority.
            tokio::time::sleep(STABLE_WAIT).await;
            let old = settled(nodes, 3).await?;
            let by_id = ids(nodes).await?;
            let victim = *by_id.get(&old).context("holder is not one of ours")?;
            let pid = nodes[victim].child.id().context("victim pid")?;
            let t0 = Instant::now();
            match self.signal {
                Signal::Kill => signal(pid, "-KILL")?,
                Signal::Stop => signal(pid, "-STOP")?,
            }
            let survivors: Vec<usize> = (0..nodes.len()).filter(|i| *i != victim).collect();
            let mut recovered = None;
            let mut consistent = None;
            let deadline = t0 + Duration::from_secs(30);
            while consistent.is_none() && Instant::now() < deadline {
                let mut agree = 0;
                for &s in &survivors {
                    let (h, took) = holder(&nodes[s]).await;
                    slowest = slowest.max(took);
                    if let Some(h) = h.filter(|h| *h != old) {
                        if by_id.get(&h) == Some(&s) && recovered.is_none() {
                            recovered = Some(t0.elapsed());
                        }
                        if by_id.get(&h).is_some_and(|i| *i != victim) {
                            agree += 1;
                        }
                    }
                }
                if agree == survivors.len() {
                    consistent = Some(t0.elapsed());
                }
                tokio::time::sleep(POLL).await;
            }
            let (Some(r), Some(c)) = (recovered.or(consistent), consistent) else {
                return Err(anyhow!("trial {trial}: no failover within 30 s"));
            };
            recovery.push(r.as_secs_f64() * 1e3);
            consistency.push(c.as_secs_f64() * 1e3);
            for &s in &survivors {
                if let Ok(members) = fetch_members(&nodes[s].http.to_string()).await {
                    false_downs += members
                        .iter()
                        .filter(|m| m.state == MemberState::Down && m.id != old)
                        .filter(|m| by_id.get(&m.id).is_some_and(|i| *i != victim))
                        .count();
                }
            }
            // Bring the cluster back to three.
            match self.signal {
                Signal::Kill => {
                    let _ = nodes[victim].child.wait().await;
                    let seed = SocketAddr::from((Ipv4Addr::LOCALHOST, nodes[survivors[0]].port));
                    let name = nodes[victim].name.clone();
                    nodes[victim] = procs::spawn_node_with(
                        &name,
                        ports,
                        Some(seed),
                        log_dir,
                        &["--singleton", SINGLETON],
                    )?;
                }
                Signal::Stop => signal(pid, "-CONT")?,
            }
        }
        Ok(Report {
            signal: self.signal,
            trials: self.trials,
            recovery_ms: summarize(recovery),
            consistency_ms: summarize(consistency),
            slowest_lookup_ms: slowest.as_secs_f64() * 1e3,
            false_downs,
        })
    }
}
