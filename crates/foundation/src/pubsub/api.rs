//! The pub/sub facade: `node.pubsub()`.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::local::Ctx;
use super::local::{Local, SubscriptionId};
use super::options::{lane_of, pick_channel, Publish};
use super::sender::{Item, NotQueued, Route, Sender};
use super::stats::{Counters, TopicStats};
use super::subscription::Subscription;
use super::wire::{encode_bytes_item, encode_context_item, encode_item_of};
use crate::config::PubSubConfig;
use crate::context::{RequestContext, WireContext};
use crate::id::NodeId;
use crate::registry::{RegistryShared, MAX_NAME_LEN};
use crate::spans::SpanKind;
use crate::transport::{Channel, Payload};

/// Room a frame needs besides its item (prefix, version, head).
const FRAME_OVERHEAD: usize = 64;

/// Why a broadcast or subscription failed. Each names the topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PubSubError {
    /// The topic is empty or longer than 1024 bytes.
    #[error("invalid topic {topic:?}: {why}")]
    InvalidTopic {
        /// The topic (cut to 64 bytes).
        topic: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The message did not serialize.
    #[error("message for topic {topic:?} did not serialize: {message}")]
    Encode {
        /// The topic.
        topic: String,
        /// The serializer's error.
        message: String,
    },
    /// The message exceeds `transport.max_frame_size`.
    #[error("message for topic {topic:?} is {len} bytes; transport.max_frame_size allows {max}")]
    TooLarge {
        /// The topic.
        topic: String,
        /// Encoded size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
}

/// What a broadcast did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Local subscriptions that received the message.
    pub local: usize,
    /// Other nodes it was queued for (nodes with subscribers only).
    pub nodes: usize,
    /// Nodes it was dropped for: their queue had no room within
    /// `pubsub.publish_timeout_ms` (a stalled or far slower node).
    pub dropped: Vec<NodeId>,
}

/// Pub/sub state shared by the facade, subscriptions and the receiver.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) local: Local,
    pub(crate) counters: Counters,
    pub(crate) sender: Sender,
    pub(crate) registry: Arc<RegistryShared>,
    pub(crate) config: PubSubConfig,
    pub(crate) data_threshold: usize,
    pub(crate) max_frame: usize,
    next_id: AtomicU64,
    closed: AtomicBool,
}

impl Shared {
    pub(crate) fn new(
        registry: Arc<RegistryShared>,
        sender: Sender,
        config: PubSubConfig,
        data_threshold: usize,
        max_frame: usize,
    ) -> Self {
        Shared {
            local: Local::default(),
            counters: Counters::default(),
            sender,
            registry,
            config,
            data_threshold,
            max_frame,
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
        }
    }

    /// A subscription went away.
    pub(crate) fn unsubscribed(&self, topic: &str) {
        if self.local.unsubscribe(topic) {
            self.registry.withdraw_interest(topic);
        }
    }

    pub(crate) fn dropped_metric(&self, n: u64) {
        metrics::counter!("foundation_pubsub_dropped_total").increment(n);
    }

    /// Ends every subscription (the node is stopping).
    pub(crate) fn close(&self) {
        self.closed.store(true, Relaxed);
        self.local.close();
    }

    /// Other nodes with subscribers for `topic`.
    fn interested(&self, topic: &str) -> Vec<NodeId> {
        let me = self.registry.messenger.id();
        let mut nodes = self.registry.state().interested(topic);
        nodes.retain(|n| *n != me);
        nodes
    }
}

/// Cluster-wide publish/subscribe: `node.pubsub()`.
///
/// Every node's topic interest is replicated through the registry, so a
/// broadcast goes only to nodes that have subscribers for its topic. A
/// remote broadcast is serialized once and the same bytes are queued for
/// every interested node; local subscribers share one `Arc` of the message.
/// Raw bytes ([`bytes::Bytes`] messages) are not serialized at all: the
/// publisher's buffer goes out behind a few bytes of header, and a `Bytes`
/// subscriber receives a slice of the frame that carried it, so a large
/// blob is never copied by pub/sub (a subscriber of `Vec<u8>` on the same
/// topic decodes the same bytes, with a copy).
///
/// Delivery is at most once, in order per (publisher node, topic,
/// channel). A message is lost when its node crashes, when a subscriber
/// falls more than its buffer behind (the oldest are dropped and counted),
/// when a peer's queue has no room within `pubsub.publish_timeout_ms`, or
/// when it is published before a new subscriber's interest has reached
/// the publisher (a round trip). Subscriptions on a node that joins later
/// receive messages published after its interest arrived; nothing is
/// replayed.
///
/// ```
/// use std::time::Duration;
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let node = foundation::NodeBuilder::isolated()
///     .cluster("static")
///     .secret("doc-example-secret-0123456789")
///     .bind("127.0.0.1".parse()?)
///     .port(0)
///     .start()
///     .await?;
/// // Typed topics: any serde type. A broadcast reaches every subscriber
/// // in the cluster, this node's included.
/// let mut orders = node.pubsub().subscribe::<String>("orders")?;
/// let sent = node.pubsub().broadcast("orders", "order-1".to_owned()).await?;
/// assert_eq!(sent.nodes, 0); // no other node subscribes
/// let got = tokio::time::timeout(Duration::from_secs(5), orders.recv()).await?;
/// assert_eq!(got.as_deref().map(String::as_str), Some("order-1"));
/// node.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct PubSub {
    pub(crate) shared: Arc<Shared>,
}

