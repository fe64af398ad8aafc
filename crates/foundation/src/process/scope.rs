//! What the process manager may use of its node: the service host, the
//! registry, the member view and coordination (for fenced instances).
//! Narrower than the `Node`, and below it.

use std::sync::Arc;

use crate::id::NodeId;
use crate::membership::{Member, View};
use crate::registry::Registry;
use crate::services::Host;

/// The process manager's handles on the layers below it.
#[derive(Clone, Debug)]
pub(crate) struct Scope {
    pub(crate) host: Arc<Host>,
    pub(crate) registry: Registry,
    pub(crate) view: Arc<View>,
    pub(crate) coord: crate::coord::Coord,
}

impl Scope {
    /// This node.
    pub(crate) fn id(&self) -> NodeId {
        self.view.local().id
    }

    /// Every known member, this node first.
    pub(crate) fn members(&self) -> Vec<Member> {
        self.view.members()
    }
}
