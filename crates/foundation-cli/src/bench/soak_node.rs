//! One process of `foundation bench soak` (`bench soak-node`, hidden): a
//! node under a steady mixed load, appending one JSON line per window to a
//! stats file.
//!
//! The load, per process:
//! - a broadcast on `soak.events` every 50 ms (a 256-byte body and the
//!   wall-clock time it was sent); every process subscribes and records
//!   how long each message took to arrive (one machine, one clock);
//! - a call to another process's echo service (registered as
//!   `soak.echo.NAME`, the processes taken in turn) every 50 ms;
//! - a call to the demo counter singleton `soak` every 100 ms;
//! - registry churn: a name registered every 100 ms and the one registered
//!   50 steps before unregistered (50 names held at any time).
//!
//! Each window line carries the process's resident memory, its live tokio
//! tasks, latency histograms of the window and what failed.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Args;
use foundation::process::{Context, Service, ServiceError, ServiceOptions};
use foundation::{Node, NodeBuilder};
use serde::{Deserialize, Serialize};

use super::histogram::Histogram;
use crate::cmd::node::{wait_for_stop, NodeArgs};

/// The topic every process publishes on and subscribes to.
const TOPIC: &str = "soak.events";
/// The singleton every process starts and calls.
const SINGLETON: &str = "soak";
/// A call that takes longer has failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Names the churn holds at once.
const CHURN_HELD: u64 = 50;

/// The soak's node process.
#[derive(Debug, Args)]
pub(crate) struct SoakNode {
    #[command(flatten)]
    node: NodeArgs,
    /// Processes in the soak; their names are `soak-1` .. `soak-N`.
    #[arg(long)]
    nodes: usize,
    /// File to append one JSON line per window to.
    #[arg(long)]
    stats: PathBuf,
    /// Seconds per window.
    #[arg(long, default_value_t = 10)]
    window_s: u64,
    /// Leave when standard input closes (always; accepted for the spawner).
    #[arg(long, hide = true)]
    stop_on_stdin_eof: bool,
}

/// What one process measured in one window.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct WindowLine {
    pub(crate) node: String,
    /// Wall-clock end of the window, milliseconds since the Unix epoch.
    pub(crate) unix_ms: u64,
    pub(crate) rss_bytes: u64,
    /// Live tokio tasks of the process.
    pub(crate) tasks: usize,
    /// Calls to other processes' echo services, µs.
    pub(crate) call: Histogram,
    /// Calls to the singleton, µs.
    pub(crate) singleton: Histogram,
    /// Broadcast to delivery, µs.
    pub(crate) publish: Histogram,
    pub(crate) calls_failed: u64,
    pub(crate) singleton_failed: u64,
    pub(crate) churn_failed: u64,
    pub(crate) published: u64,
    pub(crate) publish_failed: u64,
}

/// A soak message.
#[derive(Debug, Serialize, Deserialize)]
struct Event {
    sent_unix_us: u64,
    pad: Vec<u8>,
}

/// Answers what it is sent.
struct Echo;

impl Service for Echo {
    type Request = u64;
    type Reply = u64;
    type State = ();
    async fn handle(&mut self, _: &mut Context, n: u64) -> Result<u64, ServiceError> {
        Ok(n)
    }
}

/// Wall-clock microseconds since the Unix epoch.
pub(crate) fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn lock(w: &Mutex<WindowLine>) -> std::sync::MutexGuard<'_, WindowLine> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

fn micros(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e6
}

impl SoakNode {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        crate::logging::init(crate::logging::LogFormat::Text, "warn");
        let node = NodeBuilder::with_resolver(self.node.resolver()?)
            .start()
            .await
            .context("node did not start")?;
        let me = node.name().to_owned();
        foundation_demo::define(&node);
        node.processes()
            .start_singleton(SINGLETON, foundation_demo::KIND, &())
            .context("cannot start the soak singleton")?;
        let echo = node.services().spawn(|| Echo, ServiceOptions::default());
        node.registry()
            .register(&format!("soak.echo.{me}"), &echo)
            .context("cannot register the echo service")?;
        let window = Arc::new(Mutex::new(WindowLine {
            node: me.clone(),
            ..WindowLine::default()
        }));
        let others: Vec<String> = (1..=self.nodes)
            .map(|i| format!("soak-{i}"))
            .filter(|n| *n != me)
            .collect();
        let tasks = vec![
            tokio::spawn(subscriber(node.clone(), window.clone())?),
            tokio::spawn(publisher(node.clone(), window.clone())),
            tokio::spawn(caller(node.clone(), others, window.clone())),
            tokio::spawn(singleton_caller(node.clone(), window.clone())),
            tokio::spawn(churn(node.clone(), echo, me, window.clone())),
            tokio::spawn(reporter(
                self.stats.clone(),
                Duration::from_secs(self.window_s.max(1)),
                window,
            )),
        ];
        wait_for_stop(true).await;
        for t in &tasks {
            t.abort();
        }
        node.shutdown().await;
        Ok(())
    }
}

