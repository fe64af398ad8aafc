//! Routing of received frames to the inboxes that subscribed to them.
//!
//! Each inbox is bounded twice: by message count and by bytes (a semaphore
//! permit travels with each message and is released when the receiver
//! drops it). A full inbox makes the stream reader wait, and QUIC flow
//! control then slows the sender: nothing is dropped, memory stays bounded.

use crate::locks::Locked as _;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::frame::Envelope;
use crate::id::NodeId;
use foundation_proto::context::WireContext;
use foundation_proto::Channel;

/// A message received from a peer.
#[derive(Debug)]
pub struct Incoming {
    /// The sending node.
    pub from: NodeId,
    /// The peer's transport address.
    pub addr: SocketAddr,
    /// The channel it arrived on.
    pub channel: Channel,
    /// Message kind.
    pub kind: u16,
    /// Text headers.
    pub headers: Vec<(String, String)>,
    /// The request context the frame carried.
    pub context: Option<WireContext>,
    /// The payload.
    pub payload: Bytes,
    _permit: Option<OwnedSemaphorePermit>,
}

/// Message kinds from this one up are Foundation's own (the allocation
/// table is `foundation_proto::kinds::TABLE`); applications use kinds
/// below it.
pub const RESERVED_KINDS: u16 = foundation_proto::kinds::RESERVED;

/// Which messages an inbox receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxFilter {
    /// Only this channel, or every channel.
    pub channel: Option<Channel>,
    /// Only kinds in this range.
    pub kinds: RangeInclusive<u16>,
}

impl InboxFilter {
    /// Every application message on `channel`: kinds below
    /// [`RESERVED_KINDS`], which belong to Foundation's own layers
    /// (registry, services, clock).
    pub fn channel(channel: Channel) -> Self {
        InboxFilter {
            channel: Some(channel),
            kinds: 0..=RESERVED_KINDS - 1,
        }
    }

    /// Messages of these kinds on any channel.
    pub fn kinds(kinds: RangeInclusive<u16>) -> Self {
        InboxFilter {
            channel: None,
            kinds,
        }
    }

    fn matches(&self, env: &Envelope) -> bool {
        self.channel.is_none_or(|c| c == env.channel) && self.kinds.contains(&env.kind)
    }
}

/// A stream of received messages. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<Incoming>,
}

impl Inbox {
    /// The next message; `None` once the node has shut down.
    pub async fn recv(&mut self) -> Option<Incoming> {
        self.rx.recv().await
    }

    /// A message if one is waiting.
    pub fn try_recv(&mut self) -> Option<Incoming> {
        self.rx.try_recv().ok()
    }
}

#[derive(Debug)]
struct Subscription {
    filter: InboxFilter,
    tx: mpsc::Sender<Incoming>,
    bytes: Arc<Semaphore>,
    byte_capacity: usize,
}

/// The set of inboxes.
#[derive(Debug)]
pub(crate) struct Router {
    subs: Mutex<Vec<Arc<Subscription>>>,
    capacity: usize,
    byte_capacity: usize,
}

impl Router {
    pub(crate) fn new(capacity: usize, byte_capacity: usize) -> Self {
        Router {
            subs: Mutex::new(Vec::new()),
            capacity,
            byte_capacity,
        }
    }

    /// Drops every subscription: inboxes return what they hold, then `None`.
    pub(crate) fn close(&self) {
        self.lock().clear();
    }

