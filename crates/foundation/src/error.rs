//! Errors of starting a node.

use std::net::{IpAddr, SocketAddr};

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
    /// The public development secret would be reachable from the Internet.
    #[error("refusing to start: the public development secret would be used on {addr} (from `{key}`), which is reachable from the Internet, so anyone could join this cluster; fix: set a secret (FOUNDATION_SECRET=$(openssl rand -hex 32)) or bind to a loopback or private address")]
    PublicDevelopmentSecret {
        /// The public address.
        addr: IpAddr,
        /// The setting that puts the node there.
        key: &'static str,
    },
    /// The coordination engine (openraft) refused its configuration.
    #[error("cannot start coordination: {0}")]
    Coord(String),
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
