//! Websocket clients: [`websocket_connect`] opens any path, answering an HTTP Digest challenge
//! on the upgrade request when credentials are given (AMT's `/ws-redirection`, the RRMT admin
//! endpoint); [`redirection_websocket`] presents AMT's redirection websocket as a plain byte
//! stream so that the same session driver runs over TCP, TLS and websocket.

use futures_util::{SinkExt, StreamExt};
use oobkit_digest::{Client as DigestClient, Step};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{
    self, Message as Ws, client::IntoClientRequest, protocol::WebSocketConfig,
};

use crate::{Endpoint, Io, IoError, connect, random_hex16};

/// A websocket over TCP or TLS.
pub type WebSocket = tokio_tungstenite::WebSocketStream<Box<dyn Io>>;

/// Opens `path` on `endpoint` as a websocket with messages up to `max_message` bytes. With
/// `credentials` (user, password), an HTTP Digest challenge on the upgrade is answered (a
/// first attempt without credentials, then one with the answer: two connections, three when
/// the nonce changed in between; see [`oobkit_digest::RoundTrip`]).
pub async fn websocket_connect(
    endpoint: &Endpoint,
    path: &str,
    credentials: Option<(&str, &str)>,
    max_message: usize,
) -> Result<WebSocket, IoError> {
    let scheme = if endpoint.tls.is_some() { "wss" } else { "ws" };
    let url = format!("{scheme}://{}{path}", endpoint.authority());
    let mut digest = credentials.map(|(user, password)| DigestClient::new(user, password));
    let mut round = digest.as_mut().map(DigestClient::round_trip);
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(max_message);
    config.max_frame_size = Some(max_message);
    loop {
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| IoError::Config(format!("bad websocket URL {url}: {e}")))?;
        if let Some(round) = round.as_mut()
            && let Some(answer) = round.authorization("GET", path, None, &random_hex16())?
        {
            let value = tungstenite::http::HeaderValue::from_str(&answer)
                .map_err(|_| IoError::Config("unusable Authorization value".into()))?;
            request
                .headers_mut()
                .insert(http_header("authorization"), value);
        }
        let stream = connect(endpoint).await?;
        let status = match tokio_tungstenite::client_async_with_config(
            request,
            stream,
            Some(config),
        )
        .await
        {
            Ok((ws, _)) => {
                if let Some(round) = round.as_mut() {
                    round.response(101, [])?;
                }
                return Ok(ws);
            }
            Err(tungstenite::Error::Http(response)) => response,
            Err(e) => {
                return Err(IoError::Stream {
                    endpoint: endpoint.authority(),
                    source: std::io::Error::other(e),
                });
            }
        };
        if status.status() != 401 {
            return Err(IoError::Config(format!(
                "{url}: the server refused the websocket upgrade with HTTP {}",
                status.status()
            )));
        }
        let Some(round) = round.as_mut() else {
            return Err(IoError::AuthRejected);
        };
        let values = status
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok());
        match round.response(401, values)? {
            Step::Retry => {}
            _ => return Err(IoError::AuthRejected),
        }
    }
}

/// A websocket opened without a websocket library on top, for relays that forward frames as
/// they are (`oobkit-wspass`): the connection after the server's 101 and the bytes that came
/// with it.
pub struct RawWebSocket {
    /// The connection, after the upgrade response.
    pub stream: Box<dyn Io>,
    /// What the server sent right after its 101 (the start of its first frames): the first
    /// bytes of the websocket, before anything read from `stream`.
    pub early: Vec<u8>,
    /// The subprotocol the server chose, if any.
    pub protocol: Option<String>,
}

impl std::fmt::Debug for RawWebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawWebSocket")
            .field("early", &self.early.len())
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

/// The largest refusal body kept from a server that declines a websocket upgrade.
const MAX_REFUSAL_BODY: usize = 64 * 1024;

