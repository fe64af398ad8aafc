//! A web service with a cache in front of a slow database (cache-aside),
//! on three nodes.
//!
//! Each node serves `GET /users/{id}` and `PUT /users/{id}` over HTTP.
//! A read asks the cluster's cache (`node.cache()`, near tier: a local
//! copy in front of the partitioned cache) and loads from the database
//! only on a miss, through `get_or_compute`: however many nodes miss the
//! same key at once, the database sees one load. A write goes to the
//! database, then deletes the key from the cache; the key's owner pushes
//! the invalidation to every node that holds a near copy, so the next read
//! anywhere loads the new value.
//!
//! The example sends 300 reads of 10 users spread over the three nodes,
//! counts the database loads, updates one user through one node and reads
//! it back through the others.
//!
//! ```sh
//! cargo run -p foundation-examples --example cache_aside
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use foundation::cache::{Cache, CacheOptions, Tier};
use foundation_examples::{local_cluster, shutdown};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const USERS: u32 = 10;
const READS: u32 = 300;

/// The slow database every node shares (one database for the service).
#[derive(Default)]
struct Database {
    rows: Mutex<HashMap<u32, String>>,
    loads: AtomicU64,
}

impl Database {
    async fn load(&self, id: u32) -> Result<String, String> {
        self.loads.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(30)).await;
        let rows = self.rows.lock().map_err(|_| "database poisoned")?;
        rows.get(&id)
            .cloned()
            .ok_or_else(|| format!("no user {id}"))
    }

    fn store(&self, id: u32, name: String) {
        if let Ok(mut rows) = self.rows.lock() {
            rows.insert(id, name);
        }
    }
}

/// One node's web service.
#[derive(Clone)]
struct App {
    db: Arc<Database>,
    users: Cache<u32, String>,
}

async fn read(State(app): State<App>, Path(id): Path<u32>) -> (StatusCode, String) {
    let db = app.db.clone();
    match app
        .users
        .get_or_compute(&id, || async move { db.load(id).await })
        .await
    {
        Ok(name) => (StatusCode::OK, name),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn write(State(app): State<App>, Path(id): Path<u32>, name: String) -> StatusCode {
    app.db.store(id, name);
    match app.users.delete(&id).await {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A minimal HTTP/1.1 client: (status, body).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)
        .await
        .map_err(|e| e.to_string())?;
    let code = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let nodes = local_cluster("web", 3).await?;
    let db = Arc::new(Database::default());
    for id in 0..USERS {
        db.store(id, format!("user-{id}"));
    }
    let mut addrs = Vec::new();
    for node in &nodes {
        let users = node.cache::<u32, String>(
            "users",
            CacheOptions::tier(Tier::Near { replicas: 1 }).ttl(Duration::from_secs(300)),
        )?;
        let app = Router::new()
            .route("/users/{id}", get(read).put(write))
            .with_state(App {
                db: db.clone(),
                users,
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        addrs.push(listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
    }

    // One load per key needs the nodes to agree on each key's owner. Each
    // node applies a membership change to the cache's placement a moment
    // after membership reports it: wait until every node places over all
    // three (right after a cluster forms, two owners could each grant a
    // computation).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while nodes
        .iter()
        .any(|n| n.caches().members().len() < nodes.len())
    {
        if tokio::time::Instant::now() > deadline {
            return Err("the cache's placement did not settle within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // 300 reads of 10 users, 30 at a time, round-robin over the nodes.
    let mut reads = Vec::new();
    for i in 0..READS {
        let addr = addrs[i as usize % addrs.len()];
        reads.push(tokio::spawn(async move {
            http(addr, "GET", &format!("/users/{}", i % USERS), "").await
        }));
        if reads.len() == 30 {
            for r in reads.drain(..) {
                let (code, body) = r.await??;
                if code != 200 {
                    return Err(format!("read failed: {code} {body}").into());
                }
            }
        }
    }
    for r in reads {
        let (code, body) = r.await??;
        if code != 200 {
            return Err(format!("read failed: {code} {body}").into());
        }
    }
    let loads = db.loads.load(Ordering::Relaxed);
    println!(
        "{READS} reads of {USERS} users over {} nodes: {loads} database loads",
        addrs.len()
    );
    if loads != u64::from(USERS) {
        return Err(format!("expected one load per user, saw {loads}").into());
    }

    // Rename user 3 through the first node; every node then reads the new
    // name (the near copies were invalidated).
    let (code, _) = http(addrs[0], "PUT", "/users/3", "ada").await?;
    if code != 204 {
        return Err(format!("write failed: {code}").into());
    }
    for addr in &addrs {
        let (code, body) = http(*addr, "GET", "/users/3", "").await?;
        if code != 200 || body != "ada" {
            return Err(format!("{addr} read {code} {body:?} after the update").into());
        }
    }
    let loads_after = db.loads.load(Ordering::Relaxed);
    println!(
        "cache-aside: {READS} reads over 3 nodes, {loads} database loads for {USERS} users; \
         the update was read back on every node ({} more load)",
        loads_after - loads
    );
    shutdown(nodes).await;
    Ok(())
}
