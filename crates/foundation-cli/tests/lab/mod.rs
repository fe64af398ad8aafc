//! Helpers shared by the tests that run `foundation node` processes in
//! network namespaces.
#![allow(dead_code)] // each test file uses its own share of them

use std::time::{Duration, Instant};

use foundation::{Member, MemberState};
use foundation_testkit::netns::Lab;
use foundation_testkit::skip::skip;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_foundation");

pub(crate) fn lab_or_skip(hosts: usize) -> Option<Lab> {
    match Lab::new(hosts) {
        Ok(lab) => Some(lab),
        Err(e) => {
            skip(&e.to_string());
            None
        }
    }
}

pub(crate) fn members(lab: &Lab, i: usize) -> Option<Vec<Member>> {
    let out = lab.run(i, BIN, &["status", "--json"]).ok()?;
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

pub(crate) fn alive(lab: &Lab, i: usize) -> usize {
    members(lab, i)
        .map(|m| m.iter().filter(|m| m.state == MemberState::Alive).count())
        .unwrap_or(0)
}

/// Members host `i` counts in its cluster (alive or suspect).
pub(crate) fn active(lab: &Lab, i: usize) -> usize {
    members(lab, i)
        .map(|m| m.iter().filter(|m| m.state.is_active()).count())
        .unwrap_or(0)
}

/// Waits until hosts `0..n` each see `n` alive members.
pub(crate) fn wait_formed(lab: &Lab, n: usize) -> Duration {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    while Instant::now() < deadline {
        if (0..n).all(|i| alive(lab, i) == n) {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let views: Vec<_> = (0..lab.len()).map(|i| members(lab, i)).collect();
    panic!("no single cluster of {n} within 30 s: {views:?}");
}

/// GET `path` from host `i`'s node (python3 inside the namespace).
pub(crate) fn http_body(lab: &Lab, i: usize, path: &str) -> Option<String> {
    let script = format!(
        "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9090{path}', timeout=2).read().decode())"
    );
    let out = lab.run(i, "python3", &["-c", &script]).ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn own_id(lab: &Lab, i: usize) -> Option<foundation::NodeId> {
    members(lab, i)?.first().map(|m| m.id)
}

pub(crate) fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
) -> Duration {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if check() {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("not within {timeout:?}: {what}");
}