fn subscriber(
    node: Node,
    window: Arc<Mutex<WindowLine>>,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let mut sub = node.pubsub().subscribe::<Event>(TOPIC)?;
    Ok(async move {
        while let Some(e) = sub.recv().await {
            let waited = unix_us().saturating_sub(e.sent_unix_us);
            lock(&window).publish.record(waited as f64);
        }
    })
}

async fn publisher(node: Node, window: Arc<Mutex<WindowLine>>) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        let event = Event {
            sent_unix_us: unix_us(),
            pad: vec![0x5A; 256],
        };
        let ok = node.pubsub().broadcast(TOPIC, event).await.is_ok();
        let mut w = lock(&window);
        w.published += 1;
        w.publish_failed += u64::from(!ok);
    }
}

async fn caller(node: Node, others: Vec<String>, window: Arc<Mutex<WindowLine>>) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    for i in 0u64.. {
        tick.tick().await;
        let Some(name) = others.get(i as usize % others.len().max(1)) else {
            continue;
        };
        let start = Instant::now();
        let answered = match node.registry().lookup::<Echo>(&format!("soak.echo.{name}")) {
            Ok(Some(r)) => r.call(i, CALL_TIMEOUT).await.ok() == Some(i),
            // A restarted process re-registers within a round trip.
            Ok(None) | Err(_) => false,
        };
        let mut w = lock(&window);
        if answered {
            w.call.record(micros(start));
        } else {
            w.calls_failed += 1;
        }
    }
}

async fn singleton_caller(node: Node, window: Arc<Mutex<WindowLine>>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let start = Instant::now();
        let answered = match node
            .processes()
            .lookup_singleton::<foundation_demo::Counter>(SINGLETON)
        {
            Ok(Some(r)) => r.call(1, CALL_TIMEOUT).await.is_ok(),
            Ok(None) | Err(_) => false,
        };
        let mut w = lock(&window);
        if answered {
            w.singleton.record(micros(start));
        } else {
            w.singleton_failed += 1;
        }
    }
}

async fn churn(
    node: Node,
    target: foundation::ServiceRef<Echo>,
    me: String,
    window: Arc<Mutex<WindowLine>>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let name = |i: u64| format!("soak.churn.{me}.{i}");
    for i in 0u64.. {
        tick.tick().await;
        let mut ok = node.registry().register(&name(i), &target).is_ok();
        if i >= CHURN_HELD {
            ok &= node.registry().unregister(&name(i - CHURN_HELD));
        }
        lock(&window).churn_failed += u64::from(!ok);
    }
}

/// Appends the window's line every `every`, then starts a new window.
async fn reporter(path: PathBuf, every: Duration, window: Arc<Mutex<WindowLine>>) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let line = {
            let mut w = lock(&window);
            let fresh = WindowLine {
                node: w.node.clone(),
                ..WindowLine::default()
            };
            std::mem::replace(&mut *w, fresh)
        };
        let line = WindowLine {
            unix_ms: unix_us() / 1000,
            rss_bytes: foundation::telemetry::process::resident_memory_bytes().unwrap_or(0),
            tasks: tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
            ..line
        };
        // One short line every few seconds: a blocking write is fine.
        if let Err(e) = append(&path, &line) {
            tracing::warn!(path = %path.display(), error = %e, "soak: cannot write the stats line");
        }
    }
}

fn append(path: &std::path::Path, line: &WindowLine) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut json = serde_json::to_vec(line)?;
    json.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(&json)?;
    Ok(())
}
