//! The retry budget: retries may add at most a fixed ratio to the normal
//! traffic, plus a small reserve per second, so retries cannot multiply
//! the load on a cluster that is already failing (Finagle's rule).

use std::time::{Duration, Instant};

/// The retry budget's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetConfig {
    /// Retries allowed per first attempt (0.2: one retry per five calls).
    pub ratio: f64,
    /// Retries allowed per second however few calls there are.
    pub min_per_second: f64,
    /// Most retries saved up from past calls.
    pub max_balance: f64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            ratio: 0.2,
            min_per_second: 10.0,
            max_balance: 100.0,
        }
    }
}

/// A token bucket filled by calls and by time, drained by retries.
///
/// ```
/// use std::time::Instant;
/// use foundation_proto::mesh::{BudgetConfig, RetryBudget};
///
/// let now = Instant::now();
/// let mut budget = RetryBudget::new(BudgetConfig { ratio: 0.5, min_per_second: 0.0, max_balance: 10.0 }, now);
/// budget.deposit();
/// budget.deposit();
/// assert!(budget.withdraw(now)); // two calls earned one retry
/// assert!(!budget.withdraw(now));
/// ```
#[derive(Clone, Debug)]
pub struct RetryBudget {
    config: BudgetConfig,
    balance: f64,
    reserve: f64,
    refilled: Instant,
}

impl RetryBudget {
    /// An empty budget; the reserve starts full.
    pub fn new(config: BudgetConfig, now: Instant) -> Self {
        RetryBudget {
            config,
            balance: 0.0,
            reserve: config.min_per_second.max(0.0),
            refilled: now,
        }
    }

    /// A first attempt went out: earns `ratio` of a retry.
    pub fn deposit(&mut self) {
        self.balance = (self.balance + self.config.ratio.max(0.0)).min(self.config.max_balance);
    }

    /// Takes one retry if the budget allows it.
    pub fn withdraw(&mut self, now: Instant) -> bool {
        let per_s = self.config.min_per_second.max(0.0);
        let elapsed = now
            .saturating_duration_since(self.refilled)
            .min(Duration::from_secs(3600));
        self.reserve = (self.reserve + elapsed.as_secs_f64() * per_s).min(per_s);
        self.refilled = now;
        if self.balance >= 1.0 {
            self.balance -= 1.0;
            true
        } else if self.reserve >= 1.0 {
            self.reserve -= 1.0;
            true
        } else {
            false
        }
    }

    /// Retries available now from calls (the reserve aside).
    pub fn balance(&self) -> f64 {
        self.balance
    }
}
