//! The service host of one node: its running services by id, the
//! delivery of remote requests, and the pending remote calls.

use crate::locks::Locked as _;
use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::event::ServiceEvent;
use super::instance::{supervise, Gate, Launch, Mail, StopRequest};
use super::options::ServiceOptions;
use super::service::{Context, Service, StopReason};
use super::service_ref::{CallError, Route, ServiceRef};
use super::wire::{RemoteFailure, ServiceMsg, KIND_MSG};
use crate::context::{RequestContext, WireContext};
use crate::id::NodeId;
use crate::messenger::Messenger;
use crate::spans::{OpenSpan, SpanKind};
use crate::transport::{Incoming, SendFailure};
use foundation_proto::registry::ServiceAddr;
use tracing::Instrument as _;

/// Delivers a remote request (postcard) into a typed mailbox; for a call,
/// the reply goes back to `(node, corr)`.
type Deliver = Box<dyn Fn(Inbound, Bytes) -> Result<(), RemoteFailure> + Send + Sync>;

/// Who sent a remote request, in what context, and where a reply goes.
struct Inbound {
    from: NodeId,
    /// The call's correlation id; `None` for a cast.
    corr: Option<u64>,
    context: RequestContext,
}

struct Slot {
    protocol: &'static str,
    label: String,
    typed: Box<dyn Any + Send + Sync>,
    deliver: Deliver,
    control: mpsc::Sender<StopRequest>,
    done: watch::Receiver<bool>,
}

type Pending = HashMap<u64, (ServiceAddr, oneshot::Sender<Result<Bytes, CallError>>)>;

/// What must happen to a service's names when it ends. The registry
/// implements it; the host, a layer below, only knows the trait.
pub(crate) trait Withdraw: Send + Sync {
    /// Takes every entry of local service `local` out (and tells the
    /// cluster).
    fn service_ended(&self, local: u64);
}

pub(crate) struct Host {
    messenger: Messenger,
    names: Arc<dyn Withdraw>,
    next_local: AtomicU64,
    next_corr: AtomicU64,
    slots: Mutex<HashMap<u64, Slot>>,
    pending: Mutex<Pending>,
    events: broadcast::Sender<ServiceEvent>,
    /// Services whose registrations stay until `withdraw`.
    deferred: Mutex<std::collections::HashSet<u64>>,
    /// Cancelled when the node stops abruptly: instances end at once,
    /// without their stopping hooks, as in a crash.
    cancel: CancellationToken,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("node", &self.messenger.id())
            .field("services", &self.lock_slots().len())
            .finish()
    }
}

impl Host {
    pub(crate) fn new(
        messenger: Messenger,
        names: Arc<dyn Withdraw>,
        cancel: CancellationToken,
    ) -> Self {
        Host {
            messenger,
            names,
            next_local: AtomicU64::new(1),
            next_corr: AtomicU64::new(1),
            slots: Mutex::default(),
            pending: Mutex::default(),
            events: broadcast::channel(1024).0,
            deferred: Mutex::default(),
            cancel,
        }
    }

    /// The node's tasks.
    pub(crate) fn tasks(&self) -> &crate::tasks::Tasks {
        &self.messenger.tasks
    }

    /// Where the node's spans go.
    pub(crate) fn spans(&self) -> &crate::spans::Spans {
        &self.messenger.spans
    }

    /// The node's call figures.
    pub(crate) fn calls(&self) -> &Arc<crate::telemetry::CallStats> {
        &self.messenger.calls
    }

