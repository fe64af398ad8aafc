//! The membership shell's UDP socket: the kernel's (tokio), or any
//! [`quinn::AsyncUdpSocket`] handed to the node (a simulated network such
//! as turmoil's; see `NodeBuilder::sockets`).

use std::future::poll_fn;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use quinn::udp::{RecvMeta, Transmit};

/// What one receive produced: `len` bytes from `from`, in datagrams of
/// `stride` bytes (the last may be shorter; more than one only where the
/// socket coalesces receives).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received {
    pub(crate) len: usize,
    pub(crate) stride: usize,
    pub(crate) from: SocketAddr,
}

/// The socket membership datagrams go through.
pub(crate) enum MembershipSocket {
    /// A kernel socket. Crash detection through "port unreachable"
    /// (canary sockets) works only with these.
    Kernel(tokio::net::UdpSocket),
    /// A socket provided by the application.
    Abstract {
        socket: Arc<dyn quinn::AsyncUdpSocket>,
        poller: Pin<Box<dyn quinn::UdpPoller>>,
    },
}

impl MembershipSocket {
    /// Wraps an application-provided socket.
    pub(crate) fn custom(socket: Arc<dyn quinn::AsyncUdpSocket>) -> Self {
        let poller = socket.clone().create_io_poller();
        MembershipSocket::Abstract { socket, poller }
    }

    /// Whether this is a kernel socket.
    pub(crate) fn is_kernel(&self) -> bool {
        matches!(self, MembershipSocket::Kernel(_))
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            MembershipSocket::Kernel(s) => s.local_addr(),
            MembershipSocket::Abstract { socket, .. } => socket.local_addr(),
        }
    }

    /// Receives into `buf`.
    pub(crate) async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        match self {
            MembershipSocket::Kernel(s) => {
                let (len, from) = s.recv_from(buf).await?;
                Ok(Received {
                    len,
                    stride: len.max(1),
                    from,
                })
            }
            MembershipSocket::Abstract { socket, .. } => {
                let mut meta = [RecvMeta::default()];
                poll_fn(|cx| {
                    let mut bufs = [IoSliceMut::new(&mut *buf)];
                    socket.poll_recv(cx, &mut bufs, &mut meta)
                })
                .await?;
                let [m] = meta;
                Ok(Received {
                    len: m.len,
                    stride: m.stride.max(1),
                    from: m.addr,
                })
            }
        }
    }

    /// Sends one datagram to `to`.
    pub(crate) async fn send_to(&mut self, data: &[u8], to: SocketAddr) -> io::Result<()> {
        match self {
            MembershipSocket::Kernel(s) => s.send_to(data, to).await.map(|_| ()),
            MembershipSocket::Abstract { socket, poller } => {
                let transmit = Transmit {
                    destination: to,
                    ecn: None,
                    contents: data,
                    segment_size: None,
                    src_ip: None,
                };
                loop {
                    poll_fn(|cx| poller.as_mut().poll_writable(cx)).await?;
                    match socket.try_send(&transmit) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        other => return other,
                    }
                }
            }
        }
    }
}
