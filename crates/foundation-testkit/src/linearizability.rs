//! A linearizability checker (Wing and Gong's search, with Lowe's cache of
//! visited configurations), for histories recorded against coordination
//! (issue 17).
//!
//! A history is a list of operations, each with the time it was invoked,
//! the time its answer came back (or none: the caller never learnt the
//! outcome), and the answer. It is linearizable if the operations can be
//! put in one order that respects real time (an operation that returned
//! before another was invoked comes first) and in which a sequential
//! [`Model`] gives every answer that was observed. An operation without an
//! answer may take effect or not, at any point after its invocation.
//!
//! ```
//! use foundation_testkit::linearizability::{check, Op, Register, RegisterCall};
//!
//! // Write 1 overlaps a read that saw 1: fine.
//! let ok = [
//!     Op { invoked: 0, returned: Some(10), call: RegisterCall::Write(1), answer: None },
//!     Op { invoked: 5, returned: Some(15), call: RegisterCall::Read, answer: Some(1) },
//! ];
//! assert!(check(&Register::initial(0), &ok).is_ok());
//! // A read that returned before the write began cannot see it.
//! let bad = [
//!     Op { invoked: 0, returned: Some(4), call: RegisterCall::Read, answer: Some(1) },
//!     Op { invoked: 5, returned: Some(9), call: RegisterCall::Write(1), answer: None },
//! ];
//! assert!(check(&Register::initial(0), &bad).is_err());
//! ```

use std::collections::HashSet;
use std::hash::Hash;

/// A sequential specification: a state, and the step an operation takes.
pub trait Model: Clone + Eq + Hash {
    /// An operation's call.
    type Call;
    /// What it answers.
    type Answer;
    /// Applies `call` to this state: the next state and the answer it
    /// gives.
    fn step(&self, call: &Self::Call) -> (Self, Self::Answer);
}

/// One operation of a history.
#[derive(Debug, Clone)]
pub struct Op<C, A> {
    /// When it was invoked (any monotonic unit).
    pub invoked: u64,
    /// When its answer came back; `None` if it never did.
    pub returned: Option<u64>,
    /// The call.
    pub call: C,
    /// The answer seen (ignored when `returned` is `None`).
    pub answer: A,
}

/// Why a history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotLinearizable {
    /// No order fits; the longest prefix found linearized this many
    /// operations.
    #[error("no linearization: at most {linearized} of {total} operations fit in one order")]
    NoOrder {
        /// Operations in the longest linearizable prefix found.
        linearized: usize,
        /// Operations in the history.
        total: usize,
    },
    /// The search gave up after visiting this many configurations.
    #[error("search gave up after {0} configurations")]
    TooLarge(usize),
}

/// Most configurations visited before giving up.
pub const MAX_VISITS: usize = 5_000_000;

