//! The dashboard in a real browser: three nodes, headless Chromium driven
//! through WebDriver (Debian's `chromium` and `chromium-driver`; `.ci/run`
//! installs them). The page must show three alive members and every
//! node's own report (which reach the serving node over the telemetry
//! channel), and show a killed node as down. It saves a screenshot in
//! the target directory (`tmp/dashboard.png`).
//!
//! `DASHBOARD_SCREENSHOT_SECONDS=N` keeps traffic going for N more seconds
//! before the screenshot, so the charts have a history: that is how the
//! README's picture is made (`docs/images/dashboard.png`).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use foundation::process::Instance;
use foundation::{MemberEvent, MemberState};
use foundation_demo::Counter;
use foundation_testkit::skip::skip;
use foundation_testkit::{assert_eventually_async, Cluster};
use serde_json::{json, Value};

const SETTLE: Duration = Duration::from_secs(20);

/// A WebDriver session on a chromedriver this test started.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Browser {
    async fn start() -> Option<Browser> {
        let (Some(driver), Some(chromium)) = (which("chromedriver"), which("chromium")) else {
            skip("no chromedriver or chromium (Debian: apt-get install chromium chromium-driver)");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut b = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            http: reqwest::Client::new(),
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1500,1100"]
            }
        }}});
        let deadline = Instant::now() + SETTLE;
        let created = loop {
            match b.post("/session", &caps).await {
                Ok(v) => break v,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "chromedriver not up yet");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no WebDriver session: {e}"),
            }
        };
        b.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {created}"))
            .to_owned();
        Some(b)
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let r = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_slice(&r.bytes().await.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        match v["value"].get("error") {
            Some(e) => Err(format!("WebDriver error {e}: {}", v["value"]["message"])),
            None => Ok(v["value"].clone()),
        }
    }

    async fn open(&self, url: &str) {
        let path = format!("/session/{}/url", self.session);
        self.post(&path, &json!({ "url": url }))
            .await
            .expect("navigate");
    }

    /// Runs `script` in the page and returns its result.
    async fn run(&self, script: &str) -> Value {
        let path = format!("/session/{}/execute/sync", self.session);
        self.post(&path, &json!({ "script": script, "args": [] }))
            .await
            .expect("script runs")
    }

    async fn screenshot(&self) -> Vec<u8> {
        let url = format!("{}/session/{}/screenshot", self.base, self.session);
        let r = self.http.get(url).send().await.expect("screenshot");
        let v: Value = serde_json::from_slice(&r.bytes().await.expect("body")).expect("json");
        base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().expect("base64 png"))
            .expect("png")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the browser with the driver (chromedriver kills its Chromium).
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn which(name: &str) -> Option<String> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| format!("{d}/{name}"))
        .find(|p| std::path::Path::new(p).is_file())
}

/// The members table as the page shows it: (name, state) per row.
const MEMBERS: &str = "return [...document.querySelectorAll('#members tbody tr')]\
    .map(r => [r.dataset.name, r.dataset.state]);";
/// The names in the nodes table (one row per node's own report).
const NODES: &str = "return [...document.querySelectorAll('#nodes tbody tr')]\
    .map(r => r.dataset.node);";

