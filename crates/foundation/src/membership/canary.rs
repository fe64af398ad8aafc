//! Crash detection through "port unreachable": datagrams to each active
//! member go out on a UDP socket connected to that member, so the kernel
//! reports an ICMP port-unreachable answer (its process died, its host
//! lives) as `ECONNREFUSED` on that socket. The membership task then
//! declares the member down at once instead of waiting for SWIM's probe
//! timeouts. A hung process (SIGSTOP) or a dead host sends no such answer;
//! SWIM detects those.
//!
//! Trust: an ICMP answer is not authenticated. One refusal is therefore a
//! reason to ask again, not proof: the member is declared down only when
//! a fresh socket (a new source port, which a forger cannot know in
//! advance) is refused too, within [`CONFIRM_WITHIN`]. A forged answer
//! costs one extra datagram and is counted
//! (`foundation_membership_unconfirmed_unreachable_total`); SWIM goes on
//! as before. An on-path attacker who sees the fresh socket's datagram can
//! still forge the second answer; `membership.port_unreachable = false`
//! turns the mechanism off.
//!
//! Bounds: each canary is a socket (a file descriptor), and the member list
//! is what members announce. At most [`MAX_CANARIES`] members have one at a
//! time (the others' datagrams leave from the main socket, and SWIM alone
//! detects their crashes), and at most [`MAX_CONFIRMING`] confirmations
//! run at once (more refusals than that are left to SWIM).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Unreachable reports queued to the membership task.
const REPORTS: usize = 64;
/// How long a refusal waits to be confirmed on a fresh socket. A crashed
/// member's host answers within a round trip; a live member never does.
pub(crate) const CONFIRM_WITHIN: Duration = Duration::from_millis(300);
/// Datagrams the confirmation sends (an ICMP answer may be lost or rate
/// limited).
const CONFIRM_TRIES: u32 = 3;
/// Most canary sockets at once. Nudges reach 8 members every 50 ms, so
/// beyond a few hundred members a crash is found by SWIM's probes first
/// anyway; and a member list grown past a process's descriptor limit
/// (1,024 by default on many systems) must not take the node's sockets.
pub(crate) const MAX_CANARIES: usize = 256;
/// Most confirmations (each a fresh socket for up to [`CONFIRM_WITHIN`])
/// at once.
pub(crate) const MAX_CONFIRMING: usize = 32;

struct Canary {
    socket: Arc<UdpSocket>,
    stop: CancellationToken,
}

/// One connected socket per active member.
pub(crate) struct Canaries {
    bind: IpAddr,
    sockets: HashMap<SocketAddr, Canary>,
    tx: mpsc::Sender<SocketAddr>,
    cancel: CancellationToken,
    tasks: crate::tasks::Tasks,
    /// Confirmations running (see [`MAX_CONFIRMING`]).
    confirming: Arc<AtomicUsize>,
}

impl Canaries {
    /// Canaries bound to `bind`; unreachable members are reported on the
    /// returned receiver.
    pub(crate) fn new(
        bind: IpAddr,
        cancel: CancellationToken,
        tasks: crate::tasks::Tasks,
    ) -> (Self, mpsc::Receiver<SocketAddr>) {
        let (tx, rx) = mpsc::channel(REPORTS);
        (
            Canaries {
                bind,
                sockets: HashMap::new(),
                tx,
                cancel,
                tasks,
                confirming: Arc::new(AtomicUsize::new(0)),
            },
            rx,
        )
    }

    /// The connected socket for member `to` (made on first use); `None`
    /// if one cannot be made or [`MAX_CANARIES`] exist (the caller sends
    /// from the main socket).
    pub(crate) fn socket(&mut self, to: SocketAddr) -> Option<Arc<UdpSocket>> {
        if let Some(c) = self.sockets.get(&to) {
            return Some(c.socket.clone());
        }
        if self.sockets.len() >= MAX_CANARIES {
            return None;
        }
        let std = std::net::UdpSocket::bind((self.bind, 0)).ok()?;
        std.set_nonblocking(true).ok()?;
        std.connect(to).ok()?;
        let socket = Arc::new(UdpSocket::from_std(std).ok()?);
        let stop = self.cancel.child_token();
        self.tasks.spawn(watch(
            socket.clone(),
            self.bind,
            to,
            self.tx.clone(),
            self.confirming.clone(),
            stop.clone(),
        ));
        self.sockets.insert(
            to,
            Canary {
                socket: socket.clone(),
                stop,
            },
        );
        Some(socket)
    }

