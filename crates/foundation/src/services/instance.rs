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
use super::service::{Context, Service, ServiceError, StopReason};
use super::service_ref::CallError;

/// A request in a service's mailbox.
pub(crate) enum Mail<S: Service> {
    Call(S::Request, oneshot::Sender<Result<S::Reply, CallError>>),
    Cast(S::Request),
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
}

/// Runs the service until it is stopped or the supervisor gives up.
/// The mailbox outlives instances, so refs stay valid across restarts.
pub(crate) async fn supervise<S, F>(
    factory: F,
    mut mail: mpsc::Receiver<Mail<S>>,
    mut control: mpsc::Receiver<StopRequest>,
    mut ctx: Context,
    opts: ServiceOptions,
    mut handoff: Option<Bytes>,
    emit: impl Fn(ServiceEvent),
) -> StopReason
where
    S: Service,
    F: Fn() -> S + Send + 'static,
{
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
                run(&mut svc, &mut mail, &mut control, &mut ctx, handoff.take()).await
            }
            Err(p) => Exit {
                reason: StopReason::Panic(panic_message(p.as_ref())),
                requested: false,
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
        history.push_back(now);
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
    }
}

/// Runs one instance to its end.
async fn run<S: Service>(
    svc: &mut S,
    mail: &mut mpsc::Receiver<Mail<S>>,
    control: &mut mpsc::Receiver<StopRequest>,
    ctx: &mut Context,
    handoff: Option<Bytes>,
) -> Exit {
    let state = handoff.and_then(|b| match postcard::from_bytes::<S::State>(&b) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(service = %ctx.addr, error = %e, "handoff state does not decode; starting without it");
            None
        }
    });
    match guard(svc.started(ctx, state)).await {
        Ok(()) => {}
        Err(reason) => return failed(svc, ctx, reason).await,
    }
    loop {
        let next = tokio::select! {
            biased;
            req = control.recv() => Err(req),
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
                };
            }
            Ok(None) => {
                stopping(svc, ctx, &StopReason::Normal).await;
                return Exit {
                    reason: StopReason::Normal,
                    requested: true,
                };
            }
            Ok(Some(Mail::Call(req, reply))) => match guard(svc.handle(ctx, req)).await {
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
            },
            Ok(Some(Mail::Cast(req))) => {
                if let Err(reason) = guard(svc.handle(ctx, req)).await {
                    return failed(svc, ctx, reason).await;
                }
            }
        }
        if ctx.stop {
            stopping(svc, ctx, &StopReason::Normal).await;
            return Exit {
                reason: StopReason::Normal,
                requested: false,
            };
        }
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
