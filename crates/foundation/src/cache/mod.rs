//! The distributed cache: `node.cache::<K, V>(name, options)`.
//!
//! Three tiers, chosen per cache ([`Tier`]):
//!
//! - **local**: this node only, a bounded moka cache;
//! - **partitioned**: each key has an owner and `replicas` more holders by
//!   rendezvous hashing over the active members (the placement rules are
//!   in [`foundation_proto::cache`]). Reads go to the owner, or to the next
//!   holder when the owner is suspect or does not answer;
//! - **replicated**: every node holds every key and reads locally;
//! - **near**: a partitioned cache with a moka tier in front on each node
//!   that opens it so. Owners push invalidations (with the write's
//!   version) to the nodes that fetched a key, and each node checks its
//!   near copies with their owners every `reconcile` period, so a copy
//!   whose invalidation was lost is served at most that long.
//!
//! Writes go through the key's owner, which stamps them with a version
//! (a hybrid logical clock), stores them, and copies them to the other
//! holders before it answers; every copy keeps the newest version it has
//! seen, so copies agree whatever order they arrive in. When the members
//! change, each holder sends its keys to their new holders, and a node
//! that is no longer a holder drops its copy only after the new holders
//! took it (ADR 022).
//!
//! On each node, entries are read through a small front before moka, so
//! a get never applies moka's pending work on the caller's thread; reads
//! reach moka's eviction policy from a background task that replays them
//! (ADR 029). With `tti` set, gets read moka directly.
//!
//! What can be lost: a key whose owner and every replica died before a
//! new holder took a copy, and a write acknowledged with `replicas: 0`
//! whose owner then crashed. A copy evicted to keep a node within its
//! bounds is gone from that node (a cache, not a store).
//!
//! ```
//! use foundation::cache::{CacheOptions, Tier};
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node = foundation::NodeBuilder::isolated()
//!     .cluster("static")
//!     .secret("doc-example-secret-0123456789")
//!     .bind("127.0.0.1".parse()?)
//!     .port(0)
//!     .start()
//!     .await?;
//! let users = node.cache::<u64, String>("users", CacheOptions::tier(Tier::Partitioned { replicas: 1 }))?;
//! users.put(&7, &"ada".to_owned()).await?;
//! assert_eq!(users.get(&7).await?.as_deref(), Some("ada"));
//! assert_eq!(users.owner_of(&7)?, node.id()); // alone, it owns every key
//! users.delete(&7).await?;
//! assert_eq!(users.get(&7).await?, None);
//! assert_eq!(users.stats().hits, 1);
//! // The moka cache underneath is one call away.
//! let _moka: &foundation::cache::moka::sync::Cache<_, _> = users.local();
//! node.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod api;
mod error;
mod front;
mod handoff;
mod near;
mod options;
mod route;
mod server;
mod shared;
mod single_flight;
mod store;
mod table;
mod wire;

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub use api::Cache;
pub use error::CacheError;
pub use foundation_proto::cache::Version;
/// The moka crate the local tier is built on (reach-through, ADR 001).
pub use moka;
pub use options::{CacheOptions, Tier};
pub use store::{CacheStats, Entry};

pub(crate) use shared::Shared;

use crate::membership::MemberEvent;
use crate::messenger::Messenger;
use crate::transport::Inbox;

/// The frame kinds the cache owns.
pub(crate) const KINDS: std::ops::RangeInclusive<u16> = foundation_proto::kinds::CACHE;

/// Starts the node's cache service: the request server and the handoff
/// task.
pub(crate) fn start(
    messenger: Messenger,
    inbox: Inbox,
    members: broadcast::Receiver<MemberEvent>,
    cancel: CancellationToken,
    clock: crate::coord::LeaseClock,
    config: &crate::config::CacheConfig,
) -> Arc<Shared> {
    let defaults = CacheOptions::from_config(config);
    let shared = Arc::new(Shared::new(messenger, cancel.clone(), clock, defaults));
    let tasks = shared.messenger.tasks.clone();
    tasks.spawn(server::serve(shared.clone(), inbox, cancel.clone()));
    tasks.spawn(single_flight::run(
        shared.clone(),
        members.resubscribe(),
        cancel.clone(),
    ));
    tasks.spawn(handoff::run(shared.clone(), members, cancel.clone()));
    tasks.spawn(drain(shared.clone(), cancel));
    shared
}

