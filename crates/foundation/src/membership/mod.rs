//! SWIM membership through foca (ADR 004).
//!
//! [`core::MembershipCore`] is sans-IO: it wraps foca, takes datagrams, timer
//! events and `now`, and returns datagrams to send, timers to schedule and
//! [`MemberEvent`]s. The tokio shell behind [`Membership`] owns the UDP socket,
//! seals datagrams ([`seal`]) and runs the timers.

mod canary;
pub mod core;
mod identity;
mod member;
pub(crate) mod runtime;
pub mod seal;
pub(crate) mod socket;

pub use self::core::{MembershipCore, Output};
pub use identity::MemberId;
pub use member::{Member, MemberEvent, MemberState};
pub use runtime::Membership;
