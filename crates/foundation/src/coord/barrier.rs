//! Barriers and semaphores, built from counters and locks in reserved
//! name spaces.

use std::time::Duration;

use tokio::time::Instant;

use super::kv::user_name;
use super::lock::LockGuard;
use super::{Coord, CoordError};

/// A one-shot barrier: [`Barrier::wait`] returns once `n` parties have
/// arrived. Use a new name for each round.
#[derive(Debug, Clone)]
pub struct Barrier {
    coord: Coord,
    name: String,
    n: i64,
}

impl Barrier {
    /// Arrives, then waits (up to the handle's timeout) for the others;
    /// answers this party's arrival order, from 1.
    pub async fn wait(self) -> Result<i64, CoordError> {
        user_name(&self.name)?;
        let start = Instant::now();
        let counter = format!("@barrier/{}", self.name);
        let arrived = self.coord.add_raw(&counter, 1).await?;
        let mut applied = self.coord.shared.replica.watch();
        let deadline = start + self.coord.timeout;
        loop {
            if self.coord.shared.replica.read(|s| s.counter(&counter)) >= self.n {
                return Ok(arrived);
            }
            tokio::select! {
                _ = applied.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(CoordError::TimedOut {
                        what: format!("barrier {:?} ({} parties)", self.name, self.n),
                        waited: self.coord.timeout,
                    });
                }
            }
        }
    }
}

/// A counting semaphore of `permits` slots, each a fenced lock.
#[derive(Debug, Clone)]
pub struct Semaphore {
    coord: Coord,
    name: String,
    permits: usize,
}

/// One held slot of a [`Semaphore`]; released on drop, like a lock.
#[derive(Debug)]
#[must_use = "the permit is released when dropped"]
pub struct Permit {
    /// The slot's lock (its token fences like any lock's).
    pub guard: LockGuard,
    /// Which slot.
    pub slot: usize,
}

impl Semaphore {
    fn slot(&self, i: usize) -> String {
        format!("@semaphore/{}/{i}", self.name)
    }

    /// Takes a permit, waiting up to the handle's timeout.
    pub async fn acquire(&self) -> Result<Permit, CoordError> {
        user_name(&self.name)?;
        let deadline = Instant::now() + self.coord.timeout;
        let mut applied = self.coord.shared.replica.watch();
        loop {
            let free: Vec<usize> = self.coord.shared.replica.read(|s| {
                (0..self.permits)
                    .filter(|i| s.holder(&self.slot(*i)).is_none())
                    .collect()
            });
            for i in free {
                if let Some(guard) = self.coord.acquire(&self.slot(i), Duration::ZERO).await? {
                    return Ok(Permit { guard, slot: i });
                }
            }
            tokio::select! {
                _ = applied.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(CoordError::TimedOut {
                        what: format!("semaphore {:?} ({} permits)", self.name, self.permits),
                        waited: self.coord.timeout,
                    });
                }
            }
        }
    }
}

impl Coord {
    /// Barrier `name` for `n` parties.
    pub fn barrier(&self, name: &str, n: usize) -> Barrier {
        Barrier {
            coord: self.clone(),
            name: name.to_owned(),
            n: n as i64,
        }
    }

    /// Semaphore `name` with `permits` slots (every user must agree on
    /// the count).
    pub fn semaphore(&self, name: &str, permits: usize) -> Semaphore {
        Semaphore {
            coord: self.clone(),
            name: name.to_owned(),
            permits: permits.max(1),
        }
    }
}
