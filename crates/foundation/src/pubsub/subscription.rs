//! A subscription: a typed stream of one topic's messages.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use futures_util::Stream;

use super::api::Shared;
use super::local::{Ctx, Slot, SubscriptionId};
use super::ring::{self, RecvError};
use super::stats::TopicCounters;
use crate::context::RequestContext;

/// A typed stream of the messages published on one topic, from every node
/// of the cluster. Dropping it (or [`Subscription::unsubscribe`]) ends it.
///
/// Its buffer holds `pubsub.buffer` messages (rounded up to a power of
/// two). A subscription that falls further behind loses the oldest
/// messages; [`Subscription::dropped`] counts them. Memory never grows with
/// a subscriber that does not read.
pub struct Subscription<T> {
    pub(crate) id: SubscriptionId,
    pub(crate) topic: String,
    pub(crate) rx: ring::Receiver<Slot<T>>,
    pub(crate) capacity: usize,
    pub(crate) dropped: u64,
    pub(crate) counters: Arc<TopicCounters>,
    pub(crate) shared: Arc<Shared>,
    /// The request context of the message last returned.
    pub(crate) context: Ctx,
}

impl<T> std::fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("topic", &self.topic)
            .field("lag", &self.rx.len())
            .field("dropped", &self.dropped)
            .finish()
    }
}

impl<T: Send + Sync + 'static> Subscription<T> {
    /// The next message; `None` once the node has shut down. Messages lost
    /// to overrun are skipped (and counted), never waited for.
    pub async fn recv(&mut self) -> Option<Arc<T>> {
        loop {
            match self.rx.recv().await {
                Ok((msg, skip, ctx)) if skip != self.id.0 => {
                    self.context = ctx;
                    return Some(msg);
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => self.lost(n),
                Err(RecvError::Closed | RecvError::Empty) => return None,
            }
        }
    }

    /// A message if one is waiting.
    pub fn try_recv(&mut self) -> Option<Arc<T>> {
        loop {
            match self.rx.try_recv() {
                Ok((msg, skip, ctx)) if skip != self.id.0 => {
                    self.context = ctx;
                    return Some(msg);
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => self.lost(n),
                Err(RecvError::Empty | RecvError::Closed) => return None,
            }
        }
    }

    fn lost(&mut self, n: u64) {
        self.dropped += n;
        self.counters.dropped.fetch_add(n, Relaxed);
        self.shared.dropped_metric(n);
        tracing::debug!(topic = %self.topic, lost = n, "slow subscriber: oldest messages dropped");
    }

    /// The request context the message last returned was published in
    /// (its trace, deadline and baggage; the trace continues from the
    /// delivery on this node). `None` when it was published outside any
    /// [`RequestContext`]. Run its handling in it to keep the trace:
    /// `ctx.clone().scope(handle(msg)).await`.
    pub fn context(&self) -> Option<&RequestContext> {
        self.context.as_deref()
    }

    /// Messages waiting to be read (at most the buffer).
    pub fn lag(&self) -> usize {
        self.rx.len().min(self.capacity)
    }

    /// Messages this subscription lost to overrun so far, including those
    /// overwritten but not yet noticed by a read.
    pub fn dropped(&self) -> u64 {
        self.dropped + self.rx.len().saturating_sub(self.capacity) as u64
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// This subscription's id (for `broadcast_from`).
    pub fn id(&self) -> SubscriptionId {
        self.id
    }

    /// Ends the subscription (the same as dropping it).
    pub fn unsubscribe(self) {}

    /// The subscription as a `futures` stream.
    pub fn into_stream(self) -> impl Stream<Item = Arc<T>> + Send {
        futures_util::stream::unfold(self, |mut s| async move {
            let msg = s.recv().await?;
            Some((msg, s))
        })
    }
}

impl<T> Drop for Subscription<T> {
    fn drop(&mut self) {
        self.shared.unsubscribed(&self.topic);
    }
}
