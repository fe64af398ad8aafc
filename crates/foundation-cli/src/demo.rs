//! The demo service every `foundation node` defines: a counter whose total
//! is handed off when it migrates or its node shuts down. Benches and
//! process tests run it as a singleton (`--singleton NAME`).

use foundation::process::{Context, Instance, Service, ServiceError, StopReason};
use foundation::Node;

/// The kind name of the demo counter.
pub(crate) const KIND: &str = "foundation.demo.counter";

/// Adds each request to its total; answers the total.
pub(crate) struct Counter {
    total: u64,
}

impl Service for Counter {
    type Request = u64;
    type Reply = u64;
    type State = u64;

    async fn started(&mut self, _: &mut Context, handoff: Option<u64>) -> Result<(), ServiceError> {
        self.total = handoff.unwrap_or(0);
        Ok(())
    }

    async fn handle(&mut self, _: &mut Context, add: u64) -> Result<u64, ServiceError> {
        self.total += add;
        Ok(self.total)
    }

    async fn stopping(&mut self, _: &mut Context, _: &StopReason) -> Option<u64> {
        Some(self.total)
    }
}

/// Defines the demo kind on `node`.
pub(crate) fn define(node: &Node) {
    node.processes()
        .define(KIND, |_: &(), _: &Instance| Counter { total: 0 });
}
