//! What coordination sends between nodes: Raft's messages, and the
//! requests a node forwards to the leader (proposals, read barriers,
//! status). Each goes in an [`Envelope`] naming its Raft group.

use bytes::Bytes;
use foundation_proto::coord::Command;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use super::types::{GroupId, Outcome, TypeConfig};

/// The frame kind of requests.
pub(crate) const KIND_REQUEST: u16 = *foundation_proto::kinds::COORD.start();
/// The frame kind of replies.
pub(crate) const KIND_REPLY: u16 = KIND_REQUEST + 1;

/// A request or reply, matched by `corr`, from Raft id `from`, a member
/// of `group`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope<T> {
    pub(crate) corr: u64,
    pub(crate) from: u64,
    pub(crate) group: Option<GroupId>,
    pub(crate) body: T,
}

impl<T: Serialize> Envelope<T> {
    pub(crate) fn encode(&self) -> Result<Bytes, postcard::Error> {
        postcard::to_allocvec(self).map(Bytes::from)
    }
}

impl<T: for<'de> Deserialize<'de>> Envelope<T> {
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

/// Asked of a peer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// Propose a command (to the leader).
    Propose(Command),
    /// Confirm leadership and answer the log index a linearizable read
    /// must wait for (ReadIndex).
    ReadIndex,
    /// Which group the peer is in, and its leader.
    Status,
}

/// Why the leader side did not run a proposal or a read barrier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Refused {
    /// The peer is not the leader (the command was not proposed).
    NotLeader { leader: Option<u64> },
    /// Proposed, but the peer could not see it through (lost leadership,
    /// shut down): it may or may not be applied.
    Unknown(String),
}

/// A peer's group and leader, as it sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Status {
    pub(crate) raft: u64,
    pub(crate) group: Option<GroupId>,
    pub(crate) leader: Option<u64>,
}

/// Answered by a peer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    Append(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    Snapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    Propose(Result<Outcome, Refused>),
    ReadIndex(Result<u64, Refused>),
    Status(Status),
    /// The request came from another Raft group (or none) and was dropped.
    WrongGroup {
        ours: Option<GroupId>,
    },
    /// Too many requests in progress; nothing was done.
    Busy,
}

#[cfg(test)]
mod tests {
    use super::*;
    use foundation_proto::coord::{Expect, Response};
    use openraft::{CommittedLeaderId, LogId, Vote};
    use proptest::prelude::*;

    fn roundtrip<T: Serialize + for<'de> Deserialize<'de> + std::fmt::Debug>(body: T) -> String {
        let env = Envelope {
            corr: 7,
            from: 9,
            group: Some(GroupId {
                founder: 1,
                at_ms: 2,
            }),
            body,
        };
        let bytes = env.encode().expect("encodes");
        let back = Envelope::<T>::decode(&bytes).expect("decodes");
        assert_eq!(back.corr, 7);
        assert_eq!(back.group, env.group);
        format!("{:?}", back.body)
    }

    #[test]
    fn every_message_survives_the_wire() {
        let log_id = LogId::new(CommittedLeaderId::new(3, 1), 9);
        let append = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(3, 1),
            prev_log_id: Some(log_id),
            entries: vec![openraft::Entry {
                log_id,
                payload: openraft::EntryPayload::Normal(super::super::types::Proposal {
                    now_ms: 5,
                    command: Command::Put {
                        key: "k".into(),
                        value: vec![1, 2],
                        lease: None,
                        expect: Expect::Absent,
                    },
                }),
            }],
            leader_commit: Some(log_id),
        };
        let text = format!("{:?}", append);
        assert_eq!(
            roundtrip(Request::Append(append)),
            format!("Append({text})")
        );
        let vote = VoteRequest::new(Vote::new(4, 2), Some(log_id));
        assert!(roundtrip(Request::Vote(vote)).contains("Vote"));
        let out = Reply::Propose(Ok(Outcome(Ok(Response::Put { revision: 5 }))));
        assert_eq!(
            roundtrip(out),
            "Propose(Ok(Outcome(Ok(Put { revision: 5 }))))"
        );
        let refused = Reply::ReadIndex(Err(Refused::NotLeader { leader: Some(3) }));
        assert_eq!(
            roundtrip(refused),
            "ReadIndex(Err(NotLeader { leader: Some(3) }))"
        );
        let reply = Reply::Vote(Ok(VoteResponse {
            vote: Vote::new(4, 2),
            vote_granted: true,
            last_log_id: Some(log_id),
        }));
        assert!(roundtrip(reply).contains("vote_granted: true"));
    }

    proptest! {
        /// Garbage never panics a decoder: it is an error.
        #[test]
        fn garbage_is_an_error_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Envelope::<Request>::decode(&bytes);
            let _ = Envelope::<Reply>::decode(&bytes);
        }

        /// A valid request cut short or with a flipped byte never panics.
        #[test]
        fn damaged_requests_never_panic(cut in 0usize..64, flip in 0usize..64, bit in 0u8..8) {
            let env = Envelope { corr: 1, from: 2, group: None, body: Request::Propose(Command::Add { name: "n".into(), delta: 3 }) };
            let mut bytes = env.encode().expect("encodes").to_vec();
            if let Some(b) = bytes.get_mut(flip) { *b ^= 1 << bit; }
            bytes.truncate(cut.min(bytes.len()));
            let _ = Envelope::<Request>::decode(&bytes);
        }
    }
}
