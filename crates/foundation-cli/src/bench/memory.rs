//! `foundation bench memory`: resident memory of node processes, and what
//! the membership protocol sends.
//!
//! 1. one `foundation node` process alone, idle;
//! 2. five `foundation node` processes in one cluster, idle: each one's
//!    resident memory, and the membership bytes each sends per second
//!    (from its `/metrics` counters, over a 10 s window);
//! 3. a fresh process of this binary (`bench memory-load`, hidden) that runs
//!    one node and grows it in steps: 10,000 registered names, then 1,000
//!    subscribed topics, then 1,000 running services. It reads its own
//!    resident memory after each step (`foundation::telemetry::process`);
//!    the figures are the differences.
//!
//! Resident memory is `VmRSS` of `/proc/PID/status` (Linux only).

use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use clap::Args;
use foundation::process::{Context, Service, ServiceError, ServiceOptions};
use foundation::NodeBuilder;
use serde::Serialize;
use tokio::io::AsyncBufReadExt as _;

use crate::cmd::http_get;
use crate::cmd::procs::{self, Ports};

/// How long a process is left alone before its memory is read.
const SETTLE: Duration = Duration::from_secs(3);
/// The window over which membership traffic is counted.
const TRAFFIC_WINDOW: Duration = Duration::from_secs(10);
/// IPv4 and UDP headers of one datagram.
const HEADERS: f64 = 28.0;

/// Resident memory of node processes, and membership traffic.
#[derive(Debug, Clone, Args)]
pub(crate) struct MemoryBench {
    /// Nodes in the cluster step.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// First membership port to try.
    #[arg(long, default_value_t = 24946)]
    base_port: u16,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// The figures (MB = 10^6 bytes).
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) idle_rss_mb: f64,
    /// The anonymous part of `idle_rss_mb` (heap, stacks): the rest is
    /// the binary's pages, shared by every process that runs it.
    pub(crate) idle_rss_anon_mb: f64,
    pub(crate) cluster_rss_mb: Vec<f64>,
    pub(crate) rss_per_10k_names_mb: f64,
    pub(crate) rss_per_1k_topics_mb: f64,
    pub(crate) rss_per_1k_services_mb: f64,
    /// Sealed UDP payload sent per node per second, mean of the nodes.
    pub(crate) membership_bytes_per_s_per_node: f64,
    /// Datagrams sent per node per second, mean of the nodes.
    pub(crate) membership_datagrams_per_s_per_node: f64,
    /// The load process's resident memory before it grew.
    pub(crate) load_idle_rss_mb: f64,
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Resident memory of process `pid`, and its anonymous part.
fn rss_of(pid: u32) -> anyhow::Result<(u64, u64)> {
    use foundation::telemetry::process::status_bytes;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status (Linux only)"))?;
    let field = |name| {
        status_bytes(&status, name).ok_or_else(|| anyhow!("no {name} line in /proc/{pid}/status"))
    };
    Ok((field("VmRSS")?, field("RssAnon")?))
}

