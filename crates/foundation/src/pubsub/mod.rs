//! Cluster-wide publish/subscribe (ADR 010).
//!
//! [`PubSub`] (`node.pubsub()`): typed [`Subscription`]s, `broadcast`,
//! `local_broadcast` and `broadcast_from`. Interest is replicated through
//! the registry (entries of kind [`Interest`](crate::registry::EntryKind)),
//! so messages go only to nodes with subscribers. Messages pick a channel
//! by [`pick_channel`]; per-peer queues batch what accumulates into one
//! frame.

mod api;
mod local;
mod options;
mod ring;
pub(crate) mod runtime;
mod sender;
mod stats;
mod subscription;

pub(crate) use api::Shared;
pub use api::{PubSub, PubSubError, Published};
pub(crate) use foundation_proto::pubsub as wire;
pub(crate) use foundation_proto::pubsub::KINDS;
pub use local::SubscriptionId;
pub use options::{lane_of, pick_channel, Priority, Publish};
pub(crate) use sender::Sender;
pub use stats::{TopicStats, MAX_TOPICS, OTHER_TOPIC};
pub use subscription::Subscription;
