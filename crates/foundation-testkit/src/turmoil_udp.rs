//! The real transport (quinn, TLS, frames, channels) under turmoil's
//! simulated network: a turmoil UDP socket as a [`quinn::AsyncUdpSocket`],
//! handed to [`foundation::transport::Transport::with_socket`].
//!
//! turmoil runs each host on simulated time, with seeded latency, loss
//! and partitions between hosts; quinn's own randomness is seeded through
//! the transport. Use it for clusters up to a few dozen nodes, where the
//! real protocol stack matters more than scale (the discrete-event
//! [`crate::sim`] drives the sans-IO cores of thousands).

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::mpsc;

/// Datagrams received and not yet read by quinn, per socket. Beyond this
/// the reader waits, and turmoil's own socket queue holds the rest.
const QUEUE: usize = 1024;

/// Independent loss of each datagram sent, shared by the sockets given
/// it and changed at any time (clones share the rate).
///
/// turmoil's own `fail_rate` is not that: a link that fails also drops
/// every message in flight on it, both ways, so on a busy link with tens
/// of milliseconds of latency it loses far more than its rate (bursts).
#[derive(Clone, Debug, Default)]
pub struct Loss(Arc<AtomicU32>);

impl Loss {
    /// Sets the probability (0.0 to 1.0) that a datagram is lost.
    pub fn set(&self, p: f64) {
        self.0
            .store((p.clamp(0.0, 1.0) * 1e6) as u32, Ordering::Relaxed);
    }

    /// The probability that a datagram is lost.
    pub fn get(&self) -> f64 {
        f64::from(self.0.load(Ordering::Relaxed)) / 1e6
    }
}

/// A turmoil UDP socket that quinn can drive. Create it inside a turmoil
/// host with [`TurmoilUdp::bind`].
pub struct TurmoilUdp {
    socket: Arc<turmoil::net::UdpSocket>,
    rx: Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
    reader: tokio::task::JoinHandle<()>,
    loss: Loss,
    rng: Mutex<SmallRng>,
}

impl fmt::Debug for TurmoilUdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurmoilUdp")
            .field("local", &self.socket.local_addr().ok())
            .finish()
    }
}

impl TurmoilUdp {
    /// Binds a turmoil socket at `addr` (0.0.0.0:port) in the current host
    /// and starts the task that reads it.
    pub async fn bind(addr: SocketAddr) -> io::Result<Arc<TurmoilUdp>> {
        Self::bind_with_loss(addr, Loss::default(), 0).await
    }

    /// Like [`TurmoilUdp::bind`], losing each datagram it sends with the
    /// probability `loss` holds, drawn from an RNG seeded with `seed`.
    pub async fn bind_with_loss(
        addr: SocketAddr,
        loss: Loss,
        seed: u64,
    ) -> io::Result<Arc<TurmoilUdp>> {
        let socket = Arc::new(turmoil::net::UdpSocket::bind(addr).await?);
        let (tx, rx) = mpsc::channel(QUEUE);
        let reading = socket.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = reading.recv_from(&mut buf).await {
                if tx.send((buf[..n].to_vec(), from)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Arc::new(TurmoilUdp {
            socket,
            rx: Mutex::new(rx),
            reader,
            loss,
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
        }))
    }
}

impl Drop for TurmoilUdp {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// turmoil's UDP sockets have no back-pressure: always writable.
#[derive(Debug)]
struct Writable;

impl quinn::UdpPoller for Writable {
    fn poll_writable(self: Pin<&mut Self>, _: &mut Context) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl quinn::AsyncUdpSocket for TurmoilUdp {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn quinn::UdpPoller>> {
        Box::pin(Writable)
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let p = self.loss.get();
        if p > 0.0 {
            let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            if rng.random_bool(p) {
                return Ok(());
            }
        }
        // One datagram per transmit (`max_transmit_segments` is 1).
        self.socket
            .try_send_to(transmit.contents, transmit.destination)
            .map(|_| ())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(m)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        let mut rx = self.rx.lock().unwrap_or_else(|e| e.into_inner());
        match rx.poll_recv(cx) {
            Poll::Ready(Some((data, from))) => {
                let len = data.len().min(buf.len());
                buf[..len].copy_from_slice(&data[..len]);
                *m = RecvMeta {
                    addr: from,
                    len,
                    stride: len,
                    ecn: None,
                    dst_ip: None,
                };
                Poll::Ready(Ok(1))
            }
            Poll::Ready(None) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "turmoil socket reader stopped",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    fn may_fragment(&self) -> bool {
        false
    }
}