    /// Closes the sockets of addresses that are no longer active members.
    pub(crate) fn retain(&mut self, active: &HashSet<SocketAddr>) {
        self.sockets.retain(|addr, c| {
            let keep = active.contains(addr);
            if !keep {
                c.stop.cancel();
            }
            keep
        });
    }

    /// A send to `to` on its socket was refused: reports it unreachable
    /// if a fresh socket confirms it. The next send makes a new canary.
    pub(crate) fn refused(&mut self, to: SocketAddr) {
        let Some(c) = self.sockets.remove(&to) else {
            return;
        };
        let (bind, tx, confirming) = (self.bind, self.tx.clone(), self.confirming.clone());
        self.tasks.spawn(async move {
            report_if_confirmed(bind, to, &tx, &confirming, &c.stop).await;
        });
    }

    /// Canary sockets open now.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.sockets.len()
    }
}

/// Holds one of the [`MAX_CONFIRMING`] places while it lives.
struct Place<'a>(&'a AtomicUsize);

impl<'a> Place<'a> {
    fn take(count: &'a AtomicUsize) -> Option<Self> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_CONFIRMING).then_some(n + 1)
            })
            .ok()
            .map(|_| Place(count))
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Reports `to` unreachable if [`confirm`] confirms it before `stop`;
/// whether it did. With [`MAX_CONFIRMING`] confirmations already running,
/// does not ask (SWIM decides).
async fn report_if_confirmed(
    bind: IpAddr,
    to: SocketAddr,
    tx: &mpsc::Sender<SocketAddr>,
    confirming: &AtomicUsize,
    stop: &CancellationToken,
) -> bool {
    let Some(_place) = Place::take(confirming) else {
        metrics::counter!("foundation_membership_unconfirmed_unreachable_total").increment(1);
        tracing::debug!(peer = %to, "port unreachable: too many confirmations at once, left to SWIM");
        return false;
    };
    let confirmed = tokio::select! {
        _ = stop.cancelled() => false,
        c = confirm(bind, to) => c,
    };
    if confirmed {
        let _ = tx.send(to).await;
    }
    confirmed
}

/// Whether `to` refuses a fresh socket too, within [`CONFIRM_WITHIN`].
/// Empty datagrams are nudges a live member ignores, so the only answer
/// this socket can get is a refusal.
async fn confirm(bind: IpAddr, to: SocketAddr) -> bool {
    let fresh = std::net::UdpSocket::bind((bind, 0))
        .and_then(|s| s.set_nonblocking(true).map(|()| s))
        .and_then(|s| s.connect(to).map(|()| s))
        .and_then(UdpSocket::from_std);
    let Ok(socket) = fresh else {
        return false; // cannot ask: not confirmed, SWIM decides
    };
    let refused = |r: &std::io::Result<usize>| matches!(r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused);
    let mut buf = [0u8; 16];
    for _ in 0..CONFIRM_TRIES {
        if refused(&socket.send(&[]).await) {
            return true;
        }
        if let Ok(r) =
            tokio::time::timeout(CONFIRM_WITHIN / CONFIRM_TRIES, socket.recv(&mut buf)).await
        {
            if refused(&r) {
                return true;
            }
        }
    }
    metrics::counter!("foundation_membership_unconfirmed_unreachable_total").increment(1);
    tracing::debug!(peer = %to, "port unreachable not confirmed on a fresh socket (forged or transient): left to SWIM");
    false
}

