//! This node's subscriptions: per topic, one ring buffer per message type.
//!
//! A ring ([`super::ring`]) carries `Arc<T>`: every subscription of the
//! topic and type reads the same `Arc`, so local delivery neither copies
//! nor serializes per subscriber. A ring allocates only for the messages it
//! holds, so a quiet topic costs little whatever `pubsub.buffer` is. A subscription that falls more
//! than the buffer behind loses the oldest messages and counts them.

use crate::locks::Locked as _;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use super::ring;
use crate::context::RequestContext;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::stats::TopicCounters;

/// Identifies one subscription on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(pub(crate) u64);

/// What a ring carries: the message, the subscription it must skip
/// (`broadcast_from`; 0 skips none), and the publisher's request context.
pub(crate) type Slot<T> = (Arc<T>, u64, Ctx);

/// A message's request context, shared by every ring it goes to.
pub(crate) type Ctx = Option<Arc<RequestContext>>;

/// A ring of one message type, behind a type-erased face.
pub(crate) trait Ring: Send + Sync {
    fn as_any(&self) -> &dyn Any;
    /// Decodes `body` as this ring's type and delivers it; the number of
    /// subscriptions reached, or the decoding error.
    fn deliver_bytes(&self, body: &Bytes, skip: u64, ctx: &Ctx) -> Result<usize, postcard::Error>;
    /// Messages the slowest subscription has not read (at most the buffer).
    fn queued(&self) -> usize;
}

pub(crate) struct TypedRing<T> {
    pub(crate) tx: ring::Sender<Slot<T>>,
}

impl<T: DeserializeOwned + Send + Sync + 'static> Ring for TypedRing<T> {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn deliver_bytes(&self, body: &Bytes, skip: u64, ctx: &Ctx) -> Result<usize, postcard::Error> {
        let msg: T = decode(body)?;
        Ok(self.tx.send((Arc::new(msg), skip, ctx.clone())))
    }

    fn queued(&self) -> usize {
        self.tx.len()
    }
}

/// Decodes one message. Raw bytes ([`Bytes`]) come out as a slice of
/// `body`, not a copy.
pub(crate) fn decode<T: DeserializeOwned + 'static>(body: &Bytes) -> Result<T, postcard::Error> {
    if TypeId::of::<T>() == TypeId::of::<Bytes>() {
        let raw: &[u8] = postcard::from_bytes(body)?;
        let shared: Box<dyn Any> = Box::new(body.slice_ref(raw));
        if let Ok(msg) = shared.downcast::<T>() {
            return Ok(*msg);
        }
    }
    postcard::from_bytes(body)
}

struct Topic {
    rings: Vec<(TypeId, Box<dyn Ring>)>,
    subscriptions: usize,
    counters: Arc<TopicCounters>,
}

/// The local table.
#[derive(Default)]
pub(crate) struct Local {
    topics: Mutex<HashMap<String, Topic>>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("topics", &self.lock().len())
            .finish()
    }
}

/// What delivering one message did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delivered {
    /// Subscriptions reached.
    pub(crate) reached: usize,
    /// Rings whose type could not decode the message.
    pub(crate) undecodable: usize,
}

impl Local {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Topic>> {
        self.topics.locked()
    }

