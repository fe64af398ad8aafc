//! GET from a node's own HTTP endpoint (reqwest, bounded in time and size).

use std::time::Duration;

use anyhow::{bail, Context as _};

/// Largest answer accepted (a member table of thousands of nodes fits).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// GETs `path` from `addr` (`host:port`, optionally prefixed by `http://`),
/// returning the body of a 2xx answer.
pub(crate) async fn get(addr: &str, path: &str, timeout: Duration) -> anyhow::Result<String> {
    let addr = addr.trim_start_matches("http://").trim_end_matches('/');
    let url = format!("http://{addr}{path}");
    let fut = async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .context("cannot build the HTTP client")?;
        let mut resp = client
            .get(&url)
            .send()
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        let status = resp.status();
        if !status.is_success() {
            bail!("HTTP answer `{status}` from {url}");
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            if body.len() + chunk.len() > MAX_BODY {
                bail!("answer from {url} is larger than {MAX_BODY} bytes");
            }
            body.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(timeout, fut)
        .await
        .with_context(|| format!("{addr} did not answer within {timeout:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A one-shot server answering `answer` to the first request.
    async fn serve_once(answer: &'static [u8]) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            if let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn reads_plain_and_chunked_answers_and_refuses_errors() {
        let t = Duration::from_secs(5);
        let plain = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]").await;
        assert_eq!(get(&plain, "/members", t).await.expect("ok"), "[]");
        let chunked = serve_once(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n[1\r\n1\r\n]\r\n0\r\n\r\n",
        )
        .await;
        assert_eq!(get(&chunked, "/members", t).await.expect("ok"), "[1]");
        let refused =
            serve_once(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 1\r\n\r\nx").await;
        let e = get(&refused, "/ready", t).await.expect_err("503");
        assert!(e.to_string().contains("503"), "{e}");
        let garbage = serve_once(b"garbage").await;
        assert!(get(&garbage, "/", t).await.is_err());
    }
}
