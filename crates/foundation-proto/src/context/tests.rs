//! The context codec: W3C examples, round trips, and arbitrary input.

use std::time::Duration;

use proptest::prelude::*;

use super::*;

#[test]
fn the_specification_examples_parse_and_bad_ones_do_not() {
    let tp: TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        .parse()
        .expect("valid");
    assert_eq!(tp.trace_hex(), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(tp.span_hex(), "b7ad6b7169203331");
    assert!(tp.sampled());
    let unsampled: TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
        .parse()
        .expect("valid");
    assert!(!unsampled.sampled());
    // A later version with more fields: the first four are read.
    assert!(
        "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"
            .parse::<TraceParent>()
            .is_ok()
    );
    for bad in [
        "",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033é-01",
    ] {
        assert!(bad.parse::<TraceParent>().is_err(), "{bad:?}");
    }
}

#[test]
fn malformed_headers_are_left_out_and_the_rest_kept() {
    let headers = vec![
        (TRACEPARENT.to_owned(), "garbage".to_owned()),
        (TRACESTATE.to_owned(), "k=v".to_owned()),
        (DEADLINE.to_owned(), "12x".to_owned()),
        (
            BAGGAGE.to_owned(),
            "a=1,=bad,b c=2,c=%zz,d=4;prop=1".to_owned(),
        ),
        ("other".to_owned(), "x".to_owned()),
    ];
    let ctx = WireContext::from_headers(&headers);
    assert_eq!(ctx.trace, None);
    assert_eq!(ctx.tracestate, None, "no tracestate without a trace");
    assert_eq!(ctx.deadline, None);
    assert_eq!(
        ctx.baggage,
        vec![
            ("a".to_owned(), "1".to_owned()),
            ("d".to_owned(), "4".to_owned())
        ]
    );
    assert!(WireContext::default().to_headers().is_empty());
}

#[test]
fn baggage_is_bounded_both_ways() {
    let many: Vec<(String, String)> = (0..100)
        .map(|i| (format!("k{i}"), "v".repeat(200)))
        .collect();
    let enc = baggage::encode(&many);
    assert!(enc.len() <= baggage::MAX_BAGGAGE_BYTES);
    let back = baggage::decode(&enc);
    assert!(back.len() <= baggage::MAX_BAGGAGE_ENTRIES);
    assert_eq!(back[..], many[..back.len()]);
    let huge = "a=1,".repeat(10_000);
    assert!(baggage::decode(&huge).len() <= baggage::MAX_BAGGAGE_ENTRIES);
}

fn key() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.-]{1,12}"
}

proptest! {
    #[test]
    fn valid_contexts_round_trip(
        trace in proptest::option::of((any::<[u8; 16]>(), any::<[u8; 8]>(), any::<u8>())),
        state in proptest::option::of("[a-z]{1,8}=[a-z0-9]{1,8}"),
        deadline_us in proptest::option::of(any::<u64>()),
        bag in proptest::collection::vec((key(), any::<String>()), 0..8),
    ) {
        let trace = trace
            .filter(|(t, s, _)| *t != [0; 16] && *s != [0; 8])
            .map(|(trace_id, span_id, flags)| TraceParent { trace_id, span_id, flags });
        let ctx = WireContext {
            trace,
            tracestate: trace.and(state),
            deadline: deadline_us.map(Duration::from_micros),
            baggage: bag,
        };
        let back = WireContext::from_headers(&ctx.to_headers());
        prop_assert_eq!(back, ctx);
    }

    /// Arbitrary header values never panic, and what comes out is within
    /// bounds.
    #[test]
    fn arbitrary_headers_never_panic(values in proptest::collection::vec(any::<String>(), 4)) {
        let names = [TRACEPARENT, TRACESTATE, DEADLINE, BAGGAGE];
        let headers: Vec<(String, String)> = names
            .iter()
            .zip(values)
            .map(|(k, v)| ((*k).to_owned(), v))
            .collect();
        let ctx = WireContext::from_headers(&headers);
        prop_assert!(ctx.baggage.len() <= baggage::MAX_BAGGAGE_ENTRIES);
        prop_assert!(ctx.tracestate.as_ref().is_none_or(|s| s.len() <= MAX_TRACESTATE));
    }

    #[test]
    fn arbitrary_traceparents_never_panic(s in "[0-9a-f-]{0,60}|\\PC{0,60}") {
        if let Ok(tp) = s.parse::<TraceParent>() {
            // What parses prints back in the canonical form, which parses
            // to the same value.
            prop_assert_eq!(tp.to_string().parse::<TraceParent>(), Ok(tp));
        }
    }
}

