//! Mutual exclusion, checked from what the holders of a lock believed:
//! no two holdings overlap in time, and each grant's fencing token is
//! above the one before (issue 17).
//!
//! ```
//! use foundation_testkit::exclusion::{check, Holding};
//!
//! let mut fine = vec![
//!     Holding { holder: 0, token: 1, from: 0, to: 10 },
//!     Holding { holder: 1, token: 2, from: 10, to: 20 },
//! ];
//! assert!(check(&mut fine).is_ok());
//! let mut overlap = vec![
//!     Holding { holder: 0, token: 1, from: 0, to: 10 },
//!     Holding { holder: 1, token: 2, from: 9, to: 20 },
//! ];
//! assert!(check(&mut overlap).is_err());
//! ```

/// One time a holder believed it held the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    /// Who held it (a node, a process: the test's numbering).
    pub holder: usize,
    /// The fencing token of the grant.
    pub token: u64,
    /// When it began (any clock the holders share).
    pub from: u64,
    /// When it ended: the holder began releasing, or saw the lock lost.
    pub to: u64,
}

/// How exclusion was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotExclusive {
    /// Two holders held the lock at once.
    #[error("two holders at once: {0:?} and {1:?}")]
    Overlap(Holding, Holding),
    /// A later grant carries a token not above an earlier one's.
    #[error("a later grant has a token not above the one before: {0:?} then {1:?}")]
    TokenOrder(Holding, Holding),
}

/// Checks `holdings` (sorted here by start).
pub fn check(holdings: &mut [Holding]) -> Result<(), NotExclusive> {
    holdings.sort_by_key(|h| (h.from, h.to));
    for w in holdings.windows(2) {
        if w[0].to > w[1].from {
            return Err(NotExclusive::Overlap(w[0].clone(), w[1].clone()));
        }
        if w[0].token >= w[1].token {
            return Err(NotExclusive::TokenOrder(w[0].clone(), w[1].clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(holder: usize, token: u64, from: u64, to: u64) -> Holding {
        Holding {
            holder,
            token,
            from,
            to,
        }
    }

    #[test]
    fn order_of_the_input_does_not_matter() {
        let mut v = vec![h(1, 3, 20, 30), h(0, 1, 0, 5), h(2, 2, 5, 20)];
        assert_eq!(check(&mut v), Ok(()));
    }

    #[test]
    fn a_token_that_does_not_grow_is_refused() {
        let mut v = vec![h(0, 2, 0, 5), h(1, 2, 6, 9)];
        assert!(matches!(check(&mut v), Err(NotExclusive::TokenOrder(..))));
    }

    #[test]
    fn a_holding_inside_another_is_an_overlap() {
        let mut v = vec![h(0, 1, 0, 50), h(1, 2, 10, 20)];
        assert!(matches!(check(&mut v), Err(NotExclusive::Overlap(..))));
    }
}
