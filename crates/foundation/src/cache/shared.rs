//! What every cache on a node shares: its parts of the caches, the member
//! view keys are placed over, the clock that stamps writes, and requests
//! to peers.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, RwLock};

use foundation_proto::cache::{holders, Clock, Version};

use tokio_util::sync::CancellationToken;

use super::error::CacheError;
use super::near::Near;
use super::options::{CacheOptions, Tier};
use super::store::Store;
use super::table::Table;
use super::wire::{Envelope, Op, Reply, Request, Spread, KIND_REQUEST};
use crate::calls::Calls;
use crate::id::NodeId;
use crate::locks::{Locked, RwLocked};
use crate::messenger::Messenger;

/// Most caches one node keeps; a peer cannot make a node create more.
pub(crate) const MAX_CACHES: usize = 1024;
/// Most requests waiting for replies at once.
const MAX_PENDING: usize = 16 * 1024;

/// The members keys are placed over, as this node sees them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Placement {
    /// Active members with this node, sorted.
    pub(crate) members: Vec<NodeId>,
    /// Those of them suspected: read from last.
    pub(crate) suspect: Vec<NodeId>,
}

/// The node's caches.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) messenger: Messenger,
    stores: RwLock<HashMap<String, Arc<Store>>>,
    /// Writes hold it for reading from placing to storing; a handoff takes
    /// it for writing to change it, so no write placed by the old view is
    /// stored after the handoff has looked at the entries.
    pub(crate) placement: RwLock<Placement>,
    pub(crate) calls: Calls<Reply>,
    /// `get_or_compute`'s claims on keys this node owns.
    pub(crate) flight: super::single_flight::SingleFlight,
    /// Near tiers opened on this node.
    nears: RwLock<HashMap<String, Arc<Near>>>,
    clock: Mutex<Clock>,
    /// The node's configured defaults: the bounds of a cache a peer's
    /// request creates here.
    pub(crate) defaults: CacheOptions,
    /// Wall milliseconds for stamps (the system's, or a simulation's).
    wall: Wall,
    pub(crate) cancel: CancellationToken,
    /// Told when a cache's read front wants its logged reads replayed.
    pub(crate) drain_wake: Arc<tokio::sync::Notify>,
}

/// The clock write stamps read.
struct Wall(crate::coord::LeaseClock);

impl std::fmt::Debug for Wall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wall")
    }
}

/// Why a peer did not answer.
#[derive(Debug)]
pub(crate) struct NoAnswer {
    pub(crate) why: String,
    /// The request certainly did not leave this node.
    pub(crate) unsent: bool,
}

impl Shared {
    pub(crate) fn new(
        messenger: Messenger,
        cancel: CancellationToken,
        wall: crate::coord::LeaseClock,
        defaults: CacheOptions,
    ) -> Self {
        let me = messenger.id();
        Shared {
            clock: Mutex::new(Clock::new(me)),
            placement: RwLock::new(Placement {
                members: vec![me],
                suspect: Vec::new(),
            }),
            stores: RwLock::default(),
            calls: Calls::new(MAX_PENDING),
            flight: Default::default(),
            nears: RwLock::default(),
            cancel,
            drain_wake: Arc::default(),
            wall: Wall(wall),
            defaults,
            messenger,
        }
    }

    pub(crate) fn me(&self) -> NodeId {
        self.messenger.id()
    }

    /// The store of cache `name`, created with `options` if new.
    pub(crate) fn store(
        &self,
        name: &str,
        options: &CacheOptions,
    ) -> Result<Arc<Store>, CacheError> {
        if let Some(s) = self.stores.read_locked().get(name) {
            return Ok(s.clone());
        }
        let mut stores = self.stores.write_locked();
        if let Some(s) = stores.get(name) {
            return Ok(s.clone());
        }
        if stores.len() >= MAX_CACHES {
            return Err(CacheError::TooManyCaches {
                cache: name.to_owned(),
                limit: MAX_CACHES,
            });
        }
        let s = Arc::new(Store::new(name, options.clone(), &self.drain_wake));
        stores.insert(name.to_owned(), s.clone());
        Ok(s)
    }

    /// The store a peer's request names, created with the node's default
    /// bounds and the tier the request implies.
    pub(crate) fn store_for_peer(&self, name: &str, spread: Spread) -> Option<Arc<Store>> {
        let tier = match spread {
            Spread::Everywhere => Tier::Replicated,
            Spread::Replicas(r) => Tier::Partitioned {
                replicas: r as usize,
            },
        };
        let options = CacheOptions {
            tier,
            ..self.defaults.clone()
        };
        self.store(name, &options).ok()
    }