/// `msg` encoded as an item: its payload, and where the message's own
/// bytes start in it. A message of raw bytes ([`Bytes`]) is not copied:
/// the payload is a few bytes of item header, then the message itself.
fn encode_item<T: Serialize + 'static>(
    topic: &str,
    msg: &T,
) -> Result<(Payload, usize), postcard::Error> {
    if let Some(raw) = (msg as &dyn Any).downcast_ref::<Bytes>() {
        let (lead, body_at) = encode_bytes_item(topic, raw);
        return Ok((Payload::led(lead, raw.clone()), body_at));
    }
    let (item, body_at) = encode_item_of(topic, msg)?;
    Ok((Payload::new(item), body_at))
}

/// `item` led by the context item that carries `context` (the item's own
/// bytes are not copied; its body starts that much later).
fn with_context(context: &WireContext, (item, body_at): (Payload, usize)) -> (Payload, usize) {
    let head = encode_context_item(context);
    let shift = head.len();
    let (lead, rest) = item.pieces();
    let payload = if lead.is_empty() {
        Payload::led(head, rest.clone())
    } else {
        let mut joined = bytes::BytesMut::with_capacity(head.len() + lead.len());
        joined.extend_from_slice(&head);
        joined.extend_from_slice(lead);
        Payload::led(joined.freeze(), rest.clone())
    };
    (payload, body_at + shift)
}

fn check_topic(topic: &str) -> Result<(), PubSubError> {
    let why = if topic.is_empty() {
        "empty"
    } else if topic.len() > MAX_NAME_LEN {
        "longer than 1024 bytes"
    } else {
        return Ok(());
    };
    Err(PubSubError::InvalidTopic {
        topic: topic.chars().take(64).collect(),
        why,
    })
}

