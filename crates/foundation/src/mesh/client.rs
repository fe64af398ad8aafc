//! `MeshClient`: calls a service chosen per call by the balancer among the
//! endpoints matching some criteria, with a deadline over every attempt,
//! and retries (idempotent calls only) within a retry budget.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::discover::Sources;
use super::{Balancer, BalancerConfig, BudgetConfig, Criteria, EndpointView, NoEndpoint};
use super::{Outcome, RetryBudget};
use crate::context::RequestContext;
use crate::id::NodeId;
use crate::locks::Locked as _;
use crate::membership::MemberState;
use crate::registry::ServiceAddr;
use crate::services::{CallError, Host, Service};
use crate::shell_time::now;
use crate::spans::Spans;

/// A mesh client's settings.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Strategy, ejection and limits of the balancer.
    pub balancer: BalancerConfig,
    /// How many retries idempotent calls may add.
    pub budget: BudgetConfig,
    /// Most attempts of one idempotent call (the first included).
    pub max_attempts: u32,
    /// Time for one attempt; `None` gives each attempt all the time left
    /// before the call's deadline (then a timed-out attempt is not
    /// retried).
    pub attempt_timeout: Option<Duration>,
    /// The timeout of calls made through the client's tower `Service`
    /// face (which takes no timeout argument).
    pub call_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            balancer: BalancerConfig::default(),
            budget: BudgetConfig::default(),
            max_attempts: 3,
            attempt_timeout: None,
            call_timeout: Duration::from_secs(5),
        }
    }
}

impl ClientOptions {
    /// With the balancer's strategy.
    pub fn strategy(mut self, strategy: super::Strategy) -> Self {
        self.balancer.strategy = strategy;
        self
    }

    /// With a time limit per attempt.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// With at most `n` attempts per idempotent call.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }
}

/// Why a mesh call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MeshError {
    /// No registered service matches (on an alive node).
    #[error("no service matches {criteria}")]
    NoEndpoint {
        /// The criteria, as text.
        criteria: String,
    },
    /// Every matching endpoint is ejected after failures or at its limit
    /// of calls in flight: the call fails fast rather than pile on.
    #[error("every endpoint of {criteria} is ejected or full")]
    Unavailable {
        /// The criteria, as text.
        criteria: String,
    },
    /// The call's deadline passed before a reply.
    #[error("no reply from {criteria} within {after:?} ({attempts} attempts)")]
    DeadlineExceeded {
        /// The criteria, as text.
        criteria: String,
        /// The call's time limit.
        after: Duration,
        /// Attempts made.
        attempts: u32,
    },
    /// The last attempt failed, and no retry was allowed (the call is not
    /// idempotent, the error is not retryable, attempts or the retry
    /// budget ran out).
    #[error(transparent)]
    Call(CallError),
}

/// One client's state as `GET /mesh` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ClientView {
    /// The criteria, as text.
    pub criteria: String,
    /// The protocol called.
    pub protocol: &'static str,
    /// The balancer's strategy.
    pub strategy: String,
    /// Every endpoint's state.
    pub endpoints: Vec<EndpointView>,
    /// Retries made so far.
    pub retries: u64,
}

struct State {
    balancer: Balancer,
    budget: RetryBudget,
    /// The registry's change counter when the endpoints were last read.
    seen: Option<u64>,
    retries: u64,
}

pub(crate) struct ClientInner {
    criteria: Criteria,
    label: String,
    protocol: &'static str,
    options: ClientOptions,
    sources: Sources,
    host: Arc<Host>,
    local: NodeId,
    state: Mutex<State>,
}

impl fmt::Debug for ClientInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientInner({})", self.label)
    }
}

impl ClientInner {
    pub(crate) fn view(&self) -> ClientView {
        let st = self.state.locked();
        ClientView {
            criteria: self.label.clone(),
            protocol: self.protocol,
            strategy: format!("{:?}", self.options.balancer.strategy),
            endpoints: st.balancer.view(now()),
            retries: st.retries,
        }
    }

