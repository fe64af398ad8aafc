//! Membership on a bad network: N `foundation node` processes in network
//! namespaces, every host losing a share of what it sends and delaying
//! the rest (nftables and the lab's delay line), under pub/sub load, for
//! a set time. Every process stays alive throughout, so every Down event
//! is a false one.
//!
//! Reports `false_downs` (Down events on every node, from
//! `foundation_membership_events_total`), `rejoins` (nodes told they were
//! down, which rejoined under a new generation), `missing_polls` (polls
//! of every host's member list in which some host missed a member: not
//! alive or suspect), `suspect_polls` (in which some host held one
//! suspect) and
//! `delivery_ratio` (pub/sub messages that reached the other hosts, of
//! those due).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use clap::Args;
use foundation::{Member, MemberState};
use foundation_testkit::netns::Lab;
use serde::Serialize;

use crate::table;

/// How often every host's member list is read.
const POLL: Duration = Duration::from_millis(200);
const TOPIC: &str = "falsedowns";

/// False downs, missing members and pub/sub delivery under loss and delay.
#[derive(Debug, Clone, Args)]
pub(crate) struct FalseDownsBench {
    /// Nodes (each in its own network namespace).
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Share of what each host sends that is dropped, in percent.
    #[arg(long, default_value_t = 10)]
    loss_percent: u8,
    /// Delay added to every packet each host sends, in ms (each way).
    #[arg(long, default_value_t = 50)]
    delay_ms: u64,
    /// How long the loss and delay last, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    nodes: usize,
    loss_percent: u8,
    delay_ms: u64,
    seconds: u64,
    /// Down events seen on all nodes while every process was alive.
    false_downs: u64,
    /// Times a node was told it was down and rejoined.
    rejoins: u64,
    /// Suspect events seen on all nodes (each refuted, as no one died).
    suspicions: u64,
    /// Polls in which some host did not count every node as a member
    /// (alive or suspect): a member missing from its view.
    missing_polls: u32,
    /// Polls in which some host held a member suspect (still a member:
    /// pub/sub and calls still reach it).
    suspect_polls: u32,
    polls: u32,
    /// Messages host 1 published that reached the other hosts, of those due.
    delivered: u64,
    due: u64,
    delivery_ratio: f64,
}

/// A node's membership figures: (down events, rejoins, suspect events).
fn counters(lab: &Lab, i: usize) -> Option<(u64, u64, u64)> {
    let script = "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9090/metrics', timeout=2).read().decode())";
    let out = lab.run(i, "python3", &["-c", script]).ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some((
        value("foundation_membership_events_total{kind=\"down\"}")?,
        value("foundation_membership_rejoins_total")?,
        value("foundation_membership_events_total{kind=\"suspect\"}")?,
    ))
}

/// Host `i`'s view: (members alive, members alive or suspect).
fn view(lab: &Lab, exe: &str, i: usize) -> (usize, usize) {
    let members = lab
        .run(i, exe, &["status", "--json"])
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice::<Vec<Member>>(&o.stdout).ok())
        .unwrap_or_default();
    let count = |f: &dyn Fn(MemberState) -> bool| members.iter().filter(|m| f(m.state)).count();
    (
        count(&|s| s == MemberState::Alive),
        count(&|s| s.is_active()),
    )
}

/// (received, due) from host `i`'s report, for messages from `publisher`.
fn delivery(path: &Path, publisher: &str) -> anyhow::Result<(u64, u64)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("report {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    let r = &v["received"][publisher];
    let field = |k: &str| r[k].as_u64().ok_or_else(|| anyhow!("no {k} in {r}"));
    Ok((field("count")?, field("last")? - field("first")? + 1))
}

