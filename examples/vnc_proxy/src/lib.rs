//! vnc_proxy: a JWT-gated websocket proxy to KubeVirt's VNC subresource, and the noVNC page.
//!
//! A request `GET /[PREFIX/]TOKEN/VMI` with a websocket upgrade is checked by
//! [`oobkit_gate::Gate`] before anything else (401 bad or expired token, 403 VMI not allowed,
//! 404 bad path, each with a small JSON body and no upgrade); then the proxy dials
//! `{api}/apis/subresources.kubevirt.io/{version}/namespaces/{ns}/virtualmachineinstances/{vmi}/vnc`
//! (the namespace from the token only) with the service account's bearer token, completes the
//! client's upgrade, and relays binary frames both ways until either side closes, the token
//! expires (close 4001) or the session idles (4002). Upstream failures reach the client as a
//! close with a reason (4404 VMI not found, 4401/4403 the API server refused the proxy, 1011
//! unreachable or TLS failure) and the log says which.

#![forbid(unsafe_code)]

pub mod assets;
pub mod standin;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use oobkit_gate::{Admission, CutReason, Gate, Session, SessionEvent};
use oobkit_io::PreAuthBudget;
use oobkit_io::web::{
    SessionPlace, json_response, offered_protocols, origin_allowed, read_request,
    switching_protocols, write_bounded,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};

pub use upstream::{Upstream, UpstreamError};

/// The read and write buffer of each websocket of a session.
pub(crate) const SESSION_BUFFER: usize = 16 * 1024;

/// Limits on everything a client can hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Admitted sessions at once.
    pub max_sessions: usize,
    /// Connections not yet admitted, per address and in total.
    pub max_unadmitted_per_address: u32,
    /// Connections not yet admitted, in total.
    pub max_unadmitted: u32,
    /// Largest websocket message either way.
    pub max_message: usize,
    /// Time for a client to send its request head.
    pub handshake: Duration,
    /// A session with no traffic either way for this long is closed (4002).
    pub idle: Duration,
    /// A write that does not finish in this time ends the session (the peer stopped reading).
    pub write: Duration,
    /// Time for the upstream to answer the websocket upgrade: one that accepts and never
    /// answers must not hold a session place (KubeVirt's own client waits 45 s).
    pub upstream: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_sessions: 256,
            max_unadmitted_per_address: 16,
            max_unadmitted: 256,
            max_message: 4 << 20,
            handshake: Duration::from_secs(10),
            idle: Duration::from_secs(600),
            write: Duration::from_secs(30),
            upstream: Duration::from_secs(30),
        }
    }
}

/// The proxy's configuration.
pub struct ProxyConfig {
    /// Who may pass.
    pub gate: Gate,
    /// Where VMIs are.
    pub upstream: Upstream,
    /// Origins allowed to open sessions (`scheme://host[:port]`); a request whose Origin is
    /// neither listed nor the proxy's own host is refused. Clients that send no Origin (not
    /// browsers) pass.
    pub allowed_origins: Vec<String>,
    /// Limits.
    pub limits: Limits,
}

struct Shared {
    config: ProxyConfig,
    unadmitted: PreAuthBudget,
    sessions: AtomicUsize,
}

