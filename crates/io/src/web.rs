//! The small HTTP server plumbing the browser-facing programs share (vnc_proxy, web_console):
//! reading one request head with a bound, bounded writes, JSON answers, the 101 answer to a
//! websocket upgrade, the Origin rule, and counted places for admitted sessions.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use oobkit_http1::{HttpRequest, RequestReader, ResponseWriter};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Reads one request (its body at most `max_body` bytes); `None` when the peer closed first.
/// The caller bounds the time.
pub async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    max_body: usize,
) -> Result<Option<HttpRequest>, oobkit_http1::Error> {
    let mut reader = RequestReader::new().with_max_body(max_body);
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return Ok(None);
        }
        if let Some(request) = reader.next(&buf[..n])? {
            return Ok(Some(request));
        }
    }
}

/// Writes `bytes` within `limit` (a client that stops reading must not hold the task).
pub async fn write_bounded<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    limit: Duration,
) -> std::io::Result<()> {
    tokio::time::timeout(limit, stream.write_all(bytes))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// A complete JSON answer that is never cached and closes the connection.
pub fn json_response(status: u16, reason: &str, body: &str) -> Vec<u8> {
    ResponseWriter::new(status, reason)
        .header("Content-Type", "application/json")
        .header("Cache-Control", "no-store")
        .header("Connection", "close")
        .body(body.as_bytes())
}

/// The 101 answer to a websocket upgrade with `key` (RFC 6455 section 4.2.2), selecting
/// `protocol` when one was chosen (browsers fail a handshake whose offered subprotocol is not
/// echoed).
pub fn switching_protocols(key: &str, protocol: Option<&str>) -> Vec<u8> {
    let mut response = ResponseWriter::new(101, "Switching Protocols")
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header(
            "Sec-WebSocket-Accept",
            &tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.trim().as_bytes()),
        );
    if let Some(protocol) = protocol {
        response = response.header("Sec-WebSocket-Protocol", protocol);
    }
    response.head_only()
}

/// The subprotocols a request offers, in order.
pub fn offered_protocols(request: &HttpRequest) -> Vec<&str> {
    request
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-protocol"))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// Whether a browser's `origin` may act on this server: the server's own host (`host`, the
/// request's Host header), or one of `allowed` (`scheme://host[:port]`). Cross-site pages
/// must not drive it with a user's credentials.
pub fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    let origin = origin.trim().trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    host.is_some_and(|h| h.trim().eq_ignore_ascii_case(origin_host))
}

/// A place among at most `max` admitted sessions, given back on drop.
#[derive(Debug)]
pub struct SessionPlace<'a>(&'a AtomicUsize);

impl<'a> SessionPlace<'a> {
    /// Takes a place if fewer than `max` are taken.
    pub fn take(count: &'a AtomicUsize, max: usize) -> Option<Self> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(count))
    }
}

impl Drop for SessionPlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let allowed = vec!["https://lab.example".to_owned()];
        assert!(origin_allowed(
            "http://127.0.0.1:8022",
            Some("127.0.0.1:8022"),
            &[]
        ));
        assert!(origin_allowed(
            "https://lab.example/",
            Some("proxy"),
            &allowed
        ));
        assert!(!origin_allowed(
            "https://evil.example",
            Some("proxy"),
            &allowed
        ));
        assert!(!origin_allowed("null", Some("proxy"), &allowed));
    }

    #[test]
    fn places_are_counted_and_given_back() {
        let count = AtomicUsize::new(0);
        let first = SessionPlace::take(&count, 1).unwrap();
        assert!(SessionPlace::take(&count, 1).is_none());
        drop(first);
        assert!(SessionPlace::take(&count, 1).is_some());
    }
}
