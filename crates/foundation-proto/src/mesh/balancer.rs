//! The load balancer: picks an endpoint for each call by a strategy,
//! skipping endpoints whose breaker is open, and learns from each outcome.
//!
//! Sans-IO: the caller gives `now` and says which endpoints may not be
//! used (their node is suspect or down, or this call already tried them);
//! the balancer keeps the statistics and decides.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use super::endpoint::{Breaker, Endpoint, Failed, Outcome};
use crate::process::placement::weight_of;
use crate::registry::ServiceAddr;
use crate::NodeId;

/// How the balancer picks among eligible endpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Strategy {
    /// Power of two choices on a peak-EWMA latency estimate times the calls
    /// in flight (Finagle's and Linkerd's default): two random endpoints,
    /// the cheaper one wins. Routes around slow endpoints.
    #[default]
    P2cEwma,
    /// Each eligible endpoint in turn.
    RoundRobin,
    /// In proportion to each endpoint's weight (metadata `weight`), spread
    /// evenly (smooth weighted round-robin).
    Weighted,
    /// By the call's key, rendezvous-hashed over the endpoints, so one key
    /// keeps going to one endpoint; with bounded load: an endpoint already
    /// carrying more than `load_factor` times the mean calls in flight is
    /// passed over for the key's next choice.
    ConsistentHash {
        /// At least 1.0; 1.25 is the usual choice.
        load_factor: f64,
    },
    /// Endpoints on this node when there are any, else power of two
    /// choices among the rest.
    LocalFirst,
}

/// The balancer's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct BalancerConfig {
    /// How to pick.
    pub strategy: Strategy,
    /// The latency assumed of an endpoint not yet measured.
    pub default_rtt: Duration,
    /// The latency estimate's time constant: an observation's weight, and
    /// how fast an idle estimate decays.
    pub decay: Duration,
    /// Consecutive failures that eject an endpoint.
    pub failures_to_eject: u32,
    /// The first ejection's length; each ejection in a row doubles it.
    pub ejection: Duration,
    /// The longest ejection.
    pub max_ejection: Duration,
    /// At most this percentage of the endpoints is ejected at once (one
    /// always may be).
    pub max_ejected_percent: u8,
    /// Calls in flight to one endpoint beyond which it takes no more.
    pub max_in_flight: u32,
}

impl Default for BalancerConfig {
    fn default() -> Self {
        BalancerConfig {
            strategy: Strategy::P2cEwma,
            default_rtt: Duration::from_millis(1),
            decay: Duration::from_secs(10),
            failures_to_eject: 5,
            ejection: Duration::from_secs(1),
            max_ejection: Duration::from_secs(30),
            max_ejected_percent: 50,
            max_in_flight: 10_000,
        }
    }
}

/// Why no endpoint was picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoEndpoint {
    /// Nothing matches the criteria (or everything was excluded).
    #[error("no endpoint is available")]
    None,
    /// Every usable endpoint is ejected or full: failing fast instead of
    /// queueing behind them.
    #[error("every endpoint is ejected or at its limit of calls in flight")]
    AllUnavailable,
}

/// One endpoint as the balancer sees it (`GET /mesh`, metrics).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EndpointView {
    /// The service.
    pub addr: ServiceAddr,
    /// Its weight.
    pub weight: u32,
    /// The latency estimate, milliseconds.
    pub ewma_ms: f64,
    /// Calls in flight.
    pub in_flight: u32,
    /// Breaker state.
    pub breaker: Breaker,
    /// Time left of an ejection, milliseconds.
    pub ejected_for_ms: Option<u64>,
    /// Calls that succeeded.
    pub successes: u64,
    /// Calls that failed.
    pub failures: u64,
}