/// Opens `path` on `endpoint` with a websocket upgrade request carrying `headers` (e.g.
/// `Authorization`, `Sec-WebSocket-Protocol`), checks the server's `Sec-WebSocket-Accept`, and
/// returns the raw connection. A server that answers anything but 101 gives `Ok(Err(response))`
/// (its status and body, at most 64 KiB, for the caller to explain). The caller bounds the
/// time it takes.
pub async fn websocket_upgrade(
    endpoint: &Endpoint,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Result<RawWebSocket, oobkit_http1::HttpResponse>, IoError> {
    use std::fmt::Write as _;
    let key = tungstenite::handshake::client::generate_key();
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
        endpoint.authority()
    );
    for (name, value) in headers {
        if value.contains(['\r', '\n']) || name.contains(['\r', '\n', ':']) {
            return Err(IoError::Config(format!(
                "header {name} is not a header line"
            )));
        }
        let _ = write!(request, "{name}: {value}\r\n");
    }
    request.push_str("\r\n");
    let failed = |source: std::io::Error| IoError::Stream {
        endpoint: endpoint.authority(),
        source,
    };
    let mut stream = connect(endpoint).await?;
    stream.write_all(request.as_bytes()).await.map_err(failed)?;
    let mut reader = oobkit_http1::ResponseReader::new().with_max_body(MAX_REFUSAL_BODY);
    let mut buf = [0u8; 4096];
    let response = loop {
        let n = stream.read(&mut buf).await.map_err(failed)?;
        let status = if n == 0 {
            reader.finish().map(oobkit_http1::ReadStatus::Complete)
        } else {
            reader.feed(&buf[..n])
        };
        if let oobkit_http1::ReadStatus::Complete(response) =
            status.map_err(|e| failed(std::io::Error::other(e)))?
        {
            break response;
        }
    };
    if response.status != 101 {
        return Ok(Err(response));
    }
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let upgraded = response
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgraded || response.header("sec-websocket-accept") != Some(accept.as_str()) {
        return Err(failed(std::io::Error::other(
            "the server answered 101 without a valid websocket Upgrade and Sec-WebSocket-Accept",
        )));
    }
    Ok(Ok(RawWebSocket {
        protocol: response.header("sec-websocket-protocol").map(str::to_owned),
        early: reader.take_leftover(),
        stream,
    }))
}

/// Opens `/ws-redirection` on the device's HTTP(S) port as `user`, answering its Digest
/// challenge, and returns the connection as a byte stream.
pub async fn redirection_websocket(
    endpoint: &Endpoint,
    user: &str,
    password: &str,
) -> Result<Box<dyn Io>, IoError> {
    let ws =
        websocket_connect(endpoint, "/ws-redirection", Some((user, password)), 1 << 20).await?;
    Ok(into_byte_stream(ws, STALLED_DEVICE))
}

/// A device that takes no bytes from `/ws-redirection` for this long is given up on: the byte
/// stream ends, and the session with it.
pub const STALLED_DEVICE: std::time::Duration = std::time::Duration::from_secs(30);

fn http_header(name: &'static str) -> tungstenite::http::HeaderName {
    tungstenite::http::HeaderName::from_static(name)
}

