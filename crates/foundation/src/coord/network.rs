//! openraft's network: its messages go to peers as [`Request`]s on the
//! control channel (on data when large) over the existing QUIC connections.

use std::sync::Arc;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::EmptyNode;

use super::rpc::{Rpc, RpcError};
use super::types::TypeConfig;
use super::wire::{Reply, Request};

/// Makes a [`Peer`] for each node openraft talks to.
#[derive(Debug, Clone)]
pub(crate) struct Net(pub(crate) Arc<Rpc>);

impl RaftNetworkFactory<TypeConfig> for Net {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, _node: &EmptyNode) -> Peer {
        Peer {
            rpc: self.0.clone(),
            target,
        }
    }
}

/// One peer, as openraft sees it.
#[derive(Debug)]
pub(crate) struct Peer {
    rpc: Arc<Rpc>,
    target: u64,
}

type Failed<E = openraft::error::Infallible> = RPCError<u64, EmptyNode, RaftError<u64, E>>;

impl Peer {
    async fn ask<E: std::error::Error>(
        &self,
        request: Request,
        option: &RPCOption,
    ) -> Result<Reply, Failed<E>> {
        match self.rpc.call(self.target, request, option.hard_ttl()).await {
            Ok(Reply::WrongGroup { ours }) => {
                let e = RpcError::Unexpected(
                    self.target,
                    format!("that it is in group {ours:?}, not ours"),
                );
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Ok(reply) => Ok(reply),
            Err(e @ RpcError::Unreachable(..)) => Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }

    fn unexpected<E: std::error::Error>(&self, reply: &Reply) -> Failed<E> {
        let e = RpcError::Unexpected(self.target, format!("{reply:?}"));
        RPCError::Network(NetworkError::new(&e))
    }

    fn remote<E: std::error::Error>(&self, e: RaftError<u64, E>) -> Failed<E> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, Failed> {
        match self.ask(Request::Append(rpc), &option).await? {
            Reply::Append(r) => r.map_err(|e| self.remote(e)),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, Failed<InstallSnapshotError>> {
        match self.ask(Request::Snapshot(rpc), &option).await? {
            Reply::Snapshot(r) => r.map_err(|e| self.remote(e)),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, Failed> {
        match self.ask(Request::Vote(rpc), &option).await? {
            Reply::Vote(r) => r.map_err(|e| self.remote(e)),
            other => Err(self.unexpected(&other)),
        }
    }
}
