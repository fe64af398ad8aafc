//! The local supervisor: runs instances of one service, one at a time,
//! contains their panics and restarts them by policy and intensity.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;

use bytes::Bytes;
use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::event::ServiceEvent;
use super::options::{Restart, ServiceOptions};
use super::service::{Context, Fence, Service, ServiceError, StopReason};
use super::service_ref::CallError;
use crate::context::RequestContext;

/// A request in a service's mailbox.
pub(crate) enum Mail<S: Service> {
    /// A request, where its reply goes, and the request's context (the
    /// handler runs in it).
    Call(
        S::Request,
        oneshot::Sender<Result<S::Reply, CallError>>,
        RequestContext,
    ),
    /// A request without reply, and its context.
    Cast(S::Request, RequestContext),
}

/// A request to stop; the handoff state (postcard) is sent back.
#[derive(Debug)]
pub(crate) struct StopRequest {
    pub(crate) reason: StopReason,
    pub(crate) state: Option<oneshot::Sender<Option<Bytes>>>,
}

/// How one instance ended.
struct Exit {
    reason: StopReason,
    /// Stopped on request: never restarted.
    requested: bool,
    /// Its fence was lost: restarted (to wait for the lock again) without
    /// counting against the restart intensity.
    fenced_out: bool,
}

/// How the first instance starts: with a previous instance's state
/// (postcard), and through a gate if fenced.
pub(crate) struct Launch {
    pub(crate) handoff: Option<Bytes>,
    pub(crate) gate: Option<Gate>,
    /// The request context the first instance's `started` hook runs in
    /// (the trace of the placement or handoff that started it).
    pub(crate) context: Option<RequestContext>,
}

/// What lets a fenced instance start: it resolves once the instance may
/// run, with the [`Fence`] its context exposes and a hold that releases
/// the lock when dropped (after the instance's stopping hook).
pub(crate) type Gate = std::sync::Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = (Fence, Box<dyn Send>)> + Send>>
        + Send
        + Sync,
>;

/// Runs the service until it is stopped or the supervisor gives up.
/// The mailbox outlives instances, so refs stay valid across restarts.
pub(crate) async fn supervise<S, F>(
    factory: F,
    mail: &mut mpsc::Receiver<Mail<S>>,
    mut control: mpsc::Receiver<StopRequest>,
    mut ctx: Context,
    opts: ServiceOptions,
    launch: Launch,
    emit: impl Fn(ServiceEvent),
) -> StopReason
where
    S: Service,
    F: Fn() -> S + Send + 'static,
{
    let Launch {
        mut handoff,
        gate,
        mut context,
    } = launch;
    let mut history: VecDeque<Instant> = VecDeque::new();
    let addr = ctx.addr;
    let label = opts.label.clone();
    loop {
        let exit = match std::panic::catch_unwind(AssertUnwindSafe(&factory)) {
            Ok(mut svc) => {
                emit(ServiceEvent::Started {
                    addr,
                    label: label.clone(),
                    restarts: ctx.restarts,
                });
                run(
                    &mut svc,
                    mail,
                    &mut control,
                    &mut ctx,
                    handoff.take(),
                    gate.as_ref(),
                    context.take(),
                )
                .await
            }
            Err(p) => Exit {
                reason: StopReason::Panic(panic_message(p.as_ref())),
                requested: false,
                fenced_out: false,
            },
        };
        let restart = !exit.requested
            && match opts.restart {
                Restart::Permanent => true,
                Restart::Transient => exit.reason.is_failure(),
                Restart::Temporary => false,
            };
        if exit.reason.is_failure() {
            tracing::warn!(service = %addr, label = %label, reason = %exit.reason, "service instance failed");
        }
        if !restart {
            emit(ServiceEvent::Stopped {
                addr,
                label: label.clone(),
                reason: exit.reason.clone(),
            });
            return exit.reason;
        }
        let now = Instant::now();
        if !exit.fenced_out {
            history.push_back(now);
        }
        while history
            .front()
            .is_some_and(|t| now.duration_since(*t) > opts.intensity.period)
        {
            history.pop_front();
        }
        if history.len() > opts.intensity.max_restarts as usize {
            tracing::error!(
                service = %addr, label = %label, reason = %exit.reason,
                max_restarts = opts.intensity.max_restarts,
                period = ?opts.intensity.period,
                "restart intensity exceeded: giving up on the service"
            );
            emit(ServiceEvent::GaveUp {
                addr,
                label: label.clone(),
                reason: exit.reason.clone(),
            });
            return exit.reason;
        }
        emit(ServiceEvent::Restarting {
            addr,
            label: label.clone(),
            reason: exit.reason,
        });
        ctx.restarts += 1;
        ctx.stop = false;
        ctx.fence = None;
    }
}

