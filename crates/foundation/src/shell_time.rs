//! The shells' clock: tokio's, so that paused or simulated time (tokio's
//! test-util, turmoil) moves what the sans-IO cores are told as it moves
//! the timers. In production tokio's clock is the system's.

/// Now, for a core that takes `std::time::Instant`.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Sleeps until `at`; forever without one (a `select!` branch that only
/// fires when a deadline is set).
pub(crate) async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
