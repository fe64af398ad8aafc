//! QUIC transport with mutual TLS and four prioritized channels (ADR 003).
//!
//! [`Transport`] owns the quinn [`quinn::Endpoint`]. Connections are made on
//! demand by [`Transport::send`], reused while alive, and re-made after loss
//! with exponential backoff. Received frames go to [`Inbox`]es.

mod channel;
mod endpoint;
mod error;
pub mod frame;
mod inbox;
mod peer;
mod reader;

pub use channel::Channel;
pub use endpoint::{Transport, TransportSettings};
pub use error::{SendError, SendFailure, TransportError};
pub use frame::{Envelope, FrameDecoder, FrameError, PROTOCOL_VERSION};
pub use inbox::{Inbox, InboxFilter, Incoming, RESERVED_KINDS};

#[cfg(test)]
mod tests;
