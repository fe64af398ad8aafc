//! Load for chaos runs on real processes (`foundation node --publish`,
//! `--subscribe`, `--call-singleton`, `--report`): what a test needs to
//! tell whether anything was lost, written as JSON to a file.
//!
//! - A publisher broadcasts `(its node id, sequence number)` on a topic
//!   at a fixed pace.
//! - A subscriber counts, per publisher, what arrived: how many, the first
//!   and last sequence numbers, the numbers skipped (gaps), and any number
//!   that arrived twice or out of order (pub/sub promises neither).
//! - A caller adds 1 to the demo counter singleton at a fixed pace and
//!   counts the calls acknowledged and the totals returned. With every
//!   caller's report, nothing was lost if the counter's last total is at
//!   least the sum of acknowledged calls (and at most the sum attempted).
//! - Coordination clients journal their histories ([`coord`]).

mod coord;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use foundation::{Node, NodeId};
use serde::Serialize;

use foundation_demo::Counter;

/// Per publisher, what a subscriber received.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct Received {
    count: u64,
    first: u64,
    last: u64,
    /// Sequence numbers skipped between first and last.
    gaps: u64,
    /// Messages whose number was not above the last one seen.
    out_of_order: u64,
}

impl Received {
    fn add(&mut self, seq: u64) {
        if self.count == 0 {
            self.first = seq;
        } else if seq <= self.last {
            self.out_of_order += 1;
            self.count += 1;
            return;
        } else {
            self.gaps += seq - self.last - 1;
        }
        self.last = seq;
        self.count += 1;
    }
}

/// Calls to the counter singleton.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct Calls {
    attempted: u64,
    acked: u64,
    failed: u64,
    /// The highest total a call returned.
    last_total: u64,
}

/// Everything one process reports.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct Report {
    node: String,
    /// Messages broadcast.
    published: u64,
    /// Sum over messages of the other nodes each was queued for.
    queued_nodes: u64,
    /// Sum over messages of the nodes each was dropped for (full queue).
    dropped_nodes: u64,
    /// Publishers by node id (hex), what arrived from each.
    received: BTreeMap<String, Received>,
    calls: Calls,
}

/// What to run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Load {
    pub(crate) publish: Option<String>,
    pub(crate) publish_every: Duration,
    pub(crate) subscribe: Option<String>,
    pub(crate) call_singleton: Option<String>,
    pub(crate) call_every: Duration,
    /// Calls are made only while this file exists (when set).
    pub(crate) call_while: Option<PathBuf>,
    /// A coordination counter to add to and read.
    pub(crate) coord_counter: Option<String>,
    /// A coordination lock to take and release.
    pub(crate) coord_lock: Option<String>,
    pub(crate) coord_every: Duration,
    /// Where coordination clients journal what they do.
    pub(crate) coord_journal: Option<PathBuf>,
    pub(crate) report: Option<PathBuf>,
}

/// How often the report file is rewritten.
const REPORT_EVERY: Duration = Duration::from_millis(250);
/// A call that takes longer has failed, as far as the report goes.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

impl Load {
    /// Whether anything is asked.
    pub(crate) fn is_empty(&self) -> bool {
        self.publish.is_none()
            && self.subscribe.is_none()
            && self.call_singleton.is_none()
            && self.coord_counter.is_none()
            && self.coord_lock.is_none()
    }

