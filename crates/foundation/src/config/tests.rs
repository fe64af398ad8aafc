//! Resolver tests: precedence, tiers, sources and every configuration error.

use std::io::Write as _;
use std::time::Duration;

use super::*;

fn env(vars: &[(&str, &str)]) -> Resolver {
    Resolver::new()
        .no_file_detection()
        .env(vars.iter().copied())
}

/// A secret for tests whose strategy implies the production profile.
const SECRET: (&str, &str) = ("FOUNDATION_SECRET", "a-test-secret-0123456789abcdef");

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f
}

#[test]
fn mortal_nothing_set_gives_development_defaults() {
    let r = env(&[]).resolve().expect("defaults resolve");
    assert_eq!(r.tier, Tier::Mortal);
    assert_eq!(r.config.profile, Profile::Development);
    assert_eq!(r.config.cluster.discovery, DiscoveryKind::Mdns);
    assert!(matches!(r.sources["cluster"], Source::Detected(_)));
    assert!(r
        .config
        .cluster
        .secret
        .as_ref()
        .is_some_and(Secret::is_development));
    assert_eq!(r.config.membership.port, defaults::MEMBERSHIP_PORT);
    assert_eq!(
        r.config.membership.probe_period,
        Duration::from_millis(defaults::PROBE_PERIOD_MS)
    );
    assert!(!r.config.http.enabled);
}

#[test]
fn apprentice_one_word_from_env() {
    let r = env(&[
        ("FOUNDATION_CLUSTER", "static"),
        ("FOUNDATION_SEEDS", "10.0.0.1:7946, b.local:7000"),
    ])
    .resolve()
    .expect("resolves");
    assert_eq!(r.tier, Tier::Apprentice);
    assert_eq!(
        r.sources["cluster"],
        Source::Env("FOUNDATION_CLUSTER".into())
    );
    assert_eq!(r.config.cluster.seeds.len(), 2);
    assert_eq!(r.config.cluster.seeds[1].host, "b.local");
}

#[test]
fn wizard_tables_from_file() {
    let f = file(
        "[membership]\nprobe_period_ms = 500\nprobe_rtt_ms = 200\nsuspect_to_down_ms = 2000\n",
    );
    let r = env(&[]).file(f.path()).resolve().expect("resolves");
    assert_eq!(r.tier, Tier::Wizard);
    assert_eq!(r.config.membership.probe_period, Duration::from_millis(500));
    assert_eq!(
        r.sources["membership.probe_period_ms"],
        Source::File(f.path().to_owned())
    );
}

#[test]
fn precedence_is_builder_then_env_then_file_then_default() {
    let f = file("node.name = \"from-file\"\n[http]\nport = 1000\nbind = \"127.0.0.1\"\n");
    // toml dotted key `node.name` is a table node with key name.
    let mut r = env(&[
        ("FOUNDATION_HTTP_PORT", "2000"),
        ("FOUNDATION_NAME", "from-env"),
    ])
    .file(f.path());
    r.builder_layer()
        .set_str("node.name", "from-builder", "builder")
        .expect("known key");
    let res = r.resolve().expect("resolves");
    assert_eq!(res.config.node.name, "from-builder");
    assert_eq!(res.sources["node.name"], Source::Builder);
    assert_eq!(res.config.http.port, 2000);
    assert_eq!(
        res.sources["http.port"],
        Source::Env("FOUNDATION_HTTP_PORT".into())
    );
    assert_eq!(res.sources["http.bind"], Source::File(f.path().to_owned()));
    assert_eq!(res.sources["http.enabled"], Source::Default);
}

#[test]
fn config_file_env_var_names_the_file() {
    let f = file("cluster_name = \"shop\"\n");
    let path = f.path().to_str().expect("utf8 path");
    let r = env(&[("FOUNDATION_CONFIG", path)])
        .resolve()
        .expect("resolves");
    assert_eq!(r.config.cluster.name, "shop");
}

#[test]
fn explain_shows_tier_and_every_source() {
    let r = env(&[("FOUNDATION_PORT", "7000")])
        .resolve()
        .expect("resolves");
    let text = r.to_string();
    assert!(text.contains("tier: apprentice"), "{text}");
    assert!(text.contains("membership.port"), "{text}");
    assert!(text.contains("(env FOUNDATION_PORT)"), "{text}");
    assert!(
        text.contains("transport.port") && text.contains("7001"),
        "{text}"
    );
    assert!(text.contains("<development secret>"), "{text}");
    assert_eq!(r.entries().len(), KEYS.len());
}

