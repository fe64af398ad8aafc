//! OTLP export against a real receiver: a small server built on the
//! official OpenTelemetry protobuf definitions (PyPI `opentelemetry-proto`,
//! which `.ci/run` installs) receives the spans of a trace that crosses
//! three nodes, and the parent of every span is checked there.
#![cfg(feature = "otlp")]

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foundation::context::RequestContext;
use foundation::process::{Context, Service, ServiceError, ServiceOptions};
use foundation::Node;
use foundation_testkit::skip::skip;
use foundation_testkit::{assert_eventually, builder, init_tracing};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

const T: Duration = Duration::from_secs(10);
const SETTLE: Duration = Duration::from_secs(20);

struct End;

impl Service for End {
    type Request = u32;
    type Reply = u32;
    type State = ();

    async fn handle(&mut self, _: &mut Context, n: u32) -> Result<u32, ServiceError> {
        Ok(n + 1)
    }
}

/// Calls `end` (on another node) and adds one.
struct Mid(Node);

impl Service for Mid {
    type Request = u32;
    type Reply = u32;
    type State = ();

    async fn handle(&mut self, _: &mut Context, n: u32) -> Result<u32, ServiceError> {
        let end = self
            .0
            .registry()
            .lookup::<End>("end")
            .map_err(|e| ServiceError::new(e.to_string()))?
            .ok_or_else(|| ServiceError::new("no end"))?;
        let r = end
            .call(n, T)
            .await
            .map_err(|e| ServiceError::new(e.to_string()))?;
        Ok(r + 1)
    }
}

/// The receiver's output lines, parsed.
type Lines = Arc<Mutex<Vec<Value>>>;

async fn receiver() -> Option<(tokio::process::Child, u16, Lines)> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/otlp_receiver.py"
    );
    let probe = std::process::Command::new("python3")
        .args(["-c", "import opentelemetry.proto"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        skip("python3 with opentelemetry-proto (pip install opentelemetry-proto) is not installed; .ci/run installs it");
        return None;
    }
    let mut child = tokio::process::Command::new("python3")
        .arg(script)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the receiver starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(SETTLE, lines.next_line())
        .await
        .expect("the receiver says its port")
        .expect("read")
        .expect("a line");
    let port: u16 = first
        .strip_prefix("port ")
        .and_then(|p| p.parse().ok())
        .expect("port N");
    let seen: Lines = Arc::default();
    let sink = seen.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                sink.lock().expect("lines").push(v);
            }
        }
    });
    Some((child, port, seen))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_a_trace_across_three_nodes_reach_an_otlp_receiver_with_their_parents() {
    init_tracing();
    let Some((mut child, port, seen)) = receiver().await else {
        return;
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..3 {
        let seeds: Vec<String> = nodes
            .iter()
            .map(|n| n.membership_addr().to_string())
            .collect();
        let node = builder(&format!("n{i}"))
            .set("tracing.otlp_endpoint", &endpoint)
            .set("tracing.service_name", "otlp-test")
            .seeds(seeds.iter().map(String::as_str))
            .start()
            .await
            .expect("node");
        nodes.push(node);
    }
    for n in &nodes {
        n.wait_for_members(3, SETTLE).await.expect("formed");
    }
    let (a, b, c) = (nodes[0].clone(), nodes[1].clone(), nodes[2].clone());
    let end = c.services().spawn(|| End, ServiceOptions::default());
    c.registry().register("end", &end).expect("register");
    let bb = b.clone();
    let mid = b
        .services()
        .spawn(move || Mid(bb.clone()), ServiceOptions::default());
    b.registry().register("mid", &mid).expect("register");
    assert_eventually(SETTLE, "names known", || {
        a.registry().whereis("mid").is_some() && b.registry().whereis("end").is_some()
    })
    .await;
    let mid = a
        .registry()
        .lookup::<Mid>("mid")
        .expect("protocol")
        .expect("registered");

    let root = RequestContext::new_trace(true);
    let trace = root.trace().expect("trace");
    let reply = root.scope(mid.call(1, T)).await.expect("call");
    assert_eq!(reply, 3);

    let trace_hex = trace.trace_hex();
    let ours = |v: &&Value| v["trace_id"] == trace_hex.as_str();
    assert_eventually(SETTLE, "four spans of the trace received", || {
        seen.lock().expect("lines").iter().filter(ours).count() >= 4
    })
    .await;
    let lines = seen.lock().expect("lines").clone();
    let errors: Vec<&Value> = lines.iter().filter(|v| v.get("error").is_some()).collect();
    assert!(
        errors.is_empty(),
        "the receiver refused requests: {errors:?}"
    );
    let spans: Vec<&Value> = lines.iter().filter(ours).collect();
    let find = |node: &str, name: &str| -> &Value {
        spans
            .iter()
            .find(|s| s["resource"]["foundation.node.name"] == node && s["name"] == name)
            .unwrap_or_else(|| panic!("no {name} span from {node} in {spans:?}"))
    };
    let (a_call, b_handle) = (find("n0", "call"), find("n1", "handle"));
    let (b_call, c_handle) = (find("n1", "call"), find("n2", "handle"));
    assert_eq!(a_call["parent_span_id"], trace.span_hex().as_str());
    assert_eq!(b_handle["parent_span_id"], a_call["span_id"]);
    assert_eq!(b_call["parent_span_id"], b_handle["span_id"]);
    assert_eq!(c_handle["parent_span_id"], b_call["span_id"]);
    // OTLP's span kinds: SERVER 2, CLIENT 3; status OK 1.
    for (s, kind) in [(a_call, 3), (b_handle, 2), (b_call, 3), (c_handle, 2)] {
        assert_eq!(s["kind"], kind, "{s}");
        assert_eq!(s["status"], 1, "{s}");
        assert_eq!(s["resource"]["service.name"], "otlp-test", "{s}");
        assert_eq!(s["scope"], "foundation");
        let (start, end) = (s["start"].as_u64(), s["end"].as_u64());
        assert!(start.is_some_and(|t| t > 0) && start <= end, "{s}");
    }
    assert_eq!(
        b_handle["attributes"]["foundation.peer.id"],
        a.id().to_string().as_str()
    );
    assert_eq!(
        c_handle["attributes"]["foundation.node.id"],
        c.id().to_string().as_str()
    );
    for n in &nodes {
        n.shutdown().await;
    }
    let _ = child.kill().await;
}