    /// The near tier of `store` on this node, created (with its
    /// reconciliation task) if new.
    pub(crate) fn near(self: &Arc<Self>, store: &Arc<Store>, options: &CacheOptions) -> Arc<Near> {
        if let Some(n) = self.nears.read_locked().get(&store.name) {
            return n.clone();
        }
        let mut nears = self.nears.write_locked();
        if let Some(n) = nears.get(&store.name) {
            return n.clone();
        }
        let n = Arc::new(Near::new(Table::new(
            &store.name,
            options,
            &store.counters,
            &self.drain_wake,
        )));
        nears.insert(store.name.clone(), n.clone());
        self.messenger.tasks.spawn(super::near::reconcile(
            Arc::downgrade(self),
            store.clone(),
            n.clone(),
            options.reconcile,
            self.cancel.clone(),
        ));
        n
    }

    /// The near tier of cache `name` on this node, if opened.
    pub(crate) fn near_of(&self, name: &str) -> Option<Arc<Near>> {
        self.nears.read_locked().get(name).cloned()
    }

    /// Every cache on this node.
    pub(crate) fn stores(&self) -> Vec<Arc<Store>> {
        self.stores.read_locked().values().cloned().collect()
    }

    /// Every near tier on this node.
    pub(crate) fn nears(&self) -> Vec<Arc<Near>> {
        self.nears.read_locked().values().cloned().collect()
    }

    /// The members of the current placement.
    pub(crate) fn placement_members(&self) -> Vec<NodeId> {
        self.placement.read_locked().members.clone()
    }

    /// The holders of `key` in `p`, owner first.
    pub(crate) fn holders_in(p: &Placement, tier: Tier, key: &[u8]) -> Vec<NodeId> {
        holders(key, &p.members, tier.replicas(p.members.len()))
    }

    /// The holders of `key` for `tier` as this node places it now.
    pub(crate) fn holders(&self, tier: Tier, key: &[u8]) -> Vec<NodeId> {
        Self::holders_in(&self.placement.read_locked(), tier, key)
    }

    /// The holders in the order reads try them: suspected ones last.
    pub(crate) fn read_order(&self, tier: Tier, key: &[u8]) -> Vec<NodeId> {
        let p = self.placement.read_locked();
        let mut h = Self::holders_in(&p, tier, key);
        h.sort_by_key(|n| p.suspect.contains(n));
        h
    }

    /// A version for a write this node stamps now.
    pub(crate) fn stamp(&self) -> Version {
        self.clock.locked().stamp((self.wall.0)())
    }

    /// A version stamped elsewhere was seen.
    pub(crate) fn observe(&self, v: Version) {
        self.clock.locked().observe(v);
    }

    /// Sends `body` to `to` and waits up to `wait` for the reply.
    pub(crate) async fn call(&self, store: &Store, to: NodeId, op: Op) -> Result<Reply, NoAnswer> {
        self.call_for(store, to, op, store.options.timeout).await
    }

    /// [`Shared::call`] waiting up to `wait`.
    pub(crate) async fn call_for(
        &self,
        store: &Store,
        to: NodeId,
        op: Op,
        wait: std::time::Duration,
    ) -> Result<Reply, NoAnswer> {
        let body = Request {
            cache: store.name.clone(),
            spread: super::route::spread(store.options.tier),
            op,
        };
        store.counters.remote_calls.fetch_add(1, Relaxed);
        let unsent = |why: String| NoAnswer { why, unsent: true };
        let call = self
            .calls
            .open()
            .map_err(|f| unsent(format!("{} requests already wait for replies", f.0)))?;
        let bytes = Envelope {
            corr: call.corr,
            body,
        }
        .encode()
        .map_err(|e| unsent(format!("cannot encode the request: {e}")))?;
        let exchange = async {
            self.messenger
                .send_auto(to, KIND_REQUEST, bytes)
                .await
                .map_err(|e| unsent(e.reason.to_string()))?;
            call.reply().await.ok_or_else(|| NoAnswer {
                why: "the node is stopping".into(),
                unsent: false,
            })
        };
        match tokio::time::timeout(wait, exchange).await {
            Ok(Ok(Reply::Busy)) => Err(NoAnswer {
                why: "busy".into(),
                unsent: true,
            }),
            Ok(r) => r,
            Err(_) => Err(NoAnswer {
                why: format!("no reply within {wait:?}"),
                unsent: false,
            }),
        }
    }
}
