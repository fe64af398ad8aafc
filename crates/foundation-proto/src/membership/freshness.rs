//! Replay protection: a freshness window and a cache of what was seen in it.
//!
//! A sealed datagram (or a discovery beacon) carries the time it was sealed,
//! in milliseconds since the Unix epoch, and a random nonce, both under the
//! authentication tag. A receiver takes it only if
//!
//! - it was sealed within the window of the receiver's clock (either way:
//!   the window is also the clock skew tolerated between hosts), and
//! - its `(sent, nonce)` pair was not seen before.
//!
//! The cache holds only pairs still inside the window, so it needs as much
//! memory as the datagrams one window brings. It is capped: when full, the
//! oldest pair is forgotten and the window's lower edge moves up past it,
//! so a pair that was forgotten is refused as too old rather than taken
//! twice. A flood (only a holder of the key can make new pairs) shortens the
//! window; it never lets a replay through and never grows memory.
//!
//! Why this is enough against ghosts: foca remembers a departed member as
//! down for [`FORGET_AFTER`](super::core::FORGET_AFTER) and ignores what
//! its old identity says meanwhile, and the window is shorter than that, so
//! a captured datagram is refused by foca until it is refused here.

use std::collections::BTreeSet;
use std::time::Duration;

/// A datagram's nonce (96 bits, random per datagram).
pub type Nonce = [u8; 12];

/// Most `(sent, nonce)` pairs remembered. At a 60 s window that is over
/// 2,000 datagrams a second, far above what membership sends one node.
pub const MAX_REMEMBERED: usize = 131_072;

/// Why a datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// Sealed before the window: replayed, or the sender's clock is behind.
    #[error("sealed {age_ms} ms ago, before the replay window (a replay, or the sender's clock is behind)")]
    Old {
        /// How long ago, by this node's clock.
        age_ms: u64,
    },
    /// Sealed after the window's end: the sender's clock is ahead.
    #[error("sealed {ahead_ms} ms ahead of this node's clock, beyond the replay window")]
    Ahead {
        /// How far ahead of this node's clock.
        ahead_ms: u64,
    },
    /// Seen before within the window: replayed.
    #[error("replayed: seen before")]
    Replayed,
}

/// The replay window and cache of one receiver.
#[derive(Debug, Clone)]
pub struct Freshness {
    window_ms: u64,
    cap: usize,
    seen: BTreeSet<(u64, Nonce)>,
    /// Pairs sealed at or before this were forgotten to stay under `cap`.
    floor: u64,
}

impl Freshness {
    /// A window of `window` either side of this node's clock.
    pub fn new(window: Duration) -> Self {
        Freshness::with_capacity(window, MAX_REMEMBERED)
    }

    /// A window remembering at most `cap` pairs (at least one).
    pub fn with_capacity(window: Duration, cap: usize) -> Self {
        Freshness {
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            cap: cap.max(1),
            seen: BTreeSet::new(),
            floor: 0,
        }
    }

    /// Takes a datagram sealed at `sent_ms` with `nonce`, received at
    /// `now_ms` (both in ms since the Unix epoch), or says why not.
    pub fn check(&mut self, sent_ms: u64, nonce: Nonce, now_ms: u64) -> Result<(), Refused> {
        let start = now_ms
            .saturating_sub(self.window_ms)
            .max(self.floor.saturating_add(1));
        while self.seen.first().is_some_and(|&(t, _)| t < start) {
            self.seen.pop_first();
        }
        if sent_ms < start {
            return Err(Refused::Old {
                age_ms: now_ms.saturating_sub(sent_ms),
            });
        }
        if sent_ms > now_ms.saturating_add(self.window_ms) {
            return Err(Refused::Ahead {
                ahead_ms: sent_ms - now_ms,
            });
        }
        if !self.seen.insert((sent_ms, nonce)) {
            return Err(Refused::Replayed);
        }
        if self.seen.len() > self.cap {
            if let Some((t, _)) = self.seen.pop_first() {
                self.floor = self.floor.max(t);
            }
        }
        Ok(())
    }

