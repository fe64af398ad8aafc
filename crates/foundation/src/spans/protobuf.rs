//! OTLP's `ExportTraceServiceRequest` in protobuf, written by hand: the
//! few messages spans need (opentelemetry-proto v1, `trace.proto`,
//! `resource.proto`, `common.proto`), without a code generator. The test
//! against a receiver built on the official Python definitions checks
//! every field.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{SpanKind, SpanRecord};

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field) << 3 | u64::from(wire));
}

fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    tag(out, field, LEN);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn message(out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    body(&mut inner);
    bytes(out, field, &inner);
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, VARINT);
    varint(out, v);
}

/// `KeyValue { key = 1; AnyValue value = 2 { string_value = 1 } }`.
fn key_value(out: &mut Vec<u8>, field: u32, key: &str, value: &str) {
    message(out, field, |kv| {
        bytes(kv, 1, key.as_bytes());
        message(kv, 2, |any| bytes(any, 1, value.as_bytes()));
    });
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// `Span.SpanKind`.
fn kind(k: SpanKind) -> u64 {
    match k {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn span(out: &mut Vec<u8>, s: &SpanRecord) {
    message(out, 2, |m| {
        bytes(m, 1, &s.trace_id);
        bytes(m, 2, &s.span_id);
        if let Some(parent) = &s.parent_span_id {
            bytes(m, 4, parent);
        }
        bytes(m, 5, s.name.as_bytes());
        uint(m, 6, kind(s.kind));
        fixed64(m, 7, unix_nanos(s.start));
        fixed64(m, 8, unix_nanos(s.end));
        for (k, v) in &s.attributes {
            key_value(m, 9, k, v);
        }
        // Status { message = 2; code = 3 (OK 1, ERROR 2) }.
        message(m, 15, |st| match &s.error {
            Some(e) => {
                bytes(st, 2, e.as_bytes());
                uint(st, 3, 2);
            }
            None => uint(st, 3, 1),
        });
    });
}

/// One request carrying `spans` of one resource (the node).
pub(super) fn export_request(resource: &[(&str, String)], spans: &[SpanRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + spans.len() * 160);
    // ExportTraceServiceRequest.resource_spans = 1
    message(&mut out, 1, |rs| {
        // ResourceSpans.resource = 1 { attributes = 1 }
        message(rs, 1, |r| {
            for (k, v) in resource {
                key_value(r, 1, k, v);
            }
        });
        // ResourceSpans.scope_spans = 2 { scope = 1 { name, version }; spans = 2 }
        message(rs, 2, |ss| {
            message(ss, 1, |scope| {
                bytes(scope, 1, b"foundation");
                bytes(scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
            });
            for s in spans {
                span(ss, s);
            }
        });
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_tags_follow_the_protobuf_encoding() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xAC, 0x02]);
        out.clear();
        tag(&mut out, 15, LEN);
        assert_eq!(out, [0x7A]);
        out.clear();
        tag(&mut out, 16, VARINT);
        assert_eq!(out, [0x80, 0x01]);
        out.clear();
        key_value(&mut out, 9, "k", "v");
        // field 9 (len 8): key "k", value { string "v" }
        assert_eq!(out, [0x4A, 8, 0x0A, 1, b'k', 0x12, 3, 0x0A, 1, b'v']);
    }
}
