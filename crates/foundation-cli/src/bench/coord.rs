//! `foundation bench coord`: coordination on 3 `foundation node`
//! processes on loopback (the voters), driven by a client node in this
//! process (a learner, as an application node would be):
//!
//! - uncontended lock acquire + release, in memory and durable (fsync);
//! - 16 clients contending for one lock: grants per second, p99 wait, and
//!   the run's own check that no two holdings overlapped;
//! - put and linearizable get; puts per second with 64 clients;
//! - leader failover: SIGKILL the leader process, time until the next lock
//!   grant through a survivor.
//!
//! `--etcd` runs the same operations against a 3-member etcd cluster on
//! loopback through its v3 JSON gateway ([`super::coord_etcd`]).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use clap::Args;
use foundation::coord::Coord;
use foundation::{Node, NodeBuilder, NodeId};
use serde::Serialize;

use super::stats::{summarize, Summary};
use crate::cmd::procs::{self, NodeProcess, Ports};
use crate::cmd::status::fetch_members;
use crate::table;

/// Coordination against etcd, same operations.
#[derive(Debug, Clone, Args)]
pub(crate) struct CoordBench {
    /// Uncontended lock cycles and puts/gets (each).
    #[arg(long, default_value_t = 500)]
    ops: usize,
    /// Seconds of the contended and the concurrent-put phases.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Leader failover trials.
    #[arg(long, default_value_t = 20)]
    trials: usize,
    /// Measure a 3-member etcd cluster instead (etcd on the PATH).
    #[arg(long)]
    pub(crate) etcd: bool,
    /// First membership port to try.
    #[arg(long, default_value_t = 23946)]
    base_port: u16,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// The figures (milliseconds unless named otherwise).
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) system: &'static str,
    pub(crate) lock_ms: Summary,
    pub(crate) lock_durable_ms: Summary,
    pub(crate) contended_grants_per_s: f64,
    pub(crate) contended_wait_ms: Summary,
    pub(crate) put_ms: Summary,
    pub(crate) get_ms: Summary,
    pub(crate) puts_per_s: f64,
    pub(crate) failover_ms: Summary,
    pub(crate) double_grants: usize,
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A lock holding, for the overlap check: (start, end) since the run began.
pub(crate) type Holding = (Duration, Duration);

/// What the contending clients of either system record: each grant's
/// holding and how long it was waited for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Contention {
    holdings: Arc<Mutex<Vec<Holding>>>,
    waits: Arc<Mutex<Vec<f64>>>,
}

impl Contention {
    /// A grant asked for at `asked`, held from now (the lock is released
    /// at once), in a run that began at `start`.
    pub(crate) fn granted(&self, start: Instant, asked: Instant) {
        let from = start.elapsed();
        self.waits
            .lock()
            .map(|mut w| w.push(ms(asked.elapsed())))
            .ok();
        let to = start.elapsed();
        self.holdings.lock().map(|mut h| h.push((from, to))).ok();
    }

    /// Grants per second since `start`, the waits, and overlapping holdings.
    pub(crate) fn result(&self, start: Instant) -> (f64, Summary, usize) {
        let took = start.elapsed().as_secs_f64();
        let h = self.holdings.lock().map(|h| h.clone()).unwrap_or_default();
        let w = self.waits.lock().map(|w| w.clone()).unwrap_or_default();
        (h.len() as f64 / took, summarize(w), overlaps(h))
    }
}

/// Holdings that began before an earlier one ended.
pub(crate) fn overlaps(mut h: Vec<Holding>) -> usize {
    h.sort_by_key(|x| x.0);
    h.windows(2).filter(|w| w[1].0 < w[0].1).count()
}

/// The three voter processes.
struct Procs {
    nodes: Vec<NodeProcess>,
    ports: Ports,
    log_dir: std::path::PathBuf,
    storage: &'static str,
    spawned: usize,
}

impl Procs {
    fn spawn(&mut self) -> anyhow::Result<()> {
        self.spawned += 1;
        let name = format!("c-{}", self.spawned);
        let seed = self
            .nodes
            .first()
            .map(|f| SocketAddr::from((Ipv4Addr::LOCALHOST, f.port)));
        let env = [
            ("FOUNDATION_ROLES", "voter".to_owned()),
            ("FOUNDATION_COORD_ROLE", "voter".to_owned()),
            ("FOUNDATION_COORD_STORAGE", self.storage.to_owned()),
            (
                "FOUNDATION_COORD_DATA_DIR",
                self.log_dir.join(&name).display().to_string(),
            ),
        ];
        let node = procs::spawn_node_env(&name, &mut self.ports, seed, &self.log_dir, &[], &env)?;
        self.nodes.push(node);
        Ok(())
    }
}

