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

/// Opens `/ws-redirection` on the device's HTTP(S) port as `user`, answering its Digest
/// challenge, and returns the connection as a byte stream.
pub async fn redirection_websocket(
    endpoint: &Endpoint,
    user: &str,
    password: &str,
) -> Result<Box<dyn Io>, IoError> {
    let ws =
        websocket_connect(endpoint, "/ws-redirection", Some((user, password)), 1 << 20).await?;
    Ok(into_byte_stream(ws))
}

fn http_header(name: &'static str) -> tungstenite::http::HeaderName {
    tungstenite::http::HeaderName::from_static(name)
}

/// A websocket (client or server side) as a plain byte stream, for protocols that ride in binary
/// messages cut anywhere (AMT's `/ws-redirection`): a task joins the websocket to one end of an
/// in-memory pipe and the other end is returned. Writes become binary messages; the stream
/// ends when the peer closes; dropping the stream closes the websocket.
pub fn into_byte_stream<S: Io + 'static>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
) -> Box<dyn Io> {
    let (inner, mut outer) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut ws_open = true;
        loop {
            tokio::select! {
                message = ws.next(), if ws_open => match message {
                    Some(Ok(Ws::Binary(data))) => {
                        if outer.write_all(&data).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Ws::Close(_)) | Err(_)) | None => {
                        ws_open = false;
                        let _ = outer.shutdown().await;
                    }
                    Some(Ok(_)) => {}
                },
                n = outer.read(&mut buf) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if ws.send(Ws::Binary(buf[..n].to_vec().into())).await.is_err() {
                            break;
                        }
                    }
                },
            }
        }
        let _ = ws.close(None).await;
    });
    Box::new(inner)
}
