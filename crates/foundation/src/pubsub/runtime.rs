//! The receiving side: pub/sub frames in, local deliveries out.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::api::Shared;
use super::wire::decode_batch;
use crate::context::RequestContext;
use crate::membership::MemberEvent;
use crate::spans::SpanKind;
use crate::transport::{Inbox, Incoming};

/// Bytes decoded between yields.
const YIELD_EVERY: usize = 256 * 1024;

/// Delivers received items to local subscriptions and drops the queues of
/// members that leave or go down.
pub(crate) struct ReceiveTask {
    pub(crate) shared: Arc<Shared>,
    pub(crate) inbox: Inbox,
    pub(crate) members: broadcast::Receiver<MemberEvent>,
    pub(crate) cancel: CancellationToken,
}

impl ReceiveTask {
    pub(crate) async fn run(mut self) {
        // Bytes decoded since this task last gave up the thread.
        let mut since_yield = 0;
        loop {
            if since_yield >= YIELD_EVERY {
                // Decoding copies every message but raw bytes: after a few
                // hundred KiB, let other tasks (control traffic first) run.
                since_yield = 0;
                tokio::task::yield_now().await;
            }
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                msg = self.inbox.recv() => match msg {
                    Some(msg) => {
                        since_yield += msg.payload.len();
                        receive(&self.shared, msg);
                    }
                    None => break,
                },
                ev = self.members.recv() => match ev {
                    Ok(MemberEvent::Down(m) | MemberEvent::Left(m)) => self.shared.sender.forget(m.id),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        self.shared.close();
    }
}

/// `part` of `frame` as shared bytes: a slice, not a copy (decoding
/// borrows every body from the frame); a copy of anything else.
fn share(frame: &Bytes, part: &[u8]) -> Bytes {
    let (whole, p) = (frame.as_ptr_range(), part.as_ptr_range());
    if part.is_empty() {
        Bytes::new()
    } else if whole.start <= p.start && p.end <= whole.end {
        frame.slice_ref(part)
    } else {
        Bytes::copy_from_slice(part)
    }
}

/// Handles one pub/sub frame. A malformed frame is counted and logged;
/// the items before the bad part are still delivered.
pub(crate) fn receive(shared: &Shared, msg: Incoming) {
    let (items, err) = decode_batch(&msg.payload);
    let spans = &shared.registry.messenger.spans;
    // Items of one topic usually come in runs: one lookup per run.
    for run in items.chunk_by(|a, b| a.topic == b.topic) {
        let topic = &run[0].topic;
        let counters = shared.counters.topic(topic);
        counters.received.fetch_add(run.len() as u64, Relaxed);
        let bytes: usize = run.iter().map(|i| i.body.len()).sum();
        counters.received_bytes.fetch_add(bytes as u64, Relaxed);
        let bodies = run.iter().map(|i| {
            let ctx = i.context.clone().map(|w| {
                let rc = RequestContext::from_wire(w);
                let attrs = || {
                    vec![
                        ("foundation.peer.id", msg.from.to_string()),
                        ("foundation.topic", topic.to_string()),
                    ]
                };
                // The delivery is a span of its own: the subscriber's work
                // continues from it.
                Arc::new(spans.mark("deliver", SpanKind::Consumer, &rc, attrs))
            });
            (share(&msg.payload, &i.body), ctx)
        });
        match shared.local.deliver_bytes(topic, bodies) {
            // Interest lags a round trip behind an unsubscribe.
            None => tracing::trace!(%topic, "no subscriber here any more"),
            Some(d) if d.undecodable > 0 => {
                tracing::debug!(%topic, from = %msg.from, "message does not decode as a subscriber's type");
            }
            Some(_) => {}
        }
    }
    if let Some(e) = err {
        shared.counters.rejected.fetch_add(1, Relaxed);
        metrics::counter!("foundation_pubsub_frames_rejected_total").increment(1);
        tracing::warn!(from = %msg.from, error = %e, "malformed pub/sub frame");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_slices_of_their_frame_and_anything_else_is_copied() {
        let frame = Bytes::from(vec![1u8, 2, 3, 4, 5]);
        let inner = share(&frame, &frame[1..4]);
        assert_eq!(
            (&inner[..], inner.as_ptr()),
            (&[2u8, 3, 4][..], frame[1..].as_ptr())
        );
        let other = [2u8, 3, 4];
        let copied = share(&frame, &other);
        assert_eq!(&copied[..], &other[..]);
        assert_ne!(copied.as_ptr(), other.as_ptr());
        assert!(share(&frame, &[]).is_empty());
    }
}
