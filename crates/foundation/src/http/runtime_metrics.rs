//! `/metrics` for the runtime (tokio tasks and busy ratio), open
//! connections, per-service call latencies and outcomes, and each mesh
//! client's endpoints (issue 19).

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::metrics::{header, label};
use crate::locks::Locked as _;
use crate::mesh::{Breaker, ClientView};
use crate::telemetry::{CallOutcome, CallStats, BUCKETS};

/// The tokio runtime this node runs on: workers, alive tasks, queue depth,
/// busy time and the share of time its workers were busy since the last
/// scrape (the first scrape: since the runtime started).
pub(crate) fn render_runtime(
    out: &mut String,
    sample: &Mutex<Option<(Instant, Duration)>>,
    open_connections: usize,
) {
    let name = "foundation_connections_open";
    header(out, name, "gauge", "QUIC connections to peers open now.");
    let _ = writeln!(out, "{name} {open_connections}");
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let m = handle.metrics();
    let workers = m.num_workers();
    let busy: Duration = (0..workers).map(|w| m.worker_total_busy_duration(w)).sum();
    let gauges = [
        (
            "foundation_runtime_workers",
            "Worker threads of the tokio runtime (shared by every node of the runtime).",
            workers as f64,
        ),
        (
            "foundation_runtime_alive_tasks",
            "Tasks alive in the tokio runtime.",
            m.num_alive_tasks() as f64,
        ),
        (
            "foundation_runtime_global_queue_depth",
            "Tasks waiting in the runtime's global queue.",
            m.global_queue_depth() as f64,
        ),
    ];
    for (name, help, v) in gauges {
        header(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {v}");
    }
    let name = "foundation_runtime_busy_seconds_total";
    header(
        out,
        name,
        "counter",
        "Time the runtime's workers spent busy, summed over workers.",
    );
    let _ = writeln!(out, "{name} {}", busy.as_secs_f64());
    let now = Instant::now();
    let previous = sample.locked().replace((now, busy));
    let ratio = previous.map_or(0.0, |(at, was)| {
        let wall = now.saturating_duration_since(at).as_secs_f64() * workers.max(1) as f64;
        if wall > 0.0 {
            (busy.saturating_sub(was).as_secs_f64() / wall).min(1.0)
        } else {
            0.0
        }
    });
    let name = "foundation_runtime_busy_ratio";
    header(
        out,
        name,
        "gauge",
        "Share of time the runtime's workers were busy since the previous scrape (0 to 1).",
    );
    let _ = writeln!(out, "{name} {ratio}");
}

/// Call latency histograms and outcome counts per service protocol, as
/// seen by callers on this node.
pub(crate) fn render_calls(out: &mut String, calls: &CallStats) {
    let all = calls.all();
    let name = "foundation_service_call_duration_seconds";
    header(
        out,
        name,
        "histogram",
        "Latency of calls made from this node, by service protocol (local and remote).",
    );
    for (protocol, c) in &all {
        let p = label(protocol);
        let cumulative = c.cumulative();
        for (bound, n) in BUCKETS.iter().zip(&cumulative) {
            let _ = writeln!(out, "{name}_bucket{{protocol=\"{p}\",le=\"{bound}\"}} {n}");
        }
        let total = cumulative.last().copied().unwrap_or(0);
        let _ = writeln!(out, "{name}_bucket{{protocol=\"{p}\",le=\"+Inf\"}} {total}");
        let _ = writeln!(out, "{name}_sum{{protocol=\"{p}\"}} {}", c.sum_seconds());
        let _ = writeln!(out, "{name}_count{{protocol=\"{p}\"}} {total}");
    }
    let name = "foundation_service_calls_total";
    header(
        out,
        name,
        "counter",
        "Calls made from this node, by service protocol and outcome.",
    );
    for (protocol, c) in &all {
        let p = label(protocol);
        for o in CallOutcome::ALL {
            let _ = writeln!(
                out,
                "{name}{{protocol=\"{p}\",outcome=\"{}\"}} {}",
                o.as_str(),
                c.count(o)
            );
        }
    }
}

/// Each mesh client's endpoints: latency estimate, calls in flight,
/// ejection, and call counts.
pub(crate) fn render_mesh(out: &mut String, clients: &[ClientView]) {
    type Get = fn(&crate::mesh::EndpointView) -> f64;
    let gauges: [(&str, &str, Get); 3] = [
        (
            "foundation_mesh_endpoint_ewma_seconds",
            "A mesh client's peak-EWMA latency estimate of an endpoint.",
            |e| e.ewma_ms / 1000.0,
        ),
        (
            "foundation_mesh_endpoint_in_flight",
            "A mesh client's calls in flight to an endpoint.",
            |e| f64::from(e.in_flight),
        ),
        (
            "foundation_mesh_endpoint_ejected",
            "1 while a mesh client's breaker keeps an endpoint out (open or half-open).",
            |e| f64::from(u8::from(e.breaker != Breaker::Closed)),
        ),
    ];
    for (name, help, get) in gauges {
        header(out, name, "gauge", help);
        for (i, c) in clients.iter().enumerate() {
            let crit = label(&c.criteria);
            for e in &c.endpoints {
                let _ = writeln!(
                    out,
                    "{name}{{client=\"{i}\",criteria=\"{crit}\",endpoint=\"{}\"}} {}",
                    e.addr,
                    get(e)
                );
            }
        }
    }
    let name = "foundation_mesh_endpoint_calls_total";
    header(
        out,
        name,
        "counter",
        "A mesh client's calls to an endpoint, by result.",
    );
    for (i, c) in clients.iter().enumerate() {
        let crit = label(&c.criteria);
        for e in &c.endpoints {
            for (result, n) in [("success", e.successes), ("failure", e.failures)] {
                let _ = writeln!(
                    out,
                    "{name}{{client=\"{i}\",criteria=\"{crit}\",endpoint=\"{}\",result=\"{result}\"}} {n}",
                    e.addr
                );
            }
        }
    }
}
