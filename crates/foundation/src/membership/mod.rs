//! SWIM membership through foca (ADR 004).
//!
//! The core is sans-IO, in `foundation_proto::membership`: it wraps foca,
//! takes datagrams, timer events and `now`, and returns datagrams to send,
//! timers to schedule and [`MemberEvent`]s. The tokio shell behind
//! [`Membership`] owns the UDP socket, seals datagrams and runs the timers.

mod canary;
pub(crate) mod runtime;
pub(crate) mod socket;
mod view;

pub(crate) use foundation_proto::membership::{core, freshness, seal};
pub use foundation_proto::membership::{Member, MemberEvent, MemberId, MemberState};
pub use runtime::Membership;
pub(crate) use view::View;
