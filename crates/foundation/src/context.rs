//! The request context: a W3C trace context, a deadline and baggage that
//! follow a request across `call`, `cast`, mesh calls and pub/sub, on this
//! node and on every node the request reaches (issue 19, ADR 025).
//!
//! It lives in a tokio task-local: code running inside
//! [`RequestContext::scope`] (and every service handler, which runs in the
//! context of the request it handles) passes it on without being told.
//!
//! ```
//! use std::time::Duration;
//! use foundation::context::RequestContext;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let ctx = RequestContext::new_trace(true)
//!     .with_timeout(Duration::from_millis(200))
//!     .with_baggage("tenant", "acme");
//! let trace = ctx.trace().unwrap();
//! ctx.scope(async move {
//!     let here = RequestContext::current().unwrap();
//!     assert_eq!(here.trace().unwrap().trace_id, trace.trace_id);
//!     assert_eq!(here.baggage("tenant"), Some("acme"));
//!     assert!(here.remaining().unwrap() <= Duration::from_millis(200));
//! })
//! .await;
//! assert!(RequestContext::current().is_none());
//! # }
//! ```

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

pub use foundation_proto::context::{TraceParent, TraceParentError, WireContext};

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// A request's trace position, deadline and baggage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestContext {
    trace: Option<TraceParent>,
    tracestate: Option<String>,
    deadline: Option<Instant>,
    baggage: Vec<(String, String)>,
}

/// A random non-zero id.
fn random_id<const N: usize>() -> [u8; N] {
    loop {
        let id: [u8; N] = rand::random();
        if id != [0; N] {
            return id;
        }
    }
}

impl RequestContext {
    /// No trace, no deadline, no baggage.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new trace with random ids; `sampled` marks it to be recorded.
    pub fn new_trace(sampled: bool) -> Self {
        RequestContext {
            trace: Some(TraceParent {
                trace_id: random_id(),
                span_id: random_id(),
                flags: u8::from(sampled),
            }),
            ..Self::default()
        }
    }

    /// The context of the task running now, if any.
    pub fn current() -> Option<RequestContext> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `f` with this context as the current one. (A plain function
    /// returning tokio's future, not an `async fn`: that would hold `f`
    /// twice, as its argument and inside the future it awaits, and each
    /// call in a scope would copy a future of twice the size.)
    pub fn scope<F: Future>(self, f: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, f)
    }

    /// Runs `f` (not async) with this context as the current one.
    pub fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self, f)
    }

    /// With a trace position.
    pub fn with_trace(mut self, trace: TraceParent) -> Self {
        self.trace = Some(trace);
        self
    }

    /// With deadline `at`, unless an earlier one is set already (a
    /// deadline can only move closer).
    pub fn with_deadline(mut self, at: Instant) -> Self {
        self.deadline = Some(self.deadline.map_or(at, |d| d.min(at)));
        self
    }

    /// With a deadline `timeout` from now (or the earlier one already set;
    /// a timeout too long to represent sets none).
    pub fn with_timeout(self, timeout: Duration) -> Self {
        match Instant::now().checked_add(timeout) {
            Some(at) => self.with_deadline(at),
            None => self,
        }
    }

    /// With baggage `key` = `value` (replacing an earlier value). Keys must
    /// be tokens (letters, digits, `-_.` and the like) to travel.
    pub fn with_baggage(mut self, key: &str, value: &str) -> Self {
        self.baggage.retain(|(k, _)| k != key);
        self.baggage.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The trace position.
    pub fn trace(&self) -> Option<TraceParent> {
        self.trace
    }

    /// The vendor trace state received with the trace.
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// The deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left before the deadline (zero once passed).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        self.remaining().is_some_and(|r| r.is_zero())
    }

    /// A baggage value.
    pub fn baggage(&self, key: &str) -> Option<&str> {
        self.baggage
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every baggage pair.
    pub fn baggage_items(&self) -> &[(String, String)] {
        &self.baggage
    }

    /// `timeout`, cut to the time left before the deadline.
    pub fn cap(&self, timeout: Duration) -> Duration {
        self.remaining().map_or(timeout, |r| r.min(timeout))
    }

    /// The same context one span further: `span_id` becomes the parent
    /// of what it is passed to.
    pub(crate) fn child(&self, span_id: [u8; 8]) -> Self {
        RequestContext {
            trace: self.trace.map(|t| t.child(span_id)),
            ..self.clone()
        }
    }

    /// As it crosses the wire.
    pub fn to_wire(&self) -> WireContext {
        WireContext {
            trace: self.trace,
            tracestate: self.tracestate.clone(),
            deadline: self.remaining(),
            baggage: self.baggage.clone(),
        }
    }

    /// As a frame carried it: its binary context, or else its text
    /// headers (a sender writing W3C headers itself).
    pub fn from_frame(context: Option<WireContext>, headers: &[(String, String)]) -> Self {
        match context {
            Some(wire) => Self::from_wire(wire),
            None if headers.is_empty() => Self::default(),
            None => Self::from_wire(WireContext::from_headers(headers)),
        }
    }

    /// As received: the time left becomes a deadline on this node's clock.
    pub fn from_wire(wire: WireContext) -> Self {
        let now = Instant::now();
        RequestContext {
            trace: wire.trace,
            tracestate: wire.tracestate,
            deadline: wire.deadline.map(|d| {
                now.checked_add(d)
                    .unwrap_or(now + Duration::from_secs(86_400 * 365))
            }),
            baggage: wire.baggage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_read_from_its_binary_context_or_else_its_text_headers() {
        let trace: TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            .parse()
            .expect("valid");
        let text = vec![
            ("traceparent".to_owned(), trace.to_string()),
            ("baggage".to_owned(), "tenant=acme".to_owned()),
        ];
        let from_text = RequestContext::from_frame(None, &text);
        assert_eq!(from_text.trace(), Some(trace));
        assert_eq!(from_text.baggage("tenant"), Some("acme"));

        // The binary context wins over text headers beside it.
        let other = trace.child([7; 8]);
        let wire = WireContext {
            trace: Some(other),
            ..WireContext::default()
        };
        assert_eq!(
            RequestContext::from_frame(Some(wire), &text).trace(),
            Some(other)
        );
        assert_eq!(
            RequestContext::from_frame(None, &[]),
            RequestContext::default()
        );
    }
}
