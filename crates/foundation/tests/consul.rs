//! The `consul` strategy against a local stand-in for the Consul agent's
//! health API (`GET /v1/health/service/{name}?passing=true&index=&wait=`,
//! answering in Consul's JSON format with `X-Consul-Index`, and honouring
//! blocking queries). A real Consul server is not available on these
//! machines; the stand-in follows the API reference field by field.
#![cfg(feature = "consul")]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::*;
use serde_json::json;
use tokio::sync::Notify;

#[derive(Default)]
struct Agent {
    /// (index, instances as (ip, port)).
    state: Mutex<(u64, Vec<(String, u16)>)>,
    changed: Notify,
    fail: AtomicBool,
    malformed: AtomicBool,
    requests: Mutex<Vec<String>>,
}

impl Agent {
    fn set(&self, instances: Vec<(&str, u16)>) {
        let mut s = self.state.lock().expect("state");
        s.0 += 1;
        s.1 = instances
            .into_iter()
            .map(|(ip, p)| (ip.to_owned(), p))
            .collect();
        drop(s);
        self.changed.notify_waiters();
    }
}

#[derive(serde::Deserialize)]
struct Params {
    #[serde(default)]
    index: u64,
    passing: Option<String>,
}

async fn health(
    State(agent): State<Arc<Agent>>,
    Path(service): Path<String>,
    Query(p): Query<Params>,
    headers: HeaderMap,
) -> Response {
    agent.requests.lock().expect("log").push(format!(
        "{service} passing={:?} index={} token={:?}",
        p.passing,
        p.index,
        headers
            .get("X-Consul-Token")
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    ));
    if agent.fail.load(Ordering::Relaxed) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "rpc error: No cluster leader",
        )
            .into_response();
    }
    // Blocking query: wait for a change past `index` (bounded for the test).
    if p.index >= agent.state.lock().expect("state").0 {
        let _ = tokio::time::timeout(Duration::from_millis(500), agent.changed.notified()).await;
    }
    let (index, instances) = agent.state.lock().expect("state").clone();
    if agent.malformed.load(Ordering::Relaxed) {
        return ([("X-Consul-Index", index.to_string())], "[{\"Node\": ").into_response();
    }
    let body: Vec<_> = instances
        .iter()
        .enumerate()
        .map(|(i, (ip, port))| {
            json!({
                "Node": {"ID": format!("node-{i}"), "Node": format!("node-{i}"), "Address": ip,
                         "Datacenter": "dc1", "TaggedAddresses": {}, "Meta": {}},
                "Service": {"ID": format!("{service}-{i}"), "Service": service, "Tags": [],
                            "Address": ip, "Port": port, "Meta": {}},
                "Checks": [{"Node": format!("node-{i}"), "CheckID": "serfHealth", "Name": "Serf Health Status",
                            "Status": "passing", "ServiceID": "", "ServiceName": ""}]
            })
        })
        .collect();
    ([("X-Consul-Index", index.to_string())], axum::Json(body)).into_response()
}

async fn agent() -> (Arc<Agent>, SocketAddr) {
    let agent = Arc::new(Agent::default());
    let app = axum::Router::new()
        .route("/v1/health/service/{service}", get(health))
        .with_state(agent.clone());
    let addr = serve(app).await;
    (agent, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_join_through_consul_and_keep_members_through_a_500() {
    init_tracing();
    let (agent, addr) = agent().await;
    let a = builder("consul-a").start().await.expect("a");
    agent.set(vec![("127.0.0.1", a.membership_addr().port())]);
    let b = builder("consul-b")
        .cluster("consul")
        .set("consul.addr", &format!("http://{addr}"))
        .set("consul.service", "shop")
        .set("consul.token", "secret-token")
        .set("consul.wait_ms", "500")
        .start()
        .await
        .expect("b");
    b.wait_for_members(2, SETTLE)
        .await
        .expect("b joined through consul");

    // Consul fails (HTTP 500), then answers garbage: the cluster keeps its
    // members, and the errors are counted.
    agent.fail.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    agent.fail.store(false, Ordering::Relaxed);
    agent.malformed.store(true, Ordering::Relaxed);
    agent.set(vec![("127.0.0.1", a.membership_addr().port())]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    for n in [&a, &b] {
        assert_eq!(
            alive(n),
            2,
            "{} lost a member during the Consul outage",
            n.name()
        );
    }
    assert!(b.is_ready());

    let log = agent.requests.lock().expect("log").clone();
    assert!(
        log.iter()
            .all(|r| r.starts_with("shop passing=Some(\"true\")")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|r| r.contains("token=Some(\"secret-token\")")),
        "{log:?}"
    );
    // Blocking queries: after the first answer, requests carry an index.
    assert!(log.iter().any(|r| !r.contains("index=0 ")), "{log:?}");
    b.shutdown().await;
    a.shutdown().await;
}