    /// Re-reads the endpoints when the registry changed since last time.
    fn refresh(&self) {
        let mut st = self.state.locked();
        self.refresh_locked(&mut st);
    }

    fn refresh_locked(&self, st: &mut State) {
        let version = *self.sources.registry.shared.changed.borrow();
        if st.seen == Some(version) {
            return;
        }
        let found = self.sources.discover(&self.criteria);
        st.balancer.set_endpoints(
            found
                .iter()
                .filter(|e| e.protocol == self.protocol)
                .map(|e| (e.service, e.meta.weight())),
            now(),
        );
        st.seen = Some(version);
    }

    /// Picks an endpoint at `at` and counts the call started; `first`: the
    /// first attempt of a call, which earns the retry budget its share.
    /// One lock for all of it. An endpoint on a node that is not alive is
    /// skipped at once.
    fn pick(
        &self,
        key: Option<&[u8]>,
        tried: &[ServiceAddr],
        first: bool,
        at: std::time::Instant,
    ) -> Result<ServiceAddr, MeshError> {
        let mut st = self.state.locked();
        if first {
            st.budget.deposit();
        }
        self.refresh_locked(&mut st);
        let picked = self.sources.membership.with_states(|state_of| {
            st.balancer.pick(at, key, |a| {
                tried.contains(a)
                    || (a.node != self.local && state_of(a.node) != Some(MemberState::Alive))
            })
        });
        match picked {
            Ok(addr) => {
                st.balancer.started(addr);
                Ok(addr)
            }
            Err(NoEndpoint::AllUnavailable) => Err(MeshError::Unavailable {
                criteria: self.label.clone(),
            }),
            Err(_) => Err(MeshError::NoEndpoint {
                criteria: self.label.clone(),
            }),
        }
    }

    fn finish(&self, addr: ServiceAddr, began: std::time::Instant, outcome: Outcome) {
        let t = now();
        let ejected = self.state.locked().balancer.finish(
            addr,
            t.saturating_duration_since(began),
            outcome,
            t,
        );
        if let Some(backoff) = ejected {
            tracing::info!(criteria = %self.label, endpoint = %addr, ?backoff, "mesh endpoint ejected after failures");
        }
    }
}

/// An attempt under way; dropped unfinished, it ends as
/// [`Outcome::Ignored`].
struct Pending<'a> {
    inner: &'a ClientInner,
    addr: ServiceAddr,
    began: std::time::Instant,
    done: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.inner.finish(self.addr, self.began, Outcome::Ignored);
        }
    }
}

/// A call's start, its deadline (never later than the current request
/// context's), and the context its attempts run in (the current one, or a
/// new trace when `tracing.sample_percent` starts one, as for any call):
/// one reading of the clock and of the context for all of them.
struct CallClock {
    start: tokio::time::Instant,
    deadline: tokio::time::Instant,
    context: RequestContext,
}

impl CallClock {
    fn new(spans: &Spans, timeout: Duration) -> Self {
        let start = tokio::time::Instant::now();
        let rc = spans.current_or_root().unwrap_or_default();
        let context = match start.checked_add(timeout) {
            Some(at) => rc.with_deadline(at),
            None => rc,
        };
        let deadline = context
            .deadline()
            .unwrap_or(start + Duration::from_secs(86_400 * 365));
        CallClock {
            start,
            deadline,
            context,
        }
    }
}

/// How the balancer counts an attempt's result.
fn outcome<T>(r: &Result<T, CallError>) -> Outcome {
    match r {
        Ok(_) => Outcome::Success,
        Err(CallError::Timeout { .. }) => Outcome::TimedOut,
        Err(CallError::Codec { .. }) => Outcome::Ignored,
        Err(_) => Outcome::Failure,
    }
}

