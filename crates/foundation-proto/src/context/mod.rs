//! The request context that travels in frame headers (issue 19, ADR 025):
//! W3C trace context, the time left before the caller's deadline, and
//! W3C baggage.
//!
//! Between Foundation nodes it travels in binary (the ids as raw bytes,
//! the deadline in microseconds: its `serde` form, ADR 026); the W3C text
//! headers ([`WireContext::to_headers`], [`WireContext::from_headers`])
//! are for the edges, and a frame that carries text headers instead is
//! read as well.
//!
//! The deadline travels as the time *left* when the frame was sent, not
//! as a wall-clock instant: the receiver adds it to its own clock, so
//! clock skew between hosts cannot stretch or cut it (the time in flight
//! is not subtracted, which errs on the side of a slightly later cut).

pub mod baggage;
mod binary;
#[cfg(test)]
mod tests;
mod traceparent;

use std::time::Duration;

pub use traceparent::{hex, TraceParent, TraceParentError};

/// Header: W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
/// Header: vendor trace state, passed on as received.
pub const TRACESTATE: &str = "tracestate";
/// Header: W3C baggage.
pub const BAGGAGE: &str = "baggage";
/// Header: microseconds left before the caller's deadline.
pub const DEADLINE: &str = "foundation-deadline-us";
/// Longest `tracestate` passed on (the specification's 512 characters).
pub const MAX_TRACESTATE: usize = 512;

/// A request context as it crosses the wire.
///
/// ```
/// use std::time::Duration;
/// use foundation_proto::context::WireContext;
///
/// let ctx = WireContext {
///     trace: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap()),
///     tracestate: None,
///     deadline: Some(Duration::from_millis(250)),
///     baggage: vec![("tenant".into(), "acme corp".into())],
/// };
/// let headers = ctx.to_headers();
/// assert_eq!(WireContext::from_headers(&headers), ctx);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WireContext {
    /// The sender's span in its trace.
    pub trace: Option<TraceParent>,
    /// Vendor trace state (opaque, bounded).
    pub tracestate: Option<String>,
    /// Time left before the caller's deadline when sent.
    pub deadline: Option<Duration>,
    /// Key-value pairs that follow the request everywhere.
    pub baggage: Vec<(String, String)>,
}

impl WireContext {
    /// Whether it carries nothing (then no header is sent).
    pub fn is_empty(&self) -> bool {
        self.trace.is_none() && self.deadline.is_none() && self.baggage.is_empty()
    }

    /// The frame headers that carry it.
    pub fn to_headers(&self) -> Vec<(String, String)> {
        let mut h = Vec::new();
        if let Some(tp) = &self.trace {
            h.push((TRACEPARENT.to_owned(), tp.header()));
            if let Some(ts) = self
                .tracestate
                .as_ref()
                .filter(|s| s.len() <= MAX_TRACESTATE)
            {
                h.push((TRACESTATE.to_owned(), ts.clone()));
            }
        }
        if let Some(d) = self.deadline {
            let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            h.push((DEADLINE.to_owned(), us.to_string()));
        }
        if !self.baggage.is_empty() {
            let b = baggage::encode(&self.baggage);
            if !b.is_empty() {
                h.push((BAGGAGE.to_owned(), b));
            }
        }
        h
    }

    /// Reads the context from frame headers. Whatever is malformed is left
    /// out, as W3C Trace Context asks (an invalid `traceparent` starts a
    /// new trace rather than failing the request); other headers are
    /// ignored.
    pub fn from_headers(headers: &[(String, String)]) -> Self {
        let mut ctx = WireContext::default();
        for (k, v) in headers {
            match k.as_str() {
                TRACEPARENT => ctx.trace = v.parse().ok(),
                TRACESTATE if v.len() <= MAX_TRACESTATE => ctx.tracestate = Some(v.clone()),
                DEADLINE => ctx.deadline = v.parse::<u64>().ok().map(Duration::from_micros),
                BAGGAGE => ctx.baggage = baggage::decode(v),
                _ => {}
            }
        }
        if ctx.trace.is_none() {
            ctx.tracestate = None;
        }
        ctx
    }
}
