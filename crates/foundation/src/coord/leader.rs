//! What only the leader does for a request: stamp and propose a command,
//! confirm a read index.

use std::time::Duration;

use foundation_proto::coord::Command;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};

use super::types::{Outcome, Proposal};
use super::wire::Refused;
use super::Shared;

impl Shared {
    /// The lease clock's reading: what a leader stamps on its proposals.
    pub(crate) fn now_ms(&self) -> u64 {
        (self.clock)()
    }

    /// The leader node as this node knows it.
    pub(crate) fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// Proposes `command` stamped with this node's clock, as leader, and
    /// waits up to `wait` for it to apply.
    pub(crate) async fn propose_here(
        &self,
        command: Command,
        wait: Duration,
    ) -> Result<Outcome, Refused> {
        // A new leader first extends the sessions (Promote); proposals
        // before that could expire sessions that had no leader to renew
        // them during the election.
        let term = self.raft.metrics().borrow().current_term;
        let mut promoted = self.promoted.subscribe();
        let ready = tokio::time::timeout(wait, async {
            promoted.wait_for(|t| *t >= term).await.is_ok()
        })
        .await;
        if ready != Ok(true) {
            return Err(Refused::NotLeader {
                leader: self.leader().filter(|l| *l != self.id),
            });
        }
        self.write(command, wait).await
    }

    /// Proposes without waiting for this term's Promote (the steward's
    /// own proposals, the Promote among them).
    pub(crate) async fn write(&self, command: Command, wait: Duration) -> Result<Outcome, Refused> {
        let proposal = Proposal {
            now_ms: self.now_ms(),
            command,
        };
        match tokio::time::timeout(wait, self.raft.client_write(proposal)).await {
            Err(_) => Err(Refused::Unknown(format!(
                "proposed but not applied within {wait:?}"
            ))),
            Ok(Ok(r)) => Ok(r.data),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(Refused::NotLeader {
                    leader: f.leader_id,
                })
            }
            Ok(Err(e)) => Err(Refused::Unknown(e.to_string())),
        }
    }

    /// Confirms leadership with a quorum and answers the log index a read
    /// must see applied (ReadIndex).
    pub(crate) async fn read_index_here(&self) -> Result<u64, Refused> {
        match self.raft.get_read_log_id().await {
            Ok((read, _)) => Ok(read.map_or(0, |l| l.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(Refused::NotLeader {
                    leader: f.leader_id,
                })
            }
            Err(e) => Err(Refused::NotLeader { leader: None })
                .inspect_err(|_| tracing::debug!(error = %e, "read index not confirmed")),
        }
    }
}
