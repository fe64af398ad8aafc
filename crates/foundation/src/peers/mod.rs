//! Sending to peers: per-peer queues ([`PeerQueues`]), one type for every
//! cluster service that sends to other nodes in the background.
//!
//! - The registry and the process manager use an [`Outbox`]: deltas and
//!   specs that anti-entropy repairs, dropped when a peer's queue is full.
//! - Pub/sub (`pubsub::Sender`) queues per peer, channel and lane, waits
//!   for room up to a deadline, and packs what accumulated into batch
//!   frames.
//!
//! Both are the same [`PeerQueues`] with a different [`Drain`]: a slow or
//! unreachable peer never delays the others, one queue keeps its order, and
//! every queue is bounded in items and in bytes.

mod outbox;
mod queues;

pub(crate) use outbox::Outbox;
pub(crate) use queues::{Drain, Key, Limits, NotQueued, PeerQueues};

#[cfg(test)]
mod tests;