#[test]
fn explain_never_shows_the_secret() {
    let r = env(&[("FOUNDATION_SECRET", "hunter2-hunter2-hunter2")])
        .resolve()
        .expect("resolves");
    assert!(!r.to_string().contains("hunter2"));
    assert!(!format!("{:?}", r.config).contains("hunter2"));
}

// --- every configuration error ---

#[test]
fn error_unknown_key() {
    let f = file("[transport]\nmax_frame = 10\n");
    let e = env(&[]).file(f.path()).resolve().expect_err("unknown key");
    assert!(matches!(e, ConfigError::UnknownKey { ref key, .. } if key == "transport.max_frame"));
    assert!(e.to_string().contains("transport.max_frame_size"), "{e}");
}

#[test]
fn error_wrong_type() {
    let e = env(&[("FOUNDATION_HTTP", "perhaps")])
        .resolve()
        .expect_err("wrong type");
    assert!(matches!(e, ConfigError::InvalidValue(ref d) if d.key == "http.enabled"));
    assert!(e.to_string().contains("`perhaps`") && e.to_string().contains("true or false"));
}

#[test]
fn error_unparsable_address() {
    let e = env(&[("FOUNDATION_SEEDS", "10.0.0.1")])
        .resolve()
        .expect_err("no port");
    assert!(matches!(e, ConfigError::InvalidValue(ref d) if d.key == "seeds"));
    let e = env(&[("FOUNDATION_ADVERTISE", "my host")])
        .resolve()
        .expect_err("bad ip");
    assert!(matches!(e, ConfigError::InvalidValue(ref d) if d.key == "transport.advertise"));
}

#[test]
fn error_missing_secret_in_production() {
    let e = env(&[("FOUNDATION_PROFILE", "production")])
        .resolve()
        .expect_err("no secret");
    assert_eq!(e, ConfigError::MissingSecret);
    assert!(e.to_string().contains("FOUNDATION_SECRET"));
    let short = env(&[
        ("FOUNDATION_PROFILE", "production"),
        ("FOUNDATION_SECRET", "short"),
    ])
    .resolve();
    assert!(matches!(short, Err(ConfigError::InvalidValue(ref d)) if d.key == "secret"));
    let ok = env(&[
        ("FOUNDATION_PROFILE", "production"),
        ("FOUNDATION_SECRET", "0123456789abcdef0123"),
    ])
    .resolve();
    assert!(ok.is_ok());
}

#[test]
fn production_with_tls_files_still_needs_a_secret() {
    // The CA certificate is public: membership keys derived from it alone
    // would let anyone who has seen it seal membership datagrams.
    let files = [
        ("FOUNDATION_PROFILE", "production"),
        ("FOUNDATION_TLS_CA", "/etc/ca.pem"),
        ("FOUNDATION_TLS_CERT", "/etc/node.pem"),
        ("FOUNDATION_TLS_KEY", "/etc/node.key"),
    ];
    let e = env(&files).resolve().expect_err("no secret");
    assert_eq!(e, ConfigError::MissingSecret);
    assert!(e.to_string().contains("also with TLS files"), "{e}");
    let mut with_secret = files.to_vec();
    with_secret.push(("FOUNDATION_SECRET", "0123456789abcdef0123"));
    let r = env(&with_secret).resolve().expect("files and a secret");
    assert!(r.config.tls.has_files() && r.config.cluster.secret.is_some());
}

#[test]
fn error_partial_tls_files() {
    let e = env(&[("FOUNDATION_TLS_CA", "/etc/ca.pem")])
        .resolve()
        .expect_err("partial");
    assert!(e.to_string().contains("tls.cert_file"), "{e}");
}

#[test]
fn error_contradicting_timings() {
    let f = file("[membership]\nprobe_period_ms = 200\nprobe_rtt_ms = 300\n");
    let e = env(&[]).file(f.path()).resolve().expect_err("rtt > period");
    assert!(
        matches!(e, ConfigError::Contradiction(ref d) if d.key == "membership.probe_rtt_ms" && d.other == "membership.probe_period_ms"),
        "{e}"
    );
    let f = file("[membership]\nsuspect_to_down_ms = 100\n");
    assert!(env(&[]).file(f.path()).resolve().is_err());
    let f = file("[transport]\nkeep_alive_ms = 20000\n");
    assert!(env(&[]).file(f.path()).resolve().is_err());
    let f = file("[transport]\nreconnect_min_ms = 9000\n");
    assert!(env(&[]).file(f.path()).resolve().is_err());
}

