//! Registry events.

use serde::{Deserialize, Serialize};

use super::Entry;

/// Something the registry decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistryEvent {
    /// Two services held one unique name (after a partition healed); the
    /// loser, on this node, is stopped with
    /// [`StopReason::NameConflict`](crate::process::StopReason).
    NameConflict {
        /// The entry that keeps the name.
        winner: Entry,
        /// The local entry that lost it.
        loser: Entry,
    },
}