/// Runs one instance to its end.
async fn run<S: Service>(
    svc: &mut S,
    mail: &mut mpsc::Receiver<Mail<S>>,
    control: &mut mpsc::Receiver<StopRequest>,
    ctx: &mut Context,
    handoff: Option<Bytes>,
    gate: Option<&Gate>,
    context: Option<RequestContext>,
) -> Exit {
    let raw = handoff.clone();
    let state = handoff.and_then(|b| match postcard::from_bytes::<S::State>(&b) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(service = %ctx.addr, error = %e, "handoff state does not decode; starting without it");
            None
        }
    });
    // A fenced instance first waits for its lock. A stop may come
    // meanwhile: the instance then never ran, and hands its handoff state
    // on untouched.
    let mut hold = None;
    let started = tokio::select! {
        biased;
        req = control.recv() => Err(req),
        r = async {
            if let Some(gate) = gate {
                let (fence, h) = gate().await;
                ctx.fence = Some(fence);
                hold = Some(h);
            }
            let hook = guard(svc.started(ctx, state));
            match context {
                Some(rc) => rc.scope(hook).await,
                None => hook.await,
            }
        } => Ok(r),
    };
    match started {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => return failed(svc, ctx, reason).await,
        Err(req) => {
            let reason = req
                .as_ref()
                .map_or(StopReason::Shutdown, |r| r.reason.clone());
            if let Some(tx) = req.and_then(|r| r.state) {
                let _ = tx.send(raw);
            }
            return Exit {
                reason,
                requested: true,
                fenced_out: false,
            };
        }
    }
    let exit = serve(svc, mail, control, ctx).await;
    // The lock goes only after the stopping hook: the next instance
    // starts after this one's last word.
    drop(hold);
    exit
}

/// Serves requests until the instance ends.
async fn serve<S: Service>(
    svc: &mut S,
    mail: &mut mpsc::Receiver<Mail<S>>,
    control: &mut mpsc::Receiver<StopRequest>,
    ctx: &mut Context,
) -> Exit {
    let mut fence = ctx.fence.clone();
    loop {
        let next = tokio::select! {
            biased;
            req = control.recv() => Err(req),
            _ = fence_lost(&mut fence) => {
                let reason = StopReason::Error("its coordination lock (fence) was lost".into());
                let mut exit = failed(svc, ctx, reason).await;
                exit.fenced_out = true;
                return exit;
            }
            m = mail.recv() => Ok(m),
        };
        match next {
            Err(req) => {
                let req = req.unwrap_or(StopRequest {
                    reason: StopReason::Shutdown,
                    state: None,
                });
                let state = stopping(svc, ctx, &req.reason).await;
                if let Some(tx) = req.state {
                    let _ = tx.send(state);
                }
                return Exit {
                    reason: req.reason,
                    requested: true,
                    fenced_out: false,
                };
            }
            Ok(None) => {
                stopping(svc, ctx, &StopReason::Normal).await;
                return Exit {
                    reason: StopReason::Normal,
                    requested: true,
                    fenced_out: false,
                };
            }
            // Nobody waits for the reply any more: not handled.
            Ok(Some(Mail::Call(_, reply, rc))) if rc.expired() => {
                let _ = reply.send(Err(CallError::Timeout {
                    addr: ctx.addr,
                    after: std::time::Duration::ZERO,
                }));
            }
            Ok(Some(Mail::Call(req, reply, rc))) => {
                match rc.scope(guard(svc.handle(ctx, req))).await {
                    Ok(r) => {
                        let _ = reply.send(Ok(r));
                    }
                    Err(reason) => {
                        let _ = reply.send(Err(CallError::Failed {
                            addr: ctx.addr,
                            message: reason.to_string(),
                        }));
                        return failed(svc, ctx, reason).await;
                    }
                }
            }
            Ok(Some(Mail::Cast(req, rc))) => {
                if let Err(reason) = rc.scope(guard(svc.handle(ctx, req))).await {
                    return failed(svc, ctx, reason).await;
                }
            }
        }
        if ctx.stop {
            stopping(svc, ctx, &StopReason::Normal).await;
            return Exit {
                reason: StopReason::Normal,
                requested: false,
                fenced_out: false,
            };
        }
    }
}

/// Resolves when a fenced instance's lock is lost; never for others.
async fn fence_lost(fence: &mut Option<Fence>) {
    match fence {
        Some(f) => f.lost().await,
        None => std::future::pending().await,
    }
}

/// A failed instance: the stopping hook runs after an error, not after a
/// panic (the instance may be half-updated).
async fn failed<S: Service>(svc: &mut S, ctx: &mut Context, reason: StopReason) -> Exit {
    if matches!(reason, StopReason::Error(_)) {
        stopping(svc, ctx, &reason).await;
    }
    Exit {
        reason,
        requested: false,
        fenced_out: false,
    }
}

/// Runs the stopping hook; its state, encoded, if any.
async fn stopping<S: Service>(
    svc: &mut S,
    ctx: &mut Context,
    reason: &StopReason,
) -> Option<Bytes> {
    match AssertUnwindSafe(svc.stopping(ctx, reason))
        .catch_unwind()
        .await
    {
        Ok(state) => state.and_then(|s| postcard::to_allocvec(&s).ok().map(Bytes::from)),
        Err(p) => {
            tracing::warn!(service = %ctx.addr, panic = %panic_message(p.as_ref()), "stopping hook panicked");
            None
        }
    }
}

/// Awaits a hook, turning an error or a panic into a stop reason.
async fn guard<T>(
    fut: impl std::future::Future<Output = Result<T, ServiceError>>,
) -> Result<T, StopReason> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(StopReason::Error(e.chain())),
        Err(p) => Err(StopReason::Panic(panic_message(p.as_ref()))),
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}