#[test]
fn error_same_port_for_quic_and_membership() {
    let e = env(&[
        ("FOUNDATION_PORT", "7000"),
        ("FOUNDATION_TRANSPORT_PORT", "7000"),
    ])
    .resolve()
    .expect_err("same port");
    assert!(matches!(e, ConfigError::Contradiction(_)), "{e}");
    assert!(env(&[("FOUNDATION_PORT", "65535")]).resolve().is_err());
}

#[test]
fn error_strategy_not_built_in_yet_is_named() {
    for word in ["kubernetes", "consul", "etcd"] {
        let kind: DiscoveryKind = word.parse().expect("known word");
        let r = env(&[("FOUNDATION_CLUSTER", word)]).resolve();
        if kind.is_built_in() {
            // Built with the feature: other keys may still be missing.
            if let Err(e) = r {
                assert!(!matches!(e, ConfigError::NotBuiltIn { .. }), "{e}");
            }
        } else {
            let e = r.expect_err("not built in");
            assert!(matches!(e, ConfigError::NotBuiltIn { ref strategy, .. } if strategy == word));
            assert!(e.to_string().contains("FOUNDATION_SEEDS"));
        }
    }
    let e = env(&[("FOUNDATION_CLUSTER", "carrier-pigeon")])
        .resolve()
        .expect_err("unknown word");
    assert!(e.to_string().contains("one of: static, mdns"), "{e}");
}

#[test]
fn error_unreadable_and_invalid_files() {
    let e = env(&[])
        .file("/nonexistent/foundation.toml")
        .resolve()
        .expect_err("missing");
    assert!(matches!(e, ConfigError::Unreadable { .. }));
    let f = file("[membership\nport = 1");
    let e = env(&[]).file(f.path()).resolve().expect_err("syntax");
    assert!(matches!(e, ConfigError::Syntax { .. }));
}

#[test]
fn cli_defaults_are_overridden_by_env() {
    let r = env(&[("FOUNDATION_HTTP", "false")])
        .default_value("http.enabled", Value::Bool(true))
        .resolve()
        .expect("resolves");
    assert!(!r.config.http.enabled);
    let r = env(&[])
        .default_value("http.enabled", Value::Bool(true))
        .resolve()
        .expect("ok");
    assert!(r.config.http.enabled);
}

#[test]
fn detection_order_seeds_then_environment_then_mdns() {
    let r = env(&[SECRET, ("FOUNDATION_SEEDS", "a:1")])
        .resolve()
        .expect("ok");
    assert_eq!(r.config.cluster.discovery, DiscoveryKind::Static);
    assert_eq!(
        r.sources["cluster"],
        Source::Detected("seeds are set".into())
    );
    if DiscoveryKind::Kubernetes.is_built_in() {
        // In a pod with nothing set: kubernetes is detected, and the missing
        // selector is named with its fix.
        let e = env(&[SECRET, ("KUBERNETES_SERVICE_HOST", "10.0.0.1")])
            .resolve()
            .expect_err("selector");
        assert!(e.to_string().contains("FOUNDATION_K8S_SELECTOR"), "{e}");
        let r = env(&[
            SECRET,
            ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
            ("FOUNDATION_K8S_SELECTOR", "app=x"),
        ])
        .resolve()
        .expect("ok");
        assert_eq!(r.config.cluster.discovery, DiscoveryKind::Kubernetes);
    } else {
        let r = env(&[SECRET, ("KUBERNETES_SERVICE_HOST", "10.0.0.1")])
            .resolve()
            .expect("ok");
        assert_eq!(r.config.cluster.discovery, DiscoveryKind::Mdns);
        assert!(
            matches!(&r.sources["cluster"], Source::Detected(why) if why.contains("KUBERNETES_SERVICE_HOST"))
        );
    }
    let r = env(&[SECRET, ("FOUNDATION_CLUSTER", "static")])
        .resolve()
        .expect("ok");
    assert_eq!(
        r.sources["cluster"],
        Source::Env("FOUNDATION_CLUSTER".into())
    );
}

