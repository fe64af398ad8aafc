//! Watching keys under a prefix, from this node's replica: changes come
//! in log order, as this node applies them.

use foundation_proto::coord::{Event, Revision};
use tokio::sync::broadcast;

use super::replica::Change;
use super::Coord;

/// A change to a watched key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// The key was written; `value` is what it holds at `revision`.
    Put {
        /// The key.
        key: String,
        /// Its value.
        value: Vec<u8>,
        /// The revision of the write.
        revision: Revision,
    },
    /// The key was removed (deleted, or its session ended).
    Deleted {
        /// The key.
        key: String,
        /// The revision of the removal.
        revision: Revision,
    },
    /// Changes were missed (this watcher fell more than 4,096 changes
    /// behind, or the replica was replaced by a snapshot): read the
    /// prefix again with [`Coord::range`].
    Reset,
}

/// A stream of changes under a prefix ([`Coord::watch`]).
#[derive(Debug)]
pub struct Watch {
    prefix: String,
    events: broadcast::Receiver<Change>,
}

impl Watch {
    /// The next change, or `None` once the node stops.
    pub async fn next(&mut self) -> Option<WatchEvent> {
        loop {
            let event = match self.events.recv().await {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Lagged(_)) => return Some(WatchEvent::Reset),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            match event {
                Change::Applied(Event::Put {
                    key,
                    value,
                    revision,
                }) if key.starts_with(&self.prefix) => {
                    return Some(WatchEvent::Put {
                        key,
                        value,
                        revision,
                    });
                }
                Change::Applied(Event::Deleted { key, revision })
                    if key.starts_with(&self.prefix) =>
                {
                    return Some(WatchEvent::Deleted { key, revision });
                }
                Change::Reset => return Some(WatchEvent::Reset),
                _ => {}
            }
        }
    }
}

impl Coord {
    /// Changes to keys starting with `prefix` from now on, as this node's
    /// replica applies them (read [`Coord::range`] after subscribing for
    /// the current state).
    pub fn watch(&self, prefix: &str) -> Watch {
        Watch {
            prefix: prefix.to_owned(),
            events: self.shared.replica.events(),
        }
    }
}
