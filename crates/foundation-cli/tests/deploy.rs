//! The deployment files, tested as far as this machine allows.
//!
//! `deploy/kubernetes/foundation.yaml` is read into the Kubernetes API
//! types (k8s-openapi), and `deploy/Dockerfile`'s runtime stage is read for
//! its user, entrypoint and command. The first test checks that the parts
//! fit together (selectors, ports, probes, RBAC, the secret) and that the
//! binary accepts the container's environment. The second runs three
//! `foundation node` processes in network namespaces, each with exactly
//! the arguments and environment the manifests give its container (field
//! and secret references resolved as the kubelet would), against a
//! stand-in Kubernetes API (`tests/support/k8s_api.py`) that serves those
//! pods and probes their readiness as the manifests say, and checks that
//! they form one cluster.
//!
//! What this does not test: building the image (no container runtime
//! here), a real API server (the stand-in speaks plain HTTP, so the test
//! adds `FOUNDATION_K8S_API` where a pod would use its service account's
//! token and CA), and Kubernetes itself (scheduling, volumes, the PDB).
#![cfg(feature = "lab")]

mod lab;

use std::collections::BTreeMap;
use std::process::Command;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Container, EnvVar, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use lab::{alive, http_body, lab_or_skip, wait_formed, wait_until, BIN};
use serde_json::{json, Value};

const MANIFESTS: &str = include_str!("../../../deploy/kubernetes/foundation.yaml");
const DOCKERFILE: &str = include_str!("../../../deploy/Dockerfile");
const STAND_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/k8s_api.py");
/// The stand-in API's port, on the lab's last host.
const API_PORT: u16 = 8080;

/// The manifests, typed.
struct Manifests {
    account: ServiceAccount,
    role: Role,
    binding: RoleBinding,
    service: Service,
    set: StatefulSet,
    budget: PodDisruptionBudget,
}

fn typed<T: serde::de::DeserializeOwned>(doc: Value) -> T {
    let kind = doc["kind"].clone();
    serde_json::from_value(doc).unwrap_or_else(|e| panic!("{kind} does not parse: {e}"))
}

fn manifests() -> Manifests {
    let docs: Vec<Value> = serde_saphyr::from_multiple(MANIFESTS).expect("the manifests are YAML");
    let mut by_kind: BTreeMap<String, Value> = BTreeMap::new();
    for doc in docs {
        let kind = doc["kind"]
            .as_str()
            .expect("every document has a kind")
            .to_owned();
        assert!(
            by_kind.insert(kind.clone(), doc).is_none(),
            "one {kind} only"
        );
    }
    let mut take = |kind: &str| {
        by_kind
            .remove(kind)
            .unwrap_or_else(|| panic!("the manifests have no {kind}"))
    };
    let m = Manifests {
        account: typed(take("ServiceAccount")),
        role: typed(take("Role")),
        binding: typed(take("RoleBinding")),
        service: typed(take("Service")),
        set: typed(take("StatefulSet")),
        budget: typed(take("PodDisruptionBudget")),
    };
    assert!(
        by_kind.is_empty(),
        "unexpected documents: {:?}",
        by_kind.keys()
    );
    m
}

/// The runtime stage of the Dockerfile.
struct Image {
    stages: usize,
    user: String,
    entrypoint: Vec<String>,
}

fn image() -> Image {
    let mut stages = 0;
    let (mut user, mut entrypoint) = (String::new(), Vec::new());
    for line in DOCKERFILE.lines().map(str::trim) {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "FROM" => {
                stages += 1;
                user.clear();
                entrypoint.clear();
            }
            "USER" => user = rest.trim().to_owned(),
            "ENTRYPOINT" => {
                entrypoint = serde_json::from_str(rest).expect("ENTRYPOINT in exec form");
            }
            _ => {}
        }
    }
    Image {
        stages,
        user,
        entrypoint,
    }
}

fn container(m: &Manifests) -> &Container {
    let spec = m.set.spec.as_ref().expect("spec");
    let pod = spec.template.spec.as_ref().expect("pod spec");
    assert_eq!(pod.containers.len(), 1, "one container");
    &pod.containers[0]
}

fn pod_labels(m: &Manifests) -> BTreeMap<String, String> {
    let spec = m.set.spec.as_ref().expect("spec");
    spec.template
        .metadata
        .as_ref()
        .and_then(|md| md.labels.clone())
        .expect("pod labels")
}

fn matches(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The container port named `name`.
fn port(c: &Container, name: &str) -> (i32, String) {
    c.ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(name))
        .map(|p| (p.container_port, p.protocol.clone().unwrap_or_default()))
        .unwrap_or_else(|| panic!("no container port named {name}"))
}

fn probe_port(c: &Container, p: &IntOrString) -> i32 {
    match p {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => port(c, name).0,
    }
}

/// A pod of the StatefulSet as the kubelet would run it.
struct Pod {
    name: String,
    namespace: String,
    ip: String,
}

