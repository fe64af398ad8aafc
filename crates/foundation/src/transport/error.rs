//! Transport errors.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use foundation_proto::Channel;

/// The transport could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The UDP port is taken.
    #[error("cannot bind QUIC transport to {addr} (key `transport.port`): port in use; fix: stop the other process or set transport.port / FOUNDATION_TRANSPORT_PORT to a free port")]
    PortInUse {
        /// The address.
        addr: SocketAddr,
    },
    /// Another bind failure.
    #[error("cannot bind QUIC transport (quinn) to {addr}: {message}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        message: String,
    },
    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] crate::security::TlsError),
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendFailure {
    /// A recent connection attempt failed; the next is allowed after this.
    Backoff {
        /// Time until the next attempt.
        retry_in: Duration,
    },
    /// Connecting (QUIC handshake, TLS) failed.
    Connect(String),
    /// Writing to the stream failed (connection lost).
    Stream(String),
    /// The frame exceeds the maximum frame size.
    TooLarge {
        /// Encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No alive member has this node id.
    UnknownNode,
    /// The node is shutting down.
    ShuttingDown,
}

impl std::fmt::Display for SendFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendFailure::Backoff { retry_in } => {
                write!(f, "reconnect backoff, next attempt in {retry_in:?}")
            }
            SendFailure::Connect(e) => write!(f, "connect failed (quinn): {e}"),
            SendFailure::Stream(e) => write!(f, "stream write failed (quinn): {e}"),
            SendFailure::TooLarge { len, max } => write!(
                f,
                "frame of {len} bytes exceeds transport.max_frame_size = {max}"
            ),
            SendFailure::UnknownNode => f.write_str("no alive member with that node id"),
            SendFailure::ShuttingDown => f.write_str("node is shutting down"),
        }
    }
}

/// A send that failed; the payload is given back.
#[derive(Debug, thiserror::Error)]
#[error("send on channel {channel} to {target} failed: {reason}")]
pub struct SendError {
    /// The peer (address or node id).
    pub target: String,
    /// The channel.
    pub channel: Channel,
    /// Why.
    pub reason: SendFailure,
    /// The payload that was not sent.
    pub payload: Bytes,
}

impl SendError {
    pub(crate) fn new(
        target: impl ToString,
        channel: Channel,
        reason: SendFailure,
        payload: Bytes,
    ) -> Self {
        SendError {
            target: target.to_string(),
            channel,
            reason,
            payload,
        }
    }
}
