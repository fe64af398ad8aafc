//! Spans of distributed traces: calls (client and server), casts,
//! publishes and deliveries, recorded for sampled traces and handed to
//! the node's span exporters (OTLP with the `otlp` feature, or your own).
//!
//! Every span also exists as a `tracing` span (`foundation.call`, ...)
//! carrying the trace and span ids, so logs written inside it can be tied
//! to the trace.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::context::RequestContext;
use crate::id::NodeId;
use crate::locks::RwLocked as _;

/// What a span stands for (OpenTelemetry's span kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpanKind {
    /// Work inside this node.
    Internal,
    /// The server side of a call.
    Server,
    /// The client side of a call.
    Client,
    /// A message sent without reply (cast, publish).
    Producer,
    /// A message received without reply (cast, delivery).
    Consumer,
}

/// One finished span of a sampled trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanRecord {
    /// What it did: `call`, `handle`, `cast`, `publish`, `deliver`.
    pub name: &'static str,
    /// Its kind.
    pub kind: SpanKind,
    /// The trace.
    pub trace_id: [u8; 16],
    /// This span.
    pub span_id: [u8; 8],
    /// The span it descends from, on this node or another.
    pub parent_span_id: Option<[u8; 8]>,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// `foundation.node.id`, `foundation.peer.id`, `foundation.service`,
    /// `foundation.topic`, ...
    pub attributes: Vec<(&'static str, String)>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// Receives the spans a node records. Called on the node's tasks: it must
/// not block (queue, and drop when the queue is full).
pub trait SpanExporter: Send + Sync + fmt::Debug {
    /// One finished span.
    fn export(&self, span: SpanRecord);
}

#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "otlp")]
mod protobuf;

/// A node's span recording: its id, its exporters, and how often it starts
/// a trace of its own.
#[derive(Clone, Debug, Default)]
pub(crate) struct Spans {
    node: Option<NodeId>,
    exporters: Arc<RwLock<Vec<Arc<dyn SpanExporter>>>>,
    /// `tracing.sample_percent`.
    sample_percent: Option<u8>,
    /// Span ids: a random start, then a counter through a bijective mix.
    ids: Arc<SpanIds>,
}

/// Span ids unique within a node (a random 64-bit start, a counter, and
/// splitmix64's finalizer, a bijection: no repeat before 2^64 ids) and
/// random-looking across nodes, for an atomic add instead of a random
/// number generator per span (every traced call makes two).
#[derive(Debug)]
struct SpanIds {
    next: AtomicU64,
}

impl Default for SpanIds {
    fn default() -> Self {
        SpanIds {
            next: AtomicU64::new(rand::random()),
        }
    }
}

impl SpanIds {
    fn next(&self) -> [u8; 8] {
        loop {
            let mut z = self.next.fetch_add(1, Ordering::Relaxed);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            // Zero is no span id (W3C): skip the one counter value that
            // maps to it.
            if z != 0 {
                return z.to_be_bytes();
            }
        }
    }
}

/// A span being timed; [`Spans::end`] records it.
#[derive(Debug)]
pub(crate) struct OpenSpan {
    name: &'static str,
    kind: SpanKind,
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    start: SystemTime,
    sampled: bool,
    attributes: Vec<(&'static str, String)>,
    /// The `tracing` span of the same name.
    pub(crate) tracing: tracing::Span,
}

impl OpenSpan {
    /// The context to pass on: this span as the parent.
    fn context(&self, of: &RequestContext) -> RequestContext {
        of.child(self.span_id)
    }
}

impl Spans {
    pub(crate) fn new(node: NodeId, sample_percent: Option<u8>) -> Self {
        Spans {
            node: Some(node),
            exporters: Arc::default(),
            sample_percent,
            ids: Arc::default(),
        }
    }

    /// The context a call or publish made outside any goes out in: a new
    /// trace when `tracing.sample_percent` is set (recorded with that
    /// probability), else none.
    pub(crate) fn current_or_root(&self) -> Option<RequestContext> {
        self.or_root(RequestContext::current())
    }

    /// `context`, or else a new trace as [`Spans::current_or_root`] starts
    /// one.
    pub(crate) fn or_root(&self, context: Option<RequestContext>) -> Option<RequestContext> {
        context.or_else(|| {
            let pct = self.sample_percent?;
            let sampled = rand::random_range(0u8..100) < pct;
            Some(RequestContext::new_trace(sampled))
        })
    }

    /// Adds an exporter.
    pub(crate) fn add(&self, exporter: Arc<dyn SpanExporter>) {
        self.exporters.write_locked().push(exporter);
    }

    /// Starts a span under `parent`'s trace; `None` when the request
    /// carries no trace (nothing to record or pass on). `attributes` are
    /// built only for a sampled trace: an unsampled one costs a span id.
    pub(crate) fn start(
        &self,
        name: &'static str,
        kind: SpanKind,
        parent: &RequestContext,
        attributes: impl FnOnce() -> Vec<(&'static str, String)>,
    ) -> Option<OpenSpan> {
        let tp = parent.trace()?;
        let span_id = self.ids.next();
        let tracing = tracing::debug_span!(
            "foundation",
            op = name,
            trace_id = %Hex(&tp.trace_id),
            span_id = %Hex(&span_id),
        );
        let attrs = if tp.sampled() {
            let mut attrs = attributes();
            if let Some(n) = self.node {
                attrs.insert(0, ("foundation.node.id", n.to_string()));
            }
            attrs
        } else {
            Vec::new()
        };
        Some(OpenSpan {
            name,
            kind,
            trace_id: tp.trace_id,
            span_id,
            parent: Some(tp.span_id),
            // Read only for a span that is recorded.
            start: if tp.sampled() {
                SystemTime::now()
            } else {
                SystemTime::UNIX_EPOCH
            },
            sampled: tp.sampled(),
            attributes: attrs,
            tracing,
        })
    }

    /// Records a decision made now (a registration, a placement) as an
    /// internal span of the current trace, or of a new one when
    /// `tracing.sample_percent` is set.
    /// Returns the context the decision's work continues in (`None`
    /// outside any trace).
    pub(crate) fn decision(
        &self,
        name: &'static str,
        attributes: impl FnOnce() -> Vec<(&'static str, String)>,
    ) -> Option<RequestContext> {
        let rc = self.current_or_root()?;
        rc.trace()?;
        Some(self.mark(name, SpanKind::Internal, &rc, attributes))
    }

    /// Starts a span under `parent` (when it carries a trace) and gives
    /// the context the work under it runs in and passes on: the span as
    /// the parent, or `parent` itself outside any trace.
    pub(crate) fn enter(
        &self,
        name: &'static str,
        kind: SpanKind,
        parent: &RequestContext,
        attributes: impl FnOnce() -> Vec<(&'static str, String)>,
    ) -> (Option<OpenSpan>, RequestContext) {
        let span = self.start(name, kind, parent, attributes);
        let next = span
            .as_ref()
            .map_or_else(|| parent.clone(), |s| s.context(parent));
        (span, next)
    }

    /// A span of no length (an arrival, a decision): recorded at once; the
    /// context that continues from it.
    pub(crate) fn mark(
        &self,
        name: &'static str,
        kind: SpanKind,
        parent: &RequestContext,
        attributes: impl FnOnce() -> Vec<(&'static str, String)>,
    ) -> RequestContext {
        let (span, next) = self.enter(name, kind, parent, attributes);
        self.end(span, || None);
        next
    }

    /// Ends `span`, if there is one, and hands it to the exporters if its
    /// trace is sampled; `error` is asked for only then.
    pub(crate) fn end(&self, span: Option<OpenSpan>, error: impl FnOnce() -> Option<String>) {
        let Some(span) = span else { return };
        if !span.sampled {
            return;
        }
        let exporters = self.exporters.read_locked();
        if exporters.is_empty() {
            return;
        }
        let record = SpanRecord {
            name: span.name,
            kind: span.kind,
            trace_id: span.trace_id,
            span_id: span.span_id,
            parent_span_id: span.parent,
            start: span.start,
            end: SystemTime::now(),
            attributes: span.attributes,
            error: error(),
        };
        for e in exporters.iter() {
            e.export(record.clone());
        }
    }
}

/// An id written in hex only if a `tracing` subscriber records it (the
/// span's fields are built even when it is disabled, with `tracing`'s
/// `log` feature on, as quinn turns it on).
struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_ids_do_not_repeat_and_are_never_zero() {
        let ids = SpanIds::default();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100_000 {
            let id = ids.next();
            assert_ne!(id, [0; 8]);
            assert!(seen.insert(id), "a repeated span id");
        }
        // The counter value that mixes to zero is skipped.
        let at_zero = SpanIds {
            next: AtomicU64::new(0),
        };
        assert_ne!(at_zero.next(), [0; 8]);
        // Two nodes' ids differ from the start.
        assert_ne!(SpanIds::default().next(), SpanIds::default().next());
    }
}
