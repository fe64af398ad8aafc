//! Reading an HTTP answer from a discovery service (Consul, etcd) without
//! trusting its size: the body is read chunk by chunk and refused as soon
//! as it passes the limit, whether or not it declared a length.

/// Largest answer read from a discovery service.
pub(crate) const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// Time to open a connection to a discovery service.
pub(crate) const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// The body of `resp`, at most `max` bytes.
pub(crate) async fn read_bounded(
    mut resp: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(format!("answer too large (over {max} bytes)"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading the answer (reqwest): {e}"))?
    {
        if body.len() + chunk.len() > max {
            return Err(format!("answer too large (over {max} bytes)"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// Serves one chunked HTTP answer of `len` bytes (no length declared).
    async fn serve_chunked(len: usize) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut req = [0u8; 1024];
            let _ = s.read(&mut req).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .await;
            let chunk = vec![b'x'; 4096];
            let mut left = len;
            while left > 0 {
                let n = left.min(chunk.len());
                let head = format!("{n:x}\r\n");
                if s.write_all(head.as_bytes()).await.is_err()
                    || s.write_all(&chunk[..n]).await.is_err()
                    || s.write_all(b"\r\n").await.is_err()
                {
                    return; // the reader gave up: expected past the limit
                }
                left -= n;
            }
            let _ = s.write_all(b"0\r\n\r\n").await;
        });
        addr
    }

    #[tokio::test]
    async fn an_answer_past_the_limit_is_refused_without_being_read_whole() {
        let addr = serve_chunked(100_000).await;
        let resp = reqwest::get(format!("http://{addr}/")).await.expect("get");
        let err = read_bounded(resp, 10_000).await.expect_err("too large");
        assert!(err.contains("too large"), "{err}");

        let addr = serve_chunked(9_000).await;
        let resp = reqwest::get(format!("http://{addr}/")).await.expect("get");
        assert_eq!(read_bounded(resp, 10_000).await.expect("fits").len(), 9_000);
    }
}