/// Waits for the kernel to report the peer's port unreachable. Nothing
/// else arrives on this socket (replies go to the main socket).
async fn watch(
    socket: Arc<UdpSocket>,
    bind: IpAddr,
    to: SocketAddr,
    tx: mpsc::Sender<SocketAddr>,
    confirming: Arc<AtomicUsize>,
    stop: CancellationToken,
) {
    let mut buf = [0u8; 16];
    loop {
        let r = tokio::select! {
            _ = stop.cancelled() => return,
            r = socket.recv(&mut buf) => r,
        };
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                if report_if_confirmed(bind, to, &tx, &confirming, &stop).await {
                    return;
                }
            }
            Err(e) => tracing::trace!(peer = %to, error = %e, "canary socket"),
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_port_is_reported_and_an_open_one_is_not() {
        let cancel = CancellationToken::new();
        let tasks = crate::tasks::Tasks::new(tracing::Span::none(), cancel.clone());
        let (mut c, mut rx) = Canaries::new(IpAddr::from([127, 0, 0, 1]), cancel.clone(), tasks);
        let open = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let open_addr = open.local_addr().expect("addr");
        let closed_addr = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.local_addr().expect("addr")
        }; // dropped: nobody listens there now
        for to in [open_addr, closed_addr] {
            let s = c.socket(to).expect("socket");
            let _ = s.send(b"x").await;
        }
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .expect("reported in time");
        assert_eq!(got, Some(closed_addr));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(rx.try_recv().is_err(), "the open port is not reported");
        let mut buf = [0u8; 4];
        assert_eq!(open.recv(&mut buf).expect("the open port got it"), 1);
        cancel.cancel();
    }

    #[tokio::test]
    async fn a_refusal_is_confirmed_on_a_fresh_socket_before_it_counts() {
        let lo = IpAddr::from([127, 0, 0, 1]);
        let open = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let open_addr = open.local_addr().expect("addr");
        let closed_addr = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.local_addr().expect("addr")
        };
        assert!(
            confirm(lo, closed_addr).await,
            "a closed port refuses again"
        );
        let started = std::time::Instant::now();
        assert!(!confirm(lo, open_addr).await, "a live port never refuses");
        assert!(started.elapsed() >= CONFIRM_WITHIN / 2);

        // A refusal reported for a live member (as a forged ICMP answer
        // would make the kernel report) is not passed on; a real one is.
        let cancel = CancellationToken::new();
        let tasks = crate::tasks::Tasks::new(tracing::Span::none(), cancel.clone());
        let (mut c, mut rx) = Canaries::new(lo, cancel.clone(), tasks);
        for to in [open_addr, closed_addr] {
            let _ = c.socket(to).expect("socket");
            c.refused(to);
        }
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .expect("the real one is reported");
        assert_eq!(got, Some(closed_addr));
        tokio::time::sleep(CONFIRM_WITHIN * 2).await;
        assert!(rx.try_recv().is_err(), "the live member is not reported");
        cancel.cancel();
    }

    /// However many members there are, at most [`MAX_CANARIES`] sockets
    /// exist; the rest are sent from the main socket.
    #[tokio::test]
    async fn canary_sockets_are_capped_whatever_the_member_list() {
        let cancel = CancellationToken::new();
        let tasks = crate::tasks::Tasks::new(tracing::Span::none(), cancel.clone());
        let lo = IpAddr::from([127, 0, 0, 1]);
        let (mut c, _rx) = Canaries::new(lo, cancel.clone(), tasks);
        let members: Vec<SocketAddr> = (0..MAX_CANARIES as u16 + 100)
            .map(|i| SocketAddr::new(lo, 20_000 + i))
            .collect();
        let given = members.iter().filter(|to| c.socket(**to).is_some()).count();
        assert_eq!(given, MAX_CANARIES);
        assert_eq!(c.open(), MAX_CANARIES);
        // Members that leave free their places for others.
        let active: HashSet<SocketAddr> = members[..10].iter().copied().collect();
        c.retain(&active);
        assert_eq!(c.open(), 10);
        assert!(c.socket(members[MAX_CANARIES + 50]).is_some());
        cancel.cancel();
    }

    /// At most [`MAX_CONFIRMING`] confirmations hold a socket at once.
    #[tokio::test]
    async fn confirmations_are_capped() {
        let count = AtomicUsize::new(0);
        let places: Vec<Place<'_>> = (0..MAX_CONFIRMING + 5)
            .filter_map(|_| Place::take(&count))
            .collect();
        assert_eq!(places.len(), MAX_CONFIRMING);
        let lo = IpAddr::from([127, 0, 0, 1]);
        let closed = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.local_addr().expect("addr")
        };
        let (tx, mut rx) = mpsc::channel(1);
        let stop = CancellationToken::new();
        assert!(
            !report_if_confirmed(lo, closed, &tx, &count, &stop).await,
            "no place: not asked"
        );
        drop(places);
        assert_eq!(count.load(Ordering::Acquire), 0);
        assert!(report_if_confirmed(lo, closed, &tx, &count, &stop).await);
        assert_eq!(rx.recv().await, Some(closed));
        assert_eq!(count.load(Ordering::Acquire), 0, "the place is given back");
    }
}
