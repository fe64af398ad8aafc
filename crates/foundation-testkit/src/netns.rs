//! Hosts in network namespaces on one bridge.
//!
//! `Lab::new(n)` creates a hub namespace holding a bridge, and `n` host
//! namespaces, each with a veth `eth0` on the bridge at `10.213.0.<i+1>/24`,
//! loopback up, and a multicast route. Everything lives in namespaces the lab
//! creates (the bridge too), so no traffic touches the host's interfaces.
//! Dropping the lab kills the processes it started and deletes the
//! namespaces.
//!
//! Needs root and iproute2; [`Lab::new`] says clearly when either is missing,
//! so tests can skip with that message.

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Why a lab could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// Not running as root.
    #[error("network namespaces need root (ip netns); run as root, as CI does")]
    NotRoot,
    /// An `ip`, `nft`, `iptables-legacy` or `kill` command (or a program
    /// the lab starts) failed.
    #[error("`{args}` failed: {message}")]
    Ip {
        /// The arguments.
        args: String,
        /// stderr, or why it could not run.
        message: String,
    },
}

fn ip(args: &[&str]) -> Result<(), LabError> {
    tool("ip", args)
}

fn tool(program: &str, args: &[&str]) -> Result<(), LabError> {
    let fail = |message: String| LabError::Ip {
        args: format!("{program} {}", args.join(" ")),
        message,
    };
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| fail(format!("cannot run `{program}`: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(String::from_utf8_lossy(&out.stderr).trim().to_owned()))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Namespaced hosts on a bridge. Removed on drop.
#[derive(Debug)]
pub struct Lab {
    hub: String,
    hosts: Vec<String>,
    /// (host, process) for every process the lab started.
    children: Vec<(usize, Child)>,
    /// (host, delay line) for the hosts made slow by [`Lab::delayed`].
    delayers: Vec<(usize, Child)>,
}

impl Lab {
    /// Builds `hosts` namespaces on a bridge.
    pub fn new(hosts: usize) -> Result<Lab, LabError> {
        if !is_root() {
            return Err(LabError::NotRoot);
        }
        static LABS: AtomicUsize = AtomicUsize::new(0);
        let k = LABS.fetch_add(1, Ordering::Relaxed);
        // Short: interface names are limited to 15 bytes.
        let prefix = format!("fd{}{k}", std::process::id() % 100_000);
        let hub = format!("{prefix}h");
        let mut lab = Lab {
            hub: hub.clone(),
            hosts: Vec::new(),
            children: Vec::new(),
            delayers: Vec::new(),
        };
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for i in 0..hosts {
            let ns = format!("{prefix}n{i}");
            let (inner, outer) = (format!("{prefix}a{i}"), format!("{prefix}b{i}"));
            ip(&["netns", "add", &ns])?;
            lab.hosts.push(ns.clone());
            ip(&[
                "link", "add", &inner, "type", "veth", "peer", "name", &outer,
            ])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&["link", "set", &outer, "netns", &hub])?;
            ip(&["-n", &hub, "link", "set", &outer, "master", "br0", "up"])?;
            ip(&["-n", &ns, "link", "set", &inner, "name", "eth0"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", Lab::addr(i)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns, "route", "add", "224.0.0.0/4", "dev", "eth0"])?;
        }
        Ok(lab)
    }

    /// The IPv4 address of host `i`.
    pub fn addr(i: usize) -> String {
        format!("10.213.0.{}", i + 1)
    }

    /// Number of hosts.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether the lab has no hosts.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Starts `program args` in host `i` with only `PATH` and `env` set;
    /// standard input is a pipe the lab holds (see [`Lab::stop`]). The lab
    /// kills it on drop.
    ///
    /// Output is discarded, unless `FOUNDATION_LAB_LOGS` names a
    /// directory: then each process's standard error goes to
    /// `{lab}-host{i}-{n}.log` there (n counts the processes of the lab), and
    /// `RUST_LOG` is passed on.
    pub fn spawn(&mut self, i: usize, program: &str, args: &[&str], env: &[(&str, &str)]) {
        self.spawn_in(i, None, program, args, env);
    }

    /// [`Lab::spawn`] in working directory `dir` (the test's own when
    /// `None`).
    pub fn spawn_in(
        &mut self,
        i: usize,
        dir: Option<&std::path::Path>,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) {
        let mut cmd = Command::new("ip");
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        cmd.args(["netns", "exec", &self.hosts[i], program])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(dir) = std::env::var_os("FOUNDATION_LAB_LOGS") {
            let path = std::path::Path::new(&dir).join(format!(
                "{}-host{i}-{}.log",
                self.hub,
                self.children.len()
            ));
            if let Ok(file) = std::fs::File::create(&path) {
                cmd.stderr(file);
            }
            if let Ok(filter) = std::env::var("RUST_LOG") {
                cmd.env("RUST_LOG", filter);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Ok(child) = cmd.spawn() {
            self.children.push((i, child));
        }
    }

    /// Stops the processes started in host `i`: closes their standard input
    /// (`foundation node --stop-on-stdin-eof` then leaves gracefully; `ip
    /// netns exec` runs the program in place, so the pipe reaches it), waits
    /// up to 5 s, then kills what is left.
    pub fn stop(&mut self, i: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        for (_, child) in self.children.iter_mut().filter(|(h, _)| *h == i) {
            drop(child.stdin.take());
        }
        for (_, child) in self.children.iter_mut().filter(|(h, _)| *h == i) {
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.retain(|(h, _)| *h != i);
    }

    /// Cuts hosts `a` from hosts `b` both ways: blackhole routes in each
    /// host, so datagrams to the other side are dropped by the kernel.
    pub fn partition(&self, a: &[usize], b: &[usize]) -> Result<(), LabError> {
        for &i in a {
            for &j in b {
                ip(&[
                    "-n",
                    &self.hosts[i],
                    "route",
                    "add",
                    "blackhole",
                    &format!("{}/32", Lab::addr(j)),
                ])?;
                ip(&[
                    "-n",
                    &self.hosts[j],
                    "route",
                    "add",
                    "blackhole",
                    &format!("{}/32", Lab::addr(i)),
                ])?;
            }
        }
        Ok(())
    }

    /// Removes every partition.
    pub fn heal(&self) {
        for (i, ns) in self.hosts.iter().enumerate() {
            for j in 0..self.hosts.len() {
                if i != j {
                    let _ = ip(&[
                        "-n",
                        ns,
                        "route",
                        "del",
                        "blackhole",
                        &format!("{}/32", Lab::addr(j)),
                    ]);
                }
            }
        }
    }

    /// Drops `percent`% of the datagrams and segments host `i` sends to
    /// the other hosts (loopback is spared), at random: an nftables rule in
    /// the host's namespace. The kernel here has no `netem` qdisc, so there
    /// is no added latency. Replaces an earlier rule.
    pub fn lossy(&self, i: usize, percent: u8) -> Result<(), LabError> {
        self.clear_loss(i);
        self.nft(i, &["add", "table", "inet", "chaos"])?;
        self.nft(
            i,
            &[
                "add",
                "chain",
                "inet",
                "chaos",
                "out",
                "{ type filter hook output priority 0; }",
            ],
        )?;
        let below = percent.min(100).to_string();
        self.nft(
            i,
            &[
                "add", "rule", "inet", "chaos", "out", "oifname", "eth0", "numgen", "random",
                "mod", "100", "<", &below, "drop",
            ],
        )
    }

    /// Delays every packet host `i` sends to the other hosts by `delay`
    /// plus a uniform random share of `jitter` (which reorders them;
    /// loopback is spared), as `tc netem delay D J` would: an iptables
    /// (legacy) NFQUEUE rule in the host's namespace hands the packets to
    /// `program` (the `foundation-netdelay` binary) running there, which
    /// holds each for `delay`. This kernel has no netem qdisc. If the
    /// program is not running, packets pass undelayed (`--queue-bypass`).
    /// Replaces an earlier delay.
    pub fn delayed(
        &mut self,
        i: usize,
        program: &str,
        delay: std::time::Duration,
        jitter: std::time::Duration,
    ) -> Result<(), LabError> {
        self.clear_delay(i);
        self.nfqueue_rule(i, "-A")?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.hosts[i], program])
            .args(["--queue", "0", "--delay-ms", &delay.as_millis().to_string()])
            .args(["--jitter-ms", &jitter.as_millis().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| LabError::Ip {
                args: program.to_owned(),
                message: e.to_string(),
            })?;
        self.delayers.push((i, child));
        Ok(())
    }

    /// Removes host `i`'s delay, if any.
    pub fn clear_delay(&mut self, i: usize) {
        let _ = self.nfqueue_rule(i, "-D");
        for (_, c) in self.delayers.iter_mut().filter(|(h, _)| *h == i) {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.delayers.retain(|(h, _)| *h != i);
    }

    /// Removes host `i`'s loss rule, if any.
    pub fn clear_loss(&self, i: usize) {
        let _ = self.nft(i, &["delete", "table", "inet", "chaos"]);
    }

    /// Runs `nft args` in host `i`'s namespace.
    fn nft(&self, i: usize, args: &[&str]) -> Result<(), LabError> {
        self.host_tool(i, "nft", args)
    }

    /// Adds (`-A`) or deletes (`-D`) host `i`'s NFQUEUE rule.
    fn nfqueue_rule(&self, i: usize, op: &str) -> Result<(), LabError> {
        let mut args = vec![op];
        args.extend_from_slice(&NFQUEUE_RULE);
        self.host_tool(i, "iptables-legacy", &args)
    }

    /// Runs `program args` in host `i`'s namespace; an error if it fails.
    fn host_tool(&self, i: usize, program: &str, args: &[&str]) -> Result<(), LabError> {
        let mut all = vec!["netns", "exec", self.hosts[i].as_str(), program];
        all.extend_from_slice(args);
        tool("ip", &all)
    }

    /// Sends `signal` (`STOP`, `CONT`, `KILL`, ...) to the processes the
    /// lab started in host `i` (`ip netns exec` runs them in place, so the
    /// pid is the program's).
    pub fn signal(&self, i: usize, signal: &str) -> Result<(), LabError> {
        for (_, child) in self.children.iter().filter(|(h, _)| *h == i) {
            tool("kill", &[&format!("-{signal}"), &child.id().to_string()])?;
        }
        Ok(())
    }

    /// Runs `program args` in host `i` and waits for its output.
    pub fn run(&self, i: usize, program: &str, args: &[&str]) -> std::io::Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", &self.hosts[i], program])
            .args(args)
            .output()
    }
}

/// The chain and match of [`Lab::delayed`]'s rule (after `-A` or `-D`).
const NFQUEUE_RULE: [&str; 8] = [
    "OUTPUT",
    "-o",
    "eth0",
    "-j",
    "NFQUEUE",
    "--queue-num",
    "0",
    "--queue-bypass",
];

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, c) in self.children.iter_mut().chain(self.delayers.iter_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.hosts.iter().chain([&self.hub]) {
            let _ = ip(&["netns", "delete", ns]);
        }
    }
}
