//! The balancer against simulated latencies, its breaker, the retry
//! budget, metadata bounds and criteria.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::{Duration, Instant};

use proptest::prelude::{any, prop_assert, prop_assert_eq, prop_assert_ne, prop_oneof, proptest};
use proptest::strategy::Strategy as _;

use super::*;
use crate::registry::{Entry, EntryKind, ServiceAddr};
use crate::NodeId;

fn ep(node: u64, local: u64) -> ServiceAddr {
    ServiceAddr {
        node: NodeId(node),
        local,
    }
}

fn balancer(strategy: Strategy, endpoints: &[ServiceAddr], now: Instant) -> Balancer {
    let config = BalancerConfig {
        strategy,
        ..BalancerConfig::default()
    };
    let mut b = Balancer::new(NodeId(100), config, 42);
    b.set_endpoints(endpoints.iter().map(|a| (*a, 1)), now);
    b
}

/// `callers` concurrent callers, each making calls back to back for
/// `calls` calls in all; `latency` gives each endpoint's service time.
/// Returns the calls each endpoint got and the 99th percentile latency.
fn simulate(
    b: &mut Balancer,
    callers: usize,
    calls: usize,
    latency: impl Fn(ServiceAddr) -> Duration,
    t0: Instant,
) -> (BTreeMap<ServiceAddr, usize>, Duration) {
    let mut got = BTreeMap::new();
    let mut latencies = Vec::with_capacity(calls);
    // (finish time, caller) of calls in flight.
    let mut pending: BinaryHeap<Reverse<(Instant, usize, ServiceAddr, Instant)>> =
        BinaryHeap::new();
    let mut now = t0;
    let mut sent = 0;
    for caller in 0..callers {
        let addr = b.pick(now, None, |_| false).expect("an endpoint");
        b.started(addr);
        pending.push(Reverse((now + latency(addr), caller, addr, now)));
        sent += 1;
    }
    while let Some(Reverse((done, caller, addr, began))) = pending.pop() {
        now = done;
        b.finish(addr, done - began, Outcome::Success, now);
        *got.entry(addr).or_insert(0) += 1;
        latencies.push(done - began);
        if sent < calls {
            let next = b.pick(now, None, |_| false).expect("an endpoint");
            b.started(next);
            pending.push(Reverse((now + latency(next), caller, next, now)));
            sent += 1;
        }
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    (got, p99)
}

#[test]
fn p2c_ewma_routes_around_a_slow_endpoint_and_round_robin_does_not() {
    let t0 = Instant::now();
    let eps = [ep(1, 1), ep(2, 1), ep(3, 1)];
    let slow = eps[2];
    // Service time: 1 ms per call on a healthy endpoint, processed one at
    // a time would be a queue; here each call simply takes its time.
    let latency = |a: ServiceAddr| {
        if a == slow {
            Duration::from_millis(21)
        } else {
            Duration::from_millis(1)
        }
    };
    let mut p2c = balancer(Strategy::P2cEwma, &eps, t0);
    let (got, p99_p2c) = simulate(&mut p2c, 8, 30_000, latency, t0);
    let slow_share = got.get(&slow).copied().unwrap_or(0) as f64 / 30_000.0;
    assert!(
        slow_share < 0.02,
        "p2c sent {:.1}% of calls to the slow endpoint",
        slow_share * 100.0
    );
    assert!(p99_p2c < Duration::from_millis(21), "p2c p99 {p99_p2c:?}");

    let mut rr = balancer(Strategy::RoundRobin, &eps, t0);
    let (got, p99_rr) = simulate(&mut rr, 8, 30_000, latency, t0);
    let slow_share = got.get(&slow).copied().unwrap_or(0) as f64 / 30_000.0;
    assert!(
        (0.30..0.37).contains(&slow_share),
        "round-robin share {slow_share}"
    );
    assert_eq!(p99_rr, Duration::from_millis(21));
}

#[test]
fn a_slow_endpoint_is_tried_again_once_its_estimate_decays() {
    let t0 = Instant::now();
    let eps = [ep(1, 1), ep(2, 1)];
    let mut b = balancer(Strategy::P2cEwma, &eps, t0);
    // eps[1] was slow once; eps[0] is fast and busy.
    b.started(eps[1]);
    b.finish(eps[1], Duration::from_millis(50), Outcome::Success, t0);
    b.started(eps[0]);
    b.finish(eps[0], Duration::from_millis(2), Outcome::Success, t0);
    assert_eq!(b.pick(t0, None, |_| false), Ok(eps[0]));
    // A minute without news of eps[1]: its estimate decayed below eps[0]'s
    // (which was refreshed just now).
    let later = t0 + Duration::from_secs(60);
    b.started(eps[0]);
    b.finish(eps[0], Duration::from_millis(2), Outcome::Success, later);
    assert_eq!(b.pick(later, None, |_| false), Ok(eps[1]));
}

#[test]
fn consecutive_failures_eject_then_a_half_open_trial_decides() {
    let t0 = Instant::now();
    let eps = [ep(1, 1), ep(2, 1)];
    let bad = eps[1];
    let mut b = balancer(Strategy::RoundRobin, &eps, t0);
    let c = b.config().clone();
    let mut ejected = None;
    for _ in 0..c.failures_to_eject {
        b.started(bad);
        ejected = b.finish(bad, Duration::from_millis(1), Outcome::Failure, t0);
    }
    assert_eq!(ejected, Some(c.ejection), "ejected after the 5th failure");
    for _ in 0..20 {
        assert_eq!(b.pick(t0, None, |_| false), Ok(eps[0]));
    }
    // Only the ejected endpoint is usable: fail fast.
    assert_eq!(
        b.pick(t0, None, |a| *a == eps[0]),
        Err(NoEndpoint::AllUnavailable)
    );
    // The back-off ended: one trial at a time.
    let t1 = t0 + c.ejection;
    assert_eq!(b.pick(t1, None, |a| *a == eps[0]), Ok(bad));
    b.started(bad);
    assert_eq!(
        b.pick(t1, None, |a| *a == eps[0]),
        Err(NoEndpoint::AllUnavailable),
        "a second call waits for the trial"
    );
    // The trial fails: ejected again for twice as long.
    assert_eq!(
        b.finish(bad, Duration::from_millis(1), Outcome::Failure, t1),
        Some(c.ejection * 2)
    );
    let t2 = t1 + c.ejection * 2;
    assert_eq!(b.pick(t2, None, |a| *a == eps[0]), Ok(bad));
    b.started(bad);
    assert_eq!(
        b.finish(bad, Duration::from_millis(1), Outcome::Success, t2),
        None
    );
    let view = b.view(t2);
    assert!(view.iter().all(|v| v.breaker == Breaker::Closed));
    // Closed again: a single failure does not eject.
    b.started(bad);
    assert_eq!(
        b.finish(bad, Duration::from_millis(1), Outcome::Failure, t2),
        None
    );
}

#[test]
fn at_most_the_configured_share_of_endpoints_is_ejected() {
    let t0 = Instant::now();
    let eps = [ep(1, 1), ep(2, 1), ep(3, 1), ep(4, 1)];
    let mut b = balancer(Strategy::RoundRobin, &eps, t0);
    let mut ejections = 0;
    for a in eps {
        for _ in 0..10 {
            b.started(a);
            if b.finish(a, Duration::from_millis(1), Outcome::Failure, t0)
                .is_some()
            {
                ejections += 1;
            }
        }
    }
    assert_eq!(ejections, 2, "50% of 4 endpoints");
    let open = b
        .view(t0)
        .iter()
        .filter(|v| v.breaker == Breaker::Open)
        .count();
    assert_eq!(open, 2);
    assert!(b.pick(t0, None, |_| false).is_ok());
}

#[test]
fn ignored_outcomes_touch_neither_latency_nor_health() {
    let t0 = Instant::now();
    let eps = [ep(1, 1)];
    let mut b = balancer(Strategy::P2cEwma, &eps, t0);
    for _ in 0..50 {
        b.started(eps[0]);
        b.finish(eps[0], Duration::from_secs(5), Outcome::Ignored, t0);
    }
    let v = &b.view(t0)[0];
    assert_eq!(v.breaker, Breaker::Closed);
    assert_eq!(v.in_flight, 0);
    assert!((v.ewma_ms - 1.0).abs() < 1e-6, "{}", v.ewma_ms);
}

#[test]
fn weighted_picks_in_proportion_and_evenly() {
    let t0 = Instant::now();
    let eps = [ep(1, 1), ep(2, 1), ep(3, 1)];
    let mut b = Balancer::new(
        NodeId(100),
        BalancerConfig {
            strategy: Strategy::Weighted,
            ..BalancerConfig::default()
        },
        1,
    );
    b.set_endpoints([(eps[0], 1), (eps[1], 2), (eps[2], 3)], t0);
    let mut got = BTreeMap::new();
    let mut run = (None, 0, 0);
    for _ in 0..600 {
        let a = b.pick(t0, None, |_| false).expect("an endpoint");
        *got.entry(a).or_insert(0) += 1;
        run = if run.0 == Some(a) {
            (run.0, run.1 + 1, run.2.max(run.1 + 1))
        } else {
            (Some(a), 1, run.2.max(1))
        };
    }
    assert_eq!(got[&eps[0]], 100);
    assert_eq!(got[&eps[1]], 200);
    assert_eq!(got[&eps[2]], 300);
    assert!(run.2 <= 2, "smooth: at most 2 in a row, saw {}", run.2);
}

#[test]
fn consistent_hashing_keeps_a_key_on_one_endpoint_within_its_load_bound() {
    let t0 = Instant::now();
    let eps: Vec<ServiceAddr> = (1..=5).map(|n| ep(n, 1)).collect();
    let mut b = balancer(Strategy::ConsistentHash { load_factor: 1.25 }, &eps, t0);
    let first = b.pick(t0, Some(b"user-17"), |_| false).expect("one");
    for _ in 0..20 {
        assert_eq!(b.pick(t0, Some(b"user-17"), |_| false), Ok(first));
    }
    // Keys spread over the endpoints.
    let spread: std::collections::BTreeSet<ServiceAddr> = (0..200)
        .map(|k| {
            b.pick(t0, Some(format!("k{k}").as_bytes()), |_| false)
                .expect("one")
        })
        .collect();
    assert_eq!(spread.len(), 5);
    // Load the key's endpoint far past the mean: the key moves, and only
    // for as long as the load lasts.
    for _ in 0..10 {
        b.started(first);
    }
    let second = b.pick(t0, Some(b"user-17"), |_| false).expect("one");
    assert_ne!(second, first);
    for _ in 0..10 {
        b.finish(first, Duration::from_millis(1), Outcome::Success, t0);
    }
    assert_eq!(b.pick(t0, Some(b"user-17"), |_| false), Ok(first));
    // Removing another endpoint does not move the key.
    let others: Vec<ServiceAddr> = eps.iter().copied().filter(|a| *a != second).collect();
    b.set_endpoints(others.iter().map(|a| (*a, 1)), t0);
    assert_eq!(b.pick(t0, Some(b"user-17"), |_| false), Ok(first));
}

#[test]
fn local_first_prefers_this_node_and_falls_back() {
    let t0 = Instant::now();
    let eps = [ep(1, 1), ep(100, 3), ep(2, 1)];
    let mut b = balancer(Strategy::LocalFirst, &eps, t0);
    for _ in 0..20 {
        assert_eq!(b.pick(t0, None, |_| false), Ok(eps[1]));
    }
    let other = b.pick(t0, None, |a| a.node == NodeId(100)).expect("one");
    assert_ne!(other.node, NodeId(100));
}

#[test]
fn skipped_endpoints_are_never_picked() {
    let t0 = Instant::now();
    let eps = [ep(1, 1), ep(2, 1), ep(3, 1)];
    for strategy in [
        Strategy::P2cEwma,
        Strategy::RoundRobin,
        Strategy::Weighted,
        Strategy::ConsistentHash { load_factor: 1.25 },
        Strategy::LocalFirst,
    ] {
        let mut b = balancer(strategy, &eps, t0);
        for k in 0..50u32 {
            let a = b
                .pick(t0, Some(&k.to_le_bytes()), |a| a.node == NodeId(2))
                .expect("one");
            assert_ne!(a.node, NodeId(2), "{strategy:?}");
        }
        assert_eq!(b.pick(t0, None, |_| true), Err(NoEndpoint::None));
    }
    let mut empty = balancer(Strategy::P2cEwma, &[], t0);
    assert_eq!(empty.pick(t0, None, |_| false), Err(NoEndpoint::None));
}

#[test]
fn a_full_endpoint_takes_no_more_calls() {
    let t0 = Instant::now();
    let eps = [ep(1, 1)];
    let mut b = Balancer::new(
        NodeId(100),
        BalancerConfig {
            max_in_flight: 2,
            ..BalancerConfig::default()
        },
        3,
    );
    b.set_endpoints(eps.iter().map(|a| (*a, 1)), t0);
    b.started(eps[0]);
    b.started(eps[0]);
    assert_eq!(b.pick(t0, None, |_| false), Err(NoEndpoint::AllUnavailable));
    b.finish(eps[0], Duration::from_millis(1), Outcome::Success, t0);
    assert_eq!(b.pick(t0, None, |_| false), Ok(eps[0]));
}

#[test]
fn new_endpoint_sets_keep_the_statistics_of_those_that_stay() {
    let t0 = Instant::now();
    let eps = [ep(1, 1), ep(2, 1)];
    let mut b = balancer(Strategy::P2cEwma, &eps, t0);
    b.started(eps[0]);
    b.finish(eps[0], Duration::from_millis(30), Outcome::Success, t0);
    b.started(eps[0]);
    b.set_endpoints([(eps[0], 4), (ep(3, 1), 1)], t0);
    let view = b.view(t0);
    assert_eq!(view.len(), 2);
    assert_eq!(view[0].addr, eps[0]);
    assert_eq!(view[0].in_flight, 1);
    assert_eq!(view[0].weight, 4);
    assert!((view[0].ewma_ms - 30.0).abs() < 1e-6);
    assert_eq!(view[1].addr, ep(3, 1));
}

#[test]
fn the_retry_budget_caps_retries_to_its_ratio_plus_the_reserve() {
    let t0 = Instant::now();
    let config = BudgetConfig {
        ratio: 0.2,
        min_per_second: 10.0,
        max_balance: 1000.0,
    };
    let mut budget = RetryBudget::new(config, t0);
    let mut retries = 0;
    // 1,000 calls within one second, every one wanting a retry.
    for i in 0..1000u64 {
        let now = t0 + Duration::from_micros(i * 1000);
        budget.deposit();
        if budget.withdraw(now) {
            retries += 1;
        }
    }
    // 0.2 per call, plus at most the reserve's 10 and 10 more refilled
    // over the second.
    assert!(retries <= 220, "{retries} retries");
    assert!(retries >= 200, "{retries} retries");
    // With no calls, only the reserve refills: 10 per second.
    let later = t0 + Duration::from_secs(100);
    let mut idle = 0;
    while budget.withdraw(later) {
        idle += 1;
        assert!(idle <= 1000);
    }
    assert_eq!(idle, 10);
    assert!(!budget.withdraw(later + Duration::from_millis(50)));
    assert!(budget.withdraw(later + Duration::from_millis(100)));
}

#[test]
fn the_retry_budget_balance_is_bounded() {
    let t0 = Instant::now();
    let mut budget = RetryBudget::new(BudgetConfig::default(), t0);
    for _ in 0..100_000 {
        budget.deposit();
    }
    assert_eq!(budget.balance(), BudgetConfig::default().max_balance);
}

#[test]
fn metadata_is_bounded_and_its_version_must_parse() {
    assert!(ServiceMeta::new().validate().is_ok());
    assert!(matches!(
        ServiceMeta::new().version("1.2").validate(),
        Err(MetaError::Version { .. })
    ));
    let mut many = ServiceMeta::new();
    for i in 0..=MAX_CAPABILITIES {
        many = many.capability(&format!("c{i}"));
    }
    assert!(matches!(many.validate(), Err(MetaError::TooLarge(_))));
    let long = ServiceMeta::new().with("k", &"x".repeat(MAX_META_ITEM_LEN + 1));
    assert!(matches!(long.validate(), Err(MetaError::TooLarge(_))));
    assert_eq!(ServiceMeta::new().weight(), 1);
    assert_eq!(ServiceMeta::new().with("weight", "7").weight(), 7);
    assert_eq!(ServiceMeta::new().with("weight", "0").weight(), 1);
    assert_eq!(ServiceMeta::new().with("weight", "x").weight(), 1);
    assert_eq!(
        ServiceMeta::new().with("weight", "99999").weight(),
        MAX_WEIGHT
    );
}

fn entry(kind: EntryKind, name: &str, meta: ServiceMeta) -> Entry {
    Entry {
        name: name.into(),
        kind,
        service: ep(1, 1),
        protocol: "P".into(),
        registered_at: 0,
        meta,
    }
}

#[test]
fn criteria_match_name_version_capabilities_and_role() {
    let meta = ServiceMeta::new()
        .version("2.1.0")
        .capability("gpu")
        .capability("eu");
    let e = entry(EntryKind::Group, "resize", meta.clone());
    let roles = vec!["worker".to_owned()];
    assert!(Criteria::name("resize").matches(&e, &[]));
    assert!(!Criteria::name("other").matches(&e, &[]));
    let v2 = Criteria::name("resize").version(">=2, <3").expect("parses");
    assert!(v2.matches(&e, &[]));
    let v1 = Criteria::name("resize").version("^1").expect("parses");
    assert!(!v1.matches(&e, &[]));
    let unversioned = entry(EntryKind::Group, "resize", ServiceMeta::new());
    assert!(!v2.matches(&unversioned, &[]));
    assert!(Criteria::name("resize").matches(&unversioned, &[]));
    assert!(Criteria::name("resize").capability("gpu").matches(&e, &[]));
    assert!(!Criteria::name("resize")
        .capability("gpu")
        .capability("us")
        .matches(&e, &[]));
    assert!(Criteria::name("resize").role("worker").matches(&e, &roles));
    assert!(!Criteria::name("resize").role("worker").matches(&e, &[]));
    assert!(
        Criteria::name("resize").matches(&entry(EntryKind::Unique, "resize", meta.clone()), &[])
    );
    assert!(!Criteria::name("resize").matches(&entry(EntryKind::Interest, "resize", meta), &[]));
    assert!(Criteria::name("x").version("not a req").is_err());
}

#[derive(Clone, Debug)]
enum Op {
    Pick(u8),
    Finish(u8, u16, u8),
    Advance(u16),
    Reset(u8),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    prop_oneof![
        any::<u8>().prop_map(Op::Pick),
        (any::<u8>(), any::<u16>(), 0u8..3).prop_map(|(e, ms, o)| Op::Finish(e, ms, o)),
        any::<u16>().prop_map(Op::Advance),
        any::<u8>().prop_map(Op::Reset),
    ]
}

proptest! {
    /// Any sequence of picks, outcomes, time and endpoint changes: no
    /// panic, picks come from the set and honour the skip, calls in flight
    /// match what was started and not finished.
    #[test]
    fn the_balancer_stays_consistent(ops in proptest::collection::vec(op(), 0..300), s in 0u8..5) {
        let strategy = match s {
            0 => Strategy::P2cEwma,
            1 => Strategy::RoundRobin,
            2 => Strategy::Weighted,
            3 => Strategy::ConsistentHash { load_factor: 1.25 },
            _ => Strategy::LocalFirst,
        };
        let mut now = Instant::now();
        let all: Vec<ServiceAddr> = (0..6).map(|n| ep(n, 1)).collect();
        let mut b = balancer(strategy, &all[..4], now);
        let mut set: Vec<ServiceAddr> = all[..4].to_vec();
        let mut flying: BTreeMap<ServiceAddr, u32> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Pick(k) => {
                    let skip = all[usize::from(k) % all.len()];
                    if let Ok(a) = b.pick(now, Some(&[k]), |x| *x == skip) {
                        prop_assert!(set.contains(&a));
                        prop_assert_ne!(a, skip);
                        b.started(a);
                        *flying.entry(a).or_insert(0) += 1;
                    }
                }
                Op::Finish(e, ms, o) => {
                    let a = all[usize::from(e) % all.len()];
                    if let Some(n) = flying.get_mut(&a).filter(|n| **n > 0) {
                        *n -= 1;
                        let outcome = [Outcome::Success, Outcome::Failure, Outcome::Ignored][usize::from(o)];
                        b.finish(a, Duration::from_millis(u64::from(ms)), outcome, now);
                    }
                }
                Op::Advance(ms) => now += Duration::from_millis(u64::from(ms)),
                Op::Reset(m) => {
                    set = all.iter().copied().filter(|a| (m >> (a.node.0 as u8)) & 1 == 1).collect();
                    b.set_endpoints(set.iter().map(|a| (*a, u32::from(m % 4) + 1)), now);
                    flying.retain(|a, _| set.contains(a));
                }
            }
            for v in b.view(now) {
                prop_assert_eq!(v.in_flight, flying.get(&v.addr).copied().unwrap_or(0));
                prop_assert!(v.ewma_ms.is_finite() && v.ewma_ms >= 0.0);
            }
        }
    }
}
