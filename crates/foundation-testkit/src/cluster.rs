//! In-process clusters on loopback: the `ClusterCase` of the design
//! documents. Real nodes, real QUIC, ephemeral ports, `static` discovery
//! (so parallel tests never find each other), with kill, restart and
//! transport-level partitions.
//!
//! ```no_run
//! # async fn demo() {
//! use std::time::Duration;
//! use foundation_testkit::{assert_eventually, Cluster};
//!
//! let mut c = Cluster::start(3).await.expect("cluster");
//! c.partition(&[0], &[1, 2]);
//! assert_eventually(Duration::from_secs(10), "node 0 sees the others down", || {
//!     c.node(0).active_members().len() == 1
//! })
//! .await;
//! c.heal();
//! c.wait_for_members(3, Duration::from_secs(10)).await.expect("healed");
//! c.shutdown().await;
//! # }
//! ```

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use foundation::{Member, MemberState, Node, NodeBuilder, StartError};

/// The secret every test-kit node shares.
pub const SECRET: &str = "foundation-testkit-secret-0123456789";

/// How long `start` waits for the cluster to form.
pub const FORM_TIMEOUT: Duration = Duration::from_secs(20);

/// A builder for a loopback node with ephemeral ports, no environment and
/// `static` discovery.
///
/// SWIM timings are more tolerant than the defaults (probe every 500 ms,
/// 250 ms probe timeout, 1.5 s of suspicion): tests run many nodes per
/// core, and a node starved of CPU must not be declared down. Crashed
/// (aborted) nodes are still detected at once through their closed ports.
pub fn builder(name: &str) -> NodeBuilder {
    NodeBuilder::isolated()
        .cluster("static")
        .name(name)
        .secret(SECRET)
        .bind(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .port(0)
        .set("membership.probe_period_ms", "500")
        .set("membership.probe_rtt_ms", "250")
        .set("membership.suspect_to_down_ms", "1500")
}

/// Waits until `check` holds, polling every 20 ms; panics with `what`
/// after `timeout`.
pub async fn assert_eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("not within {timeout:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Like [`assert_eventually`], with an async check.
pub async fn assert_eventually_async<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("not within {timeout:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Logs to the test's output, filtered by `RUST_LOG` (default `warn`).
/// Safe to call more than once.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Clusters running at once in one test process. Tests run in parallel;
/// a dozen nodes per core starve each other of CPU until SWIM declares
/// live nodes down, which no test means to test. Further clusters wait.
pub const MAX_CONCURRENT_CLUSTERS: usize = 2;

static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT_CLUSTERS);

/// A cluster of in-process nodes. Slot `i` keeps its name (`n{i}`) across
/// restarts.
#[derive(Debug)]
pub struct Cluster {
    slots: Vec<Option<Node>>,
    configure: fn(NodeBuilder, usize) -> NodeBuilder,
    _turn: Option<tokio::sync::SemaphorePermit<'static>>,
}

impl Cluster {
    /// Starts `n` nodes and waits until each sees all `n` alive.
    pub async fn start(n: usize) -> Result<Cluster, StartError> {
        Self::start_with(n, |b, _| b).await
    }

    /// Starts `n` nodes, each builder passed through `configure` (with the
    /// node's index) first: set keys, roles, HTTP...
    pub async fn start_with(
        n: usize,
        configure: fn(NodeBuilder, usize) -> NodeBuilder,
    ) -> Result<Cluster, StartError> {
        init_tracing();
        let turn = SLOTS.acquire().await.ok();
        let mut c = Cluster {
            slots: Vec::with_capacity(n),
            configure,
            _turn: turn,
        };
        for i in 0..n {
            let node = c.start_node(i).await?;
            c.slots.push(Some(node));
        }
        if let Err(seen) = c.wait_for_members(n, FORM_TIMEOUT).await {
            panic!("the cluster did not form within {FORM_TIMEOUT:?}: {seen:?}");
        }
        Ok(c)
    }

    async fn start_node(&self, i: usize) -> Result<Node, StartError> {
        let seeds: Vec<String> = self
            .running()
            .map(|n| n.membership_addr().to_string())
            .collect();
        let b = builder(&format!("n{i}")).seeds(seeds.iter().map(String::as_str));
        (self.configure)(b, i).start().await
    }

    /// Node `i`. Panics if it is stopped.
    pub fn node(&self, i: usize) -> &Node {
        self.slots
            .get(i)
            .and_then(Option::as_ref)
            .unwrap_or_else(|| panic!("node {i} is not running"))
    }

    /// Node `i`, if running.
    pub fn get(&self, i: usize) -> Option<&Node> {
        self.slots.get(i).and_then(Option::as_ref)
    }

    /// Number of slots (running or not).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there is no slot.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The running nodes.
    pub fn running(&self) -> impl Iterator<Item = &Node> {
        self.slots.iter().flatten()
    }

    /// Indexes of the running nodes.
    pub fn running_indexes(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|i| self.slots[*i].is_some())
            .collect()
    }

    /// Waits until every running node sees at least `n` alive members.
    /// On timeout, what each saw.
    pub async fn wait_for_members(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<(), Vec<(String, Vec<Member>)>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let short: Vec<(String, Vec<Member>)> = self
                .running()
                .filter(|node| {
                    node.members()
                        .iter()
                        .filter(|m| m.state == MemberState::Alive)
                        .count()
                        < n
                })
                .map(|node| (node.name().to_owned(), node.members()))
                .collect();
            if short.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(short);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops node `i` abruptly, as a crash: the others see it `Down`.
    pub async fn kill(&mut self, i: usize) -> Option<Node> {
        let node = self.slots.get_mut(i)?.take()?;
        node.abort().await;
        Some(node)
    }

    /// Stops node `i` gracefully: the others see it `Left`.
    pub async fn stop(&mut self, i: usize) -> Option<Node> {
        let node = self.slots.get_mut(i)?.take()?;
        node.shutdown().await;
        Some(node)
    }

    /// Starts a new node in slot `i` (same name, new id and ports), seeded
    /// with the running nodes. Stops the old one first if still running.
    pub async fn restart(&mut self, i: usize) -> Result<&Node, StartError> {
        if let Some(old) = self.slots.get_mut(i).and_then(Option::take) {
            old.shutdown().await;
        }
        let node = self.start_node(i).await?;
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, || None);
        }
        self.slots[i] = Some(node);
        Ok(self.node(i))
    }

    fn addrs(&self, set: &[usize]) -> Vec<SocketAddr> {
        set.iter()
            .filter_map(|i| self.get(*i))
            .flat_map(|n| [n.membership_addr(), n.transport_addr()])
            .collect()
    }

    /// Cuts `a` from `b` both ways, at the transport level (membership
    /// datagrams and QUIC frames are dropped as if lost).
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        self.partition_one_way(a, b);
        self.partition_one_way(b, a);
    }

    /// Drops what `from` sends to `to`; `to` still reaches `from`.
    pub fn partition_one_way(&self, from: &[usize], to: &[usize]) {
        let to_addrs = self.addrs(to);
        let from_addrs = self.addrs(from);
        for i in from {
            if let Some(n) = self.get(*i) {
                n.raw().faults().block_to(to_addrs.iter().copied());
            }
        }
        for i in to {
            if let Some(n) = self.get(*i) {
                n.raw().faults().block_from(from_addrs.iter().copied());
            }
        }
    }

    /// Lifts every partition.
    pub fn heal(&self) {
        for n in self.running() {
            n.raw().faults().heal();
        }
    }

    /// Stops every node gracefully.
    pub async fn shutdown(&mut self) {
        for slot in &mut self.slots {
            if let Some(n) = slot.take() {
                n.shutdown().await;
            }
        }
    }
}
