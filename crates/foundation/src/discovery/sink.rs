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

    /// A sink whose sets `union` merges into this one with others' (its
    /// failures count here). For a strategy that runs several ways of
    /// finding peers at once.
    pub fn part(&self) -> (CandidateSink, watch::Receiver<Candidates>) {
        let (tx, rx) = watch::channel(Candidates::new());
        (
            CandidateSink {
                tx: Arc::new(tx),
                errors: self.errors.clone(),
            },
            rx,
        )
    }

    /// Publishes the union of `parts` each time one of them changes,
    /// until every part's sink is gone.
    pub async fn union(&self, mut parts: Vec<watch::Receiver<Candidates>>) {
        loop {
            let set: Candidates = parts.iter().flat_map(|p| p.borrow().clone()).collect();
            self.publish(set);
            let changes = parts.iter_mut().map(|p| Box::pin(p.changed()));
            let (changed, index, _) = futures_util::future::select_all(changes).await;
            if changed.is_err() {
                parts.swap_remove(index);
                if parts.is_empty() {
                    return;
                }
            }
        }
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

    #[tokio::test]
    async fn the_union_of_parts_follows_each_part() {
        let (sink, mut rx) = CandidateSink::new();
        let (one, one_rx) = sink.part();
        let (two, two_rx) = sink.part();
        let a: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let b: SocketAddr = "127.0.0.1:2".parse().expect("addr");
        let merging = tokio::spawn({
            let sink = sink.clone();
            async move { sink.union(vec![one_rx, two_rx]).await }
        });
        let next = |rx: &mut watch::Receiver<Candidates>| {
            let mut rx = rx.clone();
            async move {
                tokio::time::timeout(std::time::Duration::from_secs(5), rx.changed())
                    .await
                    .expect("published")
                    .expect("open");
                rx.borrow_and_update().clone()
            }
        };
        one.publish([a].into());
        let mut seen = next(&mut rx).await;
        while seen != Candidates::from([a]) {
            seen = next(&mut rx).await;
        }
        two.publish([a, b].into());
        while seen != Candidates::from([a, b]) {
            seen = next(&mut rx).await;
        }
        // One part forgets a; the other still has it.
        one.publish(Candidates::new());
        two.publish([b].into());
        while seen != Candidates::from([b]) {
            seen = next(&mut rx).await;
        }
        // A part's failure counts in the whole.
        two.fail(DiscoveryError {
            strategy: "test",
            message: "down".into(),
        });
        assert_eq!(sink.errors(), 1);
        drop((one, two));
        tokio::time::timeout(std::time::Duration::from_secs(5), merging)
            .await
            .expect("the union ends with its parts")
            .expect("no panic");
        assert_eq!(sink.current(), Candidates::from([b]), "the last set stays");
    }
}
