//! The node's background tasks: each spawned inside the node's span (so
//! every log event names the node, and several nodes in one process can
//! be told apart), tracked, and stopped and joined on shutdown.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, Span};

/// How long a task may go on after the node's token is cancelled before it
/// is dropped.
const CLEANUP_GRACE: Duration = Duration::from_secs(1);

/// Spawns and tracks one node's tasks. Clone it freely.
#[derive(Clone, Debug)]
pub(crate) struct Tasks {
    tracker: TaskTracker,
    cancel: CancellationToken,
    span: Span,
}

impl Tasks {
    /// Tasks of the node whose span is `span`, stopped by `cancel`.
    pub(crate) fn new(span: Span, cancel: CancellationToken) -> Self {
        Tasks {
            tracker: TaskTracker::new(),
            cancel,
            span,
        }
    }

    /// The node's span (events outside a task, such as shutdown, enter it).
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// Runs `fut` in the node's span until it ends or the node stops.
    pub(crate) fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.spawn_in(self.span.clone(), fut);
    }

    /// Runs `fut` in `span` (a child of the node's, such as a peer's).
    pub(crate) fn spawn_in(&self, span: Span, fut: impl Future<Output = ()> + Send + 'static) {
        let cancel = self.cancel.clone();
        self.tracker.spawn(
            async move {
                tokio::pin!(fut);
                // The task sees the token itself and finishes its own
                // clean-up (pub/sub ends its subscriptions, for one); only
                // one that is still running CLEANUP_GRACE later is dropped.
                tokio::select! {
                    biased;
                    _ = &mut fut => {}
                    _ = async {
                        cancel.cancelled().await;
                        tokio::time::sleep(CLEANUP_GRACE).await;
                    } => {}
                }
            }
            .instrument(span),
        );
    }

    /// A span for traffic with `peer`, inside the node's.
    pub(crate) fn peer_span(&self, peer: impl std::fmt::Display, what: &'static str) -> Span {
        tracing::debug_span!(parent: &self.span, "peer", peer = %peer, what)
    }

    /// Stops every task (the node's token must be cancelled first) and
    /// waits up to `within` for them to end; how many were still running.
    pub(crate) async fn join(&self, within: Duration) -> usize {
        self.tracker.close();
        if tokio::time::timeout(within, self.tracker.wait())
            .await
            .is_err()
        {
            return self.tracker.len();
        }
        0
    }

    /// Tasks running now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.tracker.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_finishes_its_own_clean_up_when_the_node_stops() {
        let cancel = CancellationToken::new();
        let tasks = Tasks::new(tracing::info_span!("node"), cancel.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let token = cancel.clone();
        tasks.spawn(async move {
            token.cancelled().await;
            tokio::task::yield_now().await; // clean-up that awaits
            let _ = tx.send("cleaned up");
        });
        cancel.cancel();
        assert_eq!(tasks.join(Duration::from_secs(5)).await, 0);
        assert_eq!(rx.await, Ok("cleaned up"));
    }

    #[tokio::test(start_paused = true)]
    async fn tasks_end_when_the_node_stops_and_are_joined() {
        let cancel = CancellationToken::new();
        let tasks = Tasks::new(tracing::info_span!("node"), cancel.clone());
        for _ in 0..3 {
            tasks.spawn(std::future::pending());
        }
        tasks.spawn(async {});
        tokio::task::yield_now().await;
        assert_eq!(tasks.len(), 3, "the finished one is gone, three run");
        cancel.cancel();
        assert_eq!(tasks.join(Duration::from_secs(5)).await, 0);
        assert_eq!(tasks.len(), 0);
    }
}
