//! HKDF-SHA256 key derivation from the cluster secret.

use ring::hkdf;

/// What a derived key is for; each purpose yields an unrelated key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    /// Seed of the cluster CA's Ed25519 key.
    CertificateAuthority,
    /// ChaCha20-Poly1305 key sealing membership datagrams.
    Membership,
    /// HMAC-SHA256 key authenticating discovery beacons.
    Discovery,
}

impl KeyPurpose {
    fn label(self) -> &'static [u8] {
        match self {
            KeyPurpose::CertificateAuthority => b"foundation/v2/cluster-ca-ed25519",
            KeyPurpose::Membership => b"foundation/v2/membership-chacha20poly1305",
            KeyPurpose::Discovery => b"foundation/v2/discovery-hmac-sha256",
        }
    }
}

struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// Derives a 32-byte key for `purpose` from the secret and the cluster name
/// (so two clusters that reuse a secret still do not trust each other).
///
/// The cluster name is the HKDF salt (v2): a table of guesses computed for
/// one cluster name is useless against another, so offline guessing from a
/// captured beacon must start over per cluster. It is also in the info, as
/// in v1.
pub fn derive_key(secret: &[u8], cluster_name: &str, purpose: KeyPurpose) -> [u8; 32] {
    let mut salt = b"foundation cluster secret v2\0".to_vec();
    salt.extend_from_slice(cluster_name.as_bytes());
    let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt);
    let prk = salt.extract(secret);
    let info = [purpose.label(), b"\0", cluster_name.as_bytes()];
    let mut out = [0u8; 32];
    // `expand` fails only when the output is longer than 255 hash lengths,
    // and `fill` only when lengths differ; 32 bytes satisfies both.
    if let Ok(okm) = prk.expand(&info, Len32) {
        let _ = okm.fill(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_deterministic_and_separated() {
        let a = derive_key(b"s", "c", KeyPurpose::Membership);
        assert_eq!(a, derive_key(b"s", "c", KeyPurpose::Membership));
        assert_ne!(a, [0u8; 32]);
        assert_ne!(a, derive_key(b"s", "c", KeyPurpose::CertificateAuthority));
        assert_ne!(a, derive_key(b"t", "c", KeyPurpose::Membership));
        assert_ne!(a, derive_key(b"s", "d", KeyPurpose::Membership));
    }
}