/// Picks endpoints and learns from outcomes. One per mesh client.
///
/// ```
/// use std::time::{Duration, Instant};
/// use foundation_proto::mesh::{Balancer, BalancerConfig, Outcome};
/// use foundation_proto::registry::ServiceAddr;
/// use foundation_proto::NodeId;
///
/// let (fast, slow) = (ServiceAddr { node: NodeId(1), local: 1 }, ServiceAddr { node: NodeId(2), local: 1 });
/// let mut b = Balancer::new(NodeId(9), BalancerConfig::default(), 7);
/// let t0 = Instant::now();
/// b.set_endpoints([(fast, 1), (slow, 1)], t0);
/// // Teach it: `fast` answers in 1 ms, `slow` in 20 ms.
/// for (addr, ms) in [(fast, 1), (slow, 20)] {
///     b.started(addr);
///     b.finish(addr, Duration::from_millis(ms), Outcome::Success, t0);
/// }
/// let picked = b.pick(t0, None, |_| false).unwrap();
/// assert_eq!(picked, fast);
/// ```
#[derive(Debug)]
pub struct Balancer {
    local: NodeId,
    config: BalancerConfig,
    endpoints: BTreeMap<ServiceAddr, Endpoint>,
    cursor: usize,
    rng: SmallRng,
    /// The eligible endpoints of the pick under way (kept between picks:
    /// a pick allocates nothing).
    scratch: Vec<ServiceAddr>,
}

