//! Discovery by criteria: the registry's entries that match, with the
//! state of the node that hosts each, once or as a stream of changes.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{broadcast, watch};

use super::{Criteria, ServiceMeta};
use crate::membership::{MemberEvent, MemberState, Membership, View};
use crate::registry::{Registry, ServiceAddr};

/// A registration that matches a caller's criteria.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Endpoint {
    /// The service.
    pub service: ServiceAddr,
    /// The name it is registered under.
    pub name: String,
    /// Its message protocol (the Rust type name).
    pub protocol: String,
    /// Its version, capabilities and metadata.
    pub meta: ServiceMeta,
    /// The hosting node's name.
    pub node_name: String,
    /// The hosting node's state as this node sees it (alive or suspect:
    /// endpoints on other nodes are not listed).
    pub node_state: MemberState,
}

/// What discovery reads: the registry and the member view.
#[derive(Clone, Debug)]
pub(crate) struct Sources {
    pub(crate) registry: Registry,
    pub(crate) view: Arc<View>,
    pub(crate) membership: Membership,
}

impl Sources {
    /// The endpoints matching `criteria` now, in address order. Entries on
    /// nodes that are not active are left out.
    pub(crate) fn discover(&self, criteria: &Criteria) -> Vec<Endpoint> {
        let entries = {
            let st = self.registry.shared.state();
            let mut all: Vec<_> = st.members_of(&criteria.name).into_iter().cloned().collect();
            all.extend(st.lookup(&criteria.name).cloned());
            all
        };
        let local = self.view.local_member();
        let mut found: Vec<Endpoint> = entries
            .into_iter()
            .filter_map(|e| {
                let node = if e.owner() == local.id {
                    local.clone()
                } else {
                    self.membership.member(e.owner())?
                };
                if !node.state.is_active() || !criteria.matches(&e, &node.roles) {
                    return None;
                }
                Some(Endpoint {
                    service: e.service,
                    name: e.name,
                    protocol: e.protocol,
                    meta: e.meta,
                    node_name: node.name,
                    node_state: node.state,
                })
            })
            .collect();
        found.sort_by_key(|e| e.service);
        found.dedup_by_key(|e| e.service);
        found
    }
}

/// A live view of the endpoints matching some criteria
/// ([`Mesh::watch`](super::Mesh::watch)).
#[derive(Debug)]
pub struct Discovery {
    sources: Sources,
    criteria: Criteria,
    registry: watch::Receiver<u64>,
    members: broadcast::Receiver<MemberEvent>,
    current: Vec<Endpoint>,
}

impl Discovery {
    pub(crate) fn new(sources: Sources, criteria: Criteria) -> Self {
        let registry = sources.registry.changes();
        let members = sources.membership.subscribe();
        let current = sources.discover(&criteria);
        Discovery {
            sources,
            criteria,
            registry,
            members,
            current,
        }
    }

    /// The endpoints as last seen.
    pub fn current(&self) -> &[Endpoint] {
        &self.current
    }

    /// Waits until the set of matching endpoints (or the state of a node
    /// hosting one) changes, and returns the new set. `None` once the node
    /// has shut down.
    pub async fn changed(&mut self) -> Option<&[Endpoint]> {
        loop {
            tokio::select! {
                r = self.registry.changed() => r.ok()?,
                r = self.members.recv() => match r {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
            let next = self.sources.discover(&self.criteria);
            if next != self.current {
                self.current = next;
                return Some(&self.current);
            }
        }
    }
}