#[test]
fn error_gossip_group_must_be_multicast() {
    let e = env(&[("FOUNDATION_GOSSIP_GROUP", "10.0.0.1")])
        .resolve()
        .expect_err("unicast");
    assert!(
        e.to_string().contains("gossip.group") && e.to_string().contains("multicast"),
        "{e}"
    );
    let r = env(&[("FOUNDATION_CLUSTER", "gossip")])
        .resolve()
        .expect("gossip is built in");
    assert_eq!(r.config.gossip.ttl, 1);
}

#[test]
fn dns_query_selects_dns_and_dns_needs_a_query() {
    let r = env(&[SECRET, ("FOUNDATION_DNS_QUERY", "app.svc.local")])
        .resolve()
        .expect("ok");
    assert_eq!(r.config.cluster.discovery, DiscoveryKind::Dns);
    assert_eq!(r.config.dns.query.as_deref(), Some("app.svc.local"));
    let e = env(&[SECRET, ("FOUNDATION_CLUSTER", "dns")])
        .resolve()
        .expect_err("no query");
    assert!(e.to_string().contains("FOUNDATION_DNS_QUERY"), "{e}");
    let e = env(&[
        SECRET,
        ("FOUNDATION_DNS_QUERY", "a"),
        ("FOUNDATION_DNS_SERVER", "nope"),
    ])
    .resolve()
    .expect_err("bad server");
    assert!(e.to_string().contains("dns.server"), "{e}");
    let r = env(&[
        SECRET,
        ("FOUNDATION_DNS_QUERY", "a"),
        ("FOUNDATION_DNS_SERVER", "10.0.0.2"),
    ])
    .resolve()
    .expect("ok");
    assert_eq!(r.config.dns.server.map(|s| s.port()), Some(53));
}

#[test]
fn consul_is_detected_from_consul_http_addr_when_built() {
    let r = env(&[
        SECRET,
        ("CONSUL_HTTP_ADDR", "127.0.0.1:8500"),
        ("CONSUL_HTTP_TOKEN", "t"),
    ])
    .resolve()
    .expect("ok");
    if DiscoveryKind::Consul.is_built_in() {
        assert_eq!(r.config.cluster.discovery, DiscoveryKind::Consul);
        assert_eq!(r.config.consul.addr, "http://127.0.0.1:8500");
        assert_eq!(r.config.consul.token.as_deref(), Some("t"));
        let e = env(&[
            SECRET,
            ("FOUNDATION_CLUSTER", "consul"),
            ("FOUNDATION_CONSUL_ADDR", "https://c:8501"),
        ])
        .resolve()
        .expect_err("https");
        assert!(e.to_string().contains("HTTPS"), "{e}");
    } else {
        assert_eq!(r.config.cluster.discovery, DiscoveryKind::Mdns);
        let e = env(&[SECRET, ("FOUNDATION_CLUSTER", "consul")])
            .resolve()
            .expect_err("not built");
        assert!(e.to_string().contains("not built in"), "{e}");
    }
}

#[test]
fn static_quorum_needs_its_size_and_keep_all_is_a_word() {
    let f = file("[process]\nsplit_brain = \"static-quorum\"\n");
    let e = env(&[])
        .file(f.path())
        .resolve()
        .expect_err("quorum size missing");
    assert!(
        matches!(e, ConfigError::InvalidValue(ref v) if v.key == "process.quorum"),
        "{e}"
    );
    let f = file("[process]\nsplit_brain = \"static-quorum\"\nquorum = 2\n");
    let r = env(&[]).file(f.path()).resolve().expect("resolves");
    assert_eq!(
        r.config.process.split_brain,
        foundation_proto::process::SplitBrain::StaticQuorum(2)
    );
    let r = env(&[("FOUNDATION_SPLIT_BRAIN", "keep-all")])
        .resolve()
        .expect("resolves");
    assert_eq!(
        r.config.process.split_brain,
        foundation_proto::process::SplitBrain::KeepAll
    );
    assert!(env(&[("FOUNDATION_SPLIT_BRAIN", "keep-most")])
        .resolve()
        .is_err());
}

#[test]
fn the_default_config_is_what_an_empty_resolver_gives_and_validates() {
    let resolved = Resolver::new()
        .no_file_detection()
        .resolve()
        .expect("resolves");
    let config = Config::default();
    assert_eq!(config, resolved.config);
    config.validate().expect("the defaults validate");
    assert_eq!(Config::lan(), config);
}

