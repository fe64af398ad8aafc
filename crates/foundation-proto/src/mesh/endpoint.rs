//! One endpoint's load and health: a peak-EWMA latency estimate, calls in
//! flight, and a circuit breaker that ejects it after consecutive failures.

use std::time::{Duration, Instant};

use serde::Serialize;

/// The circuit breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Breaker {
    /// Calls flow; counting consecutive failures.
    Closed,
    /// Ejected: no calls until the back-off ends.
    Open,
    /// The back-off ended: one trial call decides (success closes, failure
    /// opens again for twice as long).
    HalfOpen,
}

/// How a call ended, as the balancer counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A reply came.
    Success,
    /// The endpoint failed or could not be reached: counts towards
    /// ejection.
    Failure,
    /// No reply within the call's time: the time taken is observed as
    /// latency (so the endpoint looks as slow as it is) but does not count
    /// towards ejection, since a deadline shorter than the endpoint's
    /// normal latency would otherwise eject healthy endpoints.
    TimedOut,
    /// The call ended for a reason that says nothing about the endpoint
    /// (the caller's own deadline passed first, a request that does not
    /// encode): neither latency nor health is recorded.
    Ignored,
}

#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    pub(crate) weight: u32,
    /// Peak-EWMA round trip, nanoseconds.
    rtt_ns: f64,
    /// When `rtt_ns` was last updated.
    stamp: Instant,
    pub(crate) in_flight: u32,
    pub(crate) breaker: Breaker,
    consecutive_failures: u32,
    /// Ejections in a row (the back-off doubles with each).
    ejections: u32,
    open_until: Option<Instant>,
    trial_in_flight: bool,
    /// Smooth weighted round-robin's running weight.
    pub(crate) current: i64,
    pub(crate) successes: u64,
    pub(crate) failures: u64,
}

/// What [`Endpoint::fail`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failed {
    /// Still closed (or ejection was not allowed).
    Counted,
    /// The breaker should open now (if the ejection cap allows).
    WantsEject,
}

impl Endpoint {
    pub(crate) fn new(weight: u32, default_rtt: Duration, now: Instant) -> Self {
        Endpoint {
            weight: weight.max(1),
            rtt_ns: default_rtt.as_nanos() as f64,
            stamp: now,
            in_flight: 0,
            breaker: Breaker::Closed,
            consecutive_failures: 0,
            ejections: 0,
            open_until: None,
            trial_in_flight: false,
            current: 0,
            successes: 0,
            failures: 0,
        }
    }

    /// The estimate as of `now`: it decays towards zero while nothing is
    /// observed, so an endpoint that was slow is tried again in time.
    pub(crate) fn rtt(&self, now: Instant, decay: Duration) -> f64 {
        let idle = now.saturating_duration_since(self.stamp).as_secs_f64();
        self.rtt_ns * (-idle / decay.as_secs_f64().max(1e-9)).exp()
    }

    /// Expected cost of one more call: latency times the queue it joins.
    pub(crate) fn cost(&self, now: Instant, decay: Duration) -> f64 {
        // An estimate of exactly zero would make every endpoint equal.
        (self.rtt(now, decay) + 1.0) * f64::from(self.in_flight + 1)
    }

    /// Records one round trip: a peak is taken at once, a faster one is
    /// averaged in with a weight that grows with the time since the last.
    pub(crate) fn observe(&mut self, rtt: Duration, now: Instant, decay: Duration) {
        let rtt = rtt.as_nanos() as f64;
        let current = self.rtt(now, decay);
        self.rtt_ns = if rtt > current {
            rtt
        } else {
            let idle = now.saturating_duration_since(self.stamp).as_secs_f64();
            let w = (-idle / decay.as_secs_f64().max(1e-9)).exp();
            current * w + rtt * (1.0 - w)
        };
        self.stamp = now;
    }

    /// Whether a call may go to it now; moves Open to HalfOpen when the
    /// back-off has ended.
    pub(crate) fn admits(&mut self, now: Instant, max_in_flight: u32) -> bool {
        if self.breaker == Breaker::Open && self.open_until.is_some_and(|t| now >= t) {
            self.breaker = Breaker::HalfOpen;
            self.trial_in_flight = false;
        }
        match self.breaker {
            Breaker::Closed => self.in_flight < max_in_flight,
            Breaker::Open => false,
            Breaker::HalfOpen => !self.trial_in_flight,
        }
    }

    pub(crate) fn start(&mut self) {
        self.in_flight += 1;
        if self.breaker == Breaker::HalfOpen {
            self.trial_in_flight = true;
        }
    }

    pub(crate) fn succeed(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.successes += 1;
        self.consecutive_failures = 0;
        if self.breaker == Breaker::HalfOpen {
            self.breaker = Breaker::Closed;
            self.ejections = 0;
            self.trial_in_flight = false;
        }
    }

    pub(crate) fn fail(&mut self, failures_to_eject: u32) -> Failed {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.failures += 1;
        self.consecutive_failures += 1;
        match self.breaker {
            Breaker::HalfOpen => Failed::WantsEject,
            Breaker::Closed if self.consecutive_failures >= failures_to_eject => Failed::WantsEject,
            _ => Failed::Counted,
        }
    }

    pub(crate) fn release(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.breaker == Breaker::HalfOpen {
            self.trial_in_flight = false;
        }
    }

    /// Opens the breaker for `base` × 2^(ejections so far), at most `max`.
    pub(crate) fn eject(&mut self, now: Instant, base: Duration, max: Duration) -> Duration {
        let factor = 1u32 << self.ejections.min(16);
        let backoff = base.saturating_mul(factor).min(max);
        self.ejections += 1;
        self.breaker = Breaker::Open;
        self.open_until = Some(now + backoff);
        self.trial_in_flight = false;
        self.consecutive_failures = 0;
        backoff
    }

    pub(crate) fn open_until(&self) -> Option<Instant> {
        self.open_until.filter(|_| self.breaker == Breaker::Open)
    }
}
