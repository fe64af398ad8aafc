//! Foundation: distributed Rust applications as easy as single-node ones.
//!
//! WALKTHROUGH_PLACEHOLDER

pub mod config;
pub mod discovery;
mod error;
pub mod http;
mod id;
pub mod membership;
mod node;
pub mod security;
pub mod telemetry;
pub mod transport;

pub use config::{Config, ConfigError, Profile};
pub use error::StartError;
pub use id::NodeId;
pub use membership::{Member, MemberEvent, MemberState};
pub use node::{start, DebugStrategy, Events, Node, NodeBuilder, Raw};
pub use transport::{Channel, Inbox, InboxFilter, Incoming, SendError};
