//! `/metrics` against the real Prometheus tools (Debian's `prometheus`
//! package, which `.ci/run` installs): `promtool check metrics` accepts
//! the whole output of a node that has made calls, mesh calls and
//! publishes; a Prometheus server scrapes three nodes and answers a query.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use foundation::mesh::Criteria;
use foundation::process::{Context, Service, ServiceError, ServiceOptions};
use foundation::Node;
use foundation_testkit::skip::skip;
use tokio::io::AsyncWriteExt as _;

struct Echo;

impl Service for Echo {
    type Request = u32;
    type Reply = u32;
    type State = ();

    async fn handle(&mut self, _: &mut Context, n: u32) -> Result<u32, ServiceError> {
        Ok(n)
    }
}

fn have(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn http_nodes(n: usize) -> Vec<Node> {
    init_tracing();
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..n {
        let seeds: Vec<String> = nodes
            .iter()
            .map(|n| n.membership_addr().to_string())
            .collect();
        let node = builder(&format!("p{i}"))
            .http(true)
            .http_port(0)
            .seeds(seeds.iter().map(String::as_str))
            .start()
            .await
            .expect("node");
        nodes.push(node);
    }
    for node in &nodes {
        node.wait_for_members(n, SETTLE).await.expect("formed");
    }
    nodes
}

async fn metrics_of(node: &Node) -> String {
    let url = format!("http://{}/metrics", node.http_addr().expect("http on"));
    reqwest::get(&url)
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_the_whole_metrics_output() {
    if !have("promtool") {
        skip("promtool is not installed (Debian: prometheus); .ci/run installs it");
        return;
    }
    let nodes = http_nodes(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let echo = b.services().spawn(|| Echo, ServiceOptions::default());
    b.registry().join("echo", &echo).expect("join");
    let mesh = a.mesh().client::<Echo>(Criteria::name("echo"));
    let mut ok = false;
    for _ in 0..200 {
        if mesh.call(1, SETTLE).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "the mesh reaches echo on b");
    let direct = b.services().spawn(|| Echo, ServiceOptions::default());
    assert_eq!(direct.call(5, SETTLE).await.expect("local call"), 5);
    let _sub = a.pubsub().subscribe::<String>("t").expect("subscribe");
    b.pubsub()
        .broadcast("t", "x".to_owned())
        .await
        .expect("publish");

    let text = metrics_of(a).await;
    for family in [
        "foundation_service_call_duration_seconds_bucket",
        "foundation_service_calls_total",
        "foundation_mesh_endpoint_ewma_seconds",
        "foundation_runtime_alive_tasks",
        "foundation_runtime_busy_ratio",
        "foundation_connections_open 1",
        "foundation_process_resident_memory_bytes",
        "foundation_membership_bytes_per_second",
    ] {
        assert!(text.contains(family), "{family} missing from:\n{text}");
    }
    let mut check = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    let mut stdin = check.stdin.take().expect("stdin");
    stdin.write_all(text.as_bytes()).await.expect("write");
    drop(stdin);
    let out = check.wait_with_output().await.expect("promtool ends");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_server_scrapes_three_nodes_and_answers_a_query() {
    if !have("prometheus") {
        skip("prometheus is not installed (Debian: prometheus); .ci/run installs it");
        return;
    }
    let nodes = http_nodes(3).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let targets: Vec<String> = nodes
        .iter()
        .map(|n| format!("'{}'", n.http_addr().expect("http")))
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: foundation\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).expect("config");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().expect("addr").port()
    };
    let mut server = tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus starts");
    // Three nodes, each seeing three members alive.
    let query = format!(
        "http://127.0.0.1:{port}/api/v1/query?query=sum(foundation_members%7Bstate%3D%22alive%22%7D)"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    let answered = loop {
        if let Ok(r) = reqwest::get(&query).await {
            if let Ok(body) = r.text().await {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                if v["data"]["result"][0]["value"][1] == "9" {
                    break true;
                }
                last = body;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(answered, "Prometheus never answered 9; last answer: {last}");
    let up = format!("http://127.0.0.1:{port}/api/v1/query?query=sum(up)");
    let body = reqwest::get(&up)
        .await
        .expect("query")
        .text()
        .await
        .expect("body");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["data"]["result"][0]["value"][1], "3", "{v}");
    let _ = server.kill().await;
    for n in &nodes {
        n.shutdown().await;
    }
}
