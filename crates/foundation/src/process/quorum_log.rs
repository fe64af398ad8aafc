//! What the process manager says about quorum in the log. Reaching quorum
//! is news; losing it after having had it is a warning. Not having it at
//! start is said only if it lasts: every node is without quorum until it
//! sees its peers, which a node joining a cluster does within a moment, so
//! a warning then would only be noise on every normal start.

use std::time::{Duration, Instant};

/// How long a node waits for peers before it warns that its singletons
/// and shards wait for them.
pub(crate) const WAITING_WARN_AFTER: Duration = Duration::from_secs(5);

/// A change of quorum worth a line in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Quorum was reached (info).
    Reached,
    /// Quorum was lost after this node had it (warning).
    Lost,
}

/// What has been seen and said so far.
#[derive(Debug, Default)]
pub(crate) struct QuorumLog {
    had_quorum: bool,
    waiting_since: Option<Instant>,
    said_waiting: bool,
}

impl QuorumLog {
    /// After a planner pass that found quorum `changed` to `has_quorum`:
    /// the change to log, if any.
    pub(crate) fn changed(&mut self, changed: bool, has_quorum: bool) -> Option<Change> {
        let had = self.had_quorum;
        self.had_quorum |= has_quorum;
        match (changed, has_quorum) {
            (true, true) => Some(Change::Reached),
            (true, false) if had => Some(Change::Lost),
            _ => None,
        }
    }

    /// Whether to warn now that the node waits for peers (`waiting`, as
    /// the quorum rule says at `now`): once, after [`WAITING_WARN_AFTER`].
    pub(crate) fn still_waiting(&mut self, now: Instant, waiting: bool) -> bool {
        if !waiting {
            self.waiting_since = None;
            return false;
        }
        let since = *self.waiting_since.get_or_insert(now);
        if self.said_waiting || now.saturating_duration_since(since) < WAITING_WARN_AFTER {
            return false;
        }
        self.said_waiting = true;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_quorum_at_start_is_not_a_change_worth_saying_but_losing_it_later_is() {
        let mut log = QuorumLog::default();
        // The planner starts out counting quorum as held: a node's first
        // pass without peers reports a change to false.
        assert_eq!(log.changed(true, false), None);
        assert_eq!(log.changed(false, false), None);
        assert_eq!(log.changed(true, true), Some(Change::Reached));
        assert_eq!(log.changed(false, true), None);
        assert_eq!(log.changed(true, false), Some(Change::Lost));
        assert_eq!(log.changed(true, true), Some(Change::Reached));
    }

    #[test]
    fn a_first_pass_with_quorum_counts_as_having_had_it() {
        let mut log = QuorumLog::default();
        assert_eq!(log.changed(false, true), None);
        assert_eq!(log.changed(true, false), Some(Change::Lost));
    }

    #[test]
    fn waiting_for_peers_is_said_once_and_only_when_it_lasts() {
        let t0 = Instant::now();
        let mut log = QuorumLog::default();
        assert!(!log.still_waiting(t0, true));
        assert!(!log.still_waiting(t0 + WAITING_WARN_AFTER / 2, true));
        assert!(log.still_waiting(t0 + WAITING_WARN_AFTER, true));
        assert!(!log.still_waiting(t0 + WAITING_WARN_AFTER * 3, true));
    }

    #[test]
    fn a_node_that_finds_its_peers_in_time_says_nothing() {
        let t0 = Instant::now();
        let mut log = QuorumLog::default();
        assert!(!log.still_waiting(t0, true));
        assert!(!log.still_waiting(t0 + Duration::from_secs(1), false));
        // Waiting again later starts a new count.
        assert!(!log.still_waiting(t0 + WAITING_WARN_AFTER + Duration::from_secs(1), true));
        assert!(log.still_waiting(t0 + WAITING_WARN_AFTER * 2 + Duration::from_secs(1), true));
    }
}
