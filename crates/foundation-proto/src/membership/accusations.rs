//! Independent confirmations of a suspicion (Lifeguard's dynamic
//! suspicion, adapted to foca; ADR 020).
//!
//! A member whose probe fails starts suspecting the probed member and
//! *accuses* it: besides telling the suspect, it asks a few other members
//! to check. Each of them tells the suspect too and waits one probe
//! timeout; a suspect that is alive refutes at once (it raised its
//! incarnation), one that is hung or gone stays silent, and the checker
//! accuses it in turn, to the accusers it knows. Each node involved counts
//! the distinct accusers it has heard of; its suspicion timeout starts at
//! the long value ([`super::lifeguard::Lifeguard::suspicion`]) and shrinks
//! towards the short one as confirmations arrive ([`shrink`]): a hang seen
//! by several members is declared quickly, while a single accuser (lossy
//! links, or itself starved) keeps the long timeout that gives the suspect
//! time to refute.
//!
//! This module keeps the cases; the core (`suspicion.rs`) sends and
//! schedules.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use foca::Incarnation;

use crate::NodeId;

/// Confirmations after which the suspicion timeout is the short one (a
/// cluster with fewer other members expects fewer).
pub const CONFIRMATIONS: u32 = 3;

/// Members asked to check a suspect when this node starts suspecting it.
pub const CHECKERS: usize = 3;

/// Distinct accusers remembered per case: more cannot shrink the timeout
/// further.
const MAX_ACCUSERS: usize = CONFIRMATIONS as usize + 1;

/// Cases remembered at once; the oldest goes first beyond it.
pub const MAX_CASES: usize = 1024;

/// One suspicion this node takes part in: a member at one incarnation.
#[derive(Debug, Clone)]
pub struct Case {
    /// When this node first heard of it (accused, or was asked to check).
    pub since: Instant,
    accusers: Vec<NodeId>,
    /// When this node declares the member down, if it accuses it.
    pub due: Option<Instant>,
    /// The timer was armed a second time after firing late.
    pub rearmed: bool,
    /// This node was asked to check and did.
    pub checked: bool,
}

impl Case {
    fn new(now: Instant) -> Self {
        Case {
            since: now,
            accusers: Vec::new(),
            due: None,
            rearmed: false,
            checked: false,
        }
    }

    /// Adds an accuser; whether it was new (and room was left).
    pub fn accuse(&mut self, by: NodeId) -> bool {
        if self.accusers.contains(&by) || self.accusers.len() >= MAX_ACCUSERS {
            return false;
        }
        self.accusers.push(by);
        true
    }

    /// Whether `id` accuses.
    pub fn accuses(&self, id: NodeId) -> bool {
        self.accusers.contains(&id)
    }

    /// The accusers known.
    pub fn accusers(&self) -> &[NodeId] {
        &self.accusers
    }

    /// Independent confirmations: accusers beyond the first.
    pub fn confirmations(&self) -> u32 {
        u32::try_from(self.accusers.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }
}

/// The cases of this node, bounded.
#[derive(Debug, Default)]
pub struct Accusations {
    cases: HashMap<(NodeId, Incarnation), Case>,
}

impl Accusations {
    /// The case of `id` at `incarnation`, opened at `now` if new.
    pub fn open(&mut self, id: NodeId, incarnation: Incarnation, now: Instant) -> &mut Case {
        if self.cases.len() >= MAX_CASES && !self.cases.contains_key(&(id, incarnation)) {
            let oldest = self
                .cases
                .iter()
                .min_by_key(|(_, c)| c.since)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.cases.remove(&k);
            }
        }
        self.cases
            .entry((id, incarnation))
            .or_insert_with(|| Case::new(now))
    }

    /// The case, if open.
    pub fn get(&self, id: NodeId, incarnation: Incarnation) -> Option<&Case> {
        self.cases.get(&(id, incarnation))
    }

    /// The case, if open.
    pub fn get_mut(&mut self, id: NodeId, incarnation: Incarnation) -> Option<&mut Case> {
        self.cases.get_mut(&(id, incarnation))
    }

    /// Closes the cases `keep` refuses (refuted, declared down, forgotten).
    pub fn retain(&mut self, mut keep: impl FnMut(NodeId, Incarnation) -> bool) {
        self.cases.retain(|(id, inc), _| keep(*id, *inc));
    }

    /// Open cases.
    pub fn len(&self) -> usize {
        self.cases.len()
    }

    /// Whether no case is open.
    pub fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }
}

/// The suspicion timeout after `confirmations` of the `expected` ones:
/// `long` with none, `short` with all, and in between on a logarithmic
/// curve (Lifeguard's: the first confirmation counts most). With no
/// confirmation expected (a two-member cluster) it stays `long`.
pub fn shrink(short: Duration, long: Duration, confirmations: u32, expected: u32) -> Duration {
    if expected == 0 || confirmations == 0 || long <= short {
        return long;
    }
    let done = f64::from(confirmations.min(expected) + 1).ln() / f64::from(expected + 1).ln();
    long.saturating_sub((long - short).mul_f64(done.clamp(0.0, 1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_timeout_shrinks_with_each_confirmation_and_never_below_short() {
        let (short, long) = (MS * 200, MS * 2_000);
        let steps: Vec<Duration> = (0..=5).map(|c| shrink(short, long, c, 3)).collect();
        assert_eq!(steps[0], long);
        for w in steps.windows(2) {
            assert!(w[1] <= w[0], "{steps:?}");
        }
        assert!(steps[1] < long && steps[1] > short, "{steps:?}");
        assert_eq!(steps[3], short);
        assert_eq!(steps[5], short);
        // Fewer members, fewer confirmations expected.
        assert_eq!(shrink(short, long, 1, 1), short);
        assert_eq!(shrink(short, long, 4, 0), long);
        // A short above the long one (a slow network's floor) is ignored.
        assert_eq!(shrink(long, short, 3, 3), short);
    }

    #[test]
    fn accusers_are_counted_once_and_cases_are_bounded() {
        let t0 = Instant::now();
        let mut a = Accusations::default();
        let case = a.open(NodeId(9), 4, t0);
        assert!(case.accuse(NodeId(1)));
        assert!(!case.accuse(NodeId(1)));
        assert_eq!(case.confirmations(), 0);
        for k in 2..20 {
            case.accuse(NodeId(k));
        }
        assert_eq!(case.confirmations(), CONFIRMATIONS);
        assert!(a.get(NodeId(9), 5).is_none(), "a refutation is a new case");
        for k in 0..(MAX_CASES as u64 + 10) {
            a.open(NodeId(100 + k), 1, t0 + MS * k as u32);
        }
        assert_eq!(a.len(), MAX_CASES);
        assert!(a.get(NodeId(9), 4).is_none(), "the oldest went first");
        a.retain(|id, _| id.0 % 2 == 0);
        assert!(a.len() <= MAX_CASES / 2 + 1);
    }
}
