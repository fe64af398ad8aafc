//! Stopping a node: gracefully (leave, hand off, flush) or abruptly (as
//! a crash looks to the others).

use super::*;

/// How long stopped tasks get to end before shutdown gives up on them.
const TASKS_STOP_WITHIN: Duration = Duration::from_secs(5);

impl Node {
    /// Leaves the cluster gracefully (the others see `Left`), then stops
    /// every task this node started and closes its sockets.
    pub async fn shutdown(&self) {
        let span = self.inner.spawned.span().clone();
        self.shutdown_in().instrument(span).await;
    }

    async fn shutdown_in(&self) {
        if self.inner.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::info!(node = %self.inner.id, "leaving the cluster");
        // Services stop first, so their entries are withdrawn while this
        // node can still tell the others; all at once, within the budget.
        let budget = self.inner.resolved.config.process.shutdown_timeout;
        let stopped = tokio::time::timeout(budget, async {
            hand_off_all(&self.scope(), &self.inner.manager).await;
            self.inner.host.stop_all(StopReason::Shutdown).await;
        })
        .await;
        if stopped.is_err() {
            tracing::warn!(
                ?budget,
                "services not handed off and stopped in time (process.shutdown_timeout_ms): the rest stop without handoff"
            );
        }
        // Its locks and ephemeral keys pass on now, not at the session's
        // deadline.
        self.inner.coord.leave().await;
        // Messages already broadcast go out before the node leaves.
        let within = self.inner.resolved.config.pubsub.shutdown_flush;
        if !self
            .inner
            .pubsub
            .sender
            .flush(tokio::time::Instant::now() + within)
            .await
        {
            tracing::warn!(?within, "pub/sub queues not flushed in time (pubsub.shutdown_flush_ms): some messages are lost");
        }
        if !self.inner.transport.drain(within).await {
            tracing::warn!(
                ?within,
                "peers did not acknowledge everything in time: some messages may be lost"
            );
        }
        self.inner.membership.leave().await;
        self.stop_tasks(Silence::AfterTasks).await;
        tracing::info!(node = %self.inner.id, "node stopped");
    }

    /// Stops abruptly, without leaving: the others see `Down`, as after a
    /// crash. For tests and fault injection.
    pub async fn abort(&self) {
        if self.inner.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        self.stop_tasks(Silence::First).await;
    }

    async fn stop_tasks(&self, silence: Silence) {
        // A crashed node answers nothing: its transport closes before its
        // services are cancelled, or a caller would hear "stopped" from a
        // node that is meant to have vanished. A graceful stop cancels first
        // so callers get that answer instead of a lost connection.
        if silence == Silence::First {
            self.inner.membership.abort();
            self.inner.transport.shutdown().await;
            self.inner.cancel.cancel();
        } else {
            self.inner.cancel.cancel();
            self.inner.membership.abort();
            self.inner.transport.shutdown().await;
        }
        // openraft runs tasks of its own; the storage file is closed. After
        // the transport: an aborted node must fall silent at once.
        self.inner.coord.stop().await;
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.inner.tasks.locked());
        for t in tasks {
            let _ = t.await;
        }
        let left = self.inner.spawned.join(TASKS_STOP_WITHIN).await;
        if left > 0 {
            tracing::warn!(tasks = left, "tasks still running after shutdown");
        }
    }
}

/// When a stopping node's transport falls silent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Silence {
    /// Before anything else: a crash.
    First,
    /// After the node's tasks were told to stop: a graceful shutdown.
    AfterTasks,
}
