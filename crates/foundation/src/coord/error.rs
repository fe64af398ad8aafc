//! What a coordination call can answer instead of a result.

use std::time::Duration;

use foundation_proto::coord::Rejected;

/// Why a coordination call failed, and whether its outcome is known
/// ([`CoordError::outcome_known`]): only [`CoordError::Unknown`] may have
/// changed the state; every other error changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoordError {
    /// No leader could be reached in time; nothing was proposed.
    #[error("no coordination leader could be reached within {0:?}; nothing was applied")]
    NoLeader(Duration),
    /// The command was proposed but its fate was not learnt (the leader
    /// lost its leadership, crashed, or did not answer in time).
    #[error("outcome unknown: {0}; the command may or may not have been applied")]
    Unknown(String),
    /// The state machine refused the command; nothing changed.
    #[error("refused: {0}")]
    Rejected(#[from] Rejected),
    /// A linearizable read could not be served: this node's replica did
    /// not catch up with the leader in time.
    #[error(
        "this node's replica did not catch up within {0:?}; is it in the coordination group yet?"
    )]
    Behind(Duration),
    /// This node's session ended (expired or revoked): its locks and
    /// ephemeral keys are gone.
    #[error("this node's coordination session ended; its locks and ephemeral keys are gone")]
    SessionLost,
    /// A lock was not granted in time; this node left its queue.
    #[error("lock {name:?} was not granted within {waited:?}")]
    NotGranted {
        /// The lock.
        name: String,
        /// How long the call waited.
        waited: Duration,
    },
    /// A barrier or semaphore did not complete in time (a barrier's
    /// arrival stays counted).
    #[error("{what} not complete within {waited:?}")]
    TimedOut {
        /// What waited.
        what: String,
        /// How long.
        waited: Duration,
    },
    /// Names starting with `@` are Foundation's own (elections,
    /// barriers, semaphores, cluster configuration).
    #[error("{0:?}: names starting with '@' are reserved for Foundation's own records")]
    Reserved(String),
    /// A cluster configuration value did not decode as its type.
    #[error("cluster configuration {key:?} does not decode: {error}")]
    Decode {
        /// The key.
        key: String,
        /// Why.
        error: String,
    },
    /// The node is shutting down.
    #[error("coordination stopped: the node is shutting down")]
    Stopped,
}

impl CoordError {
    /// Whether the state is known not to have changed because of the call.
    pub fn outcome_known(&self) -> bool {
        !matches!(self, CoordError::Unknown(_))
    }
}
