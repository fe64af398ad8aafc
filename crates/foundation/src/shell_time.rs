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

/// Wall-clock time in ms since the Unix epoch: what sealed datagrams carry
/// for replay protection (hosts compare it, so it is the system's clock,
/// not tokio's).
pub(crate) fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
