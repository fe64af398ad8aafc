//! `foundation bench cache`: the distributed cache on 3 `foundation node`
//! processes on loopback, driven by two client nodes in this process (the
//! near tiers whose freshness is measured live there), 100-byte values:
//!
//! - local tier get (ns) and gets per second on one core, and moka's own
//!   get of the same entries (what the cache adds to it);
//! - hit rate of a bounded local tier under Zipf-distributed keys, from a
//!   task that yields and from one that never does, beside moka alone
//!   under the same keys;
//! - partitioned get from a non-holder (µs), and gets per second with 64
//!   concurrent callers;
//! - near tier hit (ns);
//! - invalidation: from a put on one client until the other client's near
//!   tier no longer holds the old value;
//! - rebalance: a fourth process joins; the time until it holds every key
//!   it should of 100,000, and the keys then unreadable (lost).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use clap::Args;
use foundation::{Node, NodeBuilder};
use serde::Serialize;

use super::cache_phases as phase;
use super::stats::{row_with, Summary};
use crate::cmd::procs::{self, NodeProcess, Ports};
use crate::table;

/// The distributed cache: local, remote and near reads, invalidation,
/// rebalance.
#[derive(Debug, Clone, Args)]
pub(crate) struct CacheBench {
    /// Gets measured one by one in each latency phase.
    #[arg(long, default_value_t = 20_000)]
    ops: usize,
    /// Seconds of the concurrent-gets phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Invalidation trials.
    #[arg(long, default_value_t = 200)]
    trials: usize,
    /// Keys written before a fourth process joins.
    #[arg(long, default_value_t = 100_000)]
    keys: usize,
    /// First membership port to try.
    #[arg(long, default_value_t = 25946)]
    base_port: u16,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// The figures.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) local_get_ns: Summary,
    pub(crate) local_ops_per_s: f64,
    pub(crate) moka_get_ns: Summary,
    pub(crate) hit_rate: f64,
    pub(crate) hit_rate_no_yield: f64,
    pub(crate) moka_hit_rate: f64,
    pub(crate) remote_get_us: Summary,
    pub(crate) remote_gets_per_s: f64,
    pub(crate) near_hit_ns: Summary,
    pub(crate) invalidation_ms: Summary,
    pub(crate) rebalance_ms: f64,
    pub(crate) keys_lost: u64,
    pub(crate) keys: usize,
}

/// The node processes and the two client nodes.
pub(crate) struct Cluster {
    pub(crate) procs: Vec<NodeProcess>,
    ports: Ports,
    pub(crate) log_dir: std::path::PathBuf,
    pub(crate) a: Node,
    pub(crate) b: Node,
}

impl Cluster {
    async fn start(base: u16) -> anyhow::Result<Cluster> {
        let mut ports = Ports::new(base, base.wrapping_add(2000));
        let log_dir = procs::log_dir(None, "bench-cache")?;
        let procs = procs::spawn_cluster(3, "cache", &mut ports, &log_dir)?;
        let seed = SocketAddr::from((Ipv4Addr::LOCALHOST, procs[0].port));
        let secret = String::from_utf8_lossy(ports.secret.expose()).into_owned();
        let client = |name: &'static str| {
            NodeBuilder::isolated()
                .cluster("static")
                .name(name)
                .bind(Ipv4Addr::LOCALHOST.into())
                .port(0)
                .seeds([seed.to_string()])
                .secret(&secret)
                .start()
        };
        let a = client("bench-a").await.context("client a did not start")?;
        let b = client("bench-b").await.context("client b did not start")?;
        let c = Cluster {
            procs,
            ports,
            log_dir,
            a,
            b,
        };
        c.settle(5).await?;
        Ok(c)
    }

    /// Waits until both clients place keys over `n` members.
    pub(crate) async fn settle(&self, n: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (a, b) = (self.a.caches().members(), self.b.caches().members());
            if a.len() == n && a == b {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(anyhow!(
                    "the clients do not both see {n} members within 60 s: {a:?} / {b:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts one more process.
    pub(crate) fn spawn(&mut self) -> anyhow::Result<&NodeProcess> {
        let seed = SocketAddr::from((Ipv4Addr::LOCALHOST, self.procs[0].port));
        let name = format!("cache-{}", self.procs.len() + 1);
        let p = procs::spawn_node(&name, &mut self.ports, Some(seed), &self.log_dir)?;
        self.procs.push(p);
        Ok(&self.procs[self.procs.len() - 1])
    }

    async fn stop(self) {
        self.a.shutdown().await;
        self.b.shutdown().await;
        procs::stop_all(self.procs, false).await;
    }
}

impl CacheBench {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        let report = self.measure().await?;
        super::emit(self.json, &report, table)
    }

    async fn measure(&self) -> anyhow::Result<Report> {
        let mut c = Cluster::start(self.base_port).await?;
        let result = async {
            let (local_get_ns, local_ops_per_s, moka_get_ns) = phase::local(&c.a, self.ops).await?;
            let (hit_rate, hit_rate_no_yield, moka_hit_rate) =
                phase::hit_rates(&c.a, self.ops * 50).await?;
            let (remote_get_us, remote_gets_per_s) =
                phase::remote(&c, self.ops / 4, Duration::from_secs(self.seconds)).await?;
            let near_hit_ns = phase::near_hits(&c, self.ops).await?;
            let invalidation_ms = phase::invalidations(&c, self.trials).await?;
            let (rebalance_ms, keys_lost) = phase::rebalance(&mut c, self.keys).await?;
            Ok::<_, anyhow::Error>(Report {
                local_get_ns,
                local_ops_per_s,
                moka_get_ns,
                hit_rate,
                hit_rate_no_yield,
                moka_hit_rate,
                remote_get_us,
                remote_gets_per_s,
                near_hit_ns,
                invalidation_ms,
                rebalance_ms,
                keys_lost,
                keys: self.keys,
            })
        }
        .await;
        let logs = c.log_dir.clone();
        c.stop().await;
        result.with_context(|| format!("node logs in {}", logs.display()))
    }
}

pub(crate) fn table(r: &Report) {
    println!("foundation bench cache: 3 node processes and 2 client nodes on loopback, 100-byte values\n");
    print!(
        "{}",
        table::render(
            &["", "P50", "P99", "MAX", "SAMPLES"],
            &[
                row_with("local tier get, ns", &r.local_get_ns, 0),
                row_with("moka's own get of the same entries, ns", &r.moka_get_ns, 0),
                row_with("partitioned get from a non-holder, µs", &r.remote_get_us, 0),
                row_with("near tier hit, ns", &r.near_hit_ns, 0),
                row_with(
                    "invalidation seen by the other near tier, ms",
                    &r.invalidation_ms,
                    2
                ),
            ],
        )
    );
    println!(
        "\nlocal gets/s on one core: {:.0}; partitioned gets/s with 64 callers: {:.0}\nhit rate bounded to 1,000 of 100,000 Zipf keys: local tier {:.3} (a task that never yields: {:.3}), moka alone {:.3}\nrebalance of {} keys when a node joins: {:.0} ms; keys lost: {}",
        r.local_ops_per_s, r.remote_gets_per_s, r.hit_rate, r.hit_rate_no_yield, r.moka_hit_rate, r.keys, r.rebalance_ms, r.keys_lost
    );
}
