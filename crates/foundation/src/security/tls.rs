//! The node's TLS identity and the rustls configurations for mutual TLS.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber, PKCS_ED25519,
};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use super::cluster_name::{self, ClusterClientVerifier, ClusterServerVerifier};
use super::keys::{derive_key, KeyPurpose};
use crate::config::{Config, TlsConfig};

/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410); the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Why the TLS identity could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Neither a secret nor TLS files were configured.
    #[error("no cluster secret and no TLS files: set FOUNDATION_SECRET or tls.ca_file, tls.cert_file and tls.key_file")]
    NoCredentials,
    /// A PEM file could not be read or parsed.
    #[error("cannot load {what} from {path} (key `{key}`): {message}")]
    File {
        /// Which file.
        what: &'static str,
        /// The configuration key.
        key: &'static str,
        /// Its path.
        path: String,
        /// The cause.
        message: String,
    },
    /// rcgen failed to make a certificate.
    #[error("certificate generation (rcgen) failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls rejected the configuration.
    #[error("TLS configuration (rustls) rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// A certificate verifier could not be built.
    #[error("certificate verifier (rustls) rejected the CA or a revocation list: {0}")]
    Verifier(String),
    /// quinn rejected the rustls configuration.
    #[error("QUIC crypto configuration (quinn) rejected: {0}")]
    Quic(String),
    /// With TLS files, node certificates name the cluster as a DNS label,
    /// which this cluster name cannot be.
    #[error("cluster name `{0}` cannot be used with TLS files: node certificates name their cluster as the DNS name <cluster_name>.cluster.foundation; fix: use a cluster_name of letters, digits and inner hyphens, at most 63")]
    ClusterName(String),
}

/// The CA this node trusts and the certificate it presents.
#[derive(Debug)]
pub struct TlsIdentity {
    ca: CertificateDer<'static>,
    /// Revoked certificates (TLS files only).
    crls: Vec<CertificateRevocationListDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    server_name: String,
    /// With TLS files: the cluster, and the DNS name its node certificates
    /// must carry (checked on both ends of every connection).
    cluster: Option<(String, ServerName<'static>)>,
}

impl TlsIdentity {
    /// Loads TLS files when configured, else derives everything from the secret.
    pub fn from_config(config: &Config) -> Result<Self, TlsError> {
        if config.tls.has_files() {
            return Self::from_files(&config.tls, &config.cluster.name);
        }
        let secret = config
            .cluster
            .secret
            .as_ref()
            .ok_or(TlsError::NoCredentials)?;
        Self::from_secret(
            secret.expose(),
            &config.cluster.name,
            &config.tls.server_name,
        )
    }