#[test]
fn the_wan_preset_has_round_trip_sized_timings_and_validates() {
    let wan = Config::wan();
    wan.validate().expect("wan validates");
    assert_eq!(wan.membership.probe_period, Duration::from_millis(1_000));
    assert_eq!(wan.membership.probe_rtt, Duration::from_millis(400));
    assert_eq!(wan.membership.suspect_to_down, Duration::from_millis(3_000));
    assert_eq!(wan.cluster, Config::default().cluster);
}

#[test]
fn validate_refuses_a_hand_made_contradiction() {
    let mut c = Config::default();
    c.membership.probe_rtt = c.membership.probe_period * 2;
    let e = c
        .validate()
        .expect_err("probe timeout longer than the period");
    assert!(e.to_string().contains("probe"), "{e}");
}

#[test]
fn the_transport_port_is_derived_in_one_place() {
    let mut c = Config::default();
    c.membership.port = 7946;
    c.transport.port = None;
    assert_eq!(c.transport_port(), 7947);
    c.membership.port = 0;
    assert_eq!(c.transport_port(), 0, "any free port");
    c.membership.port = 65535;
    assert_eq!(
        c.transport_port(),
        65535,
        "saturates; validation refuses it"
    );
    c.transport.port = Some(9000);
    assert_eq!(c.transport_port(), 9000);
}

#[test]
fn changes_made_in_code_show_as_code_in_explain_and_make_the_wizard_tier() {
    let r = crate::NodeBuilder::isolated()
        .cluster("static")
        .config(|c| {
            c.cluster.secret = Some(Secret::new("a-secret-set-in-code-0123456789"));
            c.http.port = 9999;
            c.membership.port = crate::config::defaults::MEMBERSHIP_PORT; // unchanged: not claimed
        })
        .resolve()
        .expect("valid");
    assert_eq!(r.sources["secret"], Source::Code);
    assert_eq!(r.sources["http.port"], Source::Code);
    assert_eq!(r.sources["membership.port"], Source::Default);
    assert_eq!(r.sources["cluster"], Source::Builder);
    assert_eq!(r.tier, Tier::Wizard);
    let text = r.to_string();
    assert!(
        text.lines()
            .any(|l| l.contains("http.port") && l.contains("code (NodeBuilder::config)")),
        "{text}"
    );
}

#[test]
fn deployment_discovery_implies_production_unless_the_profile_is_set() {
    // A pod or VM found through DNS (or Kubernetes, Consul, etcd) never
    // runs on the public development secret by accident.
    let e = env(&[("FOUNDATION_DNS_QUERY", "app.svc.local")])
        .resolve()
        .expect_err("production needs a secret");
    assert!(matches!(e, ConfigError::MissingSecret), "{e}");
    let r = env(&[SECRET, ("FOUNDATION_DNS_QUERY", "app.svc.local")])
        .resolve()
        .expect("ok");
    assert_eq!(r.config.profile, Profile::Production);
    assert!(
        matches!(&r.sources["profile"], Source::Detected(why) if why.contains("dns")),
        "{:?}",
        r.sources["profile"]
    );
    // An explicit profile wins.
    let r = env(&[
        ("FOUNDATION_DNS_QUERY", "app.svc.local"),
        ("FOUNDATION_PROFILE", "development"),
    ])
    .resolve()
    .expect("ok");
    assert_eq!(r.config.profile, Profile::Development);
    assert!(r
        .config
        .cluster
        .secret
        .as_ref()
        .is_some_and(|s| s.is_development()));
    // Laptop strategies keep the development default.
    let r = env(&[("FOUNDATION_CLUSTER", "gossip")])
        .resolve()
        .expect("ok");
    assert_eq!(r.config.profile, Profile::Development);
    for kind in DiscoveryKind::ALL {
        let deployment = matches!(
            kind,
            DiscoveryKind::Kubernetes
                | DiscoveryKind::Consul
                | DiscoveryKind::Etcd
                | DiscoveryKind::Dns
        );
        assert_eq!(kind.is_deployment(), deployment, "{kind}");
    }
}