impl MemoryBench {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        if self.nodes < 2 {
            bail!("--nodes {}: at least 2", self.nodes);
        }
        let mut ports = Ports::new(self.base_port, self.base_port.wrapping_add(2000));
        let log_dir = procs::log_dir(None, "bench-memory")?;
        let result = self.measure(&mut ports, &log_dir).await;
        let report = result.with_context(|| format!("node logs in {}", log_dir.display()))?;
        super::emit(self.json, &report, table)
    }

    async fn measure(
        &self,
        ports: &mut Ports,
        log_dir: &std::path::Path,
    ) -> anyhow::Result<Report> {
        // 1. One node alone.
        let alone = procs::spawn_node("memory-alone", ports, None, log_dir)?;
        let idle = async {
            super::detect::wait_converged(std::slice::from_ref(&alone), 1).await?;
            tokio::time::sleep(SETTLE).await;
            rss_of(alone.child.id().context("the node exited")?)
        }
        .await;
        procs::stop_all(vec![alone], false).await;
        let (idle, idle_anon) = idle?;

        // 2. A cluster.
        let nodes = procs::spawn_cluster(self.nodes, "memory", ports, log_dir)?;
        let cluster = async {
            super::detect::wait_converged(&nodes, self.nodes).await?;
            tokio::time::sleep(SETTLE).await;
            let before = traffic(&nodes).await?;
            tokio::time::sleep(TRAFFIC_WINDOW).await;
            let after = traffic(&nodes).await?;
            let mut rss = Vec::new();
            for n in &nodes {
                rss.push(rss_of(n.child.id().context("a node exited")?)?.0);
            }
            let per_node = |f: fn(&(u64, u64)) -> u64| {
                let total: u64 = after
                    .iter()
                    .zip(&before)
                    .map(|(a, b)| f(a).saturating_sub(f(b)))
                    .sum();
                total as f64 / nodes.len() as f64 / TRAFFIC_WINDOW.as_secs_f64()
            };
            Ok::<_, anyhow::Error>((rss, per_node(|t| t.0), per_node(|t| t.1)))
        }
        .await;
        procs::stop_all(nodes, false).await;
        let (cluster_rss, datagrams_per_s, bytes_per_s) = cluster?;

        // 3. One node that grows.
        let steps = load_steps().await?;
        let step = |name: &str| {
            steps
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, rss)| *rss)
                .ok_or_else(|| anyhow!("the load process did not report {name}"))
        };
        let (base, names, topics, services) = (
            step("idle")?,
            step("names")?,
            step("topics")?,
            step("services")?,
        );
        let grew = |after: u64, before: u64| (after as f64 - before as f64) / 1e6;
        Ok(Report {
            idle_rss_mb: mb(idle),
            idle_rss_anon_mb: mb(idle_anon),
            cluster_rss_mb: cluster_rss.into_iter().map(mb).collect(),
            rss_per_10k_names_mb: grew(names, base),
            rss_per_1k_topics_mb: grew(topics, names),
            rss_per_1k_services_mb: grew(services, topics),
            membership_bytes_per_s_per_node: bytes_per_s,
            membership_datagrams_per_s_per_node: datagrams_per_s,
            load_idle_rss_mb: mb(base),
        })
    }
}

/// Each node's membership datagrams and bytes sent so far.
async fn traffic(nodes: &[procs::NodeProcess]) -> anyhow::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    for n in nodes {
        let text = http_get::get(&n.http.to_string(), "/metrics", Duration::from_secs(5)).await?;
        let value = |prefix: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| anyhow!("{} has no {prefix}", n.name))
        };
        out.push((
            value("foundation_membership_datagrams_total{direction=\"sent\"} ")?,
            value("foundation_membership_bytes_total{direction=\"sent\"} ")?,
        ));
    }
    Ok(out)
}

/// Runs `bench memory-load` and collects its `STEP RSS` lines.
async fn load_steps() -> anyhow::Result<Vec<(String, u64)>> {
    let exe = std::env::current_exe().context("cannot find the foundation binary")?;
    let mut child = tokio::process::Command::new(exe)
        .args(["bench", "memory-load"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the load process")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut steps = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await? {
            let mut words = line.split_whitespace();
            if let (Some(step), Some(rss)) = (words.next(), words.next()) {
                steps.push((step.to_owned(), rss.parse::<u64>()?));
            }
        }
        Ok::<_, anyhow::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(180), read)
        .await
        .context("the load process did not finish within 180 s")??;
    let status = child.wait().await?;
    if !status.success() {
        bail!("the load process failed ({status})");
    }
    Ok(steps)
}

/// The load process (`foundation bench memory-load`): one node that grows
/// in steps, printing `STEP RSS_BYTES` after each.
#[derive(Debug, Clone, Args)]
pub(crate) struct MemoryLoad {
    /// Names registered in the names step.
    #[arg(long, default_value_t = 10_000)]
    names: usize,
    /// Topics subscribed in the topics step.
    #[arg(long, default_value_t = 1_000)]
    topics: usize,
    /// Services started in the services step.
    #[arg(long, default_value_t = 1_000)]
    services: usize,
    /// `pubsub.buffer` of the node (the default if not given).
    #[arg(long)]
    pubsub_buffer: Option<usize>,
}