/// The three voters and the client node.
struct Cluster {
    procs: Procs,
    client: Node,
}

impl Cluster {
    async fn start(base: u16, storage: &'static str) -> anyhow::Result<Cluster> {
        let mut procs = Procs {
            nodes: Vec::new(),
            ports: Ports::new(base, base.wrapping_add(2000)),
            log_dir: procs::log_dir(None, &format!("bench-coord-{storage}"))?,
            storage,
            spawned: 0,
        };
        for _ in 0..3 {
            procs.spawn()?;
        }
        let seed = SocketAddr::from((Ipv4Addr::LOCALHOST, procs.nodes[0].port));
        let client = NodeBuilder::isolated()
            .cluster("static")
            .name("bench-client")
            .bind(Ipv4Addr::LOCALHOST.into())
            .port(0)
            .seeds([seed.to_string()])
            .secret(&String::from_utf8_lossy(procs.ports.secret.expose()))
            .set("coord.role", "voter")
            .start()
            .await
            .context("the client node did not start")?;
        let c = Cluster { procs, client };
        c.settle().await?;
        Ok(c)
    }

    fn coord(&self) -> Coord {
        self.client.coord().with_timeout(Duration::from_secs(10))
    }

    /// Waits until the client sees a leader and three voters, all running.
    async fn settle(&self) -> anyhow::Result<NodeId> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.client.coord().status();
            let running = self.ids().await.unwrap_or_default();
            if let Some(l) = s.leader {
                let voters_run = s.voters.iter().all(|v| running.contains_key(v));
                if s.voters.len() == 3 && voters_run && running.contains_key(&l) {
                    return Ok(l);
                }
            }
            if Instant::now() > deadline {
                return Err(anyhow!(
                    "no leader and three running voters within 60 s: {s:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Member ids of the running processes, by index.
    async fn ids(&self) -> anyhow::Result<HashMap<NodeId, usize>> {
        let mut out = HashMap::new();
        for (i, n) in self.procs.nodes.iter().enumerate() {
            let members = fetch_members(&n.http.to_string()).await?;
            out.insert(members.first().context("empty member list")?.id, i);
        }
        Ok(out)
    }

    async fn stop(self) {
        self.client.shutdown().await;
        procs::stop_all(self.procs.nodes, false).await;
    }
}

/// `n` sequential lock + unlock cycles.
async fn lock_cycles(coord: &Coord, n: usize) -> anyhow::Result<Summary> {
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let g = coord.lock("bench-uncontended").await?;
        g.unlock().await?;
        lat.push(ms(t.elapsed()));
    }
    Ok(summarize(lat))
}

/// 16 clients on one lock for `d`: grants per second, waits, and the
/// holdings overlap count.
async fn contended(coord: &Coord, d: Duration) -> anyhow::Result<(f64, Summary, usize)> {
    let start = Instant::now();
    let record = Contention::default();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (coord, record) = (coord.clone(), record.clone());
        tasks.push(tokio::spawn(async move {
            while start.elapsed() < d {
                let asked = Instant::now();
                let Ok(g) = coord.lock("bench-hot").await else {
                    continue;
                };
                record.granted(start, asked);
                let _ = g.unlock().await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(record.result(start))
}

/// `n` puts, each followed by a get of its key (64 keys in turn): the
/// latency of each, in ms. Both sides of the bench run this phase.
pub(crate) async fn puts_and_gets<P, G, PF, GF, E>(
    n: usize,
    put: P,
    get: G,
) -> anyhow::Result<(Summary, Summary)>
where
    P: Fn(String, u64) -> PF,
    G: Fn(String) -> GF,
    PF: std::future::Future<Output = Result<(), E>>,
    GF: std::future::Future<Output = Result<(), E>>,
    anyhow::Error: From<E>,
{
    let (mut puts, mut gets) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let key = format!("bench/k{}", i % 64);
        let t = Instant::now();
        put(key.clone(), i as u64).await?;
        puts.push(ms(t.elapsed()));
        let t = Instant::now();
        get(key).await?;
        gets.push(ms(t.elapsed()));
    }
    Ok((summarize(puts), summarize(gets)))
}

/// Puts per second for `d` from 64 concurrent clients, each to its own
/// key; `put(key, n)` says whether a put succeeded.
pub(crate) async fn puts_per_second<P, F>(d: Duration, put: P) -> anyhow::Result<f64>
where
    P: Fn(String, u64) -> F + Clone + Send + 'static,
    F: std::future::Future<Output = bool> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..64 {
        let put = put.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while start.elapsed() < d {
                if put(format!("bench/p{c}"), done).await {
                    done += 1;
                }
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await?;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// SIGKILLs the leader process; the time until a lock is granted through
/// the client; then restores three voters.
async fn failovers(c: &mut Cluster, trials: usize) -> anyhow::Result<Summary> {
    let mut out = Vec::new();
    for trial in 0..trials {
        let leader = c.settle().await?;
        // A quiet second: the survivors have heard the leader lately.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let ids = c.ids().await?;
        let i = *ids.get(&leader).context("the leader is not a process")?;
        let mut victim = c.procs.nodes.remove(i);
        let t = Instant::now();
        let _ = victim.child.start_kill();
        let coord = c.coord();
        let granted = loop {
            match coord.lock(&format!("bench-failover-{trial}")).await {
                Ok(g) => {
                    let took = t.elapsed();
                    let _ = g.unlock().await;
                    break took;
                }
                Err(_) if t.elapsed() < Duration::from_secs(30) => continue,
                Err(e) => return Err(anyhow!("no lock within 30 s of the kill: {e}")),
            }
        };
        out.push(ms(granted));
        let _ = victim.child.wait().await;
        c.procs.spawn()?;
    }
    Ok(summarize(out))
}

impl CoordBench {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        let report = if self.etcd {
            super::coord_etcd::run(self.ops, Duration::from_secs(self.seconds), self.trials).await?
        } else {
            self.foundation().await?
        };
        super::emit(self.json, &report, table)
    }

    async fn foundation(&self) -> anyhow::Result<Report> {
        let d = Duration::from_secs(self.seconds);
        let durable = Cluster::start(self.base_port.wrapping_add(100), "durable").await?;
        let lock_durable_ms = lock_cycles(&durable.coord(), self.ops).await;
        durable.stop().await;
        let lock_durable_ms = lock_durable_ms?;

        let mut c = Cluster::start(self.base_port, "memory").await?;
        let result = async {
            let coord = c.coord();
            let lock_ms = lock_cycles(&coord, self.ops).await?;
            let (contended_grants_per_s, contended_wait_ms, double_grants) =
                contended(&coord, d).await?;
            let (put_ms, get_ms) = puts_and_gets(
                self.ops,
                |k, v| {
                    let coord = coord.clone();
                    async move { coord.put(&k, v.to_le_bytes()).await.map(|_| ()) }
                },
                |k| {
                    let coord = coord.clone();
                    async move { coord.get(&k).await.map(|_| ()) }
                },
            )
            .await?;
            let puts_per_s = puts_per_second(d, {
                let coord = coord.clone();
                move |k, v| {
                    let coord = coord.clone();
                    async move { coord.put(&k, v.to_le_bytes()).await.is_ok() }
                }
            })
            .await?;
            let failover_ms = failovers(&mut c, self.trials).await?;
            Ok::<_, anyhow::Error>(Report {
                system: "foundation",
                lock_ms,
                lock_durable_ms,
                contended_grants_per_s,
                contended_wait_ms,
                put_ms,
                get_ms,
                puts_per_s,
                failover_ms,
                double_grants,
            })
        }
        .await;
        let logs = c.procs.log_dir.clone();
        c.stop().await;
        result.with_context(|| format!("node logs in {}", logs.display()))
    }
}

/// A table row in milliseconds with two decimals.
fn row(name: &str, s: &Summary) -> Vec<String> {
    super::stats::row_with(name, s, 2)
}

pub(crate) fn table(r: &Report) {
    let client = match r.system {
        "etcd" => "HTTP/JSON to one member",
        _ => "a fourth node, a learner, in this process",
    };
    println!(
        "foundation bench coord: {} with 3 voters on loopback (client: {client})\n",
        r.system
    );
    print!(
        "{}",
        table::render(
            &["", "P50 ms", "P99 ms", "MAX ms", "SAMPLES"],
            &[
                row("lock + unlock, memory", &r.lock_ms),
                row("lock + unlock, durable", &r.lock_durable_ms),
                row("contended wait (16 clients)", &r.contended_wait_ms),
                row("put", &r.put_ms),
                row("linearizable get", &r.get_ms),
                row("leader failover to next grant", &r.failover_ms),
            ],
        )
    );
    println!(
        "\ncontended grants/s: {:.0}; puts/s with 64 clients: {:.0}; double grants: {}",
        r.contended_grants_per_s, r.puts_per_s, r.double_grants
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_holdings_are_counted() {
        let s = Duration::from_millis;
        assert_eq!(overlaps(vec![(s(0), s(5)), (s(5), s(9))]), 0);
        assert_eq!(overlaps(vec![(s(4), s(9)), (s(0), s(5))]), 1);
    }
}
