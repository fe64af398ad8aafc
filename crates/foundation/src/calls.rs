//! Requests to peers waiting for their replies, matched by a correlation
//! id: what coordination and the cache share.
//!
//! The table is bounded: beyond [`Calls::new`]'s limit a call fails at
//! once rather than grow it. A call's slot is removed however the call
//! ends (reply, timeout, the caller dropped), so a lost reply leaves
//! nothing behind.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::locks::Locked;

/// Calls waiting for a reply of type `R`.
#[derive(Debug)]
pub(crate) struct Calls<R> {
    pending: Mutex<HashMap<u64, oneshot::Sender<R>>>,
    next: AtomicU64,
    limit: usize,
}

/// The table is full: this many calls already wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full(pub(crate) usize);

/// One call's place in the table; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Pending<'a, R> {
    calls: &'a Calls<R>,
    /// The correlation id the request carries.
    pub(crate) corr: u64,
    reply: Option<oneshot::Receiver<R>>,
}

impl<R> Calls<R> {
    /// A table of at most `limit` waiting calls.
    pub(crate) fn new(limit: usize) -> Self {
        Calls {
            pending: Mutex::default(),
            next: AtomicU64::new(1),
            limit,
        }
    }

    /// Opens a call: its correlation id, and where its reply will come.
    pub(crate) fn open(&self) -> Result<Pending<'_, R>, Full> {
        let corr = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let mut pending = self.pending.locked();
        if pending.len() >= self.limit {
            return Err(Full(pending.len()));
        }
        pending.insert(corr, tx);
        Ok(Pending {
            calls: self,
            corr,
            reply: Some(rx),
        })
    }

    /// A reply arrived: hands it to its caller, if it still waits.
    /// Answers whether one did.
    pub(crate) fn answered(&self, corr: u64, reply: R) -> bool {
        // The table's lock is released before the send wakes the caller:
        // held across it, the caller's first act (dropping its
        // `Pending`, which locks the table) would find it taken.
        let tx = self.pending.locked().remove(&corr);
        match tx {
            Some(tx) => tx.send(reply).is_ok(),
            None => false,
        }
    }

    /// Calls waiting now.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.pending.locked().len()
    }
}

impl<R> Pending<'_, R> {
    /// Waits for the reply; `None` if the table was dropped first. The
    /// caller bounds the wait with its own timeout.
    pub(crate) async fn reply(mut self) -> Option<R> {
        match self.reply.take() {
            Some(rx) => rx.await.ok(),
            None => None,
        }
    }
}

impl<R> Drop for Pending<'_, R> {
    fn drop(&mut self) {
        self.calls.pending.locked().remove(&self.corr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reply_reaches_its_caller_and_frees_the_slot() {
        let calls = Calls::<&str>::new(4);
        let call = calls.open().expect("room");
        let corr = call.corr;
        assert!(calls.answered(corr, "hi"));
        assert_eq!(call.reply().await, Some("hi"));
        assert_eq!(calls.waiting(), 0);
        // A second reply to the same id finds nobody.
        assert!(!calls.answered(corr, "again"));
    }

    #[test]
    fn the_table_is_bounded_and_a_dropped_call_frees_its_place() {
        let calls = Calls::<u8>::new(2);
        let a = calls.open().expect("room");
        let _b = calls.open().expect("room");
        assert_eq!(calls.open().expect_err("full"), Full(2));
        drop(a);
        assert_eq!(calls.waiting(), 1);
        assert!(calls.open().is_ok());
    }
}