    /// Adds a subscription of type `T` to `topic`: its receiver, and
    /// whether it is the topic's first on this node.
    pub(crate) fn subscribe<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        topic: &str,
        buffer: usize,
        counters: impl FnOnce() -> Arc<TopicCounters>,
    ) -> (ring::Receiver<Slot<T>>, Arc<TopicCounters>, bool) {
        let mut topics = self.lock();
        let first = !topics.contains_key(topic);
        let t = topics.entry(topic.to_owned()).or_insert_with(|| Topic {
            rings: Vec::new(),
            subscriptions: 0,
            counters: counters(),
        });
        t.subscriptions += 1;
        let id = TypeId::of::<T>();
        let rx = match t.rings.iter().find(|(tid, _)| *tid == id) {
            Some((_, ring)) => ring
                .as_any()
                .downcast_ref::<TypedRing<T>>()
                .map(|r| r.tx.subscribe()),
            None => None,
        };
        let rx = rx.unwrap_or_else(|| {
            let tx = ring::channel(buffer.max(1).next_power_of_two());
            let rx = tx.subscribe();
            t.rings.push((id, Box::new(TypedRing { tx })));
            rx
        });
        (rx, t.counters.clone(), first)
    }

    /// Removes a subscription; whether it was the topic's last.
    pub(crate) fn unsubscribe(&self, topic: &str) -> bool {
        let mut topics = self.lock();
        let Some(t) = topics.get_mut(topic) else {
            return false;
        };
        t.subscriptions = t.subscriptions.saturating_sub(1);
        // A ring outlives its type's last subscription until the topic's
        // last one goes: one small ring per type at most.
        if t.subscriptions == 0 {
            topics.remove(topic);
            return true;
        }
        false
    }

    /// Delivers a message of type `T` published on this node. Rings of
    /// other types get it through `encode` (called at most once).
    pub(crate) fn deliver<T: Send + Sync + 'static>(
        &self,
        topic: &str,
        msg: &Arc<T>,
        skip: u64,
        ctx: &Ctx,
        encode: impl FnOnce() -> Option<Bytes>,
    ) -> Delivered {
        let topics = self.lock();
        let Some(t) = topics.get(topic) else {
            return Delivered::default();
        };
        let mut out = Delivered::default();
        let mut encoded: Option<Option<Bytes>> = None;
        let mut encode = Some(encode);
        for (id, ring) in &t.rings {
            if *id == TypeId::of::<T>() {
                if let Some(r) = ring.as_any().downcast_ref::<TypedRing<T>>() {
                    out.reached += r.tx.send((msg.clone(), skip, ctx.clone()));
                }
                continue;
            }
            let bytes = encoded.get_or_insert_with(|| encode.take().and_then(|f| f()));
            match bytes.as_ref().map(|b| ring.deliver_bytes(b, skip, ctx)) {
                Some(Ok(n)) => out.reached += n,
                _ => out.undecodable += 1,
            }
        }
        t.counters.delivered.fetch_add(out.reached as u64, Relaxed);
        out
    }

    /// Delivers messages of one topic received from another node, in order.
    pub(crate) fn deliver_bytes(
        &self,
        topic: &str,
        bodies: impl Iterator<Item = (Bytes, Ctx)>,
    ) -> Option<Delivered> {
        let topics = self.lock();
        let t = topics.get(topic)?;
        let mut out = Delivered::default();
        for (body, ctx) in bodies {
            for (_, ring) in &t.rings {
                match ring.deliver_bytes(&body, 0, &ctx) {
                    Ok(n) => out.reached += n,
                    Err(_) => out.undecodable += 1,
                }
            }
        }
        t.counters.delivered.fetch_add(out.reached as u64, Relaxed);
        Some(out)
    }

    /// Per topic: the most messages any of its subscriptions has not read.
    pub(crate) fn lag(&self) -> Vec<(String, usize)> {
        let topics = self.lock();
        let mut out: Vec<_> = topics
            .iter()
            .map(|(name, t)| {
                let lag = t.rings.iter().map(|(_, r)| r.queued()).max().unwrap_or(0);
                (name.clone(), lag)
            })
            .collect();
        out.sort();
        out
    }

    /// Topics with at least one subscription here.
    pub(crate) fn topics(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Drops every ring: subscriptions drain what they hold, then end.
    pub(crate) fn close(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_bytes_decode_as_a_slice_of_the_frame_and_other_types_as_usual() {
        let msg = Bytes::from(vec![9u8; 1000]);
        let body = Bytes::from(postcard::to_allocvec(&msg).expect("encode"));
        let got: Bytes = decode(&body).expect("decode");
        assert_eq!(got, msg);
        assert!(
            body.as_ptr_range().contains(&got.as_ptr()),
            "a slice of the body, not a copy"
        );
        // The same bytes read as another type that has the same encoding.
        let v: Vec<u8> = decode(&body).expect("decode");
        assert_eq!(v, msg.to_vec());
        assert!(decode::<Bytes>(&Bytes::from_static(&[0xFF])).is_err());
        assert!(decode::<Bytes>(&Bytes::from_static(&[5, 1, 2])).is_err());
    }
}
