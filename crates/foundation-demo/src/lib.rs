//! The demo service shared by Foundation's examples, tests, benchmarks and
//! the `foundation node` command: a [`Counter`] whose total is handed off
//! when it migrates or its node shuts down, so it survives rolling
//! restarts.
//!
//! ```
//! use std::time::Duration;
//! use foundation::NodeBuilder;
//! use foundation_demo::Counter;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node = NodeBuilder::isolated()
//!     .cluster("static")
//!     .name("a")
//!     .secret("demo-secret-0123456789abcdef")
//!     .bind("127.0.0.1".parse()?)
//!     .port(0)
//!     .start()
//!     .await?;
//! foundation_demo::define(&node);
//! node.processes().start_singleton("hits", foundation_demo::KIND, &())?;
//! let hits = loop {
//!     if let Some(r) = node.processes().lookup_singleton::<Counter>("hits")? {
//!         break r;
//!     }
//!     tokio::time::sleep(Duration::from_millis(20)).await;
//! };
//! let counted = hits.call(5, Duration::from_secs(5)).await?;
//! assert_eq!((counted.total, counted.node), (5, node.id()));
//! node.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use foundation::process::{Context, Instance, Service, ServiceError, StopReason};
use foundation::{Node, NodeId};
use serde::{Deserialize, Serialize};

/// The kind name every node defines the counter under ([`define`]).
pub const KIND: &str = "foundation.demo.counter";

/// What the counter answers: its total after the addition, and the node
/// that counted it (so a caller can tell where the instance runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counted {
    /// The total after this request.
    pub total: u64,
    /// The node the instance runs on.
    pub node: NodeId,
}

/// Adds each request to its total and answers [`Counted`]. The total is
/// its handoff state: a migrated or shut-down instance's successor starts
/// from it.
#[derive(Debug, Default)]
pub struct Counter {
    total: u64,
    fresh_starts: Option<Arc<AtomicU64>>,
}

impl Counter {
    /// A counter at zero.
    pub fn new() -> Self {
        Counter::default()
    }

    /// A counter that adds one to `fresh_starts` each time an instance
    /// starts without a handoff (tests count the singleton's cold starts).
    pub fn counting_fresh_starts(fresh_starts: Arc<AtomicU64>) -> Self {
        Counter {
            total: 0,
            fresh_starts: Some(fresh_starts),
        }
    }
}

impl Service for Counter {
    type Request = u64;
    type Reply = Counted;
    type State = u64;

    async fn started(&mut self, _: &mut Context, handoff: Option<u64>) -> Result<(), ServiceError> {
        if handoff.is_none() {
            if let Some(fresh) = &self.fresh_starts {
                fresh.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.total = handoff.unwrap_or(0);
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Context, add: u64) -> Result<Counted, ServiceError> {
        self.total = self.total.saturating_add(add);
        Ok(Counted {
            total: self.total,
            node: ctx.node_id(),
        })
    }

    async fn stopping(&mut self, _: &mut Context, _: &StopReason) -> Option<u64> {
        Some(self.total)
    }
}

/// Defines the counter kind ([`KIND`]) on `node`. Call it on every node.
pub fn define(node: &Node) {
    node.processes()
        .define(KIND, |_: &(), _: &Instance| Counter::new());
}

/// Defines the counter kind on `node` under `kind`, counting cold starts
/// in `fresh_starts` (see [`Counter::counting_fresh_starts`]).
pub fn define_counting(node: &Node, kind: &str, fresh_starts: Arc<AtomicU64>) {
    node.processes().define(kind, move |_: &(), _: &Instance| {
        Counter::counting_fresh_starts(fresh_starts.clone())
    });
}