/// Replays the reads the caches' fronts served into their moka caches,
/// until the node stops: when a front's log fills, and otherwise every
/// [`table::DRAIN_BUSY`] while reads come, every [`table::DRAIN_IDLE`]
/// when none came.
async fn drain(shared: Arc<Shared>, cancel: CancellationToken) {
    let mut wait = table::DRAIN_IDLE;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
            () = shared.drain_wake.notified() => {}
        }
        let mut replayed = 0;
        for s in shared.stores() {
            replayed += s.table.drain();
        }
        for n in shared.nears() {
            replayed += n.table.drain();
        }
        wait = if replayed > 0 {
            table::DRAIN_BUSY
        } else {
            table::DRAIN_IDLE
        };
    }
}

/// One cache as `GET /caches` and [`Caches::list`] show it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct CacheInfo {
    /// Its name.
    pub name: String,
    /// `local`, `partitioned`, `near` or `replicated`.
    pub tier: &'static str,
    /// Entries on this node as a holder.
    pub entries: u64,
    /// Entries in this node's near tier, for a near cache.
    pub near_entries: Option<u64>,
    /// Hits over gets on this node (0 before the first get).
    pub hit_rate: f64,
    /// Counters on this node.
    pub hits: u64,
    /// Gets that found nothing.
    pub misses: u64,
    /// Entries dropped to stay within the bounds.
    pub evictions: u64,
    /// Requests this node sent to peers for the cache.
    pub remote_calls: u64,
}

/// The node's caches: `node.caches()`.
#[derive(Clone, Debug)]
pub struct Caches {
    pub(crate) shared: Arc<Shared>,
}

impl Caches {
    /// Opens cache `name` (its part on this node is created with
    /// `options` if new; see [`CacheOptions`]).
    pub fn open<K, V>(&self, name: &str, options: CacheOptions) -> Result<Cache<K, V>, CacheError>
    where
        K: Serialize,
        V: Serialize + DeserializeOwned,
    {
        let store = self.shared.store(name, &options)?;
        if route::spread(store.options.tier) != route::spread(options.tier)
            || (store.options.tier == Tier::Local) != (options.tier == Tier::Local)
        {
            tracing::warn!(cache = name, kept = ?store.options.tier, asked = ?options.tier, "cache already exists on this node with another tier; the first one is kept");
        }
        let near = match options.tier {
            Tier::Near { .. } => Some(self.shared.near(&store, &options)),
            _ => None,
        };
        Ok(Cache::new(self.shared.clone(), store, near))
    }

    /// The options configuration gives this node (`cache.*` keys): the
    /// tier is local in development and partitioned in production unless
    /// `cache.tier` says otherwise. `node.cache(name,
    /// node.caches().defaults())` opens a cache as configured.
    pub fn defaults(&self) -> CacheOptions {
        self.shared.defaults.clone()
    }

    /// The members keys are placed over, as this node sees them now
    /// (active members with this node, sorted). Placement follows
    /// membership events a few milliseconds behind.
    pub fn members(&self) -> Vec<crate::NodeId> {
        self.shared.placement_members()
    }

    /// Every cache on this node, by name.
    pub fn list(&self) -> Vec<CacheInfo> {
        let mut all: Vec<CacheInfo> = self
            .shared
            .stores()
            .iter()
            .map(|s| {
                // moka counts what its pending work has applied: apply it.
                s.table.moka().run_pending_tasks();
                let st = s.stats();
                let gets = st.hits + st.misses;
                let near = self.shared.near_of(&s.name);
                CacheInfo {
                    name: s.name.clone(),
                    tier: match (&near, s.options.tier) {
                        (Some(_), Tier::Partitioned { replicas }) => {
                            Tier::Near { replicas }.as_str()
                        }
                        (_, tier) => tier.as_str(),
                    },
                    near_entries: near.map(|n| n.table.moka().entry_count()),
                    entries: st.entries,
                    hit_rate: if gets == 0 {
                        0.0
                    } else {
                        st.hits as f64 / gets as f64
                    },
                    hits: st.hits,
                    misses: st.misses,
                    evictions: st.evictions,
                    remote_calls: st.remote_calls,
                }
            })
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}