/// The container's environment for `pod`, references resolved: field
/// references from the pod, the secret's key from `secret`.
fn environment(c: &Container, pod: &Pod, secret: &str) -> Vec<(String, String)> {
    c.env
        .iter()
        .flatten()
        .map(
            |EnvVar {
                 name,
                 value,
                 value_from,
             }| {
                let value = match (value, value_from) {
                    (Some(v), None) => v.clone(),
                    (None, Some(from)) => {
                        if let Some(f) = &from.field_ref {
                            match f.field_path.as_str() {
                                "metadata.name" => pod.name.clone(),
                                "metadata.namespace" => pod.namespace.clone(),
                                "status.podIP" => pod.ip.clone(),
                                other => {
                                    panic!("{name}: field {other} is not resolved by this test")
                                }
                            }
                        } else if let Some(s) = &from.secret_key_ref {
                            assert_eq!((s.name.as_str(), s.key.as_str()), ("foundation", "secret"));
                            secret.to_owned()
                        } else {
                            panic!("{name}: unsupported reference")
                        }
                    }
                    _ => panic!("{name}: a value or a reference"),
                };
                (name.clone(), value)
            },
        )
        .collect()
}

/// What a pod's process runs: the image's entrypoint (the test's binary
/// in its place) and the container's args or command.
fn argv(c: &Container) -> Vec<String> {
    let image = image();
    assert_eq!(
        image.entrypoint,
        ["foundation"],
        "the image runs the foundation binary"
    );
    assert!(
        c.command.is_none(),
        "the container keeps the image's entrypoint"
    );
    c.args.clone().expect("the container says what to run")
}

#[test]
fn the_manifests_fit_together_and_fit_the_binary() {
    let m = manifests();
    let image = image();
    assert!(image.stages >= 2, "a multi-stage build");
    let uid: i64 = image
        .user
        .split(':')
        .next()
        .and_then(|u| u.parse().ok())
        .expect("the runtime stage runs as a numeric user");
    assert_ne!(uid, 0, "not root");

    let spec = m.set.spec.as_ref().expect("spec");
    assert_eq!(spec.replicas, Some(3));
    let labels = pod_labels(&m);
    let selector = spec.selector.match_labels.clone().expect("matchLabels");
    assert!(
        matches(&selector, &labels),
        "the StatefulSet selects its pods"
    );
    let service = m.service.spec.as_ref().expect("service spec");
    assert_eq!(service.cluster_ip.as_deref(), Some("None"), "headless");
    assert!(matches(
        service.selector.as_ref().expect("selector"),
        &labels
    ));
    assert_eq!(
        spec.service_name.as_deref(),
        m.service.metadata.name.as_deref()
    );
    let budget = m.budget.spec.as_ref().expect("budget spec");
    let budget_selector = budget
        .selector
        .as_ref()
        .and_then(|s| s.match_labels.clone());
    assert!(matches(&budget_selector.expect("matchLabels"), &labels));
    assert!(budget.max_unavailable.is_some() || budget.min_available.is_some());

    // RBAC: the pods' account may get, list and watch pods.
    let pod_spec = spec.template.spec.as_ref().expect("pod spec");
    let account = m.account.metadata.name.clone().expect("account name");
    assert_eq!(pod_spec.service_account_name.as_ref(), Some(&account));
    let subjects = m.binding.subjects.clone().unwrap_or_default();
    assert!(subjects
        .iter()
        .any(|s| s.kind == "ServiceAccount" && s.name == account));
    assert_eq!(m.binding.role_ref.kind, "Role");
    assert_eq!(
        Some(&m.binding.role_ref.name),
        m.role.metadata.name.as_ref()
    );
    let rules = m.role.rules.clone().unwrap_or_default();
    for verb in ["get", "list", "watch"] {
        assert!(
            rules
                .iter()
                .any(|r| r.resources.iter().flatten().any(|x| x == "pods")
                    && r.verbs.iter().any(|v| v == verb)),
            "the role allows {verb} on pods"
        );
    }
    let security = pod_spec.security_context.as_ref().expect("pod security");
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.run_as_user, Some(uid), "the image's user");

    // Ports and probes against what the binary uses.
    let c = container(&m);
    let env: BTreeMap<String, String> = environment(
        c,
        &Pod {
            name: "foundation-0".into(),
            namespace: "foundation".into(),
            ip: "10.0.0.7".into(),
        },
        "a-long-random-secret-for-this-check-0123456789",
    )
    .into_iter()
    .collect();
    let membership: i32 = env
        .get("FOUNDATION_PORT")
        .map_or(7946, |p| p.parse().expect("port"));
    assert_eq!(port(c, "foundation"), (membership, "UDP".into()));
    assert_eq!(port(c, "transport"), (membership + 1, "UDP".into()));
    let http: i32 = env
        .get("FOUNDATION_HTTP_PORT")
        .map_or(9090, |p| p.parse().expect("port"));
    assert_eq!(port(c, "http").0, http);
    assert_eq!(
        env.get("FOUNDATION_HTTP_BIND").map(String::as_str),
        Some("0.0.0.0")
    );
    let ready = c
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("readiness");
    assert_eq!(
        (ready.path.as_deref(), probe_port(c, &ready.port)),
        (Some("/ready"), http)
    );
    let live = c
        .liveness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("liveness");
    assert_eq!(
        (live.path.as_deref(), probe_port(c, &live.port)),
        (Some("/health"), http)
    );
    let k8s_selector: BTreeMap<String, String> = env["FOUNDATION_K8S_SELECTOR"]
        .split(',')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert!(
        matches(&k8s_selector, &labels),
        "discovery selects the pods"
    );
    let secret = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "FOUNDATION_SECRET")
        .and_then(|e| e.value_from.as_ref()?.secret_key_ref.as_ref());
    assert!(
        secret.is_some(),
        "the secret comes from a Kubernetes Secret"
    );

    // The binary accepts exactly this environment: every variable known,
    // every value valid, the kubernetes strategy in production.
    let out = Command::new(BIN)
        .args(["config", "explain"])
        .env_clear()
        .envs(&env)
        .env("KUBERNETES_SERVICE_HOST", "10.96.0.1")
        .output()
        .expect("foundation config explain runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the binary refuses the manifests' environment:\n{text}"
    );
    assert!(text.contains("kubernetes"), "{text}");
    assert!(text.contains("production"), "{text}");
    assert_eq!(argv(c)[0], "node");
}