/// Whether another endpoint may succeed where this one failed.
fn retryable(e: &CallError, attempt_timeout: bool) -> bool {
    match e {
        CallError::NodeDown { .. }
        | CallError::Unreachable { .. }
        | CallError::Stopped { .. }
        | CallError::Overloaded { .. } => true,
        CallError::Timeout { .. } => attempt_timeout,
        _ => false,
    }
}

/// Calls services matching some criteria, one endpoint per call, through
/// the balancer. Behaves like a [`ServiceRef`](crate::ServiceRef) whose
/// target is chosen per call; clone it freely (clones share the balancer).
///
/// It is also a tower `Service` of `S::Request` (no retry, the
/// `call_timeout` of its options, the deadline of the current request
/// context), so tower's layers (rate limits, concurrency limits, your
/// own) wrap it.
pub struct MeshClient<S: Service> {
    pub(crate) inner: Arc<ClientInner>,
    _service: PhantomData<fn() -> S>,
}

impl<S: Service> Clone for MeshClient<S> {
    fn clone(&self) -> Self {
        MeshClient {
            inner: self.inner.clone(),
            _service: PhantomData,
        }
    }
}

impl<S: Service> fmt::Debug for MeshClient<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MeshClient({})", self.inner.label)
    }
}

impl<S: Service> MeshClient<S> {
    pub(crate) fn new(
        sources: Sources,
        host: Arc<Host>,
        local: NodeId,
        criteria: Criteria,
        options: ClientOptions,
        seed: u64,
    ) -> Self {
        let t = now();
        let state = State {
            balancer: Balancer::new(local, options.balancer.clone(), seed),
            budget: RetryBudget::new(options.budget, t),
            seen: None,
            retries: 0,
        };
        MeshClient {
            inner: Arc::new(ClientInner {
                label: criteria.to_string(),
                criteria,
                protocol: std::any::type_name::<S>(),
                options,
                sources,
                host,
                local,
                state: Mutex::new(state),
            }),
            _service: PhantomData,
        }
    }

    /// The criteria it calls.
    pub fn criteria(&self) -> &Criteria {
        &self.inner.criteria
    }

    /// Its balancer's view of every endpoint.
    pub fn endpoints(&self) -> Vec<EndpointView> {
        self.inner.refresh();
        self.inner.view().endpoints
    }

