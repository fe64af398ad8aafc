//! The live dashboard: `/dashboard` (one page, every asset embedded),
//! `/dashboard/events` (server-sent events: a [`view::DashboardView`] once
//! a second and at every membership change) and `/dashboard/snapshot`
//! (one view as JSON, for scripts).
//!
//! Peers' figures come from the peers themselves over the telemetry
//! channel ([`Node::peer_reports`]), asked only while a stream is open, so
//! the page is complete whichever node serves it and an idle cluster pays
//! nothing for it.

mod view;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::node::{Events, Node};
use view::DashboardView;

/// The page: HTML, CSS and JavaScript in one file, nothing fetched from
/// elsewhere.
const PAGE: &str = include_str!("page.html");

/// The page may run its own inline script and style and talk to this
/// node only.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
                   style-src 'unsafe-inline'; connect-src 'self'; img-src data:";

/// How often an open stream sends a view without a membership change.
const TICK: Duration = Duration::from_secs(1);

/// Most streams open at once on one node (each asks every peer for its
/// report once a second).
pub(crate) const MAX_STREAMS: usize = 16;

/// The dashboard's routes.
pub(crate) fn routes() -> Router<Node> {
    let permits = Arc::new(Semaphore::new(MAX_STREAMS));
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/snapshot", get(snapshot))
        .route(
            "/dashboard/events",
            get(move |State(node): State<Node>| events(node, permits.clone())),
        )
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        PAGE,
    )
}

async fn snapshot(State(node): State<Node>) -> impl IntoResponse {
    Json(DashboardView::of(&node).await)
}

/// An open stream's state.
struct Watch {
    node: Node,
    events: Events,
    first: bool,
    _permit: OwnedSemaphorePermit,
}

async fn events(node: Node, permits: Arc<Semaphore>) -> Response {
    let Ok(permit) = permits.try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many dashboards open on this node (at most {MAX_STREAMS})\n"),
        )
            .into_response();
    };
    let watch = Watch {
        events: node.events(),
        node,
        first: true,
        _permit: permit,
    };
    let stream = futures_util::stream::unfold(watch, |mut w| async move {
        if !w.first {
            tokio::select! {
                () = tokio::time::sleep(TICK) => {}
                event = w.events.recv() => {
                    // The node stopped: end the stream.
                    event?;
                }
            }
        }
        w.first = false;
        let view = DashboardView::of(&w.node).await;
        let event = Event::default()
            .event("view")
            .json_data(&view)
            .unwrap_or_else(|e| Event::default().event("error").data(e.to_string()));
        Some((Ok::<_, Infallible>(event), w))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
