//! How any node runs a command or a linearizable read: locally if it
//! leads, else forwarded to the leader, retried while the outcome is known
//! to be "nothing happened" (no leader yet, wrong node), until the
//! handle's timeout.

use std::time::Duration;

use foundation_proto::coord::{Command, Response};
use tokio::time::Instant;

use super::rpc::RpcError;
use super::wire::{Refused, Reply, Request};
use super::{Coord, CoordError};

/// Pause before asking again when there is no leader or the wrong one.
const RETRY: Duration = Duration::from_millis(20);

/// Whether applying `command` twice is the same as once: then it may be
/// sent again when its first attempt's fate is unknown.
fn idempotent(command: &Command) -> bool {
    matches!(
        command,
        Command::Lock { .. }
            | Command::Unlock { .. }
            | Command::KeepAlive { .. }
            | Command::Revoke { .. }
            | Command::Tick { .. }
            | Command::NodeDown { .. }
            | Command::Promote { .. }
    )
}

impl Coord {
    /// Resolves once this node knows a leader other than `leader`.
    async fn leader_moves_from(&self, leader: u64) {
        let mut metrics = self.shared.raft.metrics();
        let _ = metrics
            .wait_for(|m| m.current_leader.is_some_and(|l| l != leader))
            .await;
    }

    fn remaining(&self, deadline: Instant) -> Result<Duration, CoordError> {
        if self.shared.cancel.is_cancelled() {
            return Err(CoordError::Stopped);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(CoordError::NoLeader(self.timeout))
        } else {
            Ok(left)
        }
    }

    /// The leader as this node knows it, waiting for one until `deadline`.
    async fn leader_by(&self, deadline: Instant) -> Result<u64, CoordError> {
        let mut metrics = self.shared.raft.metrics();
        loop {
            if let Some(l) = metrics.borrow_and_update().current_leader {
                return Ok(l);
            }
            let left = self.remaining(deadline)?;
            if tokio::time::timeout(left, metrics.changed()).await.is_err() {
                return Err(CoordError::NoLeader(self.timeout));
            }
        }
    }

    /// Runs `command` through the log and answers what applying it said.
    pub(crate) async fn propose(&self, command: Command) -> Result<Response, CoordError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let leader = self.leader_by(deadline).await?;
            let left = self.remaining(deadline)?;
            let answer = if leader == self.shared.id {
                self.shared.propose_here(command.clone(), left).await
            } else {
                let request = Request::Propose(command.clone());
                let call = self.shared.rpc.call(leader, request, left);
                tokio::select! {
                    r = call => match r {
                        Ok(Reply::Propose(r)) => r,
                        // Refused before anything was proposed.
                        Ok(_) => Err(Refused::NotLeader { leader: None }),
                        Err(e @ RpcError::Timeout(..)) => Err(Refused::Unknown(e.to_string())),
                        // Never sent.
                        Err(_) => Err(Refused::NotLeader { leader: None }),
                    },
                    // The leader changed while the command was in flight
                    // (it crashed or was cut off): a command that may be
                    // applied twice is sent again to the new one; another's
                    // fate is unknown.
                    () = self.leader_moves_from(leader) => {
                        if idempotent(&command) {
                            Err(Refused::NotLeader { leader: None })
                        } else {
                            Err(Refused::Unknown(format!(
                                "the leader changed from {leader:016x} while the command was in flight"
                            )))
                        }
                    }
                }
            };
            match answer {
                Ok(outcome) => return outcome.0.map_err(CoordError::Rejected),
                Err(Refused::Unknown(why)) => return Err(CoordError::Unknown(why)),
                Err(Refused::NotLeader { .. }) => {
                    tokio::time::sleep(RETRY.min(self.remaining(deadline)?)).await
                }
            }
        }
    }

    /// Waits until this node's replica holds every write that completed
    /// before the call (ReadIndex through the leader). Reads after it are
    /// linearizable.
    pub(crate) async fn read_barrier(&self) -> Result<(), CoordError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let leader = self.leader_by(deadline).await?;
            let left = self.remaining(deadline)?;
            let index = if leader == self.shared.id {
                tokio::time::timeout(left, self.shared.read_index_here())
                    .await
                    .unwrap_or(Err(Refused::NotLeader { leader: None }))
            } else {
                match self.shared.rpc.call(leader, Request::ReadIndex, left).await {
                    Ok(Reply::ReadIndex(r)) => r,
                    _ => Err(Refused::NotLeader { leader: None }),
                }
            };
            match index {
                Ok(at) => {
                    let left = self.remaining(deadline).unwrap_or(Duration::ZERO);
                    return if self.shared.replica.wait_applied(at, left).await {
                        Ok(())
                    } else {
                        Err(CoordError::Behind(self.timeout))
                    };
                }
                Err(_) => tokio::time::sleep(RETRY.min(self.remaining(deadline)?)).await,
            }
        }
    }
}
