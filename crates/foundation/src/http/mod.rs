//! HTTP endpoint (axum): `/health`, `/ready`, `/metrics`, `/members`, `/registry`,
//! `/clocks` (peers' clock offsets, measured over the control channel),
//! `/dashboard` (the live web dashboard, updated by server-sent events),
//! `/coord` (the coordination group), `/caches` (caches, tiers, sizes
//! and hit rates on this node) and `/mesh` (each mesh client's endpoints
//! with their latency estimate, calls in flight and ejection state).
//!
//! Off by default in library use, on in the CLI (`http.enabled`).

mod cache_metrics;
mod dashboard;
mod health;
mod metrics;
mod runtime_metrics;

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use health::{Health, HealthStatus};

use crate::error::StartError;
use crate::membership::MemberState;
use crate::node::Node;
use crate::NodeId;

/// The routes, for embedding in an application's own axum server.
pub fn router(node: Node) -> Router {
    Router::new()
        .route("/health", get(health_handler))
        .route("/ready", get(ready_handler))
        .route("/metrics", get(metrics_handler))
        .route("/members", get(members_handler))
        .route("/registry", get(registry_handler))
        .route("/clocks", get(clocks_handler))
        .route("/coord", get(coord_handler))
        .route("/caches", get(caches_handler))
        .route("/mesh", get(mesh_handler))
        .merge(dashboard::routes())
        .with_state(node)
}

/// Binds and serves until `cancel`. Returns the bound address.
pub(crate) async fn serve(
    node: Node,
    addr: SocketAddr,
    cancel: CancellationToken,
) -> Result<(SocketAddr, JoinHandle<()>), StartError> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            StartError::HttpPortInUse { addr }
        } else {
            StartError::Bind {
                what: "HTTP endpoint",
                addr,
                message: e.to_string(),
            }
        }
    })?;
    let bound = listener.local_addr().unwrap_or(addr);
    let span = node.span().clone();
    let app = router(node);
    let task = tokio::spawn(tracing::Instrument::instrument(
        async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async move { cancel.cancelled().await })
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "HTTP endpoint stopped");
            }
        },
        span,
    ));
    tracing::info!(%bound, "HTTP endpoint: /dashboard /health /ready /metrics /members /registry");
    Ok((bound, task))
}

async fn health_handler(State(node): State<Node>) -> impl IntoResponse {
    let health = Health::of(&node);
    let code = match health.status {
        HealthStatus::Critical => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    (code, Json(health))
}

async fn ready_handler(State(node): State<Node>) -> impl IntoResponse {
    if node.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: not joined yet\n",
        )
    }
}

async fn members_handler(State(node): State<Node>) -> impl IntoResponse {
    Json(node.members())
}

async fn registry_handler(State(node): State<Node>) -> impl IntoResponse {
    Json(node.registry().snapshot())
}

async fn clocks_handler(State(node): State<Node>) -> impl IntoResponse {
    Json(node.clock_offsets(std::time::Duration::from_secs(1)).await)
}

/// The coordination group as this node sees it.
#[derive(serde::Serialize)]
struct CoordView {
    group: Option<String>,
    leader: Option<NodeId>,
    term: u64,
    voters: Vec<NodeId>,
    learners: Vec<NodeId>,
    last_log: u64,
    committed: u64,
    applied: u64,
    apply_lag: u64,
    sessions: usize,
}

async fn caches_handler(State(node): State<Node>) -> impl IntoResponse {
    Json(node.caches().list())
}

async fn mesh_handler(State(node): State<Node>) -> impl IntoResponse {
    Json(node.mesh().clients())
}

async fn coord_handler(State(node): State<Node>) -> impl IntoResponse {
    let s = node.coord().status();
    Json(CoordView {
        group: s.group.map(|g| g.to_string()),
        leader: s.leader,
        term: s.term,
        voters: s.voters.clone(),
        learners: s.learners.clone(),
        last_log: s.last_log,
        committed: s.committed,
        applied: s.applied,
        apply_lag: s.apply_lag(),
        sessions: s.sessions,
    })
}

async fn metrics_handler(State(node): State<Node>) -> impl IntoResponse {
    let members = node.members();
    let counts: Vec<(MemberState, usize)> = [
        MemberState::Alive,
        MemberState::Suspect,
        MemberState::Down,
        MemberState::Left,
    ]
    .into_iter()
    .map(|s| (s, members.iter().filter(|m| m.state == s).count()))
    .collect();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], {
        let pubsub = node.pubsub();
        let mut text = metrics::render(node.raw().stats(), &counts);
        text.push_str(&metrics::render_pubsub(
            &pubsub.stats(),
            &pubsub.lag(),
            pubsub.rejected_frames(),
        ));
        text.push_str(&metrics::render_coord(&node.coord().status(), node.id()));
        text.push_str(&cache_metrics::render_caches(&node.caches().list()));
        let raw = node.raw();
        runtime_metrics::render_runtime(
            &mut text,
            &raw.stats().busy_sample,
            raw.transport().connected_peers(),
        );
        runtime_metrics::render_calls(&mut text, node.calls());
        runtime_metrics::render_mesh(&mut text, &node.mesh().clients());
        text
    })
}