/// Checks `history` against `model` starting in `initial`.
pub fn check<M>(initial: &M, history: &[Op<M::Call, M::Answer>]) -> Result<(), NotLinearizable>
where
    M: Model,
    M::Answer: PartialEq,
{
    let n = history.len();
    let words = n.div_ceil(64);
    let mut done = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, M)> = HashSet::new();
    let mut best = 0;
    // Depth-first search; each frame: the state before the step, and the
    // next candidate to try at this depth.
    let mut stack: Vec<(M, usize, usize)> = vec![(initial.clone(), 0, usize::MAX)];
    let is_done = |done: &[u64], i: usize| done[i / 64] & (1 << (i % 64)) != 0;
    let completed = history.iter().filter(|o| o.returned.is_some()).count();
    let mut completed_done = 0;
    while let Some((state, from, taken)) = stack.pop() {
        if taken != usize::MAX {
            // Backtracking over `taken`.
            done[taken / 64] &= !(1 << (taken % 64));
            if history[taken].returned.is_some() {
                completed_done -= 1;
            }
        }
        if completed_done == completed {
            return Ok(());
        }
        // The earliest return among the pending operations bounds which
        // may go next: one invoked after it cannot.
        let horizon = (0..n)
            .filter(|i| !is_done(&done, *i))
            .filter_map(|i| history[i].returned)
            .min()
            .unwrap_or(u64::MAX);
        for i in from..n {
            if is_done(&done, i) || history[i].invoked > horizon {
                continue;
            }
            let op = &history[i];
            let (next, answer) = state.step(&op.call);
            if op.returned.is_some() && answer != op.answer {
                continue;
            }
            done[i / 64] |= 1 << (i % 64);
            if !seen.insert((done.clone(), next.clone())) {
                done[i / 64] &= !(1 << (i % 64));
                continue;
            }
            if seen.len() > MAX_VISITS {
                return Err(NotLinearizable::TooLarge(seen.len()));
            }
            if op.returned.is_some() {
                completed_done += 1;
            }
            best = best.max(done.iter().map(|w| w.count_ones() as usize).sum());
            // Resume this depth after `i`, then go one deeper.
            stack.push((state.clone(), i + 1, i));
            stack.push((next, 0, usize::MAX));
            break;
        }
    }
    Err(NotLinearizable::NoOrder {
        linearized: best,
        total: n,
    })
}

/// A single register: the simplest model, for the checker's own tests and
/// for one key of a key-value store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Register(pub u64);

/// Calls on a [`Register`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterCall {
    /// Sets the value.
    Write(u64),
    /// Reads it.
    Read,
    /// Sets `new` if the value is `expect`; answers whether it did.
    Cas(u64, u64),
}

impl Register {
    /// A register holding `v`.
    pub fn initial(v: u64) -> Self {
        Register(v)
    }
}

impl Model for Register {
    type Call = RegisterCall;
    /// Reads answer the value; a CAS answers 1 if it set, 0 if not;
    /// writes answer nothing.
    type Answer = Option<u64>;

    fn step(&self, call: &RegisterCall) -> (Self, Option<u64>) {
        match call {
            RegisterCall::Write(v) => (Register(*v), None),
            RegisterCall::Read => (self.clone(), Some(self.0)),
            RegisterCall::Cas(expect, new) if *expect == self.0 => (Register(*new), Some(1)),
            RegisterCall::Cas(..) => (self.clone(), Some(0)),
        }
    }
}

/// An atomic counter: additions answer the value after them, reads the
/// value (coordination's counters).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Counter(pub i64);

/// Calls on a [`Counter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CounterCall {
    /// Adds, answering the new value.
    Add(i64),
    /// Reads.
    Read,
}

impl Model for Counter {
    type Call = CounterCall;
    type Answer = i64;

