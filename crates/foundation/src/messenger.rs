//! Sending to members by node id: what the cluster services (registry,
//! services, supervisor) share with [`Node::send`](crate::Node::send).

use bytes::Bytes;

use crate::context::WireContext;
use crate::id::NodeId;
use crate::membership::{MemberId, Membership};
use crate::transport::{Channel, Payload, SendError, SendFailure, Transport};

/// Payloads above this go on the data channel instead of control, so a
/// large message never delays control traffic.
pub(crate) const LARGE_PAYLOAD: usize = 64 * 1024;

/// Resolves node ids through membership and sends through the transport.
#[derive(Clone, Debug)]
pub(crate) struct Messenger {
    pub(crate) transport: Transport,
    pub(crate) membership: Membership,
    pub(crate) local: MemberId,
    /// The node's tasks: what the cluster services spawn goes here.
    pub(crate) tasks: crate::tasks::Tasks,
    /// Where the node's spans go.
    pub(crate) spans: crate::spans::Spans,
    /// Call latencies and outcomes by service protocol.
    pub(crate) calls: std::sync::Arc<crate::telemetry::CallStats>,
}

impl Messenger {
    /// This node's id.
    pub(crate) fn id(&self) -> NodeId {
        self.local.id
    }

    /// Sends to an active member (or this node).
    pub(crate) async fn send(
        &self,
        to: NodeId,
        channel: Channel,
        kind: u16,
        headers: Vec<(String, String)>,
        payload: Bytes,
    ) -> Result<(), SendError> {
        self.send_frame(
            to,
            channel,
            0,
            kind,
            (&headers, None),
            &Payload::new(payload),
        )
        .await
    }

    /// Sends a shared payload on `channel` (and `lane` of data).
    pub(crate) async fn send_on(
        &self,
        to: NodeId,
        channel: Channel,
        lane: u8,
        kind: u16,
        payload: &Payload,
    ) -> Result<(), SendError> {
        self.send_frame(to, channel, lane, kind, (&[], None), payload)
            .await
    }

    async fn send_frame(
        &self,
        to: NodeId,
        channel: Channel,
        lane: u8,
        kind: u16,
        meta: (&[(String, String)], Option<&WireContext>),
        payload: &Payload,
    ) -> Result<(), SendError> {
        let Some(addr) = self.addr_of(to) else {
            return Err(SendError::new(
                to,
                channel,
                SendFailure::UnknownNode,
                payload.joined(),
            ));
        };
        self.transport
            .send_on(addr, channel, lane, kind, meta, payload)
            .await
    }

    /// Whether `id` is an active member other than this node.
    pub(crate) fn is_live_member(&self, id: NodeId) -> bool {
        id != self.local.id && self.membership.is_active(id)
    }

    /// The transport address of an active member (or this node).
    fn addr_of(&self, to: NodeId) -> Option<std::net::SocketAddr> {
        if to == self.local.id {
            Some(self.local.transport)
        } else {
            self.membership
                .member(to)
                .filter(|m| m.state.is_active())
                .map(|m| m.transport)
        }
    }

    /// Sends on control, or on data when the payload is large.
    pub(crate) async fn send_auto(
        &self,
        to: NodeId,
        kind: u16,
        payload: Bytes,
    ) -> Result<(), SendError> {
        self.send_auto_with(to, kind, None, payload).await
    }

    /// [`Messenger::send_auto`] with a request's context.
    pub(crate) async fn send_auto_with(
        &self,
        to: NodeId,
        kind: u16,
        context: Option<WireContext>,
        payload: Bytes,
    ) -> Result<(), SendError> {
        let channel = if payload.len() > LARGE_PAYLOAD {
            Channel::Data
        } else {
            Channel::Control
        };
        let context = context.filter(|c| !c.is_empty());
        self.send_frame(
            to,
            channel,
            0,
            kind,
            (&[], context.as_ref()),
            &Payload::new(payload),
        )
        .await
    }

    /// Active members other than this node.
    pub(crate) fn peers(&self) -> Vec<NodeId> {
        self.membership
            .members()
            .into_iter()
            .filter(|m| m.state.is_active() && m.id != self.local.id)
            .map(|m| m.id)
            .collect()
    }
}
