//! Wizard mode: CA, certificate and key from PEM files instead of the secret.

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use foundation::Channel;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).expect("self-signed");
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// Writes ca.pem, <name>.pem and <name>.key into `dir`.
fn node_files(ca: &Ca, dir: &Path, name: &str) -> foundation::NodeBuilder {
    node_files_serial(ca, dir, name, None)
}

/// [`node_files`] with the certificate's serial number.
fn node_files_serial(
    ca: &Ca,
    dir: &Path,
    name: &str,
    serial: Option<u64>,
) -> foundation::NodeBuilder {
    cert_files(
        ca,
        dir,
        name,
        serial,
        &["foundation.node", "foundation.cluster.foundation"],
    )
}

/// A node of cluster `cluster` whose certificate names it.
fn node_of_cluster(ca: &Ca, dir: &Path, name: &str, cluster: &str) -> foundation::NodeBuilder {
    let cluster_dns = format!("{cluster}.cluster.foundation");
    cert_files(ca, dir, name, None, &["foundation.node", &cluster_dns]).set("cluster_name", cluster)
}

/// Writes the CA, a certificate with these DNS names, and its key.
fn cert_files(
    ca: &Ca,
    dir: &Path,
    name: &str,
    serial: Option<u64>,
    dns: &[&str],
) -> foundation::NodeBuilder {
    let key = KeyPair::generate().expect("key");
    let mut params =
        CertificateParams::new(dns.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>())
            .expect("params");
    params.serial_number = serial.map(rcgen::SerialNumber::from);
    let cert = params.signed_by(&key, &ca.issuer).expect("signed");
    let ca_path = dir.join(format!("{name}-ca.pem"));
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&ca_path, &ca.pem).expect("write ca");
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    builder(name)
        .set("tls.ca_file", ca_path.to_str().expect("utf8"))
        .set("tls.cert_file", cert_path.to_str().expect("utf8"))
        .set("tls.key_file", key_path.to_str().expect("utf8"))
}

