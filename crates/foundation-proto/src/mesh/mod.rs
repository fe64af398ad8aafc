//! The service mesh's sans-IO parts (issue 19, ADR 025).
//!
//! - [`ServiceMeta`]: the version, capabilities and metadata a
//!   registration carries; [`Criteria`]: what a caller asks for.
//! - [`Balancer`]: picks an endpoint per call (power of two choices on a
//!   peak-EWMA latency, round-robin, weighted, consistent hashing with
//!   bounded load, local-first), ejects endpoints that keep failing and
//!   lets them back through a half-open trial.
//! - [`RetryBudget`]: caps retries to a ratio of normal traffic.
//!
//! The `foundation` crate's `mesh()` facade feeds these from the registry
//! and membership, and times the calls.

mod balancer;
mod budget;
mod criteria;
mod endpoint;
mod meta;
#[cfg(test)]
mod tests;

pub use balancer::{Balancer, BalancerConfig, EndpointView, NoEndpoint, Strategy};
pub use budget::{BudgetConfig, RetryBudget};
pub use criteria::{Criteria, CriteriaError};
pub use endpoint::{Breaker, Outcome};
pub use meta::{
    MetaError, ServiceMeta, MAX_CAPABILITIES, MAX_METADATA, MAX_META_ITEM_LEN, MAX_WEIGHT,
    WEIGHT_KEY,
};
