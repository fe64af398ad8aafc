//! Registry visibility: register names on one node of a 5-node cluster and
//! time until each is visible on every other node.
//!
//! The nodes run in this process, on loopback, on one multi-threaded
//! runtime. Each observer watches its registry's change counter and checks
//! names in registration order (deltas apply in order), so watching costs
//! O(1) per change.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use clap::Args;
use foundation::process::{Context, Service, ServiceError, ServiceOptions};
use foundation::{Node, NodeBuilder};
use serde::Serialize;

use super::stats::{summarize, Summary};
use crate::table;

/// Time until a registered name is visible on every node.
#[derive(Debug, Clone, Args)]
pub(crate) struct RegistryBench {
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Names registered (back to back) on the first node.
    #[arg(long, default_value_t = 1000)]
    names: usize,
    /// Pause between registrations, in microseconds (0 = back to back).
    #[arg(long, default_value_t = 0)]
    interval_us: u64,
    /// Then time this many `register_sync` calls.
    #[arg(long, default_value_t = 200)]
    sync_names: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    nodes: usize,
    names: usize,
    interval_us: u64,
    /// Registration to visible on every node, per name.
    visibility_ms: Summary,
    /// Registration to visible, per (name, observer).
    per_observer_ms: Summary,
    /// `register_sync` call to return.
    register_sync_ms: Summary,
    register_s: f64,
}

/// A service that holds names and does nothing.
struct Holder;

impl Service for Holder {
    type Request = ();
    type Reply = ();
    type State = ();

    async fn handle(&mut self, _: &mut Context, _: ()) -> Result<(), ServiceError> {
        Ok(())
    }
}

async fn start_nodes(n: usize) -> anyhow::Result<Vec<Node>> {
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    for i in 0..n {
        let mut b = NodeBuilder::isolated()
            .cluster("static")
            .name(&format!("reg-{i}"))
            .secret("foundation-bench-secret-0123456789")
            .bind(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .port(0);
        if let Some(seed) = nodes.first() {
            b = b.seeds([seed.membership_addr().to_string()]);
        }
        nodes.push(b.start().await.context("bench node did not start")?);
    }
    for node in &nodes {
        node.wait_for_members(n, Duration::from_secs(30))
            .await
            .map_err(|m| anyhow!("{} sees only {} members", node.name(), m.len()))?;
    }
    Ok(nodes)
}

/// Watches `node` until every name is visible; when each became visible.
async fn observe(node: Node, names: Arc<Vec<String>>) -> Vec<Instant> {
    let reg = node.registry();
    let mut changes = reg.changes();
    let mut seen = Vec::with_capacity(names.len());
    while seen.len() < names.len() {
        while seen.len() < names.len() && reg.whereis(&names[seen.len()]).is_some() {
            seen.push(Instant::now());
        }
        if seen.len() < names.len() && changes.changed().await.is_err() {
            break;
        }
    }
    seen
}

impl RegistryBench {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        crate::logging::init(crate::logging::LogFormat::Text, "warn");
        if self.nodes < 2 || self.names == 0 {
            return Err(anyhow!("need at least 2 nodes and 1 name"));
        }
        let nodes = start_nodes(self.nodes).await?;
        let report = self.measure(&nodes).await;
        for n in &nodes {
            n.shutdown().await;
        }
        let report = report?;
        super::emit(self.json, &report, print_table)
    }

    async fn measure(&self, nodes: &[Node]) -> anyhow::Result<Report> {
        let home = &nodes[0];
        let holder = home
            .services()
            .spawn(|| Holder, ServiceOptions::labelled("holder"));
        let names: Arc<Vec<String>> =
            Arc::new((0..self.names).map(|i| format!("bench-{i}")).collect());
        let observers: Vec<_> = nodes[1..]
            .iter()
            .map(|n| tokio::spawn(observe(n.clone(), names.clone())))
            .collect();
        let begin = Instant::now();
        let mut registered = Vec::with_capacity(self.names);
        for name in names.iter() {
            registered.push(Instant::now());
            home.registry()
                .register(name, &holder)
                .with_context(|| format!("register {name}"))?;
            if self.interval_us > 0 {
                tokio::time::sleep(Duration::from_micros(self.interval_us)).await;
            }
        }
        let register_s = begin.elapsed().as_secs_f64();
        let mut all_seen = Vec::new();
        for o in observers {
            let seen = tokio::time::timeout(Duration::from_secs(60), o)
                .await
                .context("names not visible within 60 s")??;
            if seen.len() < self.names {
                return Err(anyhow!("an observer stopped after {} names", seen.len()));
            }
            all_seen.push(seen);
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut per_observer = Vec::new();
        let mut visibility = Vec::new();
        for (i, at) in registered.iter().enumerate() {
            let mut last = *at;
            for seen in &all_seen {
                per_observer.push(ms(seen[i].saturating_duration_since(*at)));
                last = last.max(seen[i]);
            }
            visibility.push(ms(last.saturating_duration_since(*at)));
        }
        let mut sync = Vec::with_capacity(self.sync_names);
        for i in 0..self.sync_names {
            let s = home
                .services()
                .spawn(|| Holder, ServiceOptions::labelled("sync"));
            let t = Instant::now();
            home.registry()
                .register_sync(&format!("sync-{i}"), &s, Duration::from_secs(10))
                .await
                .context("register_sync")?;
            sync.push(ms(t.elapsed()));
        }
        Ok(Report {
            nodes: nodes.len(),
            names: self.names,
            interval_us: self.interval_us,
            visibility_ms: summarize(visibility),
            per_observer_ms: summarize(per_observer),
            register_sync_ms: summarize(sync),
            register_s,
        })
    }
}

fn print_table(r: &Report) {
    println!(
        "foundation bench registry: {} nodes in one process (loopback, one multi-threaded runtime), {} names registered on one node{}\n",
        r.nodes,
        r.names,
        if r.interval_us == 0 {
            " back to back".to_owned()
        } else {
            format!(", one every {} µs", r.interval_us)
        }
    );
    let fmt = |name: &str, s: &Summary| super::stats::row_with(name, s, 2);
    print!(
        "{}",
        table::render(
            &["", "P50 ms", "P99 ms", "MAX ms", "SAMPLES"],
            &[
                fmt("visible on every node", &r.visibility_ms),
                fmt("visible per observer", &r.per_observer_ms),
                fmt("register_sync returns", &r.register_sync_ms),
            ],
        )
    );
    println!("\nregistering {} names took {:.3} s", r.names, r.register_s);
}
