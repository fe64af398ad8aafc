//! `foundation node`: run one node until Ctrl-C / SIGTERM.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use foundation::config::{Resolver, Value};
use foundation::NodeBuilder;
use tokio::io::AsyncReadExt as _;

use crate::logging::{self, LogFormat};

/// Flags shared by `node` and `config explain` (they form the builder layer).
#[derive(Debug, Clone, Args)]
pub(crate) struct NodeArgs {
    /// Node name (default: the host name).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Membership port, the address seeds name (default: 7946).
    #[arg(long)]
    pub(crate) port: Option<u16>,
    /// Address to bind (default: 0.0.0.0).
    #[arg(long)]
    pub(crate) bind: Option<IpAddr>,
    /// Seeds, host:port of their membership ports, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(crate) seeds: Vec<String>,
    /// Discovery strategy in one word (static, mdns, ...).
    #[arg(long)]
    pub(crate) cluster: Option<String>,
    /// HTTP port for /health, /ready, /metrics (default: 9090).
    #[arg(long)]
    pub(crate) http_port: Option<u16>,
    /// Configuration file (default: FOUNDATION_CONFIG or ./foundation.toml).
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
}

impl NodeArgs {
    /// A resolver: process env, file, these flags as the builder layer, and
    /// the CLI's defaults (HTTP on).
    pub(crate) fn resolver(&self) -> anyhow::Result<Resolver> {
        let mut r = Resolver::from_process_env().default_value("http.enabled", Value::Bool(true));
        if let Some(path) = &self.config {
            r = r.file(path);
        }
        let layer = r.builder_layer();
        let mut set = |key: &str, value: String| layer.set_str(key, &value, "command line");
        if let Some(v) = &self.name {
            set("node.name", v.clone())?;
        }
        if let Some(v) = self.port {
            set("membership.port", v.to_string())?;
        }
        if let Some(v) = self.bind {
            set("transport.bind", v.to_string())?;
        }
        if !self.seeds.is_empty() {
            set("seeds", self.seeds.join(","))?;
        }
        if let Some(v) = &self.cluster {
            set("cluster", v.clone())?;
        }
        if let Some(v) = self.http_port {
            set("http.port", v.to_string())?;
        }
        Ok(r)
    }
}

/// Run one node.
#[derive(Debug, Args)]
pub(crate) struct NodeCmd {
    #[command(flatten)]
    args: NodeArgs,
    /// Log format.
    #[arg(long, value_enum, default_value_t)]
    log_format: LogFormat,
    /// Run the demo counter as a cluster singleton under this name (every
    /// node given the same name shares one instance).
    #[arg(long)]
    singleton: Vec<String>,
    /// Leave and exit when standard input closes (used by `foundation dev`).
    #[arg(long, hide = true)]
    stop_on_stdin_eof: bool,
    /// Test load: broadcast (node id, sequence number) on this topic.
    #[arg(long, help_heading = "Test load")]
    publish: Option<String>,
    /// Test load: milliseconds between broadcasts.
    #[arg(long, default_value_t = 10, help_heading = "Test load")]
    publish_every_ms: u64,
    /// Test load: count what arrives on this topic, per publisher.
    #[arg(long, help_heading = "Test load")]
    subscribe: Option<String>,
    /// Test load: add 1 to the demo counter singleton of this name.
    #[arg(long, help_heading = "Test load")]
    call_singleton: Option<String>,
    /// Test load: milliseconds between calls.
    #[arg(long, default_value_t = 20, help_heading = "Test load")]
    call_every_ms: u64,
    /// Test load: call only while this file exists.
    #[arg(long, help_heading = "Test load")]
    call_while: Option<PathBuf>,
    /// Test load: add 1 to and read this coordination counter, in turns.
    #[arg(long, help_heading = "Test load")]
    coord_counter: Option<String>,
    /// Test load: take this coordination lock, hold it 300 ms, release it.
    #[arg(long, help_heading = "Test load")]
    coord_lock: Option<String>,
    /// Test load: append every coordination operation and lock holding to
    /// this file, one JSON line each, as it happens.
    #[arg(long, help_heading = "Test load")]
    coord_journal: Option<PathBuf>,
    /// Test load: milliseconds between coordination operations.
    #[arg(long, default_value_t = 50, help_heading = "Test load")]
    coord_every_ms: u64,
    /// Test load: write what was sent, received and acknowledged to this
    /// JSON file (every 250 ms and on exit).
    #[arg(long, help_heading = "Test load")]
    report: Option<PathBuf>,
}

impl NodeCmd {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        logging::init(self.log_format, "info");
        let node = NodeBuilder::with_resolver(self.args.resolver()?)
            .start()
            .await
            .context("node did not start")?;
        if let Some(addr) = node.http_addr() {
            tracing::info!("health: http://{addr}/health");
        }
        foundation_demo::define(&node);
        for name in &self.singleton {
            node.processes()
                .start_singleton(name, foundation_demo::KIND, &())
                .with_context(|| format!("cannot start singleton {name}"))?;
        }
        let load = crate::load::Load {
            publish: self.publish,
            publish_every: Duration::from_millis(self.publish_every_ms),
            subscribe: self.subscribe,
            call_singleton: self.call_singleton,
            call_every: Duration::from_millis(self.call_every_ms),
            call_while: self.call_while,
            coord_counter: self.coord_counter,
            coord_lock: self.coord_lock,
            coord_every: Duration::from_millis(self.coord_every_ms),
            coord_journal: self.coord_journal,
            report: self.report,
        };
        let load = if load.is_empty() && load.report.is_none() {
            None
        } else {
            Some(load.start(&node).context("cannot start the test load")?)
        };
        wait_for_stop(self.stop_on_stdin_eof).await;
        if let Some(load) = load {
            load.finish();
        }
        node.shutdown().await;
        Ok(())
    }
}

/// Ctrl-C, SIGTERM, or (when asked) standard input closing.
pub(crate) async fn wait_for_stop(stdin_eof: bool) {
    let stdin = async {
        if stdin_eof {
            let mut buf = [0u8; 64];
            let mut input = tokio::io::stdin();
            while matches!(input.read(&mut buf).await, Ok(n) if n > 0) {}
        } else {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: leaving"),
        _ = term => tracing::info!("SIGTERM: leaving"),
        _ = stdin => tracing::info!("stdin closed: leaving"),
    }
}
