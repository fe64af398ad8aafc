//! When a node counts as ready: it has joined a cluster, or it runs alone
//! by configuration, or its discovery found nobody for [`ALONE_AFTER`].
//! The process planner starts nothing on a node that is not ready.

use std::time::Duration;

/// A node whose discovery finds no candidate for this long is ready alone.
pub const ALONE_AFTER: Duration = Duration::from_secs(3);

/// Whether a node that has not joined anyone (and is not alone by
/// configuration) is ready alone: it has run for `running_for` and its
/// discovery has proposed no candidate.
pub fn ready_alone(running_for: Duration, no_candidates: bool) -> bool {
    no_candidates && running_for >= ALONE_AFTER
}
