//! The node's two UDP sockets: bound from the configuration, or handed
//! in by the application ([`Sockets`], for simulated networks).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::Config;
use crate::error::StartError;
use crate::id::NodeId;
use crate::membership::socket::MembershipSocket;
use crate::security::TlsIdentity;
use crate::telemetry::Stats;
use crate::transport::{Transport, TransportSettings};

/// UDP sockets a node uses instead of binding its own, through
/// [`crate::NodeBuilder::sockets`]: a simulated network (the testkit's
/// turmoil socket) or sockets the application set up itself.
///
/// With these sockets the node skips crash detection through "port
/// unreachable" (it needs kernel sockets); SWIM's probes detect crashes.
/// The node advertises the sockets' addresses, or `transport.advertise`'s
/// IP when set (needed when a socket is bound to an unspecified address).
pub struct Sockets {
    /// Membership (SWIM) datagrams. Its address is the node's address.
    pub membership: Arc<dyn quinn::AsyncUdpSocket>,
    /// The QUIC transport.
    pub transport: Arc<dyn quinn::AsyncUdpSocket>,
    /// Seed of quinn's randomness (connection ids, tokens); `None` draws
    /// it from the operating system.
    pub quic_seed: Option<[u8; 32]>,
    /// The clock coordination stamps its leases with (ms since an epoch
    /// shared by every node); `None`: the system's wall clock. A
    /// simulation gives its own, so leases follow simulated time.
    pub lease_clock: Option<crate::coord::LeaseClock>,
    /// Durable coordination storage is written on the task that asks,
    /// not on a writer thread. For simulations: no thread outside the
    /// simulation decides when a write is done, and a crashed node's file
    /// is closed the moment the node is dropped. A real node would block
    /// a runtime thread for each fsync.
    pub coord_disk_inline: bool,
}

impl std::fmt::Debug for Sockets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sockets")
            .field("membership", &self.membership.local_addr().ok())
            .field("transport", &self.transport.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// Both sockets, ready for the membership shell and the transport.
pub(super) struct Bound {
    pub(super) membership: MembershipSocket,
    /// The membership socket's bound address.
    pub(super) membership_addr: SocketAddr,
    pub(super) transport: Transport,
}

/// Binds the configured sockets, or adopts `given`.
pub(super) fn bind(
    config: &Config,
    tls: &TlsIdentity,
    id: NodeId,
    stats: &Arc<Stats>,
    faults: &crate::faults::Faults,
    given: Option<Sockets>,
) -> Result<Bound, StartError> {
    let m_addr = SocketAddr::new(config.transport.bind, config.membership.port);
    let bind_error = |e: std::io::Error| StartError::Bind {
        what: "membership socket",
        addr: m_addr,
        message: e.to_string(),
    };
    if let Some(given) = given {
        let membership = MembershipSocket::custom(given.membership);
        let membership_addr = membership.local_addr().map_err(bind_error)?;
        let t_addr = given.transport.local_addr().map_err(|e| StartError::Bind {
            what: "transport socket",
            addr: m_addr,
            message: e.to_string(),
        })?;
        let transport = Transport::with_socket(
            settings(config, t_addr, faults),
            tls,
            id,
            stats.clone(),
            given.transport,
            Arc::new(quinn::TokioRuntime),
            given.quic_seed,
        )?;
        return Ok(Bound {
            membership,
            membership_addr,
            transport,
        });
    }
    // Membership socket first: its port is the node's address.
    let m_socket = bind_udp(m_addr)?;
    let membership_addr = m_socket.local_addr().map_err(bind_error)?;
    let t_port = config.transport_port();
    let transport = Transport::bind(
        settings(
            config,
            SocketAddr::new(config.transport.bind, t_port),
            faults,
        ),
        tls,
        id,
        stats.clone(),
    )?;
    let socket = tokio::net::UdpSocket::from_std(m_socket).map_err(bind_error)?;
    Ok(Bound {
        membership: MembershipSocket::Kernel(socket),
        membership_addr,
        transport,
    })
}

/// The transport's settings from the configuration.
fn settings(
    config: &Config,
    bind: SocketAddr,
    faults: &crate::faults::Faults,
) -> TransportSettings {
    TransportSettings {
        bind,
        max_frame_size: config.transport.max_frame_size as usize,
        stream_window: config.transport.stream_window,
        idle_timeout: config.transport.idle_timeout,
        keep_alive: config.transport.keep_alive,
        connect_timeout: config.transport.connect_timeout,
        reconnect_min: config.transport.reconnect_min,
        reconnect_max: config.transport.reconnect_max,
        inbox_capacity: config.channels.inbox_capacity,
        faults: faults.clone(),
        compression: config.channels.compression,
        compress_above: config.channels.compress_above,
        single_stream: config.channels.single_stream,
    }
}

fn bind_udp(addr: SocketAddr) -> Result<std::net::UdpSocket, StartError> {
    let s = std::net::UdpSocket::bind(addr).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            StartError::MembershipPortInUse { addr }
        } else {
            StartError::Bind {
                what: "membership socket",
                addr,
                message: e.to_string(),
            }
        }
    })?;
    s.set_nonblocking(true).map_err(|e| StartError::Bind {
        what: "membership socket",
        addr,
        message: e.to_string(),
    })?;
    Ok(s)
}
