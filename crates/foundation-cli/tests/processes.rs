//! The `foundation` binary as users run it: real processes on loopback.

use std::io::Write as _;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use foundation::{Member, MemberState};

const BIN: &str = env!("CARGO_BIN_EXE_foundation");

fn foundation(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run foundation")
}

/// A port p with UDP p, p+1 and TCP p free.
fn free_port() -> u16 {
    for _ in 0..200 {
        let probe = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let p = probe.local_addr().expect("addr").port();
        drop(probe);
        if p < 65000
            && UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).is_ok()
            && UdpSocket::bind((Ipv4Addr::LOCALHOST, p + 1)).is_ok()
            && TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok()
        {
            return p;
        }
    }
    panic!("no free port");
}

struct NodeProc {
    child: Child,
    port: u16,
    http: String,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node_with(name: &str, seed: Option<u16>, extra: &[&str]) -> NodeProc {
    node_logging(name, seed, extra, Stdio::null())
}

/// [`node_with`], its log going to `stderr`.
fn node_logging(name: &str, seed: Option<u16>, extra: &[&str], stderr: Stdio) -> NodeProc {
    let port = free_port();
    let http_port = free_port();
    let mut cmd = Command::new(BIN);
    // `static`: parallel tests must not find each other's nodes via mDNS.
    cmd.args([
        "node",
        "--cluster",
        "static",
        "--name",
        name,
        "--bind",
        "127.0.0.1",
    ])
    .args([
        "--port",
        &port.to_string(),
        "--http-port",
        &http_port.to_string(),
    ])
    .arg("--stop-on-stdin-eof")
    .args(extra)
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(stderr)
    .env_remove("RUST_LOG");
    if let Some(seed) = seed {
        cmd.args(["--seeds", &format!("127.0.0.1:{seed}")]);
    }
    NodeProc {
        child: cmd.spawn().expect("spawn node"),
        port,
        http: format!("127.0.0.1:{http_port}"),
    }
}

fn status(n: &NodeProc) -> Option<Vec<Member>> {
    let out = foundation(&["status", "--http", &n.http, "--json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for: {what}");
}

fn state_of(n: &NodeProc, name: &str) -> Option<MemberState> {
    status(n)?
        .into_iter()
        .find(|m| m.name == name)
        .map(|m| m.state)
}

fn three_nodes() -> Vec<NodeProc> {
    three_nodes_with(&[])
}

fn three_nodes_with(extra: &[&str]) -> Vec<NodeProc> {
    let a = node_with("p-1", None, extra);
    let b = node_with("p-2", Some(a.port), extra);
    let c = node_with("p-3", Some(a.port), extra);
    let nodes = vec![a, b, c];
    for n in &nodes {
        eventually("three alive members", Duration::from_secs(30), || {
            status(n)
                .is_some_and(|m| m.iter().filter(|m| m.state == MemberState::Alive).count() == 3)
        });
    }
    nodes
}

#[test]
fn sigkilled_node_is_reported_down_by_the_survivors() {
    let mut nodes = three_nodes();
    let mut victim = nodes.pop().expect("victim");
    victim.child.kill().expect("SIGKILL");
    let _ = victim.child.wait();
    for n in &nodes {
        eventually("p-3 down", Duration::from_secs(20), || {
            state_of(n, "p-3") == Some(MemberState::Down)
        });
    }
    // The text form: the table, then where the dashboard is.
    let out = foundation(&["status", "--http", &nodes[0].http]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let p3 = text
        .lines()
        .find(|l| l.starts_with("p-3 "))
        .unwrap_or_default();
    assert!(p3.contains(" down "), "{text}");
    assert!(
        text.contains(&format!("dashboard: http://{}/dashboard", nodes[0].http)),
        "{text}"
    );
}

/// GET `path` from a node's HTTP endpoint; the body of a 200 answer.
fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::Read as _;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// The node id holding unique name `name` in `n`'s registry view.
fn holder_of(n: &NodeProc, name: &str) -> Option<foundation::NodeId> {
    let body = http_get(&n.http, "/registry")?;
    let snap: foundation::registry::RegistrySnapshot = serde_json::from_str(&body).ok()?;
    snap.entries
        .into_iter()
        .find(|e| e.name == name)
        .map(|e| e.service.node)
}

/// This node's own id.
fn id_of(n: &NodeProc) -> Option<foundation::NodeId> {
    status(n)?.first().map(|m| m.id)
}

#[test]
fn a_singleton_fails_over_when_its_host_is_sigkilled() {
    let mut nodes = three_nodes_with(&["--singleton", "single"]);
    let mut holder = None;
    eventually("one holder seen by all", Duration::from_secs(30), || {
        let seen: Vec<_> = nodes.iter().map(|n| holder_of(n, "single")).collect();
        holder = seen[0];
        holder.is_some() && seen.iter().all(|h| *h == holder)
    });
    let holder = holder.expect("holder");
    let victim = nodes
        .iter()
        .position(|n| id_of(n) == Some(holder))
        .expect("the holder is one of the three");
    let mut dead = nodes.remove(victim);
    dead.child.kill().expect("SIGKILL");
    let _ = dead.child.wait();
    let survivors: Vec<_> = nodes.iter().map(|n| id_of(n).expect("id")).collect();
    eventually(
        "a survivor holds it and both agree",
        Duration::from_secs(20),
        || {
            let seen: Vec<_> = nodes.iter().map(|n| holder_of(n, "single")).collect();
            seen[0].is_some_and(|h| survivors.contains(&h)) && seen.iter().all(|h| *h == seen[0])
        },
    );
}

/// A cluster that forms as it should says nothing alarming at the
/// default log level: no quorum warning (every node lacks quorum until it
/// sees its peers, a moment on a normal start) and none of openraft's
/// narration while the coordination group forms.
#[test]
fn a_normal_start_logs_no_quorum_or_raft_noise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = |i: usize| {
        let f = std::fs::File::create(dir.path().join(format!("p-{i}.log"))).expect("log file");
        Stdio::from(f)
    };
    let started = Instant::now();
    let a = node_logging("p-1", None, &[], log(1));
    let b = node_logging("p-2", Some(a.port), &[], log(2));
    let c = node_logging("p-3", Some(a.port), &[], log(3));
    let mut nodes = vec![a, b, c];
    for n in &nodes {
        eventually("three alive members", Duration::from_secs(30), || {
            status(n)
                .is_some_and(|m| m.iter().filter(|m| m.state == MemberState::Alive).count() == 3)
        });
    }
    let formed_in = started.elapsed();
    for n in &nodes {
        eventually("a coordination leader", Duration::from_secs(30), || {
            http_get(&n.http, "/coord")
                .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
                .is_some_and(|v| !v["leader"].is_null())
        });
    }
    std::thread::sleep(Duration::from_secs(1));
    for n in &mut nodes {
        drop(n.child.stdin.take());
        let status = n.child.wait().expect("exits");
        assert!(status.success(), "graceful exit: {status}");
    }
    for i in 1..=3 {
        let text = std::fs::read_to_string(dir.path().join(format!("p-{i}.log"))).expect("log");
        assert!(
            text.contains("node started"),
            "p-{i} logged nothing:\n{text}"
        );
        // openraft's errors still show (a vote that times out on a loaded
        // machine is one); its warnings are narration.
        let raft_warnings = text
            .lines()
            .filter(|l| l.contains(" WARN ") && l.contains("openraft"))
            .count();
        assert_eq!(raft_warnings, 0, "p-{i} logged openraft warnings:\n{text}");
        assert!(!text.contains("quorum lost"), "p-{i} lost quorum:\n{text}");
        // The wait for peers is worth a warning only when it lasts; on a
        // machine so loaded that forming took that long, it is right.
        if formed_in < Duration::from_secs(4) {
            assert!(
                !text.contains("no quorum yet"),
                "p-{i}, formed in {formed_in:?}:\n{text}"
            );
        }
    }
}

#[test]
fn graceful_stop_is_reported_as_left() {
    let mut nodes = three_nodes();
    let mut leaver = nodes.pop().expect("leaver");
    drop(leaver.child.stdin.take());
    let status = leaver.child.wait().expect("exits");
    assert!(status.success(), "graceful exit: {status}");
    for n in &nodes {
        eventually("p-3 left", Duration::from_secs(20), || {
            state_of(n, "p-3") == Some(MemberState::Left)
        });
    }
}

#[test]
fn port_in_use_is_a_clear_error() {
    let taken = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let out = foundation(&[
        "node",
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--http-port",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("port in use") && err.contains("membership.port"),
        "{err}"
    );
}

#[test]
fn config_explain_shows_tier_and_sources() {
    let out = Command::new(BIN)
        .args(["config", "explain", "--port", "7000"])
        .env("FOUNDATION_SEEDS", "10.0.0.1:7946")
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tier: apprentice"), "{text}");
    assert!(text.contains("(env FOUNDATION_SEEDS)"), "{text}");
    assert!(
        text.contains("membership.port") && text.contains("(builder)"),
        "{text}"
    );
}

#[test]
fn odd_environments_get_a_clear_answer_not_a_panic() {
    use std::os::unix::ffi::OsStrExt as _;
    // A FOUNDATION_* value that is not UTF-8: a clear error (exit 2),
    // where reading the environment used to panic (exit 101).
    let out = Command::new(BIN)
        .args(["config", "explain"])
        .env(
            "FOUNDATION_NAME",
            std::ffi::OsStr::from_bytes(b"node-\xff\xfe"),
        )
        .env("UNRELATED_BYTES", std::ffi::OsStr::from_bytes(b"\xff"))
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("FOUNDATION_NAME") && err.contains("UTF-8"),
        "{err}"
    );

    // What Kubernetes injects for a Service named `foundation` is not a
    // setting: it is set aside, and `config explain` says so.
    let out = Command::new(BIN)
        .args(["config", "explain"])
        .env("FOUNDATION_PORT", "udp://10.96.0.12:7946")
        .env("FOUNDATION_SERVICE_HOST", "10.96.0.12")
        .env("FOUNDATION_SERVICE_PORT", "7946")
        .env("FOUNDATION_PORT_7946_UDP", "udp://10.96.0.12:7946")
        .env("FOUNDATION_PORT_7946_UDP_PROTO", "udp")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("note: ignored FOUNDATION_PORT=udp://10.96.0.12:7946"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("membership.port")
            && l.contains("7946")
            && l.contains("(default)")),
        "{text}"
    );
}

#[test]
fn bad_config_file_fails_with_key_and_fix() {
    let mut f = tempfile::NamedTempFile::new().expect("temp");
    f.write_all(b"[membership]\nprobe_period_ms = \"fast\"\n")
        .expect("write");
    let out = Command::new(BIN)
        .args(["config", "explain", "--config"])
        .arg(f.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("membership.probe_period_ms") && err.contains("fix:"),
        "{err}"
    );
}

#[test]
fn production_without_secret_refuses_to_start() {
    let out = Command::new(BIN)
        .args(["node", "--port", "0", "--http-port", "0"])
        .env("FOUNDATION_PROFILE", "production")
        .env_remove("FOUNDATION_SECRET")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FOUNDATION_SECRET"));
}

#[test]
fn dev_runs_a_local_cluster_and_stops_it() {
    let port = free_port();
    let http = free_port();
    let out = Command::new(BIN)
        .args(["dev", "--nodes", "3", "--duration", "6"])
        .args([
            "--base-port",
            &port.to_string(),
            "--base-http-port",
            &http.to_string(),
        ])
        .output()
        .expect("run dev");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last_table = text.rsplit("members as seen by").next().unwrap_or_default();
    assert_eq!(last_table.matches(" alive ").count(), 3, "{text}");
    assert_eq!(
        text.matches("stopped (exit status: 0)").count(),
        3,
        "{text}"
    );
}

#[test]
fn doctor_reports_ok_and_names_what_to_fix() {
    let port = free_port().to_string();
    let http = free_port().to_string();
    let ok = Command::new(BIN)
        .args([
            "doctor",
            "--cluster",
            "static",
            "--bind",
            "127.0.0.1",
            "--port",
            &port,
            "--http-port",
            &http,
        ])
        .args(["--seeds", "127.0.0.1:7946"])
        .output()
        .expect("run doctor");
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{text}");
    assert!(
        text.contains("ok    membership port (UDP)")
            && text.contains("ok    discovery: 1 seed(s) resolve"),
        "{text}"
    );

    // A port that is taken and a DNS server that does not answer.
    let taken = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let taken_port = taken.local_addr().expect("addr").port().to_string();
    let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let dns = silent.local_addr().expect("addr").to_string();
    let bad = Command::new(BIN)
        .args([
            "doctor",
            "--bind",
            "127.0.0.1",
            "--port",
            &taken_port,
            "--http-port",
            &http,
        ])
        .env("FOUNDATION_DNS_QUERY", "nodes.test.")
        .env("FOUNDATION_DNS_SERVER", &dns)
        // DNS discovery implies the production profile.
        .env("FOUNDATION_SECRET", "doctor-test-secret-0123456789abcdef")
        .output()
        .expect("run doctor");
    let text = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(2), "{text}");
    assert!(
        text.contains("FAIL  membership port (UDP)") && text.contains("fix:"),
        "{text}"
    );
    assert!(text.contains("FAIL  discovery"), "{text}");
}

#[test]
fn bench_soak_restarts_processes_and_reports_start_and_end() {
    let port = free_port().to_string();
    let out = Command::new(BIN)
        .args(["bench", "soak", "--json", "--minutes", "0.4"])
        .args(["--restart-every-s", "6", "--window-s", "2"])
        .args(["--nodes", "3", "--base-port", &port])
        .env_remove("RUST_LOG")
        .output()
        .expect("run bench soak");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON object");
    let num = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k}: {r}"));
    assert!((0.4..0.6).contains(&num(&r, "minutes")), "{r}");
    assert!(num(&r, "restarts") >= 2.0, "{r}");
    for at in ["start", "end"] {
        let p = &r[at];
        assert!(num(p, "rss_mb") > 1.0, "{at}: {r}");
        assert!(num(p, "tasks") > 0.0, "{at}: {r}");
        assert!(num(p, "samples") > 0.0, "{at}: {r}");
        assert!(num(p, "call_p99_ms") > 0.0, "{at}: {r}");
        assert!(num(p, "publish_p99_ms") > 0.0, "{at}: {r}");
    }
    let intervals = r["intervals"].as_array().expect("intervals");
    assert!(!intervals.is_empty(), "{r}");
}