#[test]
fn a_generated_secret_is_long_random_and_accepted_in_production() {
    let a = Secret::generate();
    let b = Secret::generate();
    assert_ne!(a, b);
    assert_eq!(a.expose().len(), 64);
    assert!(a.expose().iter().all(u8::is_ascii_hexdigit));
    let mut c = Config {
        profile: Profile::Production,
        ..Config::default()
    };
    c.cluster.secret = Some(a);
    c.validate()
        .expect("a generated secret is a production secret");
}

#[test]
fn kubernetes_service_links_are_told_apart_from_settings() {
    for (name, value) in [
        ("FOUNDATION_PORT", "tcp://10.0.0.1:7946"),
        ("FOUNDATION_HTTP_PORT", "tcp://10.0.0.2:9090"),
        ("FOUNDATION_SERVICE_HOST", "10.0.0.1"),
        ("FOUNDATION_SERVICE_PORT", "7946"),
        ("FOUNDATION_SERVICE_PORT_GOSSIP", "7946"),
        ("FOUNDATION_PORT_7946_UDP", "udp://10.0.0.1:7946"),
        ("FOUNDATION_PORT_7946_UDP_ADDR", "10.0.0.1"),
        ("FOUNDATION_HTTP_PORT_9090_TCP_PROTO", "tcp"),
    ] {
        assert!(detect::is_service_link(name, value), "{name}={value}");
    }
    for (name, value) in [
        ("FOUNDATION_PORT", "7946"),
        ("FOUNDATION_HTTP_PORT", "9090"),
        ("FOUNDATION_CONSUL_SERVICE", "api"),
        ("FOUNDATION_SEEDS", "tcp://x:1"),
        ("OTHER_SERVICE_HOST", "10.0.0.1"),
    ] {
        assert!(!detect::is_service_link(name, value), "{name}={value}");
    }
    let r = env(&[
        ("FOUNDATION_PORT", "tcp://10.0.0.1:7946"),
        ("FOUNDATION_SERVICE_HOST", "10.0.0.1"),
    ])
    .resolve()
    .expect("service links are not settings");
    assert_eq!(r.config.membership.port, defaults::MEMBERSHIP_PORT);
    assert_eq!(r.notes.len(), 2, "{:?}", r.notes);
}

#[test]
fn production_refuses_secrets_that_are_easy_to_guess() {
    let resolve = |secret: &str| {
        env(&[
            ("FOUNDATION_PROFILE", "production"),
            ("FOUNDATION_SECRET", secret),
        ])
        .resolve()
    };
    for weak in [
        "aaaaaaaaaaaaaaaaaaaaaaaa",
        "passwordpassword",
        "abcdefghabcdefgh",
    ] {
        let e = resolve(weak).expect_err(weak);
        let text = e.to_string();
        assert!(
            text.contains("bits") && text.contains("openssl rand -hex 32"),
            "{weak}: {text}"
        );
        assert!(!text.contains(weak), "the secret is not echoed: {text}");
    }
    for strong in [
        "0123456789abcdef",
        "a-long-random-secret-from-your-vault",
        "4f1c9a0be27d3386c5e1f0a9b7d24e6c",
    ] {
        resolve(strong).expect(strong);
    }
    // Development keeps accepting anything: a laptop is not a deployment.
    env(&[("FOUNDATION_SECRET", "aaaa")])
        .resolve()
        .expect("dev");
}

#[path = "membership_tests.rs"]
mod membership;

#[path = "tracing_tests.rs"]
mod tracing_keys;

#[test]
fn the_cache_tier_follows_the_profile_unless_set() {
    let dev = env(&[]).resolve().expect("resolves");
    assert_eq!(dev.config.cache.tier, super::CacheTier::Local);
    let prod = env(&[
        ("FOUNDATION_PROFILE", "production"),
        ("FOUNDATION_SECRET", "a-production-secret-0123456789"),
    ])
    .resolve()
    .expect("resolves");
    assert_eq!(prod.config.cache.tier, super::CacheTier::Partitioned);
    assert_eq!(prod.config.cache.replicas, 1);
    let near = env(&[
        ("FOUNDATION_CACHE_TIER", "near"),
        ("FOUNDATION_CACHE_MAX_ENTRIES", "500"),
    ])
    .resolve()
    .expect("resolves");
    assert_eq!(near.config.cache.tier, super::CacheTier::Near);
    assert_eq!(near.config.cache.max_entries, 500);
    let bad = env(&[("FOUNDATION_CACHE_TIER", "nearby")]).resolve();
    assert!(bad.is_err(), "an unknown tier is refused");
}