fn rows(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r[0].as_str().unwrap_or_default().to_owned(),
                        r[1].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_cluster_live_in_a_real_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let mut c = Cluster::start_with(3, |b, _| b.http(true).http_port(0))
        .await
        .expect("cluster");
    // Something in every section: a singleton, a topic, a cache.
    for n in c.running() {
        n.processes()
            .define("tally", |_: &(), _: &Instance| Counter::new());
    }
    c.node(0)
        .processes()
        .start_singleton("billing", "tally", &())
        .expect("singleton");
    let _sub = c
        .node(1)
        .pubsub()
        .subscribe::<String>("orders")
        .expect("subscribe");
    let cache = c
        .node(2)
        .cache::<u32, String>("sessions", Default::default())
        .expect("cache");
    for i in 0..20u32 {
        cache.put(&i, &format!("user-{i}")).await.expect("put");
    }
    let http = c.node(0).http_addr().expect("http on");
    browser.open(&format!("http://{http}/dashboard")).await;

    let names: Vec<String> = c.running().map(|n| n.name().to_owned()).collect();
    assert_eventually_async(SETTLE, "the page shows three alive members", || async {
        let rows = rows(&browser.run(MEMBERS).await);
        rows.len() == 3 && rows.iter().all(|(n, s)| names.contains(n) && s == "alive")
    })
    .await;
    assert_eventually_async(
        SETTLE,
        "the page shows every node's own report (over the telemetry channel)",
        || async {
            let shown = browser.run(NODES).await;
            let mut shown: Vec<String> = serde_json::from_value(shown).unwrap_or_default();
            shown.sort();
            shown == names
        },
    )
    .await;
    let extra: u64 = std::env::var("DASHBOARD_SCREENSHOT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    for i in 0..5 + extra * 10 {
        if i % 10 == 9 {
            let _ = cache.get(&(i as u32 % 40)).await;
        }
        c.node(0)
            .pubsub()
            .broadcast("orders", "an order".to_owned())
            .await
            .expect("publish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eventually_async(
        SETTLE,
        "the page lists the singleton, topic and cache",
        || async {
            let text = browser.run("return document.body.innerText;").await;
            let text = text.as_str().unwrap_or_default().to_owned();
            ["billing", "orders", "sessions", "keep majority"]
                .iter()
                .all(|w| text.contains(w))
        },
    )
    .await;
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&path, &png).expect("save the screenshot");
    eprintln!("screenshot: {}", path.display());

    // Names come from any node of the cluster: the page shows them as
    // text, never as markup.
    const HOSTILE: &str = "<img src=x onerror=\"document.title='pwned'\">";
    let _hostile = c
        .node(1)
        .pubsub()
        .subscribe::<String>(HOSTILE)
        .expect("subscribe");
    assert_eventually_async(SETTLE, "the page lists the hostile topic name", || async {
        let text = browser
            .run("return document.querySelector('#topics').innerText;")
            .await;
        text.as_str().is_some_and(|t| t.contains(HOSTILE))
    })
    .await;
    let escaped = browser
        .run("return [document.title, document.querySelectorAll('#topics img').length];")
        .await;
    assert_eq!(
        escaped[0], "Foundation dashboard",
        "no script ran from a name"
    );
    assert_eq!(escaped[1], 0, "a topic name became markup");

    // Kill node 2; note when the serving node declares it down, and when
    // the page shows it.
    let victim = c.node(2).id();
    let victim_name = c.node(2).name().to_owned();
    let mut events = c.node(0).events();
    let declared = tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            if let MemberEvent::Down(m) = e {
                if m.id == victim {
                    return Instant::now();
                }
            }
        }
        panic!("events ended before the victim was declared down");
    });
    let killed = Instant::now();
    c.kill(2).await;
    let mut shown_down = None;
    while killed.elapsed() < SETTLE {
        let rows = rows(&browser.run(MEMBERS).await);
        if rows.iter().any(|(n, s)| *n == victim_name && s == "down") {
            shown_down = Some(Instant::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shown_down = shown_down.expect("the page shows the killed node as down");
    let declared = declared.await.expect("declared down");
    assert_eq!(common::state_of(c.node(0), victim), Some(MemberState::Down));
    let lag = shown_down.saturating_duration_since(declared);
    eprintln!(
        "killed → declared down {:?}, declared → shown down {lag:?}",
        declared.saturating_duration_since(killed)
    );
    assert!(
        lag < Duration::from_secs(2),
        "the page showed the node down {lag:?} after the node declared it down"
    );
    c.shutdown().await;
}
