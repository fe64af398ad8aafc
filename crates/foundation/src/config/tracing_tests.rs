//! The `tracing.*` keys, and the standard OpenTelemetry variables.

use super::{env, file};
use crate::config::Source;

#[test]
fn the_standard_otel_variables_set_the_export_and_foundation_ones_the_sampling() {
    let r = env(&[]).resolve().expect("resolves");
    assert_eq!(r.config.tracing.traces_url(), None);
    assert_eq!(r.config.tracing.sample_percent, None);
    assert_eq!(r.config.tracing.service_name, "foundation");

    let r = env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
        ("OTEL_SERVICE_NAME", "orders"),
        ("FOUNDATION_TRACE_SAMPLE_PERCENT", "10"),
        ("OTEL_UNRELATED", "ignored"),
    ])
    .resolve()
    .expect("resolves");
    let t = &r.config.tracing;
    assert_eq!(
        t.traces_url().as_deref(),
        Some("http://127.0.0.1:4318/v1/traces")
    );
    assert_eq!(t.service_name, "orders");
    assert_eq!(t.sample_percent, Some(10));
    assert_eq!(
        r.sources["tracing.otlp_endpoint"],
        Source::Env("OTEL_EXPORTER_OTLP_ENDPOINT".into())
    );

    // The signal's own URL is used as given and wins.
    let r = env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:9999/traces"),
    ])
    .resolve()
    .expect("resolves");
    assert_eq!(
        r.config.tracing.traces_url().as_deref(),
        Some("http://b:9999/traces")
    );
}

#[test]
fn a_sample_percent_over_100_is_refused_with_the_key_named() {
    let e = env(&[("FOUNDATION_TRACE_SAMPLE_PERCENT", "150")])
        .resolve()
        .expect_err("out of range");
    assert!(
        e.to_string().contains("FOUNDATION_TRACE_SAMPLE_PERCENT"),
        "{e}"
    );
    let f = file("[tracing]\nsample_percent = 100\notlp_endpoint = \"http://c:4318\"\n");
    let r = env(&[]).file(f.path()).resolve().expect("resolves");
    assert_eq!(r.config.tracing.sample_percent, Some(100));
    assert_eq!(
        r.config.tracing.traces_url().as_deref(),
        Some("http://c:4318/v1/traces")
    );
}