fn traced() -> WireContext {
    WireContext {
        trace: Some(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .expect("valid"),
        ),
        tracestate: Some("congo=t61rcWkgMzE".into()),
        deadline: Some(Duration::from_micros(250_000)),
        baggage: vec![("tenant".into(), "acme, inc; 100%".into())],
    }
}

#[test]
fn the_binary_form_round_trips_and_is_smaller_than_the_text() {
    let ctx = traced();
    let binary = postcard::to_allocvec(&ctx).expect("encodes");
    assert_eq!(
        postcard::from_bytes::<WireContext>(&binary),
        Ok(ctx.clone())
    );
    let text = postcard::to_allocvec(&ctx.to_headers()).expect("encodes");
    assert!(
        binary.len() < text.len() / 2,
        "{} vs {}",
        binary.len(),
        text.len()
    );
    // A trace and a deadline alone: the ids, the flags, a varint.
    let lean = WireContext {
        tracestate: None,
        baggage: Vec::new(),
        ..ctx
    };
    assert_eq!(
        postcard::to_allocvec(&lean).expect("encodes").len(),
        1 + 25 + 1 + 1 + 3 + 1
    );
    let empty = postcard::to_allocvec(&WireContext::default()).expect("encodes");
    assert_eq!(
        postcard::from_bytes::<WireContext>(&empty),
        Ok(WireContext::default())
    );
}

#[test]
fn the_binary_form_carries_only_what_the_text_would() {
    let mut ctx = traced();
    ctx.trace = Some(TraceParent {
        trace_id: [0; 16],
        span_id: [1; 8],
        flags: 1,
    });
    ctx.baggage = vec![
        ("not a token".into(), "x".into()),
        ("ok".into(), "y".into()),
    ];
    ctx.baggage
        .extend((0..100).map(|i| (format!("k{i}"), "v".repeat(200))));
    let back: WireContext =
        postcard::from_bytes(&postcard::to_allocvec(&ctx).expect("encodes")).expect("decodes");
    assert_eq!(back.trace, None, "an all-zero id is no trace");
    assert_eq!(back.tracestate, None, "no tracestate without a trace");
    assert_eq!(back.baggage[0], ("ok".to_owned(), "y".to_owned()));
    assert!(back.baggage.len() < baggage::MAX_BAGGAGE_ENTRIES);
    let bytes: usize = back
        .baggage
        .iter()
        .map(|(k, v)| k.len() + v.len() + 2)
        .sum();
    assert!(bytes <= baggage::MAX_BAGGAGE_BYTES);

    // A peer that does not check its own limits is checked on receipt.
    #[derive(serde::Serialize)]
    struct Raw {
        trace: Option<([u8; 16], [u8; 8], u8)>,
        tracestate: Option<String>,
        deadline_us: Option<u64>,
        baggage: Vec<(String, String)>,
    }
    let hostile = Raw {
        trace: Some(([1; 16], [2; 8], 0)),
        tracestate: Some("t".repeat(MAX_TRACESTATE + 1)),
        deadline_us: Some(u64::MAX),
        baggage: (0..64).map(|i| (format!("k{i}"), String::new())).collect(),
    };
    let back: WireContext =
        postcard::from_bytes(&postcard::to_allocvec(&hostile).expect("encodes")).expect("decodes");
    assert_eq!(back.tracestate, None);
    assert_eq!(back.baggage.len(), baggage::MAX_BAGGAGE_ENTRIES);
    assert_eq!(back.deadline, Some(Duration::from_micros(u64::MAX)));
    // More pairs than a frame's header limit: refused while read.
    let flood = Raw {
        baggage: (0..10_000)
            .map(|_| (String::new(), String::new()))
            .collect(),
        ..hostile
    };
    assert!(
        postcard::from_bytes::<WireContext>(&postcard::to_allocvec(&flood).expect("encodes"))
            .is_err()
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_binary_decoder(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(ctx) = postcard::from_bytes::<WireContext>(&data) {
            // Whatever decodes is within the limits, and encodes back to
            // the same context.
            prop_assert!(ctx.baggage.len() <= baggage::MAX_BAGGAGE_ENTRIES);
            let again: WireContext = postcard::from_bytes(&postcard::to_allocvec(&ctx).expect("encodes")).expect("decodes");
            prop_assert_eq!(again, ctx);
        }
    }
}