/// Writes one control frame from `from` straight to `to`'s QUIC port,
/// past membership (as a node outside the cluster would).
async fn send_raw(
    from: &foundation::Node,
    to: &foundation::Node,
    payload: &'static [u8],
) -> Result<(), foundation::SendError> {
    from.raw()
        .transport()
        .send(
            to.transport_addr(),
            Channel::Control,
            1,
            Vec::new(),
            Bytes::from_static(payload),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_certificates_from_one_ca_form_a_cluster_others_cannot_join() {
    init_tracing();
    let dir = tempfile::tempdir().expect("dir");
    let ours = ca("our CA");
    let theirs = ca("their CA");

    let a = node_files(&ours, dir.path(), "a")
        .start()
        .await
        .expect("a starts");
    let seed = a.membership_addr().to_string();
    let b = node_files(&ours, dir.path(), "b")
        .seeds([seed.as_str()])
        .start()
        .await
        .expect("b");
    a.wait_for_members(2, SETTLE).await.expect("a sees b");
    b.wait_for_members(2, SETTLE).await.expect("b sees a");
    let mut inbox = b.inbox(Channel::Control);
    a.send(
        b.id(),
        Channel::Control,
        1,
        Bytes::from_static(b"over mTLS"),
    )
    .await
    .expect("send");
    let msg = tokio::time::timeout(SETTLE, inbox.recv())
        .await
        .expect("in time")
        .expect("open");
    assert_eq!(&msg.payload[..], b"over mTLS");

    // Same (development) secret, but a certificate from another CA.
    let stranger = node_files(&theirs, dir.path(), "stranger")
        .seeds([seed.as_str()])
        .start()
        .await
        .expect("stranger starts");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        stranger.members().len(),
        1,
        "stranger joined: {:?}",
        stranger.members()
    );
    assert!(state_of(&a, stranger.id()).is_none());
    let direct = send_raw(&stranger, &a, b"x").await;
    assert!(
        direct.is_err(),
        "TLS must refuse a certificate from another CA"
    );
    for n in [&stranger, &b, &a] {
        n.shutdown().await;
    }
}

/// A CRL from `ca` that revokes the certificate with serial `serial`.
fn crl_file(ca: &Ca, dir: &Path, serial: u64) -> String {
    let params = rcgen::CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2026, 1, 1),
        next_update: rcgen::date_time_ymd(2099, 1, 1),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![rcgen::RevokedCertParams {
            serial_number: rcgen::SerialNumber::from(serial),
            revocation_time: rcgen::date_time_ymd(2026, 1, 1),
            reason_code: Some(rcgen::RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&ca.issuer).expect("crl");
    let path = dir.join("revoked.crl.pem");
    std::fs::write(&path, crl.pem().expect("pem")).expect("write crl");
    path.to_str().expect("utf8").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_refused_both_ways() {
    init_tracing();
    let dir = tempfile::tempdir().expect("dir");
    let ours = ca("our CA");
    let crl = crl_file(&ours, dir.path(), 66);
    let a = node_files_serial(&ours, dir.path(), "a", Some(1))
        .set("tls.crl_file", &crl)
        .start()
        .await
        .expect("a starts");
    // Not revoked, checks the list too: connects (and joins: a node
    // takes frames from members only).
    let seed = a.membership_addr().to_string();
    let c = node_files_serial(&ours, dir.path(), "c", Some(2))
        .set("tls.crl_file", &crl)
        .seeds([seed.as_str()])
        .start()
        .await
        .expect("c starts");
    a.wait_for_members(2, SETTLE).await.expect("a sees c");
    // Revoked, and holds no list itself.
    let revoked = node_files_serial(&ours, dir.path(), "revoked", Some(66))
        .start()
        .await
        .expect("revoked starts");
    let mut a_inbox = a.inbox(Channel::Control);
    send_raw(&c, &a, b"x")
        .await
        .expect("a certificate not revoked connects");
    let got = tokio::time::timeout(SETTLE, a_inbox.recv())
        .await
        .expect("in time")
        .expect("open");
    assert_eq!(got.from, c.id());

    // a, as client, refuses the revoked server certificate.
    assert!(
        send_raw(&a, &revoked, b"x").await.is_err(),
        "a connected to a revoked node"
    );
    // a, as server, refuses the revoked client certificate: whatever the
    // revoked node's side believes, a receives nothing and counts it.
    let _ = send_raw(&revoked, &a, b"x").await;
    tokio::time::timeout(SETTLE, async {
        while a.raw().stats().handshakes_failed() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a counts the refused handshake");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), a_inbox.recv())
            .await
            .is_err(),
        "a received a frame from a revoked certificate"
    );
    for n in [&revoked, &c, &a] {
        n.shutdown().await;
    }
}

/// A node of another cluster whose certificate comes from the same CA
/// connects (TLS vouches for it) but cannot join (the membership key
/// includes the cluster name), and its frames are dropped: frames are
/// taken from members only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_cluster_sharing_the_ca_fails_the_handshake_both_ways() {
    init_tracing();
    let dir = tempfile::tempdir().expect("dir");
    let ours = ca("shared CA");
    let a = node_of_cluster(&ours, dir.path(), "a", "shop")
        .start()
        .await
        .expect("a starts");
    let other = node_of_cluster(&ours, dir.path(), "other", "billing")
        .start()
        .await
        .expect("other starts");
    let mut inbox = a.inbox(Channel::Control);
    let there = send_raw(&other, &a, b"injected").await;
    let back = send_raw(&a, &other, b"injected").await;
    for (what, r) in [("billing to shop", &there), ("shop to billing", &back)] {
        let e = r.as_ref().expect_err(what);
        assert!(e.to_string().contains(".cluster.foundation"), "{what}: {e}");
    }
    assert!(
        inbox.try_recv().is_none(),
        "a delivered the other cluster's frame"
    );
    for n in [&other, &a] {
        n.shutdown().await;
    }
}

/// A certificate of the right cluster without the secret: TLS lets it
/// connect, membership does not let it in, and its frames are dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_holder_without_the_secret_cannot_deliver_frames() {
    init_tracing();
    let dir = tempfile::tempdir().expect("dir");
    let ours = ca("shared CA");
    let a = node_of_cluster(&ours, dir.path(), "a", "shop")
        .start()
        .await
        .expect("a starts");
    let seed = a.membership_addr().to_string();
    let other = node_of_cluster(&ours, dir.path(), "other", "shop")
        .secret("another-secret-of-the-same-cluster-42")
        .seeds([seed.as_str()])
        .start()
        .await
        .expect("other starts");
    let mut inbox = a.inbox(Channel::Control);
    send_raw(&other, &a, b"injected")
        .await
        .expect("TLS lets it connect and write");
    tokio::time::timeout(SETTLE + Duration::from_secs(5), async {
        while a.raw().stats().non_member_frames() == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a drops and counts the frame");
    assert!(
        inbox.try_recv().is_none(),
        "a delivered a non-member's frame"
    );
    assert!(state_of(&a, other.id()).is_none(), "other joined a");
    for n in [&other, &a] {
        n.shutdown().await;
    }
}

#[test]
fn a_certificate_that_does_not_name_the_cluster_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("dir");
    let ours = ca("our CA");
    let config = node_files(&ours, dir.path(), "x")
        .set("cluster_name", "shop")
        .resolve()
        .expect("resolves")
        .config;
    let e = foundation::security::TlsIdentity::from_config(&config).expect_err("names foundation");
    let text = e.to_string();
    assert!(
        text.contains("tls.cert_file") && text.contains("DNS:shop.cluster.foundation"),
        "{text}"
    );
    let e = node_files(&ours, dir.path(), "y")
        .set("cluster_name", "shop_eu")
        .resolve()
        .expect_err("not a DNS label");
    assert!(e.to_string().contains("cluster_name"), "{e}");
}

#[test]
fn a_crl_file_that_is_not_a_crl_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("dir");
    let ours = ca("our CA");
    let bad = dir.path().join("bad.crl");
    std::fs::write(&bad, "not a CRL").expect("write");
    let builder =
        node_files(&ours, dir.path(), "x").set("tls.crl_file", bad.to_str().expect("utf8"));
    let config = builder.resolve().expect("resolves").config;
    let e = foundation::security::TlsIdentity::from_config(&config).expect_err("no CRL in it");
    assert!(e.to_string().contains("tls.crl_file"), "{e}");
}

/// Records the context a node hands its discovery strategy.
#[derive(Debug)]
struct Spy(std::sync::mpsc::Sender<foundation::discovery::DiscoveryContext>);

impl foundation::discovery::Strategy for Spy {
    fn name(&self) -> &'static str {
        "spy"
    }
    fn run(
        self: Box<Self>,
        ctx: foundation::discovery::DiscoveryContext,
        _sink: foundation::discovery::CandidateSink,
        cancel: tokio_util::sync::CancellationToken,
    ) -> foundation::discovery::StrategyTask {
        let _ = self.0.send(ctx);
        Box::pin(async move { cancel.cancelled().await })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_probes_with_the_discovery_key_the_node_uses() {
    init_tracing();
    let dir = tempfile::tempdir().expect("dir");
    let ours = ca("our CA");
    for with_files in [true, false] {
        let builder = if with_files {
            node_files(&ours, dir.path(), "spied")
        } else {
            builder("spied")
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let resolved = builder.resolve().expect("resolves");
        let node = builder.discovery(Spy(tx)).start().await.expect("starts");
        let given = rx.recv_timeout(Duration::from_secs(5)).expect("context");
        // What `foundation doctor` derives from the same configuration.
        let doctor = foundation::discovery::DiscoveryContext::for_config(&resolved.config)
            .expect("doctor's context");
        assert_eq!(doctor.key, given.key, "TLS files: {with_files}");
        node.shutdown().await;
    }
}