    fn lock_slots(&self) -> MutexGuard<'_, HashMap<u64, Slot>> {
        self.slots.locked()
    }

    fn lock_pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.locked()
    }

    pub(crate) fn events(&self) -> broadcast::Receiver<ServiceEvent> {
        self.events.subscribe()
    }

    /// Starts a supervised service; `handoff` is a previous instance's
    /// state (postcard).
    pub(crate) fn spawn<S, F>(
        self: &Arc<Self>,
        factory: F,
        opts: ServiceOptions,
        handoff: Option<Bytes>,
    ) -> ServiceRef<S>
    where
        S: Service,
        F: Fn() -> S + Send + 'static,
    {
        self.spawn_gated(factory, opts, handoff, None, None)
    }

    /// [`Host::spawn`], each instance starting only once `gate` let it
    /// through (a fenced instance: see [`Gate`]).
    pub(crate) fn spawn_gated<S, F>(
        self: &Arc<Self>,
        factory: F,
        opts: ServiceOptions,
        handoff: Option<Bytes>,
        gate: Option<Gate>,
        context: Option<RequestContext>,
    ) -> ServiceRef<S>
    where
        S: Service,
        F: Fn() -> S + Send + 'static,
    {
        let local = self.next_local.fetch_add(1, Ordering::Relaxed);
        let addr = ServiceAddr {
            node: self.messenger.id(),
            local,
        };
        let (mtx, mrx) = mpsc::channel::<Mail<S>>(opts.mailbox.max(1));
        let (ctx_tx, ctx_rx) = mpsc::channel(4);
        let (done_tx, done_rx) = watch::channel(false);
        let deliver = deliverer::<S>(addr, mtx.clone(), self.messenger.clone());
        self.lock_slots().insert(
            local,
            Slot {
                protocol: std::any::type_name::<S>(),
                label: opts.label.clone(),
                typed: Box::new(mtx.clone()),
                deliver,
                control: ctx_tx,
                done: done_rx,
            },
        );
        let ctx = Context {
            addr,
            stop: false,
            restarts: 0,
            fence: None,
        };
        let host = Arc::clone(self);
        let events = self.events.clone();
        let cancel = self.cancel.clone();
        self.messenger.tasks.spawn(async move {
            let mut mrx = mrx;
            let launch = Launch {
                handoff,
                gate,
                context,
            };
            let run = supervise(factory, &mut mrx, ctx_rx, ctx, opts, launch, |ev| {
                let _ = events.send(ev);
            });
            let reason = tokio::select! {
                r = run => r,
                _ = cancel.cancelled() => StopReason::Shutdown,
            };
            // Every caller hears `Stopped` now. Dropping the receiver is not
            // enough: a sender that won its permit just before would push
            // after the drop's drain, and its caller would wait out its
            // whole timeout. `recv` after `close` ends only once no permit
            // is outstanding.
            mrx.close();
            while mrx.recv().await.is_some() {}
            host.exited(local, &reason);
            let _ = done_tx.send(true);
        });
        ServiceRef {
            addr,
            route: Route::Local(mtx, self.calls().clone()),
        }
    }

    fn exited(&self, local: u64, reason: &StopReason) {
        let slot = self.lock_slots().remove(&local);
        tracing::debug!(service = local, label = slot.as_ref().map(|s| s.label.as_str()), %reason, "service ended");
        let deferred = self.deferred.locked().remove(&local);
        if !deferred {
            self.names.service_ended(local);
        }
    }

    /// Stops local service `local` like [`Host::stop`], but keeps its
    /// registrations until [`Host::withdraw`]: a handoff sent in between
    /// reaches the next owner before the withdrawal does (one ordered
    /// stream), so the next owner never mistakes the gap for a crash.
    pub(crate) async fn stop_for_handoff(&self, local: u64, reason: StopReason) -> Option<Bytes> {
        self.deferred.locked().insert(local);
        self.stop(local, reason).await
    }

    /// Withdraws the registrations of a service stopped by
    /// [`Host::stop_for_handoff`].
    pub(crate) fn withdraw(&self, local: u64) {
        self.deferred.locked().remove(&local);
        self.names.service_ended(local);
    }

    /// Whether local service `local` runs here.
    pub(crate) fn is_running(&self, local: u64) -> bool {
        self.lock_slots().contains_key(&local)
    }

    /// A ref to the service at `addr` (local or remote).
    pub(crate) fn ref_for<S: Service>(self: &Arc<Self>, addr: ServiceAddr) -> ServiceRef<S> {
        let route = if addr.node != self.messenger.id() {
            Route::Remote(Arc::clone(self))
        } else {
            self.lock_slots()
                .get(&addr.local)
                .and_then(|s| s.typed.downcast_ref::<mpsc::Sender<Mail<S>>>())
                .map_or(Route::Gone, |tx| {
                    Route::Local(tx.clone(), self.calls().clone())
                })
        };
        ServiceRef { addr, route }
    }

    /// Stops local service `local` with `reason` and waits for it to end.
    /// Returns its handoff state, if it gave one.
    pub(crate) async fn stop(&self, local: u64, reason: StopReason) -> Option<Bytes> {
        let (control, mut done) = {
            let slots = self.lock_slots();
            let slot = slots.get(&local)?;
            (slot.control.clone(), slot.done.clone())
        };
        let (tx, rx) = oneshot::channel();
        control
            .send(StopRequest {
                reason,
                state: Some(tx),
            })
            .await
            .ok()?;
        let state = rx.await.ok().flatten();
        let _ = done.wait_for(|d| *d).await;
        state
    }

    /// Stops every local service (node shutdown).
    pub(crate) async fn stop_all(&self, reason: StopReason) {
        let locals: Vec<u64> = self.lock_slots().keys().copied().collect();
        for l in locals {
            self.stop(l, reason.clone()).await;
        }
    }

    /// A call to a remote service in `context` (the caller's current one,
    /// or one it was given).
    pub(crate) async fn remote_call(
        &self,
        addr: ServiceAddr,
        protocol: &str,
        payload: Bytes,
        timeout: Duration,
        context: Option<RequestContext>,
    ) -> Result<Bytes, CallError> {
        let corr = self.next_corr.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.lock_pending().insert(corr, (addr, tx));
        let msg = ServiceMsg::Call {
            corr,
            to: addr.local,
            protocol: protocol.to_owned(),
            payload,
        };
        let (span, context) = self.outgoing("call", SpanKind::Client, addr, timeout, context);
        let traced = span
            .as_ref()
            .map_or_else(tracing::Span::none, |s| s.tracing.clone());
        let result = async {
            if let Err(e) = self.send(addr, msg, context).await {
                self.lock_pending().remove(&corr);
                return Err(e);
            }
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(CallError::Stopped { addr }),
                Err(_) => {
                    self.lock_pending().remove(&corr);
                    Err(CallError::Timeout {
                        addr,
                        after: timeout,
                    })
                }
            }
        }
        .instrument(traced)
        .await;
        self.messenger
            .spans
            .end(span, || result.as_ref().err().map(ToString::to_string));
        result
    }

    /// The span of an outgoing request (when it belongs to a trace) and
    /// the context it carries, with the deadline of `timeout`
    /// (`Duration::MAX`: none).
    fn outgoing(
        &self,
        name: &'static str,
        kind: SpanKind,
        addr: ServiceAddr,
        timeout: Duration,
        context: Option<RequestContext>,
    ) -> (Option<OpenSpan>, WireContext) {
        // The deadline travels even without a context.
        let rc = self.messenger.spans.or_root(context).unwrap_or_default();
        let (span, passed) = self.messenger.spans.enter(name, kind, &rc, || {
            vec![
                ("foundation.peer.id", addr.node.to_string()),
                ("foundation.service", addr.to_string()),
            ]
        });
        (span, passed.with_timeout(timeout).to_wire())
    }

    pub(crate) async fn remote_cast(
        &self,
        addr: ServiceAddr,
        protocol: &str,
        payload: Bytes,
    ) -> Result<(), CallError> {
        let msg = ServiceMsg::Cast {
            to: addr.local,
            protocol: protocol.to_owned(),
            payload,
        };
        let current = RequestContext::current();
        let (span, context) =
            self.outgoing("cast", SpanKind::Producer, addr, Duration::MAX, current);
        let result = self.send(addr, msg, context).await;
        self.messenger
            .spans
            .end(span, || result.as_ref().err().map(ToString::to_string));
        result
    }

    async fn send(
        &self,
        addr: ServiceAddr,
        msg: ServiceMsg,
        context: WireContext,
    ) -> Result<(), CallError> {
        self.messenger
            .send_auto_with(addr.node, KIND_MSG, Some(context), msg.encode())
            .await
            .map_err(|e| match e.reason {
                SendFailure::UnknownNode => CallError::NodeDown {
                    addr,
                    node: addr.node,
                },
                r => CallError::Unreachable {
                    addr,
                    reason: r.to_string(),
                },
            })
    }

    /// Fails the pending calls to a node that went down or left.
    pub(crate) fn node_down(&self, node: NodeId) {
        let failed: Vec<_> = {
            let mut pending = self.lock_pending();
            let corrs: Vec<u64> = pending
                .iter()
                .filter(|(_, (a, _))| a.node == node)
                .map(|(c, _)| *c)
                .collect();
            corrs
                .into_iter()
                .filter_map(|c| pending.remove(&c))
                .collect()
        };
        for (addr, tx) in failed {
            let _ = tx.send(Err(CallError::NodeDown { addr, node }));
        }
    }

    /// Handles a service message from a peer.
    pub(crate) fn incoming(&self, msg: Incoming) {
        let from = msg.from;
        let context = RequestContext::from_frame(msg.context, &msg.headers);
        let decoded = match ServiceMsg::decode(&msg.payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(peer = %from, error = %e, "malformed service message dropped");
                metrics::counter!("foundation_service_malformed_total").increment(1);
                return;
            }
        };
        match decoded {
            ServiceMsg::Call {
                corr,
                to,
                protocol,
                payload,
            } => {
                let inbound = Inbound {
                    from,
                    corr: Some(corr),
                    context,
                };
                if let Err(f) = self.deliver(to, &protocol, inbound, payload) {
                    reply(&self.messenger, from, corr, Err(f));
                }
            }
            ServiceMsg::Cast {
                to,
                protocol,
                payload,
            } => {
                let inbound = Inbound {
                    from,
                    corr: None,
                    context,
                };
                if let Err(f) = self.deliver(to, &protocol, inbound, payload) {
                    tracing::debug!(service = to, peer = %from, failure = ?f, "cast not delivered");
                    metrics::counter!("foundation_service_casts_dropped_total").increment(1);
                }
            }
            ServiceMsg::Reply { corr, result } => {
                let Some((addr, tx)) = self.lock_pending().remove(&corr) else {
                    return; // timed out already
                };
                let r = result.map_err(|f| match f {
                    RemoteFailure::NoSuchService => CallError::Stopped { addr },
                    RemoteFailure::Overloaded => CallError::Overloaded { addr },
                    RemoteFailure::Protocol(m) | RemoteFailure::Decode(m) => {
                        CallError::Codec { addr, message: m }
                    }
                    RemoteFailure::Failed(message) => CallError::Failed { addr, message },
                });
                let _ = tx.send(r);
            }
        }
    }

    fn deliver(
        &self,
        to: u64,
        protocol: &str,
        inbound: Inbound,
        payload: Bytes,
    ) -> Result<(), RemoteFailure> {
        let slots = self.lock_slots();
        let slot = slots.get(&to).ok_or(RemoteFailure::NoSuchService)?;
        if slot.protocol != protocol {
            return Err(RemoteFailure::Protocol(format!(
                "the service speaks {}, the caller {protocol}",
                slot.protocol
            )));
        }
        (slot.deliver)(inbound, payload)
    }
}