impl Balancer {
    /// A balancer for a client on `local`, its RNG seeded by `seed`.
    pub fn new(local: NodeId, config: BalancerConfig, seed: u64) -> Self {
        Balancer {
            local,
            config,
            endpoints: BTreeMap::new(),
            cursor: 0,
            rng: SmallRng::seed_from_u64(seed),
            scratch: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &BalancerConfig {
        &self.config
    }

    /// Replaces the endpoint set (from discovery) with `(addr, weight)`
    /// pairs; endpoints that stay keep their statistics.
    pub fn set_endpoints(
        &mut self,
        endpoints: impl IntoIterator<Item = (ServiceAddr, u32)>,
        now: Instant,
    ) {
        let mut next = BTreeMap::new();
        for (addr, weight) in endpoints {
            let mut e = self
                .endpoints
                .remove(&addr)
                .unwrap_or_else(|| Endpoint::new(weight, self.config.default_rtt, now));
            e.weight = weight.max(1);
            next.insert(addr, e);
        }
        self.endpoints = next;
    }

    /// How many endpoints it knows.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Whether it knows none.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// Picks an endpoint for one call, skipping those `skip` names. `key`
    /// is the request's key for consistent hashing (ignored otherwise).
    /// Call [`Balancer::started`] when the call goes out.
    pub fn pick(
        &mut self,
        now: Instant,
        key: Option<&[u8]>,
        skip: impl Fn(&ServiceAddr) -> bool,
    ) -> Result<ServiceAddr, NoEndpoint> {
        let max = self.config.max_in_flight;
        let mut usable = 0usize;
        let mut eligible = std::mem::take(&mut self.scratch);
        eligible.clear();
        for (addr, e) in self.endpoints.iter_mut() {
            if skip(addr) {
                continue;
            }
            usable += 1;
            if e.admits(now, max) {
                eligible.push(*addr);
            }
        }
        let picked = if eligible.is_empty() {
            Err(if usable == 0 {
                NoEndpoint::None
            } else {
                NoEndpoint::AllUnavailable
            })
        } else {
            Ok(self.choose(&eligible, now, key))
        };
        self.scratch = eligible;
        picked
    }

    /// One of `eligible` (not empty) by the strategy.
    fn choose(
        &mut self,
        eligible: &[ServiceAddr],
        now: Instant,
        key: Option<&[u8]>,
    ) -> ServiceAddr {
        match self.config.strategy {
            Strategy::P2cEwma => self.p2c(eligible, now),
            Strategy::RoundRobin => {
                self.cursor = self.cursor.wrapping_add(1);
                eligible[self.cursor % eligible.len()]
            }
            Strategy::Weighted => self.weighted(eligible),
            Strategy::ConsistentHash { load_factor } => {
                self.hashed(eligible, key.unwrap_or_default(), load_factor)
            }
            Strategy::LocalFirst => {
                let local: Vec<ServiceAddr> = eligible
                    .iter()
                    .copied()
                    .filter(|a| a.node == self.local)
                    .collect();
                if local.is_empty() {
                    self.p2c(eligible, now)
                } else {
                    self.p2c(&local, now)
                }
            }
        }
    }

    fn p2c(&mut self, eligible: &[ServiceAddr], now: Instant) -> ServiceAddr {
        if eligible.len() == 1 {
            return eligible[0];
        }
        let i = self.rng.random_range(0..eligible.len());
        let mut j = self.rng.random_range(0..eligible.len() - 1);
        if j >= i {
            j += 1;
        }
        let decay = self.config.decay;
        let cost = |a: &ServiceAddr| {
            self.endpoints
                .get(a)
                .map_or(f64::MAX, |e| e.cost(now, decay))
        };
        let (a, b) = (eligible[i], eligible[j]);
        if cost(&b) < cost(&a) {
            b
        } else {
            a
        }
    }

    fn weighted(&mut self, eligible: &[ServiceAddr]) -> ServiceAddr {
        let mut total = 0i64;
        let mut best: Option<(i64, ServiceAddr)> = None;
        for addr in eligible {
            if let Some(e) = self.endpoints.get_mut(addr) {
                e.current += i64::from(e.weight);
                total += i64::from(e.weight);
                if best.is_none_or(|(c, _)| e.current > c) {
                    best = Some((e.current, *addr));
                }
            }
        }
        let (_, addr) = best.unwrap_or((0, eligible[0]));
        if let Some(e) = self.endpoints.get_mut(&addr) {
            e.current -= total;
        }
        addr
    }

    fn hashed(&self, eligible: &[ServiceAddr], key: &[u8], load_factor: f64) -> ServiceAddr {
        let mut ranked: Vec<(u64, ServiceAddr)> = eligible
            .iter()
            .map(|a| (endpoint_weight(key, a), *a))
            .collect();
        ranked.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        let in_flight: u64 = eligible
            .iter()
            .filter_map(|a| self.endpoints.get(a))
            .map(|e| u64::from(e.in_flight))
            .sum();
        let mean = (in_flight + 1) as f64 / eligible.len() as f64;
        let cap = (load_factor.max(1.0) * mean).ceil();
        ranked
            .iter()
            .find(|(_, a)| {
                self.endpoints
                    .get(a)
                    .is_some_and(|e| f64::from(e.in_flight) < cap)
            })
            .map_or(ranked[0].1, |(_, a)| *a)
    }

    /// A call to `addr` went out.
    pub fn started(&mut self, addr: ServiceAddr) {
        if let Some(e) = self.endpoints.get_mut(&addr) {
            e.start();
        }
    }

    /// A call to `addr` ended after `rtt` with `outcome`. Returns the
    /// ejection's length when this failure ejected the endpoint.
    pub fn finish(
        &mut self,
        addr: ServiceAddr,
        rtt: Duration,
        outcome: Outcome,
        now: Instant,
    ) -> Option<Duration> {
        let decay = self.config.decay;
        let ejected_now = self.ejected();
        let cap = self.ejection_cap();
        let c = &self.config;
        let e = self.endpoints.get_mut(&addr)?;
        match outcome {
            Outcome::Success => {
                e.observe(rtt, now, decay);
                e.succeed();
                None
            }
            Outcome::Ignored => {
                e.release();
                None
            }
            Outcome::TimedOut => {
                e.observe(rtt, now, decay);
                e.release();
                None
            }
            Outcome::Failure => {
                // A failure costs at least the current estimate: a fast
                // error must not make the endpoint look attractive.
                e.observe(rtt.max(c.default_rtt), now, decay);
                let reopen = e.breaker != Breaker::Closed;
                match e.fail(c.failures_to_eject) {
                    Failed::WantsEject if reopen || ejected_now < cap => {
                        Some(e.eject(now, c.ejection, c.max_ejection))
                    }
                    _ => None,
                }
            }
        }
    }

    fn ejected(&self) -> usize {
        self.endpoints
            .values()
            .filter(|e| e.breaker != Breaker::Closed)
            .count()
    }

    fn ejection_cap(&self) -> usize {
        let pct = usize::from(self.config.max_ejected_percent.min(100));
        (self.endpoints.len() * pct / 100).max(1)
    }

    /// Every endpoint's state as of `now`.
    pub fn view(&self, now: Instant) -> Vec<EndpointView> {
        self.endpoints
            .iter()
            .map(|(addr, e)| EndpointView {
                addr: *addr,
                weight: e.weight,
                ewma_ms: e.rtt(now, self.config.decay) / 1e6,
                in_flight: e.in_flight,
                breaker: e.breaker,
                ejected_for_ms: e
                    .open_until()
                    .map(|t| t.saturating_duration_since(now).as_millis() as u64),
                successes: e.successes,
                failures: e.failures,
            })
            .collect()
    }
}

/// The rendezvous weight of endpoint `addr` for `key`.
fn endpoint_weight(key: &[u8], addr: &ServiceAddr) -> u64 {
    weight_of(key, NodeId(addr.node.0 ^ addr.local.rotate_left(32)))
}
