//! Export over OTLP/HTTP with protobuf bodies (cargo feature `otlp`).
//!
//! Spans are queued (bounded: when the collector is slow or away, the
//! newest spans are dropped and counted, never memory) and posted in
//! batches of up to [`BATCH`] every [`FLUSH_EVERY`], and once more when the
//! node stops. A node starts one when `tracing.otlp_endpoint` (the
//! standard `OTEL_EXPORTER_OTLP_ENDPOINT`) or
//! `tracing.otlp_traces_endpoint` is set.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::protobuf::export_request;
use super::{SpanExporter, SpanRecord};

/// Most spans queued for export.
pub const QUEUE: usize = 4096;
/// Most spans per request.
pub const BATCH: usize = 512;
/// How often queued spans are posted.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Time limit of one post.
pub const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// Counts of an exporter's work.
#[derive(Debug, Default)]
pub struct OtlpStats {
    /// Spans the collector accepted.
    pub exported: AtomicU64,
    /// Spans dropped: queue full, or the post failed.
    pub dropped: AtomicU64,
    /// Posts that failed (refused, unreachable, timed out).
    pub failed_posts: AtomicU64,
}

/// A span exporter posting to an OTLP/HTTP collector.
#[derive(Debug)]
pub struct OtlpExporter {
    tx: mpsc::Sender<SpanRecord>,
    stats: Arc<OtlpStats>,
}

impl SpanExporter for OtlpExporter {
    fn export(&self, span: SpanRecord) {
        if self.tx.try_send(span).is_err() {
            self.stats.dropped.fetch_add(1, Relaxed);
        }
    }
}

impl OtlpExporter {
    /// Starts posting to `url` (the full traces URL) spans described by
    /// `resource` (`service.name`, ...), until `cancel`; the task is
    /// returned for the caller to run.
    pub fn start(
        url: String,
        resource: Vec<(&'static str, String)>,
        cancel: CancellationToken,
    ) -> (
        Arc<OtlpExporter>,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(OtlpStats::default());
        let exporter = Arc::new(OtlpExporter {
            tx,
            stats: stats.clone(),
        });
        let task = run(url, resource, rx, stats, cancel);
        (exporter, task)
    }

    /// What it has done so far.
    pub fn stats(&self) -> &OtlpStats {
        &self.stats
    }
}

async fn run(
    url: String,
    resource: Vec<(&'static str, String)>,
    mut rx: mpsc::Receiver<SpanRecord>,
    stats: Arc<OtlpStats>,
    cancel: CancellationToken,
) {
    let client = match reqwest::Client::builder().timeout(POST_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot build the HTTP client for OTLP export: spans are not exported");
            return;
        }
    };
    let post = Post {
        client,
        url,
        resource,
        stats,
        warned: crate::throttle::Throttle::new(Duration::from_secs(30)),
    };
    let mut batch = Vec::with_capacity(BATCH);
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            span = rx.recv() => match span {
                Some(s) => {
                    batch.push(s);
                    if batch.len() >= BATCH {
                        post.send(&mut batch).await;
                    }
                }
                None => break,
            },
            _ = tick.tick() => post.send(&mut batch).await,
        }
    }
    // The node stops: what is queued goes out once more.
    while let Ok(s) = rx.try_recv() {
        batch.push(s);
        if batch.len() >= BATCH {
            post.send(&mut batch).await;
        }
    }
    post.send(&mut batch).await;
}

struct Post {
    client: reqwest::Client,
    url: String,
    resource: Vec<(&'static str, String)>,
    stats: Arc<OtlpStats>,
    warned: crate::throttle::Throttle,
}

impl Post {
    async fn send(&self, batch: &mut Vec<SpanRecord>) {
        if batch.is_empty() {
            return;
        }
        let body = export_request(&self.resource, batch);
        let n = batch.len() as u64;
        batch.clear();
        let sent = self
            .client
            .post(&self.url)
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await;
        let failure = match sent {
            Ok(r) if r.status().is_success() => {
                self.stats.exported.fetch_add(n, Relaxed);
                return;
            }
            Ok(r) => format!("the collector answered {}", r.status()),
            Err(e) => format!("post failed: {e}"),
        };
        self.stats.failed_posts.fetch_add(1, Relaxed);
        self.stats.dropped.fetch_add(n, Relaxed);
        if self.warned.admit(std::time::Instant::now()).is_some() {
            tracing::warn!(url = %self.url, spans = n, %failure, "OTLP export failed: spans dropped");
        }
    }
}
