//! The keys a node derives for membership and discovery, derived in one
//! place: the node and `foundation doctor` use the same ones.

use super::keys::{derive_key, KeyPurpose};
use super::tls::TlsIdentity;
use crate::config::Config;

/// The membership sealing key and the discovery authentication key.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKeys {
    /// Seals membership datagrams (ChaCha20-Poly1305).
    pub membership: [u8; 32],
    /// Authenticates discovery beacons and records (HMAC-SHA256).
    pub discovery: [u8; 32],
}

impl std::fmt::Debug for ClusterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKeys(..)")
    }
}

impl ClusterKeys {
    /// The keys of `config`'s cluster. Membership trust follows TLS trust:
    /// with TLS files the CA certificate is mixed into the material, so a
    /// node holding a certificate from another CA can neither connect nor
    /// join.
    pub fn derive(config: &Config, tls: &TlsIdentity) -> Self {
        let mut material: Vec<u8> = config
            .cluster
            .secret
            .as_ref()
            .map(|s| s.expose().to_vec())
            .unwrap_or_default();
        if config.tls.has_files() {
            material.extend_from_slice(tls.ca_der().as_ref());
        }
        let name = &config.cluster.name;
        ClusterKeys {
            membership: derive_key(&material, name, KeyPurpose::Membership),
            discovery: derive_key(&material, name, KeyPurpose::Discovery),
        }
    }
}
