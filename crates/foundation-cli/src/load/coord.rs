//! Coordination load for tests on real processes (`foundation node
//! --coord-counter NAME`, `--coord-lock NAME`, `--coord-journal PATH`):
//! what a test needs to check linearizability and mutual exclusion across
//! processes, also processes that are killed.
//!
//! Every event is appended to the journal as one JSON line the moment it
//! happens, before the next step: an operation's invocation before it is
//! sent, its outcome when it comes back, a lock holding when it begins and
//! when it ends. A process killed mid-operation leaves an invocation
//! without an outcome, which the checker reads as an operation that may or
//! may not have taken effect, as it must.
//!
//! Times are microseconds of the system clock. The processes of a test run
//! on one machine (in network namespaces), so they share that clock and
//! their journals merge.
//!
//! - The counter client alternates an add of 1 and a linearizable read.
//! - The lock client takes the lock, holds it a while, watching that it is
//!   still held, and releases it.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foundation::coord::{Coord, CoordError};
use serde::Serialize;

/// Lines written at most (a bound on the journal in a long run).
const MAX_LINES: u64 = 200_000;
/// How long a holder keeps the lock.
const HOLD: Duration = Duration::from_millis(300);
/// Each coordination call's timeout.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// One line of the journal.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
enum Event {
    /// A counter operation is sent: `add` (of 1) or `read`.
    Invoke {
        id: u64,
        call: &'static str,
        at: u64,
    },
    /// Its outcome: `ok` (with the value after the add, or the value
    /// read), `failed` (the state is unchanged) or `unknown`.
    Return {
        id: u64,
        outcome: &'static str,
        value: Option<i64>,
        at: u64,
    },
    /// This process holds the lock, with this fencing token.
    Held { id: u64, token: u64, at: u64 },
    /// It stopped using the lock: began releasing it, or saw it lost (its
    /// session lapsed).
    Released { id: u64, lost: bool, at: u64 },
    /// The load stopped: an operation or holding still open ends here.
    End { at: u64 },
}

/// The journal file, shared by the clients of one process.
#[derive(Clone)]
pub(crate) struct Journal {
    file: Arc<Mutex<(std::fs::File, u64)>>,
}

impl Journal {
    /// Creates (or truncates) the journal at `path`.
    pub(crate) fn create(path: &Path) -> std::io::Result<Journal> {
        let file = std::fs::File::create(path)?;
        Ok(Journal {
            file: Arc::new(Mutex::new((file, 0))),
        })
    }

    /// Notes that the load stopped (its clients were aborted).
    pub(crate) fn end(&self) {
        self.write(&Event::End { at: now_us() });
    }

    fn write(&self, ev: &Event) {
        let Ok(mut line) = serde_json::to_vec(ev) else {
            return;
        };
        line.push(b'\n');
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if f.1 >= MAX_LINES {
            return;
        }
        f.1 += 1;
        // One write per line: a killed process leaves whole lines (the
        // page cache keeps them; no fsync needed short of a machine crash).
        if let Err(e) = f.0.write_all(&line) {
            tracing::warn!(error = %e, "load: cannot write the coordination journal");
        }
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Adds 1 to counter `name` and reads it, in turns, every `every`.
pub(crate) async fn counter(coord: Coord, name: String, every: Duration, journal: Journal) {
    let coord = coord.with_timeout(CALL_TIMEOUT);
    let mut tick = tokio::time::interval(every);
    for id in 0u64.. {
        tick.tick().await;
        let add = id % 2 == 0;
        let call = if add { "add" } else { "read" };
        journal.write(&Event::Invoke {
            id,
            call,
            at: now_us(),
        });
        let r = if add {
            coord.add(&name, 1).await
        } else {
            coord.counter(&name).await
        };
        let at = now_us();
        let (outcome, value) = match r {
            Ok(v) => ("ok", Some(v)),
            Err(e) if e.outcome_known() => ("failed", None),
            Err(_) => ("unknown", None),
        };
        journal.write(&Event::Return {
            id,
            outcome,
            value,
            at,
        });
    }
}

/// Takes lock `name`, holds it [`HOLD`] and releases it, every `every`.
pub(crate) async fn locker(coord: Coord, name: String, every: Duration, journal: Journal) {
    let coord = coord.with_timeout(CALL_TIMEOUT);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for id in 0u64.. {
        tick.tick().await;
        let guard = match coord.lock(&name).await {
            Ok(g) => g,
            Err(CoordError::NotGranted { .. }) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "load: lock not taken");
                continue;
            }
        };
        journal.write(&Event::Held {
            id,
            token: guard.token(),
            at: now_us(),
        });
        let until = tokio::time::Instant::now() + HOLD;
        let mut lost = false;
        while tokio::time::Instant::now() < until {
            if !guard.is_held() {
                lost = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        journal.write(&Event::Released {
            id,
            lost,
            at: now_us(),
        });
        let _ = guard.unlock().await;
    }
}