    /// Calls one endpoint, chosen by the balancer; no retry (the request
    /// may have been handled even when an error comes back). The reply
    /// must come within `timeout`.
    ///
    /// (`call` and `call_keyed` hand back the one future that does the
    /// work, rather than wrap it in another: every layer of `async fn`
    /// adds a copy of the whole future per call.)
    pub fn call(
        &self,
        request: S::Request,
        timeout: Duration,
    ) -> impl Future<Output = Result<S::Reply, MeshError>> + '_ {
        self.call_once(None, request, timeout)
    }

    /// Calls with `key` deciding the endpoint under consistent hashing
    /// (other strategies ignore it); no retry.
    pub fn call_keyed<'a>(
        &'a self,
        key: &'a [u8],
        request: S::Request,
        timeout: Duration,
    ) -> impl Future<Output = Result<S::Reply, MeshError>> + 'a {
        self.call_once(Some(key), request, timeout)
    }

    /// One attempt on the endpoint the balancer picks for `key`.
    async fn call_once(
        &self,
        key: Option<&[u8]>,
        request: S::Request,
        timeout: Duration,
    ) -> Result<S::Reply, MeshError> {
        let clock = CallClock::new(self.inner.host.spans(), timeout);
        let addr = self.inner.pick(key, &[], true, clock.start.into_std())?;
        self.attempt(addr, request, &clock, clock.start, timeout, 1)
            .await
            .map_err(|(e, _)| e)
    }

    /// Calls a request that is safe to handle more than once: when an
    /// endpoint is down, unreachable, stopped or overloaded (or times out,
    /// with a per-attempt timeout), another endpoint is tried, up to
    /// `max_attempts`, while the retry budget allows and the deadline has
    /// not passed.
    pub async fn call_idempotent(
        &self,
        request: S::Request,
        timeout: Duration,
    ) -> Result<S::Reply, MeshError>
    where
        S::Request: Clone,
    {
        let clock = CallClock::new(self.inner.host.spans(), timeout);
        let mut tried = Vec::new();
        let mut last = None;
        for attempt in 1..=self.inner.options.max_attempts.max(1) {
            let began = if attempt == 1 {
                clock.start
            } else {
                tokio::time::Instant::now()
            };
            if attempt > 1 {
                let allowed = {
                    let mut st = self.inner.state.locked();
                    let ok = st.budget.withdraw(began.into_std());
                    st.retries += u64::from(ok);
                    ok
                };
                if !allowed {
                    break;
                }
            }
            let addr = match self
                .inner
                .pick(None, &tried, attempt == 1, began.into_std())
            {
                Ok(a) => a,
                // Nothing left to try: the last error says more.
                Err(e) => return Err(last.map_or(e, MeshError::Call)),
            };
            tried.push(addr);
            match self
                .attempt(addr, request.clone(), &clock, began, timeout, attempt)
                .await
            {
                Ok(reply) => return Ok(reply),
                Err((e, false)) => return Err(e),
                Err((MeshError::Call(e), true)) => last = Some(e),
                Err((e, true)) => return Err(e),
            }
            if tokio::time::Instant::now() >= clock.deadline {
                return Err(MeshError::DeadlineExceeded {
                    criteria: self.inner.label.clone(),
                    after: timeout,
                    attempts: attempt,
                });
            }
        }
        Err(last.map_or_else(
            || MeshError::NoEndpoint {
                criteria: self.inner.label.clone(),
            },
            MeshError::Call,
        ))
    }

    /// One attempt on `addr` (already counted as started at `began`); the
    /// error and whether it may be retried elsewhere.
    async fn attempt(
        &self,
        addr: ServiceAddr,
        request: S::Request,
        clock: &CallClock,
        began: tokio::time::Instant,
        timeout: Duration,
        attempt: u32,
    ) -> Result<S::Reply, (MeshError, bool)> {
        // A call dropped before its end (a caller's own timeout, a tower
        // layer's) still leaves the balancer's count of calls in flight.
        let mut pending = Pending {
            inner: &self.inner,
            addr,
            began: began.into_std(),
            done: false,
        };
        let left = clock.deadline.saturating_duration_since(began);
        let per_attempt = self.inner.options.attempt_timeout;
        let budget = per_attempt.map_or(left, |t| t.min(left));
        let target = self.inner.host.ref_for::<S>(addr);
        // The call's deadline travels with it, to every hop after this one.
        let result = target
            .call_in(request, budget, Some(clock.context.clone()))
            .await;
        pending.done = true;
        self.inner.finish(addr, began.into_std(), outcome(&result));
        result.map_err(|e| match e {
            CallError::Timeout { .. } if budget == left => (
                MeshError::DeadlineExceeded {
                    criteria: self.inner.label.clone(),
                    after: timeout,
                    attempts: attempt,
                },
                false,
            ),
            e => {
                let again = retryable(&e, per_attempt.is_some());
                (MeshError::Call(e), again)
            }
        })
    }
}

impl<S: Service> tower_service::Service<S::Request> for MeshClient<S> {
    type Response = S::Reply;
    type Error = MeshError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<S::Reply, MeshError>> + Send + 'static>,
    >;

    /// Always ready: a full or ejected endpoint set fails the call at
    /// once instead ([`MeshError::Unavailable`]).
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), MeshError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: S::Request) -> Self::Future {
        let client = self.clone();
        let timeout = client.inner.options.call_timeout;
        Box::pin(async move { client.call(request, timeout).await })
    }
}
