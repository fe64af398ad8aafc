//! QUIC transport with mutual TLS and four prioritized channels (ADR 003).
//!
//! [`Transport`] owns the quinn [`quinn::Endpoint`]. Connections are made on
//! demand by [`Transport::send`], reused while alive, and re-made after loss
//! with exponential backoff. Received frames go to [`Inbox`]es.
//!
//! The data channel has [`DATA_LANES`] streams; payloads above
//! `compress_above` on it are LZ4-compressed when both ends offered it in
//! the TLS handshake (ALPN `foundation/2+lz4`).

mod endpoint;
mod error;
mod inbox;
mod payload;
mod peer;
mod reader;
mod senders;

pub use endpoint::{Transport, TransportSettings};
pub use error::{SendError, SendFailure, TransportError};
pub(crate) use foundation_proto::frame;
pub use foundation_proto::frame::{Envelope, FrameDecoder, FrameError, PROTOCOL_VERSION};
pub use foundation_proto::Channel;
pub use inbox::{Inbox, InboxFilter, Incoming, RESERVED_KINDS};
pub(crate) use payload::Payload;
pub use peer::DATA_LANES;
pub(crate) use senders::Members;

#[cfg(test)]
mod tests;
