//! Subcommands.

pub(crate) mod config;
pub(crate) mod dev;
pub(crate) mod doctor;
pub(crate) mod http_get;
pub(crate) mod node;
pub(crate) mod procs;
#[cfg(feature = "lab")]
pub(crate) mod sim;
pub(crate) mod status;
