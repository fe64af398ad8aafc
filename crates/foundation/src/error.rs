//! Errors of starting a node.

use std::net::SocketAddr;

use crate::config::ConfigError;
use crate::security::TlsError;
use crate::transport::TransportError;

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// TLS credentials could not be built or loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The QUIC transport could not start.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The membership UDP port is taken.
    #[error("cannot bind membership (SWIM) socket to {addr} (key `membership.port`): port in use; fix: stop the other process or set membership.port / FOUNDATION_PORT / --port to a free port")]
    MembershipPortInUse {
        /// The address.
        addr: SocketAddr,
    },
    /// The HTTP port is taken.
    #[error("cannot bind HTTP endpoint to {addr} (key `http.port`): port in use; fix: set http.port / FOUNDATION_HTTP_PORT to a free port")]
    HttpPortInUse {
        /// The address.
        addr: SocketAddr,
    },
    /// Another socket error.
    #[error("cannot bind {what} to {addr}: {message}")]
    Bind {
        /// Which socket.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        message: String,
    },
}
