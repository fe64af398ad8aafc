//! Why a cache call failed.

use crate::id::NodeId;

/// Why a cache call failed. Each names the cache; `outcome_known` says
/// whether a failed write may still have been stored.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The key or value does not serialize.
    #[error("cache {cache:?}: cannot encode: {detail}")]
    Encode {
        /// The cache.
        cache: String,
        /// serde's message.
        detail: String,
    },
    /// A stored value does not deserialize as this cache's value type
    /// (another node uses the same cache name with another type).
    #[error("cache {cache:?}: a stored value does not decode as this cache's type: {detail}")]
    Decode {
        /// The cache.
        cache: String,
        /// serde's message.
        detail: String,
    },
    /// No holder of the key answered in time.
    #[error("cache {cache:?}: no holder of the key answered ({}){}", describe(tried), if *outcome_known { "" } else { "; the write may have been stored" })]
    Unavailable {
        /// The cache.
        cache: String,
        /// Each holder asked, and why it did not answer.
        tried: Vec<(NodeId, String)>,
        /// False when a write reached a holder that did not answer: it
        /// may be stored.
        outcome_known: bool,
    },
    /// The computation of `get_or_compute` failed; the key stays unset and
    /// the next caller computes.
    #[error("cache {cache:?}: the computation failed: {detail}")]
    Compute {
        /// The cache.
        cache: String,
        /// The computation's error.
        detail: String,
    },
    /// `get_or_compute` waited its whole time for another caller's
    /// computation.
    #[error("cache {cache:?}: no value within {waited:?} while another caller computed it (options.compute_timeout)")]
    ComputeTimedOut {
        /// The cache.
        cache: String,
        /// How long it waited.
        waited: std::time::Duration,
    },
    /// This node already has the most caches it keeps.
    #[error("cache {cache:?}: this node already has {limit} caches (the limit)")]
    TooManyCaches {
        /// The cache asked for.
        cache: String,
        /// The limit.
        limit: usize,
    },
    /// The node is shutting down.
    #[error("cache {cache:?}: the node is stopping")]
    Stopped {
        /// The cache.
        cache: String,
    },
}

fn describe(tried: &[(NodeId, String)]) -> String {
    if tried.is_empty() {
        return "no holder is an active member".into();
    }
    tried
        .iter()
        .map(|(n, why)| format!("{n}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl CacheError {
    /// Whether the call certainly had no effect (always true for reads).
    pub fn outcome_known(&self) -> bool {
        match self {
            CacheError::Unavailable { outcome_known, .. } => *outcome_known,
            _ => true,
        }
    }
}