impl PubSub {
    /// Subscribes to `topic`: every message of type `T` published on it,
    /// on any node, from now on.
    pub fn subscribe<T>(&self, topic: &str) -> Result<Subscription<T>, PubSubError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        check_topic(topic)?;
        let s = &self.shared;
        if s.closed.load(Relaxed) {
            return Err(PubSubError::ShuttingDown);
        }
        let buffer = s.config.buffer.max(1);
        let (rx, counters, first) = s
            .local
            .subscribe::<T>(topic, buffer, || s.counters.topic(topic));
        if first {
            if let Err(e) = s.registry.declare_interest(topic) {
                // The topic was checked: this cannot happen, but say so.
                tracing::warn!(topic, error = %e, "pub/sub interest not registered");
            }
        }
        Ok(Subscription {
            id: SubscriptionId(s.next_id.fetch_add(1, Relaxed)),
            topic: topic.to_owned(),
            rx,
            capacity: buffer.next_power_of_two(),
            dropped: 0,
            counters,
            shared: s.clone(),
            context: None,
        })
    }

    /// Sends `msg` to every subscriber of `topic` in the cluster, this
    /// node's included. Waits only for room in the peers' queues.
    pub async fn broadcast<T>(&self, topic: &str, msg: T) -> Result<Published, PubSubError>
    where
        T: Serialize + Send + Sync + 'static,
    {
        self.publish(topic, msg, Publish::default(), 0).await
    }

    /// [`PubSub::broadcast`] with a channel or priority.
    pub async fn broadcast_with<T>(
        &self,
        topic: &str,
        msg: T,
        opts: Publish,
    ) -> Result<Published, PubSubError>
    where
        T: Serialize + Send + Sync + 'static,
    {
        self.publish(topic, msg, opts, 0).await
    }

    /// [`PubSub::broadcast`], except to subscription `from` (a publisher
    /// that subscribes to its own topic does not hear itself).
    pub async fn broadcast_from<T>(
        &self,
        from: SubscriptionId,
        topic: &str,
        msg: T,
    ) -> Result<Published, PubSubError>
    where
        T: Serialize + Send + Sync + 'static,
    {
        self.publish(topic, msg, Publish::default(), from.0).await
    }

    /// Sends `msg` to this node's subscribers of `topic` only; how many
    /// subscriptions received it.
    pub fn local_broadcast<T>(&self, topic: &str, msg: T) -> Result<usize, PubSubError>
    where
        T: Serialize + Send + Sync + 'static,
    {
        check_topic(topic)?;
        let counters = self.shared.counters.topic(topic);
        counters.published.fetch_add(1, Relaxed);
        let msg = Arc::new(msg);
        let ctx = RequestContext::current().map(Arc::new);
        let d = self.shared.local.deliver(topic, &msg, 0, &ctx, || {
            postcard::to_allocvec(&*msg).ok().map(Bytes::from)
        });
        Ok(d.reached)
    }

    /// Publishes in the current request context, inside a `publish` span
    /// when the context carries a trace.
    async fn publish<T>(
        &self,
        topic: &str,
        msg: T,
        opts: Publish,
        skip: u64,
    ) -> Result<Published, PubSubError>
    where
        T: Serialize + Send + Sync + 'static,
    {
        let spans = &self.shared.registry.messenger.spans;
        let Some(rc) = spans.current_or_root() else {
            return self.publish_in(topic, msg, opts, skip, None).await;
        };
        let attrs = || vec![("foundation.topic", topic.to_owned())];
        let (span, ctx) = spans.enter("publish", SpanKind::Producer, &rc, attrs);
        let result = self
            .publish_in(topic, msg, opts, skip, Some(Arc::new(ctx)))
            .await;
        spans.end(span, || result.as_ref().err().map(ToString::to_string));
        result
    }

    async fn publish_in<T>(
        &self,
        topic: &str,
        msg: T,
        opts: Publish,
        skip: u64,
        ctx: Ctx,
    ) -> Result<Published, PubSubError>
    where
        T: Serialize + Send + Sync + 'static,
    {
        check_topic(topic)?;
        // A broadcast that finds room in every queue never waits: yield
        // now and then (tokio's budget), so a publishing loop cannot
        // starve the runtime.
        tokio::task::coop::consume_budget().await;
        let s = &self.shared;
        if s.closed.load(Relaxed) {
            return Err(PubSubError::ShuttingDown);
        }
        let counters = s.counters.topic(topic);
        counters.published.fetch_add(1, Relaxed);
        let peers = s.interested(topic);
        let encode_err = |e: postcard::Error| PubSubError::Encode {
            topic: topic.to_owned(),
            message: e.to_string(),
        };
        let encoded = if peers.is_empty() {
            None
        } else {
            let item = encode_item(topic, &msg).map_err(encode_err)?;
            Some(match ctx.as_deref().map(RequestContext::to_wire) {
                Some(wire) if !wire.is_empty() => with_context(&wire, item),
                _ => item,
            })
        };
        let msg = Arc::new(msg);
        let delivered = s.local.deliver(topic, &msg, skip, &ctx, || match &encoded {
            Some((item, at)) => Some(item.joined().slice(*at..)),
            None => postcard::to_allocvec(&*msg).ok().map(Bytes::from),
        });
        let mut out = Published {
            local: delivered.reached,
            ..Published::default()
        };
        let Some((item, body_at)) = encoded else {
            return Ok(out);
        };
        let body_len = item.len() - body_at;
        let len = item.len();
        if len + FRAME_OVERHEAD > s.max_frame {
            return Err(PubSubError::TooLarge {
                topic: topic.to_owned(),
                len,
                max: s.max_frame.saturating_sub(FRAME_OVERHEAD),
            });
        }
        let item = Arc::new(Item {
            payload: item,
            counters: counters.clone(),
        });
        let channel = pick_channel(opts, body_len, s.data_threshold);
        let lane = if channel == Channel::Data {
            lane_of(topic)
        } else {
            0
        };

        for peer in peers {
            let route = Route {
                peer,
                channel,
                lane,
            };
            match s
                .sender
                .push(route, item.clone(), s.config.publish_timeout)
                .await
            {
                Ok(()) => {
                    out.nodes += 1;
                    counters.sent.fetch_add(1, Relaxed);
                    counters.sent_bytes.fetch_add(len as u64, Relaxed);
                }
                Err(NotQueued::UnknownPeer) => {
                    // Its interest outlived it here; not a member any more.
                    counters.dropped.fetch_add(1, Relaxed);
                    s.dropped_metric(1);
                    out.dropped.push(peer);
                }
                Err(NotQueued::Full) => {
                    counters.dropped.fetch_add(1, Relaxed);
                    s.dropped_metric(1);
                    tracing::debug!(topic, %peer, "pub/sub queue full: message dropped for this node");
                    out.dropped.push(peer);
                }
                Err(NotQueued::Closed) => return Err(PubSubError::ShuttingDown),
            }
        }
        metrics::counter!("foundation_pubsub_published_total").increment(1);
        Ok(out)
    }

    /// Other nodes that have subscribers for `topic`, as this node knows.
    pub fn interested_nodes(&self, topic: &str) -> Vec<NodeId> {
        self.shared.interested(topic)
    }

    /// Topics with a subscription on this node.
    pub fn local_topics(&self) -> Vec<String> {
        let mut t = self.shared.local.topics();
        t.sort();
        t
    }

    /// `topic`'s counters on this node.
    pub fn topic_stats(&self, topic: &str) -> TopicStats {
        self.shared.counters.get(topic).unwrap_or_default()
    }

    /// Every topic's counters on this node, sorted by topic.
    pub fn stats(&self) -> Vec<(String, TopicStats)> {
        self.shared.counters.all()
    }

    /// Per topic, the most messages any local subscription has not read.
    pub fn lag(&self) -> Vec<(String, usize)> {
        self.shared.local.lag()
    }

    /// Pub/sub frames (or their tails) rejected as malformed.
    pub fn rejected_frames(&self) -> u64 {
        self.shared.counters.rejected.load(Relaxed)
    }
}
