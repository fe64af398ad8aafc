//! Keys and certificates derived from the cluster secret (ADR 003).
//!
//! Nodes that share a secret derive the same cluster CA and the same
//! membership sealing key, so they trust each other with no files.

mod cluster_keys;
pub mod cluster_name;
mod exposure;
mod keys;
mod tls;

pub use cluster_keys::ClusterKeys;
pub(crate) use exposure::{development_exposure, Exposure};
pub use exposure::{reach, Reach};
pub use keys::{derive_key, KeyPurpose};
pub use tls::{TlsError, TlsIdentity};