    /// Starts the tasks on `node`; the returned handle writes the final
    /// report.
    pub(crate) fn start(self, node: &Node) -> anyhow::Result<Running> {
        let report = Arc::new(Mutex::new(Report {
            node: node.id().to_string(),
            ..Report::default()
        }));
        let mut tasks = Vec::new();
        if let Some(topic) = self.subscribe.clone() {
            let mut sub = node.pubsub().subscribe::<(NodeId, u64)>(&topic)?;
            let report = report.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(m) = sub.recv().await {
                    let (from, seq) = *m;
                    let mut r = lock(&report);
                    r.received.entry(from.to_string()).or_default().add(seq);
                }
            }));
        }
        if let Some(topic) = self.publish.clone() {
            let (node, report) = (node.clone(), report.clone());
            let every = self.publish_every.max(Duration::from_millis(1));
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                let me = node.id();
                for seq in 1.. {
                    tick.tick().await;
                    match node.pubsub().broadcast(&topic, (me, seq)).await {
                        Ok(p) => {
                            let mut r = lock(&report);
                            r.published = seq;
                            r.queued_nodes += p.nodes as u64;
                            r.dropped_nodes += p.dropped.len() as u64;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "load: broadcast failed");
                            return;
                        }
                    }
                }
            }));
        }
        if let Some(name) = self.call_singleton.clone() {
            let (node, report) = (node.clone(), report.clone());
            let every = self.call_every.max(Duration::from_millis(1));
            let gate = self.call_while.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    if gate.as_deref().is_some_and(|p| !p.exists()) {
                        continue;
                    }
                    call_once(&node, &name, &report).await;
                }
            }));
        }
        let mut coord_journal = None;
        if self.coord_counter.is_some() || self.coord_lock.is_some() {
            let path = self
                .coord_journal
                .as_deref()
                .context("--coord-counter and --coord-lock need --coord-journal")?;
            let journal = coord::Journal::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let every = self.coord_every.max(Duration::from_millis(1));
            if let Some(name) = self.coord_counter.clone() {
                let c = coord::counter(node.coord(), name, every, journal.clone());
                tasks.push(tokio::spawn(c));
            }
            if let Some(name) = self.coord_lock.clone() {
                let c = coord::locker(node.coord(), name, every, journal.clone());
                tasks.push(tokio::spawn(c));
            }
            coord_journal = Some(journal);
        }
        if let Some(path) = self.report.clone() {
            let report = report.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(REPORT_EVERY);
                loop {
                    tick.tick().await;
                    write(&path, &report);
                }
            }));
        }
        Ok(Running {
            tasks,
            report,
            path: self.report,
            coord_journal,
        })
    }
}

async fn call_once(node: &Node, name: &str, report: &Mutex<Report>) {
    lock(report).calls.attempted += 1;
    let result = match node.registry().lookup::<Counter>(name) {
        Ok(Some(counter)) => counter.call(1, CALL_TIMEOUT).await.ok().map(|c| c.total),
        Ok(None) | Err(_) => None,
    };
    let mut r = lock(report);
    match result {
        Some(total) => {
            r.calls.acked += 1;
            r.calls.last_total = r.calls.last_total.max(total);
        }
        None => r.calls.failed += 1,
    }
}

/// The report, even if a task panicked while holding it (counters only).
fn lock(report: &Mutex<Report>) -> std::sync::MutexGuard<'_, Report> {
    report.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes `report` to `path` through a temporary file, so a reader never
/// sees half a report.
fn write(path: &Path, report: &Mutex<Report>) {
    let json = {
        let r = lock(report);
        serde_json::to_vec_pretty(&*r)
    };
    let Ok(json) = json else { return };
    let tmp = path.with_extension("tmp");
    if let Err(e) = std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, path)) {
        tracing::warn!(path = %path.display(), error = %e, "load: cannot write the report");
    }
}

/// The running load.
pub(crate) struct Running {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    report: Arc<Mutex<Report>>,
    path: Option<PathBuf>,
    coord_journal: Option<coord::Journal>,
}

impl Running {
    /// Stops the tasks and writes the final report.
    pub(crate) fn finish(self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(j) = &self.coord_journal {
            j.end();
        }
        if let Some(path) = &self.path {
            write(path, &self.report);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Received;

    #[test]
    fn gaps_and_disorder_are_counted() {
        let mut r = Received::default();
        for seq in [5, 6, 8, 9, 9, 7, 12] {
            r.add(seq);
        }
        assert_eq!(
            (r.count, r.first, r.last, r.gaps, r.out_of_order),
            (7, 5, 12, 3, 2)
        );
    }
}