    pub(crate) fn subscribe(&self, filter: InboxFilter) -> Inbox {
        let (tx, rx) = mpsc::channel(self.capacity);
        let sub = Subscription {
            filter,
            tx,
            bytes: Arc::new(Semaphore::new(self.byte_capacity)),
            byte_capacity: self.byte_capacity,
        };
        self.lock().push(Arc::new(sub));
        Inbox { rx }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Subscription>>> {
        self.subs.locked()
    }

    /// Delivers to every matching inbox, waiting while one is full.
    /// Returns how many inboxes received it.
    pub(crate) async fn deliver(&self, env: Envelope, addr: SocketAddr) -> usize {
        let targets: Vec<Arc<Subscription>> = {
            let mut subs = self.lock();
            subs.retain(|s| !s.tx.is_closed());
            subs.iter()
                .filter(|s| s.filter.matches(&env))
                .cloned()
                .collect()
        };
        let mut delivered = 0;
        // Headers and the context are charged as what they take in
        // memory, not only the payload.
        let header_bytes = pairs_bytes(&env.headers);
        let context_bytes = env.context.as_ref().map_or(0, |c| {
            std::mem::size_of::<WireContext>()
                + c.tracestate.as_ref().map_or(0, String::len)
                + pairs_bytes(&c.baggage)
        });
        let cost = env.payload.len() + header_bytes + context_bytes;
        for sub in targets {
            let want = cost.clamp(1, sub.byte_capacity) as u32;
            let Ok(permit) = sub.bytes.clone().acquire_many_owned(want).await else {
                continue;
            };
            let msg = Incoming {
                from: env.from,
                addr,
                channel: env.channel,
                kind: env.kind,
                headers: env.headers.clone(),
                context: env.context.clone(),
                payload: env.payload.clone(),
                _permit: Some(permit),
            };
            if sub.tx.send(msg).await.is_ok() {
                delivered += 1;
            }
        }
        delivered
    }
}

/// What text pairs (headers, baggage) take in memory: each pair's two
/// `String`s and their bytes.
fn pairs_bytes(pairs: &[(String, String)]) -> usize {
    pairs
        .iter()
        .map(|(k, v)| 2 * std::mem::size_of::<String>() + k.len() + v.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(channel: Channel, kind: u16, len: usize) -> Envelope {
        Envelope {
            channel,
            kind,
            from: NodeId(1),
            headers: Vec::new(),
            context: None,
            payload: Bytes::from(vec![0u8; len]),
        }
    }

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    #[tokio::test]
    async fn routes_by_channel_and_kind() {
        let r = Router::new(8, 1 << 20);
        let mut control = r.subscribe(InboxFilter::channel(Channel::Control));
        let mut kinds = r.subscribe(InboxFilter::kinds(100..=199));
        assert_eq!(r.deliver(env(Channel::Control, 5, 1), addr()).await, 1);
        assert_eq!(r.deliver(env(Channel::Data, 150, 1), addr()).await, 1);
        assert_eq!(r.deliver(env(Channel::Control, 150, 1), addr()).await, 2);
        assert_eq!(r.deliver(env(Channel::Data, 5, 1), addr()).await, 0);
        assert_eq!(control.try_recv().map(|m| m.kind), Some(5));
        assert_eq!(kinds.try_recv().map(|m| m.kind), Some(150));
    }

    #[tokio::test]
    async fn full_inbox_by_bytes_waits_until_the_consumer_drops_a_message() {
        let r = Arc::new(Router::new(100, 1000));
        let mut inbox = r.subscribe(InboxFilter::channel(Channel::Data));
        assert_eq!(r.deliver(env(Channel::Data, 1, 800), addr()).await, 1);
        let r2 = r.clone();
        let second =
            tokio::spawn(async move { r2.deliver(env(Channel::Data, 2, 800), addr()).await });
        tokio::task::yield_now().await;
        assert!(
            !second.is_finished(),
            "second message must wait for byte budget"
        );
        let first = inbox.recv().await.expect("first");
        drop(first);
        assert_eq!(second.await.expect("join"), 1);
        assert_eq!(inbox.recv().await.map(|m| m.kind), Some(2));
    }

    #[tokio::test]
    async fn headers_count_against_the_byte_budget() {
        let r = Arc::new(Router::new(100, 1000));
        let mut inbox = r.subscribe(InboxFilter::channel(Channel::Data));
        let mut heavy = env(Channel::Data, 1, 0);
        heavy.headers = vec![("k".into(), "v".repeat(700))];
        assert_eq!(r.deliver(heavy, addr()).await, 1);
        // 700 bytes of headers and no payload hold most of the budget.
        let r2 = r.clone();
        let second =
            tokio::spawn(async move { r2.deliver(env(Channel::Data, 2, 400), addr()).await });
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "the headers' bytes are charged");
        drop(inbox.recv().await.expect("first"));
        assert_eq!(second.await.expect("join"), 1);
    }

    #[tokio::test]
    async fn dropped_inbox_is_unsubscribed() {
        let r = Router::new(8, 1 << 20);
        drop(r.subscribe(InboxFilter::channel(Channel::Data)));
        assert_eq!(r.deliver(env(Channel::Data, 1, 1), addr()).await, 0);
        assert!(r.lock().is_empty());
    }
}
