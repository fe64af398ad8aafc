//! Coordination load for tests on real processes (`foundation node
//! --coord-counter NAME`, `--coord-lock NAME`): what a test needs to check
//! linearizability and mutual exclusion across processes.
//!
//! Times are microseconds of the system clock. The processes of a test run
//! on one machine (in network namespaces), so they share that clock and
//! their histories can be merged.
//!
//! - The counter client alternates an add of 1 and a linearizable read,
//!   recording each operation's invocation, return and answer, or that its
//!   outcome is unknown, or that it failed with the state unchanged.
//! - The lock client takes the lock, holds it a while, watching that it is
//!   still held, and releases it, recording when it believed it held the
//!   lock and its fencing token.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foundation::coord::{Coord, CoordError};
use serde::Serialize;

use super::{lock, Report};

/// Operations and holdings kept per process; later ones are counted, not
/// kept (bounded memory in a long run).
const MAX_RECORDS: usize = 50_000;
/// How long a holder keeps the lock.
const HOLD: Duration = Duration::from_millis(300);
/// Each coordination call's timeout.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// What coordination did for this process.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct CoordReport {
    /// Counter operations in the order they were invoked.
    ops: Vec<CounterOp>,
    /// Lock holdings in the order they began.
    holdings: Vec<Holding>,
    /// Records not kept (over [`MAX_RECORDS`]).
    dropped: u64,
}

/// One counter operation.
#[derive(Debug, Clone, Serialize)]
struct CounterOp {
    /// `add` (of 1) or `read`.
    call: &'static str,
    invoked_us: u64,
    /// When it returned; also set when it failed.
    returned_us: Option<u64>,
    /// `ok`, `failed` (state unchanged) or `unknown`.
    outcome: &'static str,
    /// The answer when `ok`: the value after the add, or the value read.
    value: Option<i64>,
}

/// One time this process believed it held the lock.
#[derive(Debug, Clone, Serialize)]
struct Holding {
    token: u64,
    from_us: u64,
    /// When it stopped using the lock: began releasing it, or saw it lost.
    to_us: u64,
    /// Whether it saw the lock lost (its session lapsed).
    lost: bool,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn keep<T>(list: &mut Vec<T>, dropped: &mut u64, item: T) {
    if list.len() < MAX_RECORDS {
        list.push(item);
    } else {
        *dropped += 1;
    }
}

/// Adds 1 to counter `name` and reads it, in turns, every `every`.
pub(crate) async fn counter(
    coord: Coord,
    name: String,
    every: Duration,
    report: Arc<Mutex<Report>>,
) {
    let coord = coord.with_timeout(CALL_TIMEOUT);
    let mut tick = tokio::time::interval(every);
    for n in 0u64.. {
        tick.tick().await;
        let add = n % 2 == 0;
        let invoked_us = now_us();
        let r = if add {
            coord.add(&name, 1).await
        } else {
            coord.counter(&name).await
        };
        let returned_us = now_us();
        let (outcome, value, returned_us) = match r {
            Ok(v) => ("ok", Some(v), Some(returned_us)),
            Err(e) if e.outcome_known() => ("failed", None, Some(returned_us)),
            Err(_) => ("unknown", None, None),
        };
        let op = CounterOp {
            call: if add { "add" } else { "read" },
            invoked_us,
            returned_us,
            outcome,
            value,
        };
        let mut r = lock(&report);
        let c = &mut r.coord;
        keep(&mut c.ops, &mut c.dropped, op);
    }
}

/// Takes lock `name`, holds it [`HOLD`] and releases it, every `every`.
pub(crate) async fn locker(
    coord: Coord,
    name: String,
    every: Duration,
    report: Arc<Mutex<Report>>,
) {
    let coord = coord.with_timeout(CALL_TIMEOUT);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let guard = match coord.lock(&name).await {
            Ok(g) => g,
            Err(CoordError::NotGranted { .. }) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "load: lock not taken");
                continue;
            }
        };
        let from_us = now_us();
        let until = tokio::time::Instant::now() + HOLD;
        let mut lost = false;
        while tokio::time::Instant::now() < until {
            if !guard.is_held() {
                lost = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let holding = Holding {
            token: guard.token(),
            from_us,
            to_us: now_us(),
            lost,
        };
        {
            let mut r = lock(&report);
            let c = &mut r.coord;
            keep(&mut c.holdings, &mut c.dropped, holding);
        }
        let _ = guard.unlock().await;
    }
}
