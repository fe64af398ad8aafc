//! Where strategies publish candidate sets.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

/// A set of candidate membership addresses.
pub type Candidates = BTreeSet<SocketAddr>;

/// A strategy's failure (API down, timeout, malformed answer...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("discovery strategy `{strategy}` failed: {message}")]
pub struct DiscoveryError {
    /// The strategy.
    pub strategy: &'static str,
    /// What went wrong.
    pub message: String,
}

/// The publishing end. Keeps the last good set through failures.
#[derive(Debug, Clone)]
pub struct CandidateSink {
    tx: Arc<watch::Sender<Candidates>>,
    errors: Arc<AtomicU64>,
}

impl CandidateSink {
    /// A sink and the receiving end.
    pub fn new() -> (CandidateSink, watch::Receiver<Candidates>) {
        let (tx, rx) = watch::channel(Candidates::new());
        (
            CandidateSink {
                tx: Arc::new(tx),
                errors: Arc::new(AtomicU64::new(0)),
            },
            rx,
        )
    }

    /// Publishes a successful answer (it may legitimately be empty).
    pub fn publish(&self, set: Candidates) {
        self.tx.send_if_modified(|cur| {
            if *cur == set {
                false
            } else {
                tracing::debug!(candidates = ?set, "discovery candidates changed");
                *cur = set;
                true
            }
        });
    }

    /// Reports a failure. The last good set stays in force.
    pub fn fail(&self, error: DiscoveryError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("foundation_discovery_errors_total", "strategy" => error.strategy)
            .increment(1);
        tracing::warn!(error = %error, kept = self.tx.borrow().len(), "discovery failed; keeping the last known peers");
    }

    /// Failures reported so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// The set in force.
    pub fn current(&self) -> Candidates {
        self.tx.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_keeps_the_last_good_set() {
        let (sink, rx) = CandidateSink::new();
        let a: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        sink.publish([a].into());
        sink.fail(DiscoveryError {
            strategy: "test",
            message: "HTTP 500".into(),
        });
        assert_eq!(*rx.borrow(), Candidates::from([a]));
        assert_eq!(sink.errors(), 1);
    }
}
