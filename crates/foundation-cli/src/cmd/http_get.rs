//! A minimal HTTP/1.1 GET for talking to a node's own endpoint.

use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Largest answer accepted (a member table of thousands of nodes fits).
const MAX_BODY: u64 = 16 * 1024 * 1024;

/// GETs `path` from `addr` (`host:port`, optionally prefixed by `http://`),
/// returning the body of a 2xx answer.
pub(crate) async fn get(addr: &str, path: &str, timeout: Duration) -> anyhow::Result<String> {
    let addr = addr.trim_start_matches("http://").trim_end_matches('/');
    let fut = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.take(MAX_BODY).read_to_end(&mut raw).await?;
        parse(&raw)
    };
    tokio::time::timeout(timeout, fut)
        .await
        .with_context(|| format!("{addr} did not answer within {timeout:?}"))?
}

fn parse(raw: &[u8]) -> anyhow::Result<String> {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("malformed HTTP answer");
    };
    let status = head.lines().next().unwrap_or_default();
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    if !(200..300).contains(&code) {
        bail!("HTTP answer `{status}`");
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(dechunk(body));
    }
    Ok(body.to_owned())
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_answers() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]";
        assert_eq!(parse(plain).expect("ok"), "[]");
        let chunked =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n[1\r\n1\r\n]\r\n0\r\n\r\n";
        assert_eq!(parse(chunked).expect("ok"), "[1]");
        assert!(parse(b"HTTP/1.1 503 Service Unavailable\r\n\r\nx").is_err());
        assert!(parse(b"garbage").is_err());
    }
}
