//! The `kubernetes` strategy against a local stand-in for the Kubernetes
//! API server: `GET /api/v1/namespaces/{ns}/pods` answers a `PodList`, and
//! with `watch=true` streams watch events (`ADDED`, `MODIFIED`, `DELETED`,
//! one JSON object per line), as the API reference specifies. There is no
//! Kubernetes API server on these machines; the stand-in follows the
//! formats field by field for what the kube client reads.
#![cfg(feature = "kubernetes")]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use common::*;
use serde_json::{json, Value};
use tokio::sync::mpsc;

#[derive(Default)]
struct ApiServer {
    pods: Mutex<Vec<Value>>,
    version: AtomicUsize,
    watchers: Mutex<Vec<mpsc::Sender<Result<Bytes, Infallible>>>>,
    fail: AtomicBool,
    lists: AtomicUsize,
    watches: AtomicUsize,
}

fn pod(name: &str, port: u16, ready: bool, version: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                     "resourceVersion": version.to_string(), "labels": {"app": "shop"}},
        "spec": {"containers": [{"name": "app", "image": "shop:1",
                 "ports": [{"name": "foundation", "containerPort": port, "protocol": "UDP"}]}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1",
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    })
}

impl ApiServer {
    /// Adds or replaces a pod and tells every open watch.
    fn apply(&self, name: &str, port: u16, ready: bool) {
        let v = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        let p = pod(name, port, ready, v);
        let mut pods = self.pods.lock().expect("pods");
        let kind = match pods.iter().position(|x| x["metadata"]["name"] == name) {
            Some(i) => {
                pods[i] = p.clone();
                "MODIFIED"
            }
            None => {
                pods.push(p.clone());
                "ADDED"
            }
        };
        drop(pods);
        let line = format!("{}\n", json!({"type": kind, "object": p}));
        self.watchers
            .lock()
            .expect("watchers")
            .retain(|w| w.try_send(Ok(Bytes::from(line.clone()))).is_ok());
    }
}

#[derive(serde::Deserialize)]
struct Params {
    watch: Option<String>,
    #[serde(rename = "labelSelector")]
    label_selector: Option<String>,
}

async fn pods(
    State(api): State<Arc<ApiServer>>,
    Path(ns): Path<String>,
    Query(p): Query<Params>,
) -> Response {
    if api.fail.load(Ordering::SeqCst) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "etcdserver: request timed out", "reason": "InternalError", "code": 500
            })),
        )
            .into_response();
    }
    assert_eq!(ns, "shop");
    assert_eq!(p.label_selector.as_deref(), Some("app=shop"));
    if p.watch.as_deref().is_some_and(|w| w == "true" || w == "1") {
        api.watches.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel(64);
        api.watchers.lock().expect("watchers").push(tx);
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|x| (x, rx)) },
            );
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(stream))
            .expect("response");
    }
    api.lists.fetch_add(1, Ordering::SeqCst);
    let items = api.pods.lock().expect("pods").clone();
    axum::Json(json!({
        "apiVersion": "v1", "kind": "PodList",
        "metadata": {"resourceVersion": api.version.load(Ordering::SeqCst).to_string()},
        "items": items
    }))
    .into_response()
}

async fn api_server() -> (Arc<ApiServer>, SocketAddr) {
    let api = Arc::new(ApiServer::default());
    let app = axum::Router::new()
        .route("/api/v1/namespaces/{ns}/pods", get(pods))
        .with_state(api.clone());
    let addr = serve(app).await;
    (api, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_pods_are_found_by_list_and_watch_and_a_500_mid_watch_loses_nobody() {
    init_tracing();
    let (api, addr) = api_server().await;
    let a = builder("k8s-a").start().await.expect("a");
    let c = builder("k8s-c").start().await.expect("c");
    api.apply("pod-a", a.membership_addr().port(), true);
    // c's pod exists but is not ready yet: not a candidate.
    api.apply("pod-c", c.membership_addr().port(), false);
    let b = builder("k8s-b")
        .cluster("kubernetes")
        .set("kubernetes.api", &format!("http://{addr}"))
        .set("kubernetes.namespace", "shop")
        .set("kubernetes.selector", "app=shop")
        .start()
        .await
        .expect("b");
    b.wait_for_members(2, SETTLE)
        .await
        .expect("b found a through the pod list");
    assert_eq!(alive(&c), 1, "a pod that is not ready must not be joined");

    // The watch delivers c becoming ready.
    tokio::time::timeout(SETTLE, async {
        while api.watches.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the strategy watches");
    api.apply("pod-c", c.membership_addr().port(), true);
    for n in [&a, &b, &c] {
        n.wait_for_members(3, SETTLE)
            .await
            .expect("c joined after its watch event");
    }

    // The API server fails in the middle of the watch: streams close, then
    // every request answers 500 for a while. Nobody is lost.
    let watches = api.watches.load(Ordering::SeqCst);
    api.fail.store(true, Ordering::SeqCst);
    api.watchers.lock().expect("watchers").clear();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for n in [&a, &b, &c] {
        assert_eq!(
            alive(n),
            3,
            "{} lost a member during the API outage",
            n.name()
        );
    }
    // It recovers by itself: kube resumes the watch from the last resource
    // version (it lists again only when that version is gone, 410).
    api.fail.store(false, Ordering::SeqCst);
    tokio::time::timeout(SETTLE, async {
        while api.watches.load(Ordering::SeqCst) == watches {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the strategy watches again after the outage");
    for n in [&c, &b, &a] {
        n.shutdown().await;
    }
}
