//! Logs of several nodes in one process can be told apart: every event a
//! node's tasks emit is inside the node's span, which names the node.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foundation_testkit::Cluster;
use tracing_subscriber::fmt::MakeWriter;

/// Collects formatted log lines.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Lines {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_of_five_nodes_in_one_process_names_its_node() {
    let lines = Lines::default();
    // This test binary has this one test: the global subscriber is ours.
    tracing_subscriber::fmt()
        .with_env_filter("foundation=debug")
        .with_writer(lines.clone())
        .with_ansi(false)
        .init();
    let mut c = Cluster::start(5).await.expect("cluster");
    let ids: Vec<String> = (0..5).map(|i| c.node(i).id().to_string()).collect();
    c.node(0)
        .registry()
        .register(
            "logged",
            &c.node(0)
                .services()
                .spawn(foundation_demo::Counter::new, Default::default()),
        )
        .expect("register");
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.shutdown().await;

    let text =
        String::from_utf8_lossy(&lines.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    let events: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        events.len() > 50,
        "too few events to judge: {}",
        events.len()
    );
    let unnamed: Vec<&&str> = events
        .iter()
        .filter(|l| !l.contains("node{node="))
        .collect();
    assert!(
        unnamed.is_empty(),
        "{} of {} events name no node, e.g.:\n{}",
        unnamed.len(),
        events.len(),
        unnamed
            .iter()
            .take(10)
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    for id in &ids {
        let own = events
            .iter()
            .filter(|l| l.contains(&format!("node{{node={id}")))
            .count();
        assert!(own > 5, "node {id} has {own} events");
    }
}