/// The typed delivery of remote requests into a service's mailbox. Full
/// mailboxes refuse (Overloaded) rather than queue without bound.
fn deliverer<S: Service>(
    addr: ServiceAddr,
    tx: mpsc::Sender<Mail<S>>,
    messenger: Messenger,
) -> Deliver {
    Box::new(move |inbound, payload| {
        let req: S::Request =
            postcard::from_bytes(&payload).map_err(|e| RemoteFailure::Decode(e.to_string()))?;
        let full = |_| RemoteFailure::Overloaded;
        let Inbound {
            from,
            corr,
            context,
        } = inbound;
        let attrs = || {
            vec![
                ("foundation.peer.id", from.to_string()),
                ("foundation.service", addr.to_string()),
            ]
        };
        match corr {
            None => {
                let (span, handled) =
                    messenger
                        .spans
                        .enter("cast", SpanKind::Consumer, &context, attrs);
                let sent = tx.try_send(Mail::Cast(req, handled)).map_err(full);
                messenger
                    .spans
                    .end(span, || sent.as_ref().err().map(|f| format!("{f:?}")));
                sent
            }
            Some(corr) => {
                let node = from;
                let (span, handled) =
                    messenger
                        .spans
                        .enter("handle", SpanKind::Server, &context, attrs);
                let (rtx, rrx) = oneshot::channel();
                tx.try_send(Mail::Call(req, rtx, handled)).map_err(full)?;
                let messenger = messenger.clone();
                messenger.tasks.clone().spawn(async move {
                    let result = match rrx.await {
                        Ok(Ok(reply)) => {
                            postcard::to_allocvec(&reply).map(Bytes::from).map_err(|e| {
                                RemoteFailure::Failed(format!("reply does not encode: {e}"))
                            })
                        }
                        Ok(Err(e)) => Err(RemoteFailure::Failed(e.to_string())),
                        Err(_) => Err(RemoteFailure::Failed(format!("service {addr} stopped"))),
                    };
                    messenger
                        .spans
                        .end(span, || result.as_ref().err().map(|f| format!("{f:?}")));
                    reply(&messenger, node, corr, result);
                });
                Ok(())
            }
        }
    })
}

fn reply(messenger: &Messenger, to: NodeId, corr: u64, result: Result<Bytes, RemoteFailure>) {
    let messenger = messenger.clone();
    messenger.tasks.clone().spawn(async move {
        let msg = ServiceMsg::Reply { corr, result };
        if let Err(e) = messenger.send_auto(to, KIND_MSG, msg.encode()).await {
            tracing::debug!(peer = %to, error = %e, "reply not sent");
        }
    });
}
