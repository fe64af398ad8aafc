//! A broadcast ring that allocates only for what it holds.
//!
//! Every receiver sees every message sent after it subscribed, in order. The
//! ring holds a message until every receiver that was subscribed when it was
//! sent has read it, and at most `capacity` messages: when a send finds it
//! full, the oldest message is dropped and the receivers that had not read it
//! learn how many they lost on their next read.
//!
//! Unlike tokio's `broadcast`, which allocates all of its slots up front
//! (about 40 KB for 1,024 slots), an idle ring holds nothing: a node with
//! many quiet topics pays for the messages in flight, not for the bound.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Why a read returned no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecvError {
    /// This many messages were dropped before this receiver read them; the
    /// next read returns the oldest one still held.
    Lagged(u64),
    /// The sender is gone and every held message was read.
    Closed,
    /// Nothing to read now (only from [`Receiver::try_recv`]).
    Empty,
}

struct State<T> {
    /// Held messages, oldest first, each with the number of receivers that
    /// have yet to read it; `buf[0]` has sequence number `head`.
    buf: VecDeque<(T, usize)>,
    head: u64,
    receivers: usize,
    closed: bool,
}

impl<T> State<T> {
    /// Sequence number of the next message sent.
    fn tail(&self) -> u64 {
        self.head + self.buf.len() as u64
    }

    /// Drops the messages every receiver has read.
    fn pop_read(&mut self) {
        while self.buf.front().is_some_and(|(_, rem)| *rem == 0) {
            self.buf.pop_front();
            self.head += 1;
        }
        if self.buf.is_empty() && self.buf.capacity() > 16 {
            // A burst is over: give its memory back.
            self.buf = VecDeque::new();
        }
    }
}

struct Shared<T> {
    state: Mutex<State<T>>,
    notify: Notify,
    capacity: usize,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing here panics while holding the lock; a poisoned lock still
        // holds a consistent ring.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending side; dropping it closes the ring.
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// A receiving side: reads every message sent after it was made.
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
    next: u64,
}

/// A ring of at most `capacity` messages (at least 1).
pub(crate) fn channel<T: Clone>(capacity: usize) -> Sender<T> {
    Sender {
        shared: Arc::new(Shared {
            state: Mutex::new(State {
                buf: VecDeque::new(),
                head: 0,
                receivers: 0,
                closed: false,
            }),
            notify: Notify::new(),
            capacity: capacity.max(1),
        }),
    }
}

impl<T: Clone> Sender<T> {
    /// Sends `msg` to every receiver; how many there are (0: dropped).
    pub(crate) fn send(&self, msg: T) -> usize {
        let mut s = self.shared.lock();
        let receivers = s.receivers;
        if receivers == 0 {
            return 0;
        }
        if s.buf.len() == self.shared.capacity {
            s.buf.pop_front();
            s.head += 1;
        }
        s.buf.push_back((msg, receivers));
        drop(s);
        self.shared.notify.notify_waiters();
        receivers
    }

    /// A new receiver, reading from the next message sent.
    pub(crate) fn subscribe(&self) -> Receiver<T> {
        let mut s = self.shared.lock();
        s.receivers += 1;
        Receiver {
            shared: self.shared.clone(),
            next: s.tail(),
        }
    }

    /// Messages held: what the slowest receiver has not read.
    pub(crate) fn len(&self) -> usize {
        self.shared.lock().buf.len()
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.notify.notify_waiters();
    }
}

impl<T: Clone> Receiver<T> {
    /// The next message, waiting for one.
    pub(crate) async fn recv(&mut self) -> Result<T, RecvError> {
        let shared = self.shared.clone();
        loop {
            // Made before looking, so a send in between still wakes it.
            let notified = shared.notify.notified();
            match self.try_recv() {
                Err(RecvError::Empty) => notified.await,
                other => return other,
            }
        }
    }

    /// The next message if one is held.
    pub(crate) fn try_recv(&mut self) -> Result<T, RecvError> {
        let mut s = self.shared.lock();
        if self.next < s.head {
            let lost = s.head - self.next;
            self.next = s.head;
            return Err(RecvError::Lagged(lost));
        }
        let at = (self.next - s.head) as usize;
        let Some((msg, rem)) = s.buf.get_mut(at) else {
            return Err(if s.closed {
                RecvError::Closed
            } else {
                RecvError::Empty
            });
        };
        let msg = msg.clone();
        *rem -= 1;
        self.next += 1;
        s.pop_read();
        Ok(msg)
    }

