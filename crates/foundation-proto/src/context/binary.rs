//! The context as frames and pub/sub batches carry it between Foundation
//! nodes (ADR 026): the trace ids as raw bytes and the deadline as
//! microseconds, with tracestate and baggage only when there are some.
//! The W3C text headers stay the format at the edges (HTTP, other
//! systems); between nodes, building and parsing 55 hex characters and
//! their strings cost more than the rest of the context together.
//!
//! What is sent is what the text form would carry: a `tracestate` over
//! [`MAX_TRACESTATE`], baggage keys that are not tokens and baggage past
//! its limits are left out, on both sides (a peer's input is checked as
//! it is read, never trusted to be within them).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::baggage::{is_token, MAX_BAGGAGE_BYTES, MAX_BAGGAGE_ENTRIES};
use super::{TraceParent, WireContext, MAX_TRACESTATE};
use crate::frame::BoundedPairs;

/// The trace position as raw bytes: 16 + 8 + 1.
type RawTrace = ([u8; 16], [u8; 8], u8);

/// Field order is the wire format (postcard writes fields in order).
#[derive(Serialize)]
struct Out<'a> {
    trace: Option<RawTrace>,
    tracestate: Option<&'a str>,
    deadline_us: Option<u64>,
    baggage: Vec<&'a (String, String)>,
}

#[derive(Deserialize)]
struct In {
    trace: Option<RawTrace>,
    tracestate: Option<String>,
    deadline_us: Option<u64>,
    baggage: BoundedPairs,
}

/// The baggage entries that travel: token keys, at most
/// [`MAX_BAGGAGE_ENTRIES`], at most [`MAX_BAGGAGE_BYTES`] of keys and
/// values together (the first entries win).
fn carried(entries: &[(String, String)]) -> impl Iterator<Item = &(String, String)> {
    let mut bytes = 0usize;
    entries
        .iter()
        .filter(|(k, _)| is_token(k))
        .take(MAX_BAGGAGE_ENTRIES)
        .take_while(move |(k, v)| {
            bytes += k.len() + v.len() + 2;
            bytes <= MAX_BAGGAGE_BYTES
        })
}

impl Serialize for WireContext {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let trace = self.trace.map(|t| (t.trace_id, t.span_id, t.flags));
        Out {
            trace,
            tracestate: self
                .tracestate
                .as_deref()
                .filter(|t| trace.is_some() && t.len() <= MAX_TRACESTATE),
            deadline_us: self
                .deadline
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            baggage: carried(&self.baggage).collect(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for WireContext {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = In::deserialize(d)?;
        // An all-zero id is invalid (W3C): no trace, as a bad header is.
        let trace = raw
            .trace
            .filter(|(t, s, _)| *t != [0; 16] && *s != [0; 8])
            .map(|(trace_id, span_id, flags)| TraceParent {
                trace_id,
                span_id,
                flags,
            });
        let tracestate = raw
            .tracestate
            .filter(|t| trace.is_some() && t.len() <= MAX_TRACESTATE);
        let baggage = carried(&raw.baggage.0).cloned().collect();
        Ok(WireContext {
            trace,
            tracestate,
            deadline: raw.deadline_us.map(Duration::from_micros),
            baggage,
        })
    }
}
