//! Pub/sub's sans-IO parts: the batch codec of published items.

mod wire;

pub use wire::*;
