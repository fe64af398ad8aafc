//! The cluster name in node certificates (TLS files).
//!
//! With the secret, the CA itself derives from the cluster name, so a
//! certificate of another cluster never verifies. With TLS files one CA may
//! serve several clusters, so each node certificate must name its cluster
//! as a DNS subject alternative name, `<cluster_name>.cluster.foundation`,
//! and both ends of every QUIC connection check it after the usual chain
//! and revocation checks: a node of another cluster sharing the CA fails
//! the handshake.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// What node certificates of `cluster` must carry: the DNS name
/// `<cluster>.cluster.foundation`, or `None` when the cluster name cannot
/// be a DNS label.
pub fn certificate_name(cluster: &str) -> Option<ServerName<'static>> {
    ServerName::try_from(crate::config::certificate_name(cluster)?).ok()
}

/// Whether `cert` names the cluster whose certificate name is `name`.
pub(crate) fn names(cert: &CertificateDer<'_>, name: &ServerName<'_>) -> bool {
    check(cert, name).is_ok()
}

/// rustls' own answer: a certificate "not valid for name
/// `<cluster>.cluster.foundation`", with the names it does carry.
fn check(cert: &CertificateDer<'_>, name: &ServerName<'_>) -> Result<(), rustls::Error> {
    let parsed = ParsedCertificate::try_from(cert)?;
    rustls::client::verify_server_name(&parsed, name)
}

/// The check both verifiers run once the chain is valid.
#[derive(Debug, Clone)]
struct Check {
    cluster: String,
    name: ServerName<'static>,
}

impl Check {
    fn run(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        check(cert, &self.name).inspect_err(|e| {
            tracing::debug!(cluster = %self.cluster, error = %e, "peer certificate of another cluster");
        })
    }
}

/// A client-certificate verifier that also requires the cluster name.
#[derive(Debug)]
pub(crate) struct ClusterClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    check: Check,
}

impl ClusterClientVerifier {
    pub(crate) fn new(
        inner: Arc<dyn ClientCertVerifier>,
        cluster: &str,
        name: ServerName<'static>,
    ) -> Self {
        ClusterClientVerifier {
            inner,
            check: Check {
                cluster: cluster.to_owned(),
                name,
            },
        }
    }
}

impl ClientCertVerifier for ClusterClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        self.check.run(end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A server-certificate verifier that also requires the cluster name.
#[derive(Debug)]
pub(crate) struct ClusterServerVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    check: Check,
}

impl ClusterServerVerifier {
    pub(crate) fn new(
        inner: Arc<dyn ServerCertVerifier>,
        cluster: &str,
        name: ServerName<'static>,
    ) -> Self {
        ClusterServerVerifier {
            inner,
            check: Check {
                cluster: cluster.to_owned(),
                name,
            },
        }
    }
}

impl ServerCertVerifier for ClusterServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        self.check.run(end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_name_that_is_a_dns_label_has_a_certificate_name() {
        let name = certificate_name("Shop-1").expect("a label");
        assert_eq!(name.to_str(), "shop-1.cluster.foundation");
        for bad in [
            "",
            "a.b",
            "-x",
            "x-",
            "under_score",
            "naïve",
            &"x".repeat(64),
        ] {
            assert!(certificate_name(bad).is_none(), "{bad:?}");
        }
    }

    fn leaf(names: &[&str]) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .expect("params");
        params.self_signed(&key).expect("cert").der().clone()
    }

    /// Both verifiers, over rustls' own chain checks, with one CA: a leaf
    /// of the CA that names another cluster fails as client and as server.
    #[test]
    fn both_ends_refuse_a_certificate_of_another_cluster_from_the_same_ca() {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let leaf_of = |cluster: &str| {
            let key = rcgen::KeyPair::generate().expect("key");
            let params = rcgen::CertificateParams::new(vec![
                "foundation.node".to_owned(),
                format!("{cluster}.cluster.foundation"),
            ])
            .expect("params");
            params.signed_by(&key, &issuer).expect("leaf").der().clone()
        };
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_cert.der().clone()).expect("root");
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let shop = certificate_name("shop").expect("label");
        let server_side = ClusterClientVerifier::new(
            rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots.clone(),
                provider.clone(),
            )
            .build()
            .expect("verifier"),
            "shop",
            shop.clone(),
        );
        let client_side = ClusterServerVerifier::new(
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .expect("verifier"),
            "shop",
            shop,
        );
        let now = UnixTime::now();
        let node = ServerName::try_from("foundation.node").expect("name");
        let (ours, theirs) = (leaf_of("shop"), leaf_of("billing"));
        assert!(server_side.verify_client_cert(&ours, &[], now).is_ok());
        assert!(client_side
            .verify_server_cert(&ours, &[], &node, &[], now)
            .is_ok());
        let e = server_side
            .verify_client_cert(&theirs, &[], now)
            .expect_err("client of billing");
        assert!(e.to_string().contains("shop.cluster.foundation"), "{e}");
        let e = client_side
            .verify_server_cert(&theirs, &[], &node, &[], now)
            .expect_err("server of billing");
        assert!(e.to_string().contains("shop.cluster.foundation"), "{e}");
    }

    #[test]
    fn a_certificate_names_its_cluster_only_with_the_dns_name() {
        let shop = certificate_name("shop").expect("label");
        assert!(names(
            &leaf(&["foundation.node", "shop.cluster.foundation"]),
            &shop
        ));
        assert!(!names(
            &leaf(&["foundation.node", "billing.cluster.foundation"]),
            &shop
        ));
        assert!(!names(&leaf(&["foundation.node"]), &shop));
        assert!(!names(&CertificateDer::from(vec![0x30, 0x00]), &shop));
    }
}