    /// Pairs remembered now.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MIN: u64 = 60_000;
    const T0: u64 = 1_800_000_000_000;

    #[test]
    fn a_datagram_is_taken_once_within_the_window() {
        let mut f = Freshness::new(Duration::from_millis(MIN));
        assert_eq!(f.check(T0, [1; 12], T0 + 5), Ok(()));
        assert_eq!(f.check(T0, [1; 12], T0 + 10), Err(Refused::Replayed));
        // Another nonce at the same millisecond is another datagram.
        assert_eq!(f.check(T0, [2; 12], T0 + 10), Ok(()));
    }

    #[test]
    fn outside_the_window_either_way_is_refused_with_the_skew() {
        let mut f = Freshness::new(Duration::from_millis(MIN));
        let now = T0 + 10 * MIN;
        assert_eq!(
            f.check(now - MIN - 1, [1; 12], now),
            Err(Refused::Old { age_ms: MIN + 1 })
        );
        assert_eq!(
            f.check(now + MIN + 7, [1; 12], now),
            Err(Refused::Ahead { ahead_ms: MIN + 7 })
        );
        // The edges are inside: a skew of exactly the window is tolerated.
        assert_eq!(f.check(now - MIN, [2; 12], now), Ok(()));
        assert_eq!(f.check(now + MIN, [3; 12], now), Ok(()));
    }

    #[test]
    fn a_replay_after_the_window_is_refused_as_old_and_memory_is_released() {
        let mut f = Freshness::new(Duration::from_millis(MIN));
        for i in 0..100u8 {
            assert_eq!(f.check(T0, [i; 12], T0), Ok(()));
        }
        assert_eq!(f.remembered(), 100);
        let later = T0 + MIN + 1;
        assert!(matches!(
            f.check(T0, [5; 12], later),
            Err(Refused::Old { .. })
        ));
        assert_eq!(f.remembered(), 0, "pairs outside the window are forgotten");
    }

    #[test]
    fn when_full_the_window_shrinks_instead_of_letting_a_replay_through() {
        let mut f = Freshness::with_capacity(Duration::from_millis(MIN), 3);
        for i in 0..3u8 {
            assert_eq!(f.check(T0 + u64::from(i), [i; 12], T0 + 10), Ok(()));
        }
        // A fourth pushes out the oldest (sent at T0) ...
        assert_eq!(f.check(T0 + 3, [3; 12], T0 + 10), Ok(()));
        assert_eq!(f.remembered(), 3);
        // ... whose replay is now refused as old, not taken again.
        assert!(matches!(
            f.check(T0, [0; 12], T0 + 10),
            Err(Refused::Old { .. })
        ));
        // Later ones are still told apart from replays.
        assert_eq!(f.check(T0 + 2, [2; 12], T0 + 10), Err(Refused::Replayed));
        assert_eq!(f.check(T0 + 4, [4; 12], T0 + 10), Ok(()));
    }

    proptest! {
        /// Whatever arrives in whatever order, no pair is ever taken twice,
        /// nothing outside the window is taken, and memory stays capped.
        #[test]
        fn no_pair_is_taken_twice(
            arrivals in proptest::collection::vec((0u64..200_000, 0u8..8, 0u64..5_000), 1..400),
        ) {
            let mut f = Freshness::with_capacity(Duration::from_millis(MIN), 64);
            let mut taken = std::collections::HashSet::new();
            let mut now = T0;
            for (sent, nonce, step) in arrivals {
                now += step;
                let sent = T0 - 100_000 + sent;
                if f.check(sent, [nonce; 12], now).is_ok() {
                    prop_assert!(taken.insert((sent, nonce)), "taken twice: {sent} {nonce}");
                    prop_assert!(sent + MIN >= now && sent <= now + MIN);
                }
                prop_assert!(f.remembered() <= 64);
            }
        }
    }
}