    fn step(&self, call: &CounterCall) -> (Self, i64) {
        match call {
            CounterCall::Add(d) => (Counter(self.0 + d), self.0 + d),
            CounterCall::Read => (self.clone(), self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use RegisterCall::{Cas, Read, Write};

    fn op(
        invoked: u64,
        returned: Option<u64>,
        call: RegisterCall,
        answer: Option<u64>,
    ) -> Op<RegisterCall, Option<u64>> {
        Op {
            invoked,
            returned,
            call,
            answer,
        }
    }

    fn linearizable(h: &[Op<RegisterCall, Option<u64>>]) -> bool {
        check(&Register::initial(0), h).is_ok()
    }

    #[test]
    fn counter_histories_are_checked_by_their_answers() {
        let add = |invoked, returned, answer| Op {
            invoked,
            returned,
            call: CounterCall::Add(1),
            answer,
        };
        let read = |invoked, returned, answer| Op {
            invoked,
            returned,
            call: CounterCall::Read,
            answer,
        };
        // Two overlapping adds answer 1 and 2 in either order.
        assert!(check(&Counter(0), &[add(0, Some(10), 2), add(1, Some(9), 1)]).is_ok());
        // Two adds cannot both answer 1.
        assert!(check(&Counter(0), &[add(0, Some(10), 1), add(1, Some(9), 1)]).is_err());
        // An add whose answer was never seen may or may not have happened.
        let lost = add(0, None, 0);
        assert!(check(&Counter(0), &[lost.clone(), read(20, Some(30), 1)]).is_ok());
        assert!(check(&Counter(0), &[lost, read(20, Some(30), 0)]).is_ok());
        // A read after a completed add sees it.
        assert!(check(&Counter(0), &[add(0, Some(10), 1), read(11, Some(12), 0)]).is_err());
    }

    #[test]
    fn known_non_linearizable_histories_are_refused() {
        // Both writes done; reads then see 2, then 1.
        assert!(!linearizable(&[
            op(0, Some(10), Write(1), None),
            op(0, Some(10), Write(2), None),
            op(20, Some(30), Read, Some(2)),
            op(40, Some(50), Read, Some(1)),
        ]));
        // Two compare-and-sets from 0 both succeed.
        assert!(!linearizable(&[
            op(0, Some(10), Cas(0, 1), Some(1)),
            op(0, Some(10), Cas(0, 2), Some(1)),
        ]));
        // A value read that nobody wrote.
        assert!(!linearizable(&[op(0, Some(1), Read, Some(7))]));
        // A write that never returned took effect (a read saw it), so a
        // later read cannot see the old value again.
        assert!(!linearizable(&[
            op(0, None, Write(5), None),
            op(10, Some(20), Read, Some(5)),
            op(30, Some(40), Read, Some(0)),
        ]));
        let e = check(&Register::initial(0), &[op(0, Some(1), Read, Some(7))])
            .expect_err("a value nobody wrote");
        assert_eq!(
            e,
            NotLinearizable::NoOrder {
                linearized: 0,
                total: 1
            }
        );
    }

    #[test]
    fn concurrent_histories_with_an_order_are_accepted() {
        assert!(linearizable(&[
            op(0, Some(10), Cas(0, 1), Some(1)),
            op(0, Some(10), Cas(0, 2), Some(0)),
            op(20, Some(30), Read, Some(1)),
        ]));
        // A write that never returned may or may not have happened.
        assert!(linearizable(&[
            op(0, None, Write(5), None),
            op(10, Some(20), Read, Some(0))
        ]));
        assert!(linearizable(&[
            op(0, None, Write(5), None),
            op(10, Some(20), Read, Some(5))
        ]));
        // Overlapping reads may see either side of a concurrent write.
        assert!(linearizable(&[
            op(0, Some(100), Write(3), None),
            op(10, Some(20), Read, Some(3)),
            op(30, Some(40), Read, Some(3)),
        ]));
    }

    proptest! {
        /// A history made by a real sequential execution, each operation's
        /// interval stretched around the moment it took effect, is always
        /// accepted; with one read answer changed to a value never
        /// written, it never is.
        #[test]
        fn executions_are_accepted_and_corrupted_ones_refused(
            calls in prop::collection::vec((0u8..3, 1u64..4, 1u64..4), 1..40),
            spread in prop::collection::vec((0u64..150, 0u64..150), 40),
        ) {
            let mut state = Register::initial(0);
            let mut h = Vec::new();
            for (k, (kind, a, b)) in calls.iter().enumerate() {
                let call = match kind { 0 => Write(*a), 1 => Read, _ => Cas(*a, *b) };
                let (next, answer) = state.step(&call);
                state = next;
                let at = 100 * k as u64 + 200;
                let (before, after) = spread[k];
                h.push(op(at - before, Some(at + after), call, answer));
            }
            prop_assert!(linearizable(&h));
            if let Some(k) = h.iter().position(|o| o.call == Read) {
                h[k].answer = Some(99);
                prop_assert!(!linearizable(&h));
            }
        }
    }
}