/// Serves `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, config: ProxyConfig) {
    let shared = Arc::new(Shared {
        unadmitted: PreAuthBudget::new(
            config.limits.max_unadmitted_per_address,
            config.limits.max_unadmitted,
        ),
        sessions: AtomicUsize::new(0),
        config,
    });
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            match connection(stream, peer, &shared).await {
                Ok(line) => tracing::info!("{peer}: {line}"),
                Err(e) => tracing::info!("{peer}: {e}"),
            }
        });
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The path for the log: no query string, and no token (the segment before the VMI).
fn loggable(target: &str) -> String {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let parts: Vec<&str> = path.split('/').collect();
    match parts.len() {
        0..=2 => path.chars().take(80).collect(),
        n => format!("…/{}", parts[n - 1].chars().take(64).collect::<String>()),
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
) -> std::io::Result<String> {
    let limits = shared.config.limits;
    // Not admitted yet: a budget of its own, so that slow or hostile clients never take the
    // places of admitted sessions.
    let slot = match shared.unadmitted.take(peer.ip()) {
        Ok(slot) => slot,
        Err(e) => {
            let body = json_response(
                503,
                "Service Unavailable",
                r#"{"error":"busy","reason":"too many connections being set up"}"#,
            );
            let _ = write_bounded(&mut stream, &body, limits.write).await;
            return Ok(format!("refused before reading: {e}"));
        }
    };
    let request = match tokio::time::timeout(limits.handshake, read_request(&mut stream, 0)).await {
        Ok(Ok(Some(request))) => request,
        Ok(Ok(None)) => return Ok("closed before a request".into()),
        Ok(Err(e)) => {
            let body = json_response(
                400,
                "Bad Request",
                r#"{"error":"bad_request","reason":"malformed HTTP request"}"#,
            );
            let _ = write_bounded(&mut stream, &body, limits.write).await;
            return Ok(format!("malformed request: {e}"));
        }
        Err(_) => {
            return Ok(format!("no request within {:?}; closed", limits.handshake));
        }
    };
    let upgrade = request
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade && request.header("x-vnc-proxy-check").is_some() {
        // The page asks why its websocket was refused (a browser cannot read a failed
        // upgrade's body): the gate's answer for the same path, as JSON.
        let body = match shared.config.gate.check(&request.target, &[], unix_now()) {
            Ok(admission) => json_response(
                200,
                "OK",
                &serde_json::json!({"ok": true, "vmi": admission.vmi, "expires_at": admission.expires_at}).to_string(),
            ),
            Err(refusal) => json_response(refusal.status(), "Refused", &refusal.json()),
        };
        write_bounded(&mut stream, &body, limits.write).await?;
        return Ok(format!("check {}", loggable(&request.target)));
    }
    if !upgrade {
        let reply = assets::respond(&request);
        write_bounded(&mut stream, &reply.bytes, limits.write).await?;
        return Ok(format!(
            "{} {} {}",
            request.method,
            loggable(&request.target),
            reply.status
        ));
    }
    // Origin: browsers send it; a page elsewhere must not drive the proxy with a user's token.
    if let Some(origin) = request.header("origin")
        && !origin_allowed(
            origin,
            request.header("host"),
            &shared.config.allowed_origins,
        )
    {
        let body = json_response(
            403,
            "Forbidden",
            r#"{"error":"forbidden","reason":"origin not allowed"}"#,
        );
        write_bounded(&mut stream, &body, limits.write).await?;
        return Ok(format!("refused: origin {origin:?} not allowed"));
    }
    let offered = offered_protocols(&request);
    let admission = match shared
        .config
        .gate
        .check(&request.target, &offered, unix_now())
    {
        Ok(admission) => admission,
        Err(refusal) => {
            let reason = match refusal.status() {
                401 => "Unauthorized",
                403 => "Forbidden",
                _ => "Not Found",
            };
            let body = json_response(refusal.status(), reason, &refusal.json());
            write_bounded(&mut stream, &body, limits.write).await?;
            return Ok(format!(
                "refused {} {}: {refusal}",
                refusal.status(),
                loggable(&request.target)
            ));
        }
    };
    let Some(key) = request.header("sec-websocket-key").map(str::to_owned) else {
        let body = json_response(
            400,
            "Bad Request",
            r#"{"error":"bad_request","reason":"no Sec-WebSocket-Key"}"#,
        );
        write_bounded(&mut stream, &body, limits.write).await?;
        return Ok("refused: an upgrade without Sec-WebSocket-Key".into());
    };
    // Admitted: now a session place, no longer an unadmitted one.
    drop(slot);
    let Some(place) = SessionPlace::take(&shared.sessions, limits.max_sessions) else {
        let body = json_response(
            503,
            "Service Unavailable",
            r#"{"error":"busy","reason":"session limit reached"}"#,
        );
        write_bounded(&mut stream, &body, limits.write).await?;
        return Ok(format!("refused: {} sessions open", limits.max_sessions));
    };
    let who = format!(
        "{}/{} user {} lab instance {}",
        admission.namespace,
        admission.vmi,
        admission.user.as_deref().unwrap_or("?"),
        admission.lab_instance.as_deref().unwrap_or("?")
    );
    let started = Instant::now();
    // Bounded: an API server that accepts and never answers must not hold the session place.
    let dialed = match tokio::time::timeout(
        limits.upstream,
        shared
            .config
            .upstream
            .dial(&admission.namespace, &admission.vmi, limits.max_message),
    )
    .await
    {
        Ok(dialed) => dialed,
        Err(_) => Err(UpstreamError::Unreachable(format!(
            "no websocket answer within {:?}",
            limits.upstream
        ))),
    };
    // The client's upgrade completes either way, so a browser sees the reason in the close.
    let response = switching_protocols(&key, admission.subprotocol);
    write_bounded(&mut stream, &response, limits.write).await?;
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(limits.max_message);
    config.max_frame_size = Some(limits.max_message);
    // Buffers of 16 KiB instead of tungstenite's 128 KiB: an idle session holds two
    // websockets, and their buffers are most of what it costs.
    config.read_buffer_size = SESSION_BUFFER;
    config.write_buffer_size = SESSION_BUFFER;
    let mut client = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await;
    let upstream = match dialed {
        Ok(upstream) => upstream,
        Err(e) => {
            let (code, text) = e.close();
            let _ =
                tokio::time::timeout(limits.write, client.close(Some(close_frame(code, &text))))
                    .await;
            return Ok(format!(
                "{who}: upstream failed: {e}; closed {code} {text:?}"
            ));
        }
    };
    let end = relay(client, upstream, &admission, limits).await;
    drop(place);
    Ok(format!(
        "{who}: session ended after {:.1} s: {} ({} bytes to the client, {} from it)",
        started.elapsed().as_secs_f64(),
        end.reason,
        end.to_client,
        end.from_client
    ))
}

fn close_frame(code: u16, reason: &str) -> CloseFrame {
    CloseFrame {
        code: CloseCode::from(code),
        reason: reason.chars().take(120).collect::<String>().into(),
    }
}

/// How a relay ended.
struct RelayEnd {
    reason: String,
    to_client: u64,
    from_client: u64,
}

/// Relays messages both ways until a close, an error, the token's expiry or idleness; each
/// message is written (bounded) before the next is read from that side, so a slow reader
/// slows its sender instead of filling memory.
async fn relay<C, U>(
    client: WebSocketStream<C>,
    upstream: WebSocketStream<U>,
    admission: &Admission,
    limits: Limits,
) -> RelayEnd
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    U: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut clock = Session::new(admission, Instant::now(), Some(limits.idle));
    let (mut client_tx, mut client_rx) = client.split();
    let (mut upstream_tx, mut upstream_rx) = upstream.split();
    let (mut to_client, mut from_client) = (0u64, 0u64);
    // Messages are fed into each side's write buffer and flushed only when nothing more is
    // waiting to be read (the read branches come first in the biased select): a stream of
    // small console messages costs one write call per buffer, not one per message.
    let (mut client_dirty, mut upstream_dirty) = (false, false);
    // Traffic pushes the idle deadline later on every message: one lazily re-armed timer.
    let mut timer = oobkit_io::LoopTimer::new();
    let reason = loop {
        if let Some(SessionEvent::Cut(cut)) = clock.poll_event() {
            let frame = close_frame(cut.close_code(), cut.text());
            let _ = tokio::time::timeout(limits.write, client_tx.send(Message::Close(Some(frame))))
                .await;
            let _ =
                tokio::time::timeout(limits.write, upstream_tx.send(Message::Close(None))).await;
            break match cut {
                CutReason::TokenExpired => "token expired".to_owned(),
                _ => format!("idle for {:?}", limits.idle),
            };
        }
        timer.arm(clock.poll_timeout());
        tokio::select! {
            biased;
            message = client_rx.next() => match message {
                Some(Ok(Message::Binary(data))) => {
                    from_client += data.len() as u64;
                    clock.handle_input(Instant::now(), &[]);
                    if !bounded(upstream_tx.feed(Message::Binary(data)), limits.write).await {
                        break "the upstream stopped taking data".into();
                    }
                    upstream_dirty = true;
                }
                // KubeVirt reads binary messages only; text has no meaning on this path.
                Some(Ok(Message::Text(_))) => clock.handle_input(Instant::now(), &[]),
                Some(Ok(Message::Close(frame))) => {
                    let _ = bounded(upstream_tx.send(Message::Close(frame.clone())), limits.write).await;
                    break format!("the client closed ({})", describe(frame.as_ref()));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break format!("client error: {e}"),
                None => break "the client went away".into(),
            },
            message = upstream_rx.next() => match message {
                Some(Ok(Message::Binary(data))) => {
                    to_client += data.len() as u64;
                    clock.handle_input(Instant::now(), &[]);
                    if !bounded(client_tx.feed(Message::Binary(data)), limits.write).await {
                        break "the client stopped reading".into();
                    }
                    client_dirty = true;
                }
                Some(Ok(Message::Close(frame))) => {
                    let _ = bounded(client_tx.send(Message::Close(frame.clone())), limits.write).await;
                    break format!("the VM's console closed ({})", describe(frame.as_ref()));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let frame = close_frame(1011, "the VM's console failed");
                    let _ = bounded(client_tx.send(Message::Close(Some(frame))), limits.write).await;
                    break format!("upstream error: {e}");
                }
                None => {
                    let frame = close_frame(1011, "the VM's console went away");
                    let _ = bounded(client_tx.send(Message::Close(Some(frame))), limits.write).await;
                    break "the upstream went away".into();
                }
            },
            flushed = bounded(client_tx.flush(), limits.write), if client_dirty => {
                if !flushed {
                    break "the client stopped reading".into();
                }
                client_dirty = false;
            }
            flushed = bounded(upstream_tx.flush(), limits.write), if upstream_dirty => {
                if !flushed {
                    break "the upstream stopped taking data".into();
                }
                upstream_dirty = false;
            }
            () = timer.fired() => clock.handle_timeout(Instant::now()),
        }
    };
    RelayEnd {
        reason,
        to_client,
        from_client,
    }
}

fn describe(frame: Option<&CloseFrame>) -> String {
    frame.map_or("no code".into(), |f| {
        format!("{} {:?}", u16::from(f.code), f.reason.as_str())
    })
}

/// Whether a send completed within `limit`.
async fn bounded<F: std::future::Future<Output = Result<(), tungstenite::Error>>>(
    send: F,
    limit: Duration,
) -> bool {
    matches!(tokio::time::timeout(limit, send).await, Ok(Ok(())))
}
