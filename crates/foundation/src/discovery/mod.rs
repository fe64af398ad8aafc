//! Discovery proposes addresses; membership decides who is in the cluster.
//!
//! A [`Strategy`] runs as a task and publishes candidate sets (membership
//! addresses of possible peers) through a [`CandidateSink`]. The sink keeps
//! the last good set: a strategy that fails calls [`CandidateSink::fail`],
//! which logs and counts, and the previous set stays in force. An error is
//! never read as "no peers", and discovery never disconnects anyone.
//!
//! Adding a built-in strategy means a file here that implements
//! [`Strategy`] and one arm in [`built_in`] (the only place that maps a
//! `cluster.discovery` word to a strategy), plus its settings in the
//! config's key table if it has any. The node core and the CLI do not
//! change: `foundation doctor` asks the strategy to [`Strategy::probe`]
//! itself. An application's own strategy needs no registration at all:
//! hand it to [`NodeBuilder::discovery`](crate::NodeBuilder::discovery).

#[cfg(any(feature = "consul", feature = "etcd"))]
mod answer;
#[cfg(any(feature = "consul", feature = "etcd"))]
mod backoff;
mod built_in;
#[cfg(feature = "consul")]
mod consul;
mod context;
mod dns;
#[cfg(feature = "etcd")]
mod etcd;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod gossip;
#[cfg(feature = "kubernetes")]
mod kubernetes;
mod mdns;
mod sink;
mod static_seeds;

use std::future::Future;
use std::pin::Pin;

use tokio_util::sync::CancellationToken;

pub use built_in::built_in;
#[cfg(feature = "consul")]
pub use consul::Consul;
pub use context::DiscoveryContext;
pub use dns::Dns;
#[cfg(feature = "etcd")]
pub use etcd::Etcd;
pub use gossip::{Beacon, Gossip};
#[cfg(feature = "kubernetes")]
pub use kubernetes::{Kubernetes, PORT_NAME as KUBERNETES_PORT_NAME};
pub use mdns::{Mdns, SERVICE_TYPE};
pub use sink::{CandidateSink, Candidates, DiscoveryError};
pub use static_seeds::StaticSeeds;

/// A boxed future a strategy runs.
pub type StrategyTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A boxed future of a strategy's self-check.
pub type ProbeTask<'a> = Pin<Box<dyn Future<Output = Probe> + Send + 'a>>;

/// What a strategy's self-check found (`foundation doctor` prints it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Probe {
    /// It works: what it saw.
    Ok(String),
    /// It does not work.
    Failed {
        /// What went wrong.
        why: String,
        /// What the operator can do about it.
        hint: String,
    },
    /// Nothing to check, or nothing worth saying: a note.
    Note(String),
}

impl Probe {
    /// A failure with a hint.
    pub fn failed(why: impl Into<String>, hint: impl Into<String>) -> Self {
        Probe::Failed {
            why: why.into(),
            hint: hint.into(),
        }
    }
}

/// A discovery strategy.
///
/// A custom one is a type with a name and a task that publishes candidate
/// sets; hand it to [`NodeBuilder::discovery`](crate::NodeBuilder::discovery).
///
/// ```
/// use std::net::SocketAddr;
/// use std::time::Duration;
/// use foundation::discovery::{CandidateSink, Candidates, DiscoveryContext, Strategy, StrategyTask};
/// use foundation::NodeBuilder;
/// use tokio_util::sync::CancellationToken;
///
/// /// Reads peers from wherever you keep them (here: a fixed list).
/// #[derive(Debug)]
/// struct Inventory(Vec<SocketAddr>);
///
/// impl Strategy for Inventory {
///     fn name(&self) -> &'static str {
///         "inventory"
///     }
///     fn run(self: Box<Self>, _ctx: DiscoveryContext, sink: CandidateSink, cancel: CancellationToken) -> StrategyTask {
///         Box::pin(async move {
///             // Publish, then refresh until the node stops. A failure
///             // would be `sink.fail(..)`: the last good set stays.
///             loop {
///                 sink.publish(self.0.iter().copied().collect::<Candidates>());
///                 tokio::select! {
///                     _ = cancel.cancelled() => return,
///                     _ = tokio::time::sleep(Duration::from_secs(5)) => {}
///                 }
///             }
///         })
///     }
/// }
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let node = |name: &str| {
///     NodeBuilder::isolated()
///         .name(name)
///         .secret("doc-example-secret-0123456789")
///         .bind("127.0.0.1".parse().expect("ip"))
///         .port(0)
/// };
/// let a = node("a").cluster("static").start().await?;
/// let b = node("b").discovery(Inventory(vec![a.membership_addr()])).start().await?;
/// b.wait_for_members(2, Duration::from_secs(10)).await.map_err(|_| "no join")?;
/// assert_eq!(b.discovery().0, "inventory");
/// b.shutdown().await;
/// a.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub trait Strategy: Send + 'static {
    /// Its name, as in `FOUNDATION_CLUSTER`.
    fn name(&self) -> &'static str;

    /// The task that publishes candidate sets into `sink` until `cancel`.
    /// `ctx` describes this node (strategies that advertise it need that).
    fn run(
        self: Box<Self>,
        ctx: DiscoveryContext,
        sink: CandidateSink,
        cancel: CancellationToken,
    ) -> StrategyTask;

    /// Checks, once and without joining anything, whether the strategy can
    /// work here (its API answers, its multicast group opens...). Used by
    /// `foundation doctor`; the default has nothing to check.
    fn probe<'a>(&'a self, ctx: &'a DiscoveryContext) -> ProbeTask<'a> {
        let _ = ctx;
        let name = self.name();
        Box::pin(async move { Probe::Note(format!("{name}: no check")) })
    }
}
