//! Leader election by name: a campaign is a lock in a reserved name
//! space; the leader is its holder, observed from this node's replica.

use foundation_proto::coord::Revision;
use tokio::sync::watch;

use super::kv::user_name;
use super::lock::LockGuard;
use super::{Coord, CoordError};
use crate::id::NodeId;

fn lock_name(election: &str) -> String {
    format!("@election/{election}")
}

/// Leadership of an election, held while this value lives (or until the
/// node's session is lost: [`Leadership::lost`]).
#[derive(Debug)]
#[must_use = "leadership ends when this is dropped"]
pub struct Leadership {
    guard: LockGuard,
}

impl Leadership {
    /// The fencing token of this term of leadership (it only grows).
    pub fn token(&self) -> Revision {
        self.guard.token()
    }

    /// Whether this node still counts itself leader.
    pub fn is_leader(&self) -> bool {
        self.guard.is_held()
    }

    /// Resolves when leadership is lost with the session.
    pub async fn lost(&mut self) {
        self.guard.lost().await
    }

    /// Steps down and waits until the next candidate can win.
    pub async fn resign(self) -> Result<(), CoordError> {
        self.guard.unlock().await
    }
}

/// Who leads an election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leader {
    /// The leader's node.
    pub node: NodeId,
    /// Its fencing token.
    pub token: Revision,
}

impl Coord {
    /// Campaigns in election `name`: waits (up to the handle's timeout)
    /// until this node leads it.
    pub async fn campaign(&self, name: &str) -> Result<Leadership, CoordError> {
        user_name(name)?;
        let guard = self.lock_raw(&lock_name(name)).await?;
        Ok(Leadership { guard })
    }

    /// The leader of election `name`, as this node's replica has it.
    pub fn leader_of(&self, name: &str) -> Option<Leader> {
        let lock = lock_name(name);
        self.shared.replica.read(|s| {
            let (claim, token) = s.holder(&lock)?;
            let node = s.lease_owner(claim.lease)?;
            Some(Leader { node, token })
        })
    }

    /// The leader of election `name`, updated as it changes, until every
    /// receiver is dropped.
    pub fn observe(&self, name: &str) -> watch::Receiver<Option<Leader>> {
        let (tx, rx) = watch::channel(self.leader_of(name));
        let mut applied = self.shared.replica.watch();
        let coord = self.clone();
        let name = name.to_owned();
        self.shared.tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    changed = applied.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let now = coord.leader_of(&name);
                        tx.send_if_modified(|seen| {
                            let differs = *seen != now;
                            *seen = now;
                            differs
                        });
                    }
                }
            }
        });
        rx
    }
}
