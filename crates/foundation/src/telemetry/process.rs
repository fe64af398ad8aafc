//! The process's own resources, read from the operating system when asked.
//!
//! These are per process: several nodes in one process (tests, benches)
//! all report the same figures.

/// Resident memory of this process in bytes (`VmRSS` of
/// `/proc/self/status`); `None` where there is no procfs (not Linux).
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    vm_rss(&status)
}

/// The `VmRSS:` line of a `/proc/PID/status` text, in bytes.
pub fn vm_rss(status: &str) -> Option<u64> {
    status_bytes(status, "VmRSS")
}

/// A `NAME: N kB` line of a `/proc/PID/status` text (`VmRSS`, `RssAnon`,
/// `RssFile`, ...), in bytes.
pub fn status_bytes(status: &str, name: &str) -> Option<u64> {
    let line = status
        .lines()
        .find(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(':')))?;
    let mut words = line[name.len() + 1..].split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => n.checked_mul(1024),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss_in_kilobytes() {
        let status = "Name:\tfoundation\nVmPeak:\t  20000 kB\nVmRSS:\t   14336 kB\nThreads:\t3\n";
        assert_eq!(vm_rss(status), Some(14_336 * 1024));
        let status = "VmRSSx:\t1 kB\nRssAnon:\t    2324 kB\nRssFile:\t   15104 kB\n";
        assert_eq!(status_bytes(status, "RssAnon"), Some(2_324 * 1024));
        assert_eq!(status_bytes(status, "RssFile"), Some(15_104 * 1024));
        assert_eq!(vm_rss(status), None, "VmRSSx is another field");
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        assert_eq!(vm_rss("Name:\tx\n"), None);
        assert_eq!(vm_rss("VmRSS:\tlots kB\n"), None);
        assert_eq!(vm_rss("VmRSS:\t12 MB\n"), None);
        assert_eq!(vm_rss("VmRSS:\t99999999999999999999 kB\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_some_resident_memory() {
        let rss = resident_memory_bytes().expect("procfs on Linux");
        assert!(
            rss > 1024 * 1024,
            "a test binary holds more than 1 MiB: {rss}"
        );
    }
}
