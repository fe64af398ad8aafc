//! SWIM membership's sans-IO core, through foca (ADR 004).
//!
//! [`core::MembershipCore`] wraps foca: it takes datagrams, timer events
//! and `now`, and returns datagrams to send, timers to schedule and
//! [`MemberEvent`]s. [`seal`] seals and opens datagrams, and [`freshness`]
//! refuses replayed ones. The tokio shell
//! (`foundation::membership::Membership`) owns the socket and the timers;
//! the simulator drives the same core.

pub mod accusations;
mod config;
pub mod core;
pub mod defaults;
pub mod freshness;
mod identity;
pub mod lifeguard;
mod member;
pub mod seal;

pub use self::core::{CoreTimer, MembershipCore, Output};
pub use config::MembershipConfig;
pub use identity::{MemberId, SwimId};
pub use member::{Member, MemberEvent, MemberState};
