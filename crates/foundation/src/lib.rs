//! Foundation: distributed Rust applications as easy as single-node ones.
//!
//! A [`Node`] discovers its peers ([`discovery`]: static seeds, mDNS,
//! multicast gossip, DNS, Kubernetes, Consul, etcd), joins a cluster with
//! SWIM membership ([`membership`], through foca), and talks to the other
//! members over QUIC with mutual TLS ([`transport`], through quinn and
//! rustls) on four prioritized [`Channel`]s: control, events, telemetry,
//! data. On top of that it keeps a cluster-wide [`Registry`] of named
//! services, runs supervised [`Service`]s reachable from any node through a
//! [`ServiceRef`], places singletons, replicated and partitioned children
//! across the cluster with failover and state handoff
//! ([`process::ProcessManager`]), and publishes and subscribes across nodes
//! ([`PubSub`]). Configuration comes in three tiers resolved by one
//! [`config::Resolver`].
//!
//! The decisions of the process manager are made by a sans-IO planner in
//! the `foundation-proto` crate, which the test kit's simulator drives too.
//!
//! # Walkthrough: two nodes in one process
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use foundation::{Channel, MemberEvent, NodeBuilder};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Two nodes on loopback with ephemeral ports. `isolated()` ignores the
//! // process environment, so several nodes can share one process.
//! let a = NodeBuilder::isolated()
//!     .cluster("static") // seeds, no mDNS: doc tests run side by side
//!     .name("a")
//!     .secret("walkthrough-secret-0123456789")
//!     .bind("127.0.0.1".parse()?)
//!     .port(0)
//!     .start()
//!     .await?;
//! let mut events = a.events();
//!
//! // b names a as its seed (the Apprentice tier's one-liner).
//! let b = NodeBuilder::isolated()
//!     .cluster("static")
//!     .name("b")
//!     .secret("walkthrough-secret-0123456789")
//!     .bind("127.0.0.1".parse()?)
//!     .port(0)
//!     .seeds([a.membership_addr().to_string()])
//!     .start()
//!     .await?;
//!
//! // a learns about b through membership...
//! let up = tokio::time::timeout(Duration::from_secs(10), events.recv()).await?;
//! assert!(matches!(up, Some(MemberEvent::Up(m)) if m.name == "b"));
//! b.wait_for_members(2, Duration::from_secs(10))
//!     .await
//!     .map_err(|seen| format!("b sees only {seen:?}"))?;
//!
//! // ...and they talk over QUIC on a channel.
//! let mut inbox = b.inbox(Channel::Control);
//! a.send(b.id(), Channel::Control, 1, Bytes::from_static(b"hello")).await?;
//! let msg = inbox.recv().await.ok_or("inbox closed")?;
//! assert_eq!((msg.from, &msg.payload[..]), (a.id(), &b"hello"[..]));
//!
//! // Leaky by design: the tools underneath are one call away.
//! let raw = a.raw();
//! let quinn_endpoint: &quinn::Endpoint = raw.endpoint();
//! assert!(quinn_endpoint.local_addr().is_ok());
//! let foca_members = a.raw().membership().inspect(|core| core.foca().num_members()).await;
//! assert_eq!(foca_members, Some(1));
//!
//! // A graceful shutdown leaves: the others see Left, not Down.
//! b.shutdown().await;
//! a.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Walkthrough: a singleton reached from another node
//!
//! ```
//! use std::time::Duration;
//! use foundation::process::{Context, Instance, Service, ServiceError};
//! use foundation::NodeBuilder;
//!
//! struct Counter(u64);
//!
//! impl Service for Counter {
//!     type Request = u64;
//!     type Reply = u64;
//!     type State = u64;
//!     async fn handle(&mut self, _: &mut Context, add: u64) -> Result<u64, ServiceError> {
//!         self.0 += add;
//!         Ok(self.0)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node = |name: &str| {
//!     NodeBuilder::isolated()
//!         .cluster("static")
//!         .name(name)
//!         .secret("walkthrough-secret-0123456789")
//!         .bind("127.0.0.1".parse().expect("ip"))
//!         .port(0)
//! };
//! let a = node("a").start().await?;
//! let b = node("b").seeds([a.membership_addr().to_string()]).start().await?;
//! b.wait_for_members(2, Duration::from_secs(10)).await.map_err(|_| "no join")?;
//!
//! // Every node defines the kind; any node starts the singleton once.
//! for n in [&a, &b] {
//!     n.processes().define("counter", |_: &(), _: &Instance| Counter(0));
//! }
//! a.processes().start_singleton("hits", "counter", &())?;
//!
//! // Both nodes find it (it runs on one of them) and call it.
//! let mut total = 0;
//! for n in [&a, &b] {
//!     let hits = loop {
//!         if let Some(r) = n.processes().lookup_singleton::<Counter>("hits")? {
//!             break r;
//!         }
//!         tokio::time::sleep(Duration::from_millis(20)).await;
//!     };
//!     total = hits.call(1, Duration::from_secs(5)).await?;
//! }
//! assert_eq!(total, 2);
//! // The registry behind it is one call away, as `GET /registry` shows.
//! assert!(a.registry().snapshot().entries.iter().any(|e| e.name == "hits"));
//! b.shutdown().await;
//! a.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Walkthrough: publish and subscribe across nodes
//!
//! ```
//! use std::time::Duration;
//! use foundation::messaging::Topic;
//! use foundation::NodeBuilder;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Price { symbol: String, cents: u64 }
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node = |name: &str| {
//!     NodeBuilder::isolated()
//!         .cluster("static")
//!         .name(name)
//!         .secret("walkthrough-secret-0123456789")
//!         .bind("127.0.0.1".parse().expect("ip"))
//!         .port(0)
//! };
//! let a = node("a").start().await?;
//! let b = node("b").seeds([a.membership_addr().to_string()]).start().await?;
//! b.wait_for_members(2, Duration::from_secs(10)).await.map_err(|_| "no join")?;
//!
//! // b subscribes; its interest reaches a within a round trip.
//! let mut prices = b.pubsub().subscribe::<Price>("prices")?;
//! while a.pubsub().interested_nodes("prices").is_empty() {
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//! }
//! // a publishes, directly or through the messaging facade.
//! let sent = a.pubsub().broadcast("prices", Price { symbol: "ACME".into(), cents: 1234 }).await?;
//! assert_eq!(sent.nodes, 1); // only nodes with subscribers get it
//! a.messaging().send(&Topic::new("prices"), Price { symbol: "ACME".into(), cents: 1250 }).await?;
//!
//! let first = prices.recv().await.ok_or("closed")?;
//! let second = prices.recv().await.ok_or("closed")?;
//! assert_eq!((first.cents, second.cents), (1234, 1250)); // in order
//! assert_eq!(prices.dropped(), 0);
//! b.shutdown().await;
//! a.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Where things are
//!
//! - [`config`]: tiers, keys, the resolver, `config explain` text.
//! - [`transport`]: QUIC endpoint, channels, frames, inboxes.
//! - [`membership`]: the sans-IO SWIM core and its tokio shell.
//! - [`discovery`]: the strategy trait and the seven built-in strategies.
//! - [`security`]: keys and certificates derived from the cluster secret.
//! - [`http`]: `/health`, `/ready`, `/metrics`, `/members`, `/registry`,
//!   `/mesh` (axum).
//! - [`registry`]: the cluster-wide registry: sans-IO state, sync task, facade.
//! - [`process`]: services, the local supervisor, the process manager
//!   (placement, handoff, split-brain policy).
//! - [`pubsub`]: topics, typed subscriptions, broadcasts (ADR 010).
//! - [`messaging`]: one `send` to a service, a registered name or a topic.
//! - [`mesh`]: discovery by version, capability and role; load-balanced
//!   calls with deadlines, budgeted retries and ejection.
//! - [`context`]: the request context (trace, deadline, baggage) that
//!   follows a request across nodes; [`spans`]: what traces record, and
//!   OTLP export (feature `otlp`).
//! - [`faults`]: transport-level fault injection for tests.
//! - [`telemetry`]: per-node counters ([`http`] renders them for Prometheus).

mod builder;
pub mod cache;
mod calls;
pub mod config;
pub mod context;
pub mod coord;
pub mod discovery;
mod error;
pub mod faults;
pub mod http;
mod id;
mod locks;
pub mod membership;
pub mod mesh;
pub mod messaging;
mod messenger;
mod node;
mod peers;
pub mod process;
pub mod pubsub;
pub mod registry;
pub mod security;
mod services;
mod shell_time;
pub mod spans;
mod tasks;
pub mod telemetry;
mod throttle;
pub mod transport;

pub use builder::{start, DebugStrategy, NodeBuilder};
pub use config::{Config, ConfigError, Profile};
pub use error::StartError;
pub use id::NodeId;
pub use membership::{Member, MemberEvent, MemberState};
pub use messaging::{Messaging, MessagingError};
pub use node::{
    ClockOffset, Events, Node, PeerReport, Raw, Sockets, CLOCK_PING, CLOCK_PONG, REPORT, REPORT_ASK,
};
pub use process::{Service, ServiceRef};
pub use pubsub::{PubSub, Subscription};
pub use registry::Registry;
pub use transport::{Channel, Inbox, InboxFilter, Incoming, SendError};
