//! Skipping a test whose tool is missing, without passing for it.
//!
//! `cargo test` hides what a passing test prints, so a test that returned
//! early because `etcd` or root was missing looked like a pass. [`skip`]
//! makes the difference visible:
//!
//! - under `CI=true` a missing tool is a failure: the test panics with the
//!   reason (`.ci/run` installs every tool the tests need);
//! - elsewhere it prints `SKIPPED: reason`, and when `TESTKIT_SKIP_LOG`
//!   names a file, appends `test name: reason` to it, so a run can report
//!   how many tests skipped and why (`.ci/run` prints that list at its end).

use std::io::Write as _;

/// Whether this run is CI's (`CI=true`), where skipping is failing.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Records that the calling test skips for `reason`; panics under CI.
/// Call it, then return from the test.
#[track_caller]
pub fn skip(reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_owned();
    assert!(
        !in_ci(),
        "{test}: {reason} (under CI=true a missing tool is a failure, not a skip)"
    );
    eprintln!("SKIPPED: {reason}");
    if let Ok(path) = std::env::var("TESTKIT_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{test}: {reason}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_is_logged_outside_ci_and_fails_under_ci() {
        // The environment is the process's: run both cases in one test,
        // in a child thread per case, restoring the variables after.
        let dir = std::env::temp_dir().join(format!("skip-log-{}", std::process::id()));
        let ci = std::env::var_os("CI");
        std::env::set_var("TESTKIT_SKIP_LOG", &dir);
        std::env::remove_var("CI");
        skip("no etcd here");
        let logged = std::fs::read_to_string(&dir).unwrap_or_default();
        assert!(logged.contains("no etcd here"), "{logged:?}");
        std::env::set_var("CI", "true");
        let under_ci = std::thread::spawn(|| skip("no etcd here")).join();
        assert!(under_ci.is_err(), "under CI=true a skip must fail the test");
        match ci {
            Some(v) => std::env::set_var("CI", v),
            None => std::env::remove_var("CI"),
        }
        std::env::remove_var("TESTKIT_SKIP_LOG");
        let _ = std::fs::remove_file(&dir);
    }
}