    /// Derives the cluster CA from the secret and issues a fresh leaf
    /// certificate for this node. Every node derives a byte-identical CA.
    pub fn from_secret(secret: &[u8], cluster: &str, server_name: &str) -> Result<Self, TlsError> {
        let seed = derive_key(secret, cluster, KeyPurpose::CertificateAuthority);
        let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
        pkcs8.extend_from_slice(&seed);
        let ca_key =
            KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(pkcs8), &PKCS_ED25519)?;
        let mut ca_params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            format!("foundation cluster CA {cluster}"),
        );
        ca_params.distinguished_name = dn;
        ca_params.serial_number = Some(SerialNumber::from(1u64));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate_for(&PKCS_ED25519)?;
        let mut leaf = CertificateParams::new(vec![server_name.to_owned()])?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "foundation node");
        leaf.distinguished_name = dn;
        leaf.use_authority_key_identifier_extension = true;
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
        Ok(TlsIdentity {
            ca: ca_cert.der().clone(),
            crls: Vec::new(),
            chain: vec![leaf_cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            server_name: server_name.to_owned(),
            // The CA derives from the cluster name: nothing more to check.
            cluster: None,
        })
    }

    /// Loads CA, certificate chain and key from PEM files. The certificate
    /// must name `cluster` (see [`super::cluster_name`]).
    pub fn from_files(tls: &TlsConfig, cluster: &str) -> Result<Self, TlsError> {
        let (Some(ca), Some(cert), Some(key)) = (&tls.ca_file, &tls.cert_file, &tls.key_file)
        else {
            return Err(TlsError::NoCredentials);
        };
        let err = |what, key, path: &Path, message: String| TlsError::File {
            what,
            key,
            path: path.display().to_string(),
            message,
        };
        let ca_der = CertificateDer::from_pem_file(ca)
            .map_err(|e| err("CA certificate", "tls.ca_file", ca, e.to_string()))?;
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| err("certificate", "tls.cert_file", cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(err(
                "certificate",
                "tls.cert_file",
                cert,
                "no certificate in file".into(),
            ));
        }
        let key_der = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| err("private key", "tls.key_file", key, e.to_string()))?;
        let crls = match &tls.crl_file {
            None => Vec::new(),
            Some(path) => {
                let crls = CertificateRevocationListDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| err("revocation list", "tls.crl_file", path, e.to_string()))?;
                if crls.is_empty() {
                    return Err(err(
                        "revocation list",
                        "tls.crl_file",
                        path,
                        "no CRL in file".into(),
                    ));
                }
                crls
            }
        };
        let name = cluster_name::certificate_name(cluster)
            .ok_or_else(|| TlsError::ClusterName(cluster.to_owned()))?;
        if !cluster_name::names(&chain[0], &name) {
            return Err(err(
                "certificate",
                "tls.cert_file",
                cert,
                format!(
                    "it does not name cluster `{cluster}`: add the DNS name {n} to its subjectAltName (for example `openssl req ... -addext \"subjectAltName=DNS:{server},DNS:{n}\"`), or set cluster_name to the cluster it was issued for",
                    n = name.to_str(),
                    server = tls.server_name,
                ),
            ));
        }
        Ok(TlsIdentity {
            ca: ca_der,
            crls,
            chain,
            key: key_der,
            server_name: tls.server_name.clone(),
            cluster: Some((cluster.to_owned(), name)),
        })
    }

    /// The CA certificate (DER).
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca
    }

    /// The name clients verify in server certificates.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone())?;
        Ok(Arc::new(roots))
    }

    /// quinn server configuration requiring client certificates from the
    /// CA, offering `alpn` (most preferred first).
    pub(crate) fn quic_server(&self, alpn: &[&[u8]]) -> Result<quinn::ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // Revocation of node certificates (the CA is the trust anchor);
        // a certificate whose status no list gives is refused.
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots()?, provider.clone())
            .with_crls(self.crls.iter().cloned())
            .only_check_end_entity_revocation()
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let verifier: Arc<dyn rustls::server::danger::ClientCertVerifier> = match &self.cluster {
            Some((cluster, name)) => {
                Arc::new(ClusterClientVerifier::new(verifier, cluster, name.clone()))
            }
            None => verifier,
        };
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| TlsError::Quic(e.to_string()))?;
        Ok(quinn::ServerConfig::with_crypto(Arc::new(crypto)))
    }

    /// quinn client configuration presenting this node's certificate,
    /// offering `alpn`.
    pub(crate) fn quic_client(&self, alpn: &[&[u8]]) -> Result<quinn::ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(self.roots()?, provider.clone())
            .with_crls(self.crls.iter().cloned())
            .only_check_end_entity_revocation()
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = match &self.cluster {
            Some((cluster, name)) => {
                Arc::new(ClusterServerVerifier::new(verifier, cluster, name.clone()))
            }
            None => verifier,
        };
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| TlsError::Quic(e.to_string()))?;
        Ok(quinn::ClientConfig::new(Arc::new(crypto)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_secret_derives_identical_ca_and_distinct_leaves() {
        let a = TlsIdentity::from_secret(b"s3cret", "c", "foundation.node").expect("a");
        let b = TlsIdentity::from_secret(b"s3cret", "c", "foundation.node").expect("b");
        assert_eq!(a.ca_der(), b.ca_der());
        assert_ne!(a.chain[0], b.chain[0]);
        let other = TlsIdentity::from_secret(b"other", "c", "foundation.node").expect("other");
        assert_ne!(a.ca_der(), other.ca_der());
    }

    #[test]
    fn configs_build() {
        let a = TlsIdentity::from_secret(b"s3cret", "c", "foundation.node").expect("a");
        assert!(a.quic_server(&[b"x"]).is_ok());
        assert!(a.quic_client(&[b"x"]).is_ok());
    }

    #[test]
    fn missing_tls_file_names_the_key() {
        let tls = TlsConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            cert_file: Some("/nonexistent/c.pem".into()),
            key_file: Some("/nonexistent/k.pem".into()),
            crl_file: None,
            server_name: "foundation.node".into(),
        };
        let e = TlsIdentity::from_files(&tls, "c").expect_err("missing");
        assert!(e.to_string().contains("tls.ca_file"), "{e}");
    }
}