impl FalseDownsBench {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        anyhow::ensure!((3..=16).contains(&self.nodes), "--nodes must be 3..=16");
        anyhow::ensure!(self.loss_percent <= 100, "--loss-percent must be 0..=100");
        anyhow::ensure!(
            (1..=3600).contains(&self.seconds),
            "--seconds must be 1..=3600"
        );
        let exe = std::env::current_exe().context("cannot find the foundation binary")?;
        let netdelay = exe.with_file_name("foundation-netdelay");
        anyhow::ensure!(
            self.delay_ms == 0 || netdelay.exists(),
            "the delay line {} is missing: cargo build --release -p foundation-cli --features lab",
            netdelay.display()
        );
        let cfg = self.clone();
        let report = tokio::task::spawn_blocking(move || cfg.measure(&exe, &netdelay)).await??;
        if self.json {
            println!("{}", serde_json::to_string(&report)?);
            return Ok(());
        }
        println!(
            "foundation bench falsedowns: {} nodes in network namespaces, {}% loss and {} ms each way for {} s, host 1 publishing every 10 ms\n",
            report.nodes, report.loss_percent, report.delay_ms, report.seconds
        );
        let rows = vec![
            vec!["false downs".into(), report.false_downs.to_string()],
            vec!["rejoins".into(), report.rejoins.to_string()],
            vec!["suspect events".into(), report.suspicions.to_string()],
            vec![
                "polls missing a member".into(),
                format!("{} / {}", report.missing_polls, report.polls),
            ],
            vec![
                "polls with a member suspect".into(),
                format!("{} / {}", report.suspect_polls, report.polls),
            ],
            vec![
                "pub/sub delivered / due".into(),
                format!(
                    "{} / {} ({:.4})",
                    report.delivered, report.due, report.delivery_ratio
                ),
            ],
        ];
        print!("{}", table::render(&["WHAT", "VALUE"], &rows));
        Ok(())
    }

    fn measure(&self, exe: &Path, netdelay: &Path) -> anyhow::Result<Report> {
        let exe = exe.to_string_lossy().into_owned();
        let n = self.nodes;
        let mut lab = Lab::new(n).map_err(|e| anyhow!("{e}"))?;
        let dir =
            std::env::temp_dir().join(format!("foundation-falsedowns-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let report = |i: usize| -> PathBuf { dir.join(format!("host{i}.json")) };
        let seeds = format!("{}:7946,{}:7946", Lab::addr(0), Lab::addr(1));
        for i in 0..n {
            let path = report(i).display().to_string();
            let mut args = vec![
                "node",
                "--cluster",
                "static",
                "--seeds",
                &seeds,
                "--stop-on-stdin-eof",
                "--subscribe",
                TOPIC,
                "--report",
                &path,
            ];
            if i == 1 {
                args.extend(["--publish", TOPIC]);
            }
            lab.spawn(i, &exe, &args, &[]);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(0..n).all(|i| view(&lab, &exe, i).0 == n) {
            anyhow::ensure!(Instant::now() < deadline, "no cluster of {n} within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let before: Vec<(u64, u64, u64)> = (0..n)
            .map(|i| counters(&lab, i).ok_or_else(|| anyhow!("host {i}: no metrics")))
            .collect::<anyhow::Result<_>>()?;
        for i in 0..n {
            if self.loss_percent > 0 {
                lab.lossy(i, self.loss_percent)
                    .map_err(|e| anyhow!("{e}"))?;
            }
            if self.delay_ms > 0 {
                let line = netdelay.to_string_lossy();
                lab.delayed(
                    i,
                    &line,
                    Duration::from_millis(self.delay_ms),
                    Duration::ZERO,
                )
                .map_err(|e| anyhow!("{e}"))?;
            }
        }
        let started = Instant::now();
        let (mut polls, mut missing_polls, mut suspect_polls) = (0u32, 0u32, 0u32);
        while started.elapsed() < Duration::from_secs(self.seconds) {
            polls += 1;
            let views: Vec<(usize, usize)> = (0..n).map(|i| view(&lab, &exe, i)).collect();
            if views.iter().any(|v| v.1 < n) {
                missing_polls += 1;
            }
            if views.iter().any(|v| v.0 < v.1) {
                suspect_polls += 1;
            }
            std::thread::sleep(POLL);
        }
        // Counted with the faults still on: what they caused.
        let after: Vec<Option<(u64, u64, u64)>> = (0..n).map(|i| counters(&lab, i)).collect();
        for i in 0..n {
            lab.clear_loss(i);
            lab.clear_delay(i);
        }
        let (mut false_downs, mut rejoins, mut suspicions) = (0, 0, 0);
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            let a = a
                .or_else(|| counters(&lab, i))
                .ok_or_else(|| anyhow!("host {i}: no metrics after the run"))?;
            false_downs += a.0.saturating_sub(b.0);
            rejoins += a.1.saturating_sub(b.1);
            suspicions += a.2.saturating_sub(b.2);
        }
        std::thread::sleep(Duration::from_secs(2));
        for i in 0..n {
            lab.stop(i);
        }
        let publisher = {
            let text = std::fs::read_to_string(report(1))?;
            let v: serde_json::Value = serde_json::from_str(&text)?;
            v["node"].as_str().context("publisher id")?.to_owned()
        };
        let (mut delivered, mut due) = (0, 0);
        for i in (0..n).filter(|i| *i != 1) {
            let (got, of) = delivery(&report(i), &publisher)?;
            delivered += got;
            due += of;
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(Report {
            nodes: n,
            loss_percent: self.loss_percent,
            delay_ms: self.delay_ms,
            seconds: self.seconds,
            false_downs,
            rejoins,
            suspicions,
            missing_polls,
            suspect_polls,
            polls,
            delivered,
            due,
            delivery_ratio: if due == 0 {
                0.0
            } else {
                delivered as f64 / due as f64
            },
        })
    }
}
