//! `ServiceRef`: call or cast a service, local or remote, through one type.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::host::Host;
use super::instance::Mail;
use super::service::Service;
use crate::context::RequestContext;
use crate::id::NodeId;
use crate::telemetry::{CallOutcome, CallStats};
use foundation_proto::registry::ServiceAddr;

/// Why a call or cast failed. Each names the target.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No reply within the timeout.
    #[error("no reply from service {addr} within {after:?}")]
    Timeout {
        /// The target.
        addr: ServiceAddr,
        /// The timeout.
        after: Duration,
    },
    /// The service has stopped (or never existed on its node).
    #[error("service {addr} is not running")]
    Stopped {
        /// The target.
        addr: ServiceAddr,
    },
    /// The service's node went down or left during the call.
    #[error("the node {node} of service {addr} is down")]
    NodeDown {
        /// The target.
        addr: ServiceAddr,
        /// Its node.
        node: NodeId,
    },
    /// The request could not be sent.
    #[error("cannot reach service {addr}: {reason}")]
    Unreachable {
        /// The target.
        addr: ServiceAddr,
        /// The transport's reason.
        reason: String,
    },
    /// Its mailbox is full (remote requests are refused, not queued
    /// without bound).
    #[error("service {addr} is overloaded (mailbox full)")]
    Overloaded {
        /// The target.
        addr: ServiceAddr,
    },
    /// The instance failed while handling the request.
    #[error("service {addr} failed: {message}")]
    Failed {
        /// The target.
        addr: ServiceAddr,
        /// The failure.
        message: String,
    },
    /// Request or reply did not (de)serialize, or the protocols differ.
    #[error("service {addr}: {message}")]
    Codec {
        /// The target.
        addr: ServiceAddr,
        /// What went wrong.
        message: String,
    },
}

/// A handle to a service anywhere in the cluster. Clone it freely.
///
/// A local ref passes requests in memory. A remote ref serializes them
/// (postcard) and sends them on the control channel, or on the data
/// channel when larger than 64 KiB.
pub struct ServiceRef<S: Service> {
    pub(crate) addr: ServiceAddr,
    pub(crate) route: Route<S>,
}

pub(crate) enum Route<S: Service> {
    Local(mpsc::Sender<Mail<S>>, Arc<CallStats>),
    Remote(Arc<Host>),
    Gone,
}

impl<S: Service> Clone for ServiceRef<S> {
    fn clone(&self) -> Self {
        ServiceRef {
            addr: self.addr,
            route: match &self.route {
                Route::Local(tx, calls) => Route::Local(tx.clone(), calls.clone()),
                Route::Remote(h) => Route::Remote(h.clone()),
                Route::Gone => Route::Gone,
            },
        }
    }
}

impl<S: Service> fmt::Debug for ServiceRef<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let route = match self.route {
            Route::Local(..) => "local",
            Route::Remote(_) => "remote",
            Route::Gone => "gone",
        };
        write!(f, "ServiceRef({}, {route})", self.addr)
    }
}

impl<S: Service> fmt::Display for ServiceRef<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "service {}", self.addr)
    }
}

impl<S: Service> PartialEq for ServiceRef<S> {
    fn eq(&self, other: &Self) -> bool {
        self.addr == other.addr
    }
}

impl<S: Service> ServiceRef<S> {
    /// The service's address.
    pub fn addr(&self) -> ServiceAddr {
        self.addr
    }

    /// Whether the service runs on this node.
    pub fn is_local(&self) -> bool {
        matches!(self.route, Route::Local(..))
    }

    /// Sends a request and waits for the reply, at most `timeout`, and
    /// never past the deadline of the current
    /// [`RequestContext`](crate::context::RequestContext), which travels
    /// with the request (the handler runs in it). The context is the one
    /// current when the future is first polled.
    pub fn call(
        &self,
        request: S::Request,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Result<S::Reply, CallError>> + '_ {
        self.call_in(request, timeout, None)
    }

    /// [`ServiceRef::call`] in `context` rather than the current one (the
    /// mesh client's attempts: no task-local scope to enter, and no copy of
    /// the call's future into one).
    pub(crate) async fn call_in(
        &self,
        request: S::Request,
        timeout: Duration,
        context: Option<RequestContext>,
    ) -> Result<S::Reply, CallError> {
        let began = tokio::time::Instant::now();
        let context = context.or_else(RequestContext::current);
        let result = self.route_call(request, timeout, context).await;
        let calls = match &self.route {
            Route::Local(_, calls) => Some(calls),
            Route::Remote(host) => Some(host.calls()),
            Route::Gone => None,
        };
        if let Some(calls) = calls {
            let outcome = match &result {
                Ok(_) => CallOutcome::Ok,
                Err(CallError::Timeout { .. }) => CallOutcome::Timeout,
                Err(CallError::Overloaded { .. }) => CallOutcome::Overloaded,
                Err(CallError::Failed { .. }) => CallOutcome::Failed,
                Err(CallError::Codec { .. }) => CallOutcome::Codec,
                Err(_) => CallOutcome::Unavailable,
            };
            calls.record(std::any::type_name::<S>(), began.elapsed(), outcome);
        }
        result
    }

    async fn route_call(
        &self,
        request: S::Request,
        timeout: Duration,
        context: Option<RequestContext>,
    ) -> Result<S::Reply, CallError> {
        let addr = self.addr;
        let timeout = context.as_ref().map_or(timeout, |rc| rc.cap(timeout));
        if timeout.is_zero() {
            return Err(CallError::Timeout {
                addr,
                after: timeout,
            });
        }
        match &self.route {
            Route::Local(tx, _) => {
                let rc = context.unwrap_or_default();
                let fut = async {
                    let (rtx, rrx) = oneshot::channel();
                    tx.send(Mail::Call(request, rtx, rc))
                        .await
                        .map_err(|_| CallError::Stopped { addr })?;
                    rrx.await.map_err(|_| CallError::Stopped { addr })?
                };
                tokio::time::timeout(timeout, fut)
                    .await
                    .map_err(|_| CallError::Timeout {
                        addr,
                        after: timeout,
                    })?
            }
            Route::Remote(host) => {
                let payload = encode(addr, &request)?;
                let reply = host
                    .remote_call(addr, std::any::type_name::<S>(), payload, timeout, context)
                    .await?;
                postcard::from_bytes(&reply).map_err(|e| CallError::Codec {
                    addr,
                    message: format!("reply does not decode: {e}"),
                })
            }
            Route::Gone => Err(CallError::Stopped { addr }),
        }
    }

    /// Sends a request without waiting for a reply. Local: waits for room
    /// in the mailbox. Remote: returns once the request is handed to QUIC;
    /// delivery is at most once.
    pub async fn cast(&self, request: S::Request) -> Result<(), CallError> {
        let addr = self.addr;
        match &self.route {
            Route::Local(tx, _) => tx
                .send(Mail::Cast(
                    request,
                    RequestContext::current().unwrap_or_default(),
                ))
                .await
                .map_err(|_| CallError::Stopped { addr }),
            Route::Remote(host) => {
                let payload = encode(addr, &request)?;
                host.remote_cast(addr, std::any::type_name::<S>(), payload)
                    .await
            }
            Route::Gone => Err(CallError::Stopped { addr }),
        }
    }
}

fn encode<T: serde::Serialize>(addr: ServiceAddr, v: &T) -> Result<bytes::Bytes, CallError> {
    postcard::to_allocvec(v)
        .map(bytes::Bytes::from)
        .map_err(|e| CallError::Codec {
            addr,
            message: format!("request does not encode: {e}"),
        })
}