/// A websocket (client or server side) as a plain byte stream, for protocols that ride in binary
/// messages cut anywhere (AMT's `/ws-redirection`): a task joins the websocket to one end of an
/// in-memory pipe and the other end is returned. Writes become binary messages; the stream
/// ends when the peer closes; dropping the stream closes the websocket.
///
/// Every message sent, and the closing handshake, is bounded by `send_timeout`: a peer that
/// stops reading ends the stream instead of holding the task, its socket and the queued bytes
/// for as long as it likes.
///
/// The two directions are pumped independently: one waiting for the pipe to drain (the reader
/// of the returned stream is busy writing) never stops the other, which is what kept an
/// unpaced 1 MiB of SOL input from arriving (the session waited on its writes while the pump
/// waited on the session's reads).
pub fn into_byte_stream<S: Io + 'static>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    send_timeout: std::time::Duration,
) -> Box<dyn Io> {
    let (inner, outer) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let (mut sink, mut stream) = ws.split();
        let (mut outer_read, mut outer_write) = tokio::io::split(outer);
        {
            let incoming = async {
                while let Some(Ok(message)) = stream.next().await {
                    match message {
                        Ws::Binary(data) if outer_write.write_all(&data).await.is_err() => break,
                        Ws::Close(_) => break,
                        _ => {}
                    }
                }
                // The peer closed: the stream's reader sees the end.
                let _ = outer_write.shutdown().await;
            };
            let outgoing = async {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match outer_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let message = Ws::Binary(buf[..n].to_vec().into());
                            match tokio::time::timeout(send_timeout, sink.send(message)).await {
                                Ok(Ok(())) => {}
                                Ok(Err(_)) | Err(_) => break,
                            }
                        }
                    }
                }
            };
            tokio::pin!(incoming, outgoing);
            tokio::select! {
                // After the peer's close, what the stream still writes goes out until it ends.
                () = &mut incoming => (&mut outgoing).await,
                // The stream was dropped (or the websocket failed): close.
                () = &mut outgoing => {}
            }
        }
        let _ = tokio::time::timeout(send_timeout, sink.close()).await;
    });
    Box::new(inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::protocol::Role;

    /// The byte stream's reader echoes while the peer sends 1 MiB in one message and reads
    /// the echo concurrently: the pump must carry both directions at once (it waited on the
    /// echo side's reads while the echo side waited on its writes).
    #[tokio::test]
    async fn both_directions_flow_while_either_waits() {
        let (near, far) = tokio::io::duplex(64 * 1024);
        let server = WebSocketStream::from_raw_socket(near, Role::Server, None).await;
        let client = WebSocketStream::from_raw_socket(far, Role::Client, None).await;
        let mut stream = into_byte_stream(server, std::time::Duration::from_secs(5));
        let echo = tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => stream.write_all(&buf[..n]).await.unwrap(),
                }
            }
        });
        let message: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
        let (mut sink, mut source) = client.split();
        let expected = message.clone();
        let send = async move {
            sink.send(Ws::Binary(message.into())).await.unwrap();
            sink
        };
        let receive = async move {
            let mut echoed = Vec::new();
            while echoed.len() < expected.len() {
                match source.next().await {
                    Some(Ok(Ws::Binary(data))) => echoed.extend_from_slice(&data),
                    Some(Ok(_)) => {}
                    other => panic!("{other:?}"),
                }
            }
            assert!(echoed == expected, "the echo differs");
        };
        let both = async { tokio::join!(send, receive) };
        let (_sink, ()) = tokio::time::timeout(std::time::Duration::from_secs(10), both)
            .await
            .expect("the pump stalled");
        echo.abort();
    }

    /// A peer that stops reading ends the stream after the send limit (the pump used to wait
    /// on it forever, holding the task, the socket and what was queued).
    #[tokio::test]
    async fn a_peer_that_stops_reading_ends_the_stream() {
        let (near, far) = tokio::io::duplex(16 * 1024);
        let server = WebSocketStream::from_raw_socket(near, Role::Server, None).await;
        let _client_never_reads = WebSocketStream::from_raw_socket(far, Role::Client, None).await;
        let stream = into_byte_stream(server, std::time::Duration::from_millis(200));
        let (mut read, mut write) = tokio::io::split(stream);
        let flood = tokio::spawn(async move {
            let chunk = [0x42u8; 8192];
            while write.write_all(&chunk).await.is_ok() {}
        });
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            let mut buf = [0u8; 64];
            loop {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the stream outlived a peer that never reads");
        flood.abort();
    }

    /// A server on loopback that reads one request head and answers `reply(key)`.
    async fn answering(reply: fn(&str) -> Vec<u8>) -> Endpoint {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let request = crate::web::read_request(&mut tcp, 0)
                .await
                .unwrap()
                .unwrap();
            let key = request.header("sec-websocket-key").unwrap();
            tcp.write_all(&reply(key)).await.unwrap();
            // Hold the connection until the client is done.
            let _ = tcp.read(&mut [0u8; 1]).await;
        });
        Endpoint::plain("127.0.0.1", port)
    }

    #[tokio::test]
    async fn a_raw_upgrade_keeps_what_came_with_the_101_and_checks_the_accept_key() {
        let endpoint = answering(|key| {
            let mut answer = crate::web::switching_protocols(key, Some("binary"));
            answer.extend([0x82, 0x02, b'h', b'i']);
            answer
        })
        .await;
        let ws = websocket_upgrade(&endpoint, "/x", &[("Sec-WebSocket-Protocol", "binary")])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ws.early, b"\x82\x02hi");
        assert_eq!(ws.protocol.as_deref(), Some("binary"));

        let wrong_key = answering(|_| {
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                .to_vec()
        })
        .await;
        assert!(matches!(
            websocket_upgrade(&wrong_key, "/x", &[]).await,
            Err(IoError::Stream { .. })
        ));

        let refused = answering(|_| {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno such vm".to_vec()
        })
        .await;
        match websocket_upgrade(&refused, "/x", &[]).await {
            Ok(Err(response)) => {
                assert_eq!(
                    (response.status, &response.body[..]),
                    (404, &b"no such v"[..])
                )
            }
            _ => panic!("a 404 is a refusal with its body"),
        }

        assert!(matches!(
            websocket_upgrade(&refused, "/x", &[("Authorization", "Bearer a\r\nX: y")]).await,
            Err(IoError::Config(_))
        ));
    }
}