    /// Messages sent since this receiver's last read, including any that
    /// were dropped before it read them.
    pub(crate) fn len(&self) -> usize {
        let s = self.shared.lock();
        (s.tail() - self.next) as usize
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        s.receivers -= 1;
        // It will not read what it has not read yet.
        let from = self.next.max(s.head);
        let start = (from - s.head) as usize;
        for (_, rem) in s.buf.iter_mut().skip(start) {
            *rem -= 1;
        }
        s.pop_read();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn held<T>(tx: &Sender<T>) -> (usize, usize) {
        let s = tx.shared.lock();
        (s.buf.len(), s.buf.capacity())
    }

    #[test]
    fn every_receiver_reads_every_message_in_order_and_read_ones_are_freed() {
        let tx = channel::<u32>(8);
        assert_eq!(tx.send(0), 0, "no receiver: dropped");
        let (mut a, mut b) = (tx.subscribe(), tx.subscribe());
        for i in 1..=5 {
            assert_eq!(tx.send(i), 2);
        }
        assert_eq!((tx.len(), a.len()), (5, 5));
        for i in 1..=5 {
            assert_eq!(a.try_recv(), Ok(i));
        }
        assert_eq!(a.try_recv(), Err(RecvError::Empty));
        assert_eq!(tx.len(), 5, "b has read none");
        assert_eq!(b.try_recv(), Ok(1));
        assert_eq!(tx.len(), 4);
        drop(b);
        assert_eq!(tx.len(), 0, "nobody is left to read them");
        // A receiver made later starts at the next message.
        let mut c = tx.subscribe();
        tx.send(6);
        assert_eq!((a.try_recv(), c.try_recv()), (Ok(6), Ok(6)));
        assert_eq!(held(&tx).0, 0);
    }

    #[test]
    fn a_full_ring_drops_the_oldest_and_the_slow_reader_learns_how_many() {
        let tx = channel::<u32>(4);
        let (mut slow, mut fast) = (tx.subscribe(), tx.subscribe());
        for i in 0..10 {
            tx.send(i);
            assert_eq!(fast.try_recv(), Ok(i));
        }
        assert_eq!(tx.len(), 4, "bounded");
        assert_eq!(slow.len(), 10, "what it missed counts");
        assert_eq!(slow.try_recv(), Err(RecvError::Lagged(6)));
        assert_eq!(slow.len(), 4);
        for i in 6..10 {
            assert_eq!(slow.try_recv(), Ok(i));
        }
        assert_eq!(slow.try_recv(), Err(RecvError::Empty));
    }

    #[test]
    fn an_idle_ring_holds_no_memory_after_a_burst() {
        let tx = channel::<Arc<Vec<u8>>>(1024);
        let mut rx = tx.subscribe();
        assert_eq!(held(&tx), (0, 0), "nothing allocated up front");
        for _ in 0..1000 {
            tx.send(Arc::new(vec![0; 100]));
        }
        assert!(held(&tx).1 >= 1000);
        while rx.try_recv().is_ok() {}
        assert_eq!(held(&tx), (0, 0));
    }

    /// Readers on other threads, some slower than the sender: each sees an
    /// increasing sequence, and what it read plus what it was told it lost
    /// is everything sent.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_readers_account_for_every_message() {
        const N: u64 = 20_000;
        let tx = channel::<u64>(64);
        let readers: Vec<_> = (0..4)
            .map(|k| {
                let mut rx = tx.subscribe();
                tokio::spawn(async move {
                    let (mut read, mut lost, mut last) = (0u64, 0u64, None);
                    loop {
                        match rx.recv().await {
                            Ok(v) => {
                                assert!(last.is_none_or(|l| v > l), "{v} after {last:?}");
                                last = Some(v);
                                read += 1;
                                if k % 2 == 1 && v % 64 == 0 {
                                    tokio::task::yield_now().await;
                                }
                            }
                            Err(RecvError::Lagged(n)) => lost += n,
                            Err(RecvError::Closed) => return (read, lost),
                            Err(RecvError::Empty) => unreachable!("recv waits"),
                        }
                    }
                })
            })
            .collect();
        for i in 0..N {
            tx.send(i);
            if i % 256 == 0 {
                tokio::task::yield_now().await;
            }
        }
        assert!(tx.len() <= 64);
        drop(tx);
        for r in readers {
            let (read, lost) = tokio::time::timeout(Duration::from_secs(10), r)
                .await
                .expect("ends")
                .expect("reader");
            assert_eq!(read + lost, N, "read {read}, lost {lost}");
        }
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_on_send_and_ends_after_close() {
        let tx = channel::<u32>(4);
        let mut rx = tx.subscribe();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                match rx.recv().await {
                    Ok(v) => got.push(v),
                    Err(RecvError::Closed) => return got,
                    Err(e) => panic!("{e:?}"),
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.send(1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.send(2);
        drop(tx);
        let got = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("ends")
            .expect("task");
        assert_eq!(got, vec![1, 2], "held messages are read before the end");
    }
}
