//! How a cache is spread and bounded: its tier, replicas and limits.

use std::time::Duration;

/// Where a cache keeps its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tier {
    /// This node only: a bounded moka cache, no traffic.
    Local,
    /// Each key has an owner and `replicas` more holders, by rendezvous
    /// hashing over the active members. Reads go to the owner, or to the
    /// next holder when the owner is suspect or does not answer.
    Partitioned {
        /// Copies beyond the owner's. With 0, a write acknowledged by the
        /// owner alone is lost when the owner crashes.
        replicas: usize,
    },
    /// A partitioned cache with a local moka tier in front on each node
    /// that opens it this way: reads are served from the near tier when
    /// it holds the key. The owner pushes an invalidation to every node
    /// that fetched a key when the key is written, and each node checks
    /// its near copies against the owners every `reconcile` period, so a
    /// copy whose invalidation was lost is served at most that long.
    Near {
        /// Copies beyond the owner's, as for [`Tier::Partitioned`].
        replicas: usize,
    },
    /// Every node holds every key and reads locally. Writes go through
    /// the key's owner, so concurrent writes to one key have one order.
    Replicated,
}

impl Tier {
    /// Copies beyond the owner's among `members` active members.
    pub(crate) fn replicas(self, members: usize) -> usize {
        match self {
            Tier::Local => 0,
            Tier::Partitioned { replicas } | Tier::Near { replicas } => replicas,
            Tier::Replicated => members.saturating_sub(1),
        }
    }

    /// Name in metrics and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Local => "local",
            Tier::Partitioned { .. } => "partitioned",
            Tier::Near { .. } => "near",
            Tier::Replicated => "replicated",
        }
    }
}

/// One cache's options. The defaults: partitioned with one replica,
/// 100,000 entries per node, no expiry, 2 s per remote call, 30 s per
/// `get_or_compute` computation, near copies checked every 5 s.
///
/// The bounds apply on each node separately, and a node creates its part
/// of a cache with the options of the first `node.cache()` call there;
/// when a peer's request reaches a node first, the node uses its
/// configured bounds ([`CacheOptions::from_config`]). Open a cache with
/// the same options on every node. `node.caches().defaults()` gives the
/// configured options (`cache.*` keys).
#[derive(Clone, Debug)]
pub struct CacheOptions {
    /// Where keys live.
    pub tier: Tier,
    /// Most entries this node keeps for the cache (least recently and
    /// least frequently used go first: moka's TinyLFU).
    pub max_entries: u64,
    /// Bound by bytes (keys and values) instead of entries, when set.
    pub max_bytes: Option<u64>,
    /// Entries expire this long after they were written, unless a put
    /// gives its own TTL.
    pub ttl: Option<Duration>,
    /// Entries expire after this long unread (time to idle).
    pub tti: Option<Duration>,
    /// Longest wait for a peer's answer.
    pub timeout: Duration,
    /// How long one `get_or_compute` computation may hold a key's claim
    /// before a waiting caller computes instead; callers wait at most
    /// this plus `timeout` for a value.
    pub compute_timeout: Duration,
    /// How often a near tier checks its copies against their owners.
    pub reconcile: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            tier: Tier::Partitioned { replicas: 1 },
            max_entries: 100_000,
            max_bytes: None,
            ttl: None,
            tti: None,
            timeout: Duration::from_secs(2),
            compute_timeout: Duration::from_secs(30),
            reconcile: Duration::from_secs(5),
        }
    }
}

impl CacheOptions {
    /// The options configuration gives (`cache.*` keys; the tier is local
    /// in development and partitioned in production unless `cache.tier`
    /// says otherwise).
    pub fn from_config(c: &crate::config::CacheConfig) -> Self {
        use crate::config::CacheTier as T;
        let replicas = c.replicas;
        CacheOptions {
            tier: match c.tier {
                T::Local => Tier::Local,
                T::Partitioned => Tier::Partitioned { replicas },
                T::Replicated => Tier::Replicated,
                T::Near => Tier::Near { replicas },
            },
            max_entries: c.max_entries,
            timeout: c.timeout,
            reconcile: c.reconcile,
            ..CacheOptions::default()
        }
    }

    /// The defaults with `tier`.
    pub fn tier(tier: Tier) -> Self {
        CacheOptions {
            tier,
            ..CacheOptions::default()
        }
    }

    /// Sets the bound in entries.
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = n;
        self
    }

    /// Bounds by bytes instead of entries.
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = Some(n);
        self
    }

    /// Sets the default time to live.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets the time to idle.
    pub fn tti(mut self, tti: Duration) -> Self {
        self.tti = Some(tti);
        self
    }

    /// Sets how long one computation may hold a key's claim.
    pub fn compute_timeout(mut self, t: Duration) -> Self {
        self.compute_timeout = t;
        self
    }

    /// Sets how often a near tier checks its copies with their owners.
    pub fn reconcile(mut self, every: Duration) -> Self {
        self.reconcile = every;
        self
    }

    /// Sets the remote call timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}