#[test]
fn the_manifests_form_a_cluster_of_three_against_a_kubernetes_stand_in() {
    let Some(mut lab) = lab_or_skip(4) else {
        return;
    };
    let m = manifests();
    let c = container(&m).clone();
    let labels = pod_labels(&m);
    let replicas = usize::try_from(m.set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1))
        .expect("replicas");
    assert_eq!(replicas, 3);
    let set_name = m.set.metadata.name.clone().expect("name");
    let pods: Vec<Pod> = (0..replicas)
        .map(|i| Pod {
            name: format!("{set_name}-{i}"),
            namespace: "foundation".into(),
            ip: foundation_testkit::netns::Lab::addr(i),
        })
        .collect();

    // The stand-in API on the last host serves these pods as the API
    // server would: labels and containers from the template.
    let dir = tempfile::tempdir().expect("temp dir");
    let objects: Vec<Value> = pods
        .iter()
        .map(|p| {
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": p.name, "namespace": p.namespace,
                             "uid": format!("uid-{}", p.name), "labels": labels},
                "spec": {"containers": [serde_json::to_value(&c).expect("container")]},
                "status": {"phase": "Running", "podIP": p.ip}
            })
        })
        .collect();
    let pods_file = dir.path().join("pods.json");
    std::fs::write(&pods_file, serde_json::to_vec(&objects).expect("json")).expect("write");
    let api_host = replicas;
    let api = format!(
        "{}:{API_PORT}",
        foundation_testkit::netns::Lab::addr(api_host)
    );
    lab.spawn(
        api_host,
        "python3",
        &[
            STAND_IN,
            pods_file.to_str().expect("utf-8"),
            &API_PORT.to_string(),
        ],
        &[],
    );

    let secret = "manifest-test-secret-8Jq2Lx0vW4pR7mZ1";
    let args = argv(&c);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for (i, pod) in pods.iter().enumerate() {
        let mut env = environment(&c, pod, secret);
        // What Kubernetes adds to every container, and the stand-in's URL
        // (a real pod reaches the API with its service account).
        let (host, port) = api.split_once(':').expect("host:port");
        env.push(("KUBERNETES_SERVICE_HOST".into(), host.into()));
        env.push(("KUBERNETES_SERVICE_PORT".into(), port.into()));
        env.push(("FOUNDATION_K8S_API".into(), format!("http://{api}")));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        // The volume at the container's working directory.
        let data = dir.path().join(&pod.name);
        std::fs::create_dir_all(&data).expect("data dir");
        lab.spawn_in(i, Some(&data), BIN, &args, &env);
    }

    let formed = wait_formed(&lab, replicas);
    eprintln!("three pods formed one cluster {formed:?} after start (includes readiness probing)");
    for (i, pod) in pods.iter().enumerate() {
        assert_eq!(alive(&lab, i), replicas, "pod {i}");
        let health = http_body(&lab, i, "/health").expect("health answers");
        let health: Value = serde_json::from_str(&health).expect("json");
        assert_eq!(
            health["node"]["name"], pod.name,
            "the pod's name, from the downward API"
        );
    }
    // Each pod is ready, from the probe the manifests declare, and the
    // coordination group forms with a durable log in the working directory.
    wait_until(
        "coordination elects a leader",
        std::time::Duration::from_secs(30),
        || {
            http_body(&lab, 0, "/coord")
                .and_then(|b| serde_json::from_str::<Value>(&b).ok())
                .is_some_and(|v| !v["leader"].is_null())
        },
    );
    for pod in &pods {
        let data = dir.path().join(&pod.name);
        let wrote = std::fs::read_dir(&data).map(|d| d.count()).unwrap_or(0);
        assert!(
            wrote > 0,
            "{} keeps its Raft log under its working directory",
            pod.name
        );
    }
}