/// A service that answers nothing in particular.
struct Idle;

impl Service for Idle {
    type Request = ();
    type Reply = ();
    type State = ();
    async fn handle(&mut self, _: &mut Context, _: ()) -> Result<(), ServiceError> {
        Ok(())
    }
}

impl MemoryLoad {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        let secret = foundation::config::Secret::generate();
        let mut builder = NodeBuilder::isolated();
        if let Some(n) = self.pubsub_buffer {
            builder = builder.set("pubsub.buffer", &n.to_string());
        }
        let node = builder
            .cluster("static")
            .name("memory-load")
            .bind(Ipv4Addr::LOCALHOST.into())
            .port(0)
            .secret(String::from_utf8_lossy(secret.expose()).as_ref())
            .start()
            .await
            .context("the node did not start")?;
        let report = |step: &str| -> anyhow::Result<()> {
            let rss = foundation::telemetry::process::resident_memory_bytes()
                .context("no resident memory figure (Linux only)")?;
            println!("{step} {rss}");
            Ok(())
        };
        tokio::time::sleep(SETTLE).await;
        report("idle")?;

        let target = node.services().spawn(|| Idle, ServiceOptions::default());
        for i in 0..self.names {
            node.registry()
                .register(&format!("memory-name-{i}"), &target)
                .with_context(|| format!("registering name {i}"))?;
        }
        tokio::time::sleep(SETTLE).await;
        report("names")?;

        let mut subscriptions = Vec::with_capacity(self.topics);
        for i in 0..self.topics {
            subscriptions.push(
                node.pubsub()
                    .subscribe::<u64>(&format!("memory-topic-{i}"))
                    .with_context(|| format!("subscribing to topic {i}"))?,
            );
        }
        tokio::time::sleep(SETTLE).await;
        report("topics")?;

        let mut services = Vec::with_capacity(self.services);
        for _ in 0..self.services {
            services.push(node.services().spawn(|| Idle, ServiceOptions::default()));
        }
        // Each answers once: they are running, not just defined.
        for s in &services {
            s.call((), Duration::from_secs(5)).await?;
        }
        tokio::time::sleep(SETTLE).await;
        report("services")?;

        drop(subscriptions);
        node.shutdown().await;
        Ok(())
    }
}

pub(crate) fn table(r: &Report) {
    println!("foundation bench memory: resident memory (VmRSS) of node processes on loopback, after {} s idle\n", SETTLE.as_secs());
    let cluster: Vec<String> = r.cluster_rss_mb.iter().map(|m| format!("{m:.1}")).collect();
    println!(
        "one node alone, idle:                 {:.1} MB ({:.1} MB anonymous, the rest the binary's pages)",
        r.idle_rss_mb, r.idle_rss_anon_mb
    );
    println!(
        "each of {} nodes in one cluster:       {} MB",
        r.cluster_rss_mb.len(),
        cluster.join(", ")
    );
    println!(
        "per 10,000 registered names:          {:+.1} MB",
        r.rss_per_10k_names_mb
    );
    println!(
        "per 1,000 subscribed topics:          {:+.1} MB",
        r.rss_per_1k_topics_mb
    );
    println!(
        "per 1,000 running services:           {:+.1} MB",
        r.rss_per_1k_services_mb
    );
    println!(
        "(the load process started at {:.1} MB)\n",
        r.load_idle_rss_mb
    );
    println!(
        "membership traffic sent per node: {:.0} B/s UDP payload in {:.1} datagrams/s ({:.0} B/s with IPv4 and UDP headers), over {} s",
        r.membership_bytes_per_s_per_node,
        r.membership_datagrams_per_s_per_node,
        r.membership_bytes_per_s_per_node + HEADERS * r.membership_datagrams_per_s_per_node,
        TRAFFIC_WINDOW.as_secs()
    );
}
