//! Crash detection through "port unreachable": datagrams to each active
//! member go out on a UDP socket connected to that member, so the kernel
//! reports an ICMP port-unreachable answer (its process died, its host
//! lives) as `ECONNREFUSED` on that socket. The membership task then
//! declares the member down at once instead of waiting for SWIM's probe
//! timeouts. A hung process (SIGSTOP) or a dead host sends no such answer;
//! SWIM detects those.
//!
//! Trust: an ICMP answer is not authenticated, so whoever can forge one on
//! the path can make a member look crashed (as a forged TCP reset can
//! with Erlang distribution). The member rejoins as a new generation.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Unreachable reports queued to the membership task.
const REPORTS: usize = 64;

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
            },
            rx,
        )
    }

    /// The connected socket for member `to` (made on first use); `None`
    /// if one cannot be made (the caller sends from the main socket).
    pub(crate) fn socket(&mut self, to: SocketAddr) -> Option<Arc<UdpSocket>> {
        if let Some(c) = self.sockets.get(&to) {
            return Some(c.socket.clone());
        }
        let std = std::net::UdpSocket::bind((self.bind, 0)).ok()?;
        std.set_nonblocking(true).ok()?;
        std.connect(to).ok()?;
        let socket = Arc::new(UdpSocket::from_std(std).ok()?);
        let stop = self.cancel.child_token();
        self.tasks
            .spawn(watch(socket.clone(), to, self.tx.clone(), stop.clone()));
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

    /// Reports `to` as unreachable (a send on its socket was refused).
    pub(crate) fn refused(&mut self, to: SocketAddr) {
        if let Some(c) = self.sockets.remove(&to) {
            c.stop.cancel();
        }
        let _ = self.tx.try_send(to);
    }
}

/// Waits for the kernel to report the peer's port unreachable. Nothing
/// else arrives on this socket (replies go to the main socket).
async fn watch(
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    tx: mpsc::Sender<SocketAddr>,
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
                let _ = tx.send(to).await;
                return;
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
}
