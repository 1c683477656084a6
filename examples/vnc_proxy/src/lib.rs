//! vnc_proxy: a JWT-gated websocket proxy to KubeVirt's VNC subresource, and the noVNC page.
//!
//! A request `GET /[PREFIX/]TOKEN/VMI` with a websocket upgrade is checked by
//! [`oobkit_gate::Gate`] before anything else (401 bad or expired token, 403 VMI not allowed,
//! 404 bad path, each with a small JSON body and no upgrade); then the proxy dials
//! `{api}/apis/subresources.kubevirt.io/{version}/namespaces/{ns}/virtualmachineinstances/{vmi}/vnc`
//! (the namespace from the token only) with the service account's bearer token, completes the
//! client's upgrade, and relays binary frames both ways until either side closes, the token
//! expires (close 4001) or the session idles (4002). Frames pass as they are
//! ([`oobkit_wspass::Passthrough`]: headers checked, the client's frames re-masked with the
//! proxy's keys, pings answered, text dropped): no message is decoded or rebuilt. Upstream failures reach the client as a
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

use oobkit_gate::{Admission, CutReason, Gate, Session, SessionEvent};
use oobkit_io::web::{
    SessionPlace, json_response, offered_protocols, origin_allowed, read_request,
    switching_protocols, write_bounded,
};
use oobkit_io::{Endpoint, PreAuthBudget, RawWebSocket};
use oobkit_wspass::{CloseReason, Control, Passthrough, Step, encode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub use upstream::{Upstream, UpstreamError};

/// The read buffer of the console's direction of a session (frames are written on from it;
/// there is no write buffer). Most of the proxy's time is the kernel's, per call and per
/// byte copied: when the client reads slower than the console sends, a read takes several of
/// virt-handler's 32 KiB frames and one write passes them on. 256 KiB relays 20-40% more than
/// 64 KiB (a proxy on a core of its own: 2.6-2.8 vs 1.9 GB/s) and 1 MiB less again (the buffer
/// no longer stays in the core's cache between the read and the write). Pages never written
/// are not resident: an idle session costs ~25 KB, a busy one up to 256 KiB more, beside its
/// sockets' kernel buffers ([`Limits::max_sessions`] bounds the sum).
pub(crate) const CONSOLE_BUFFER: usize = 256 * 1024;

/// The read buffer of the client's direction: keys, pointer moves and the odd clipboard.
pub(crate) const CLIENT_BUFFER: usize = 64 * 1024;

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

impl ProxyConfig {
    /// Tokens signed with `secret` (HS256), VMIs behind a plain-websocket `api` without
    /// credentials (`kubectl proxy`, or the stand-in), no origin allow-list, default limits:
    /// the demo's and the tests' proxy.
    pub fn dev(secret: &[u8], api: Endpoint) -> Result<Self, oobkit_gate::KeyError> {
        Ok(Self {
            gate: Gate::new(oobkit_gate::GateConfig::new(vec![
                oobkit_gate::VerifyingKey::hs256(secret)?,
            ])),
            upstream: Upstream {
                api,
                version: "v1".into(),
                token: None,
            },
            allowed_origins: Vec::new(),
            limits: Limits::default(),
        })
    }
}

/// A token as LabOrchestrator's web app mints it (HS256 with `secret`) for `vmis` in
/// `namespace`, valid for `valid` from now: the demo's link and the tests' clients.
pub fn token_valid_for(secret: &[u8], valid: Duration, namespace: &str, vmis: &[&str]) -> String {
    oobkit_gate::testing::mint_hs256(secret, unix_now() + valid.as_secs_f64(), namespace, vmis)
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
        // Each write is a whole frame or the rest of one: Nagle would hold back the tail of a
        // screen update until the client acknowledged the rest (up to its delayed-ACK time).
        let _ = stream.set_nodelay(true);
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
            .dial(&admission.namespace, &admission.vmi),
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
    let upstream = match dialed {
        Ok(upstream) => upstream,
        Err(e) => {
            let (code, text) = e.close();
            let _ = write_bounded(&mut stream, &close_to_client(code, &text), limits.write).await;
            return Ok(format!(
                "{who}: upstream failed: {e}; closed {code} {text:?}"
            ));
        }
    };
    let end = relay(stream, upstream, &admission, limits).await;
    drop(place);
    Ok(format!(
        "{who}: session ended after {:.1} s: {} ({} bytes to the client, {} from it)",
        started.elapsed().as_secs_f64(),
        end.reason,
        end.to_client,
        end.from_client
    ))
}

fn close_reason(code: u16, reason: &str) -> CloseReason {
    CloseReason {
        code,
        reason: reason.chars().take(120).collect(),
    }
}

/// A control frame of the proxy's own: toward the upstream masked with a fresh key (the proxy
/// is its client), toward the client not.
fn control_frame(to: Source, control: &Control) -> Vec<u8> {
    encode(
        control,
        (to == Source::Upstream).then(oobkit_io::random_bytes::<4>),
    )
}

/// A close frame to the client.
fn close_to_client(code: u16, reason: &str) -> Vec<u8> {
    control_frame(
        Source::Client,
        &Control::Close(Some(close_reason(code, reason))),
    )
}

/// How a relay ended.
struct RelayEnd {
    reason: String,
    to_client: u64,
    from_client: u64,
}

/// One direction of a session: the frames one side sends, read into a buffer and written to
/// the other side from it.
struct Direction {
    pass: Passthrough,
    buf: Box<[u8]>,
    /// Bytes at the front of `buf` kept from the last read (the start of a frame).
    held: usize,
    /// The pong owed to the side this direction writes to: only the latest ping is answered
    /// (RFC 6455 5.5.3 allows it, and a ping flood then costs one write per read, not one per
    /// ping), once no frame is half written there.
    pending: Vec<u8>,
}

impl Direction {
    fn new(pass: Passthrough, size: usize, early: &[u8]) -> Self {
        let mut buf = vec![0u8; size.max(early.len())].into_boxed_slice();
        buf[..early.len()].copy_from_slice(early);
        Self {
            pass,
            buf,
            held: early.len(),
            pending: Vec::new(),
        }
    }

    /// Writes a control frame of the proxy's own to the side this direction writes to, unless
    /// a frame is half written there: a close inside a payload would be garbage to the peer,
    /// so the connection then just ends.
    async fn control_to<W: AsyncWrite + Unpin>(
        &mut self,
        to: &mut W,
        frame: &[u8],
        limit: Duration,
    ) {
        if self.pass.between_frames() {
            let _ = write_within(to, frame, limit).await;
        }
    }

    /// Room for the next read (never empty: what is held is at most the start of a frame
    /// header or of a control frame, 139 bytes).
    fn spare(&mut self) -> &mut [u8] {
        debug_assert!(self.held < self.buf.len());
        &mut self.buf[self.held..]
    }
}

/// One side of a session: where a direction reads from, or where a frame goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Client,
    Upstream,
}

/// Whether `bytes` were written within the write limit.
async fn write_within<W: AsyncWrite + Unpin>(to: &mut W, bytes: &[u8], limit: Duration) -> bool {
    write_bounded(to, bytes, limit).await.is_ok()
}

/// Relays what `this` just read (`n` more bytes in its buffer) to `forward`; pongs go back on
/// `back` (after `other`'s half-written frame there, if any). `Err` ends the session with a
/// reason for the log, the closes due to either side already written.
async fn relay_read<F, B>(
    from: Source,
    this: &mut Direction,
    other: &mut Direction,
    n: usize,
    forward: &mut F,
    back: &mut B,
    limits: Limits,
) -> Result<(), String>
where
    F: AsyncWrite + Unpin,
    B: AsyncWrite + Unpin,
{
    let (who, stopped, onward) = match from {
        Source::Client => (
            "the client",
            "the upstream stopped taking data",
            Source::Upstream,
        ),
        Source::Upstream => (
            "the VM's console",
            "the client stopped reading",
            Source::Client,
        ),
    };
    this.held += n;
    let mut start = 0;
    loop {
        let step = match this.pass.step(&mut this.buf[start..this.held]) {
            Ok(step) => step,
            Err(e) => {
                // This side broke RFC 6455: it is told why, and the other side is closed.
                let close = Control::Close(Some(close_reason(e.close_code(), &e.to_string())));
                other
                    .control_to(back, &control_frame(from, &close), limits.write)
                    .await;
                let close = control_frame(onward, &Control::Close(None));
                this.control_to(forward, &close, limits.write).await;
                return Err(format!("{who} broke the websocket protocol: {e}"));
            }
        };
        match step {
            Step::NeedMore => break,
            Step::Forward(n) => {
                if !write_within(forward, &this.buf[start..start + n], limits.write).await {
                    return Err(stopped.into());
                }
                if this.pass.between_frames() && !this.pending.is_empty() {
                    let pending = std::mem::take(&mut this.pending);
                    if !write_within(forward, &pending, limits.write).await {
                        return Err(stopped.into());
                    }
                }
            }
            Step::Discard(_) => {}
            Step::Control {
                control: Control::Ping(data),
                ..
            } => {
                other.pending = control_frame(from, &Control::Pong(data));
            }
            Step::Control {
                control: Control::Close(reason),
                ..
            } => {
                // Passed on, and answered, as the closing handshake asks.
                let close = Control::Close(reason.clone());
                this.control_to(forward, &control_frame(onward, &close), limits.write)
                    .await;
                other
                    .control_to(back, &control_frame(from, &close), limits.write)
                    .await;
                return Err(format!("{who} closed ({})", describe(reason.as_ref())));
            }
            Step::Control { .. } => {}
        }
        start += this.pass.consumed();
    }
    // What is left is the start of a frame: it waits at the front for the rest.
    this.buf.copy_within(start..this.held, 0);
    this.held -= start;
    if other.pass.between_frames() && !other.pending.is_empty() {
        let pong = std::mem::take(&mut other.pending);
        if !write_within(back, &pong, limits.write).await {
            return Err(format!("{who} stopped reading"));
        }
    }
    Ok(())
}

/// Relays frames both ways until a close, an error, the token's expiry or idleness. Frames
/// pass as they are ([`Passthrough`]): what is read from one side is written to the other from
/// the same buffer before that side is read again, so a slow reader slows its sender instead
/// of filling memory, and each read costs one write.
async fn relay<C>(
    client: C,
    upstream: RawWebSocket,
    admission: &Admission,
    limits: Limits,
) -> RelayEnd
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let mut clock = Session::new(admission, Instant::now(), Some(limits.idle));
    let (mut client_rx, mut client_tx) = tokio::io::split(client);
    let (mut upstream_rx, mut upstream_tx) = tokio::io::split(upstream.stream);
    let max = limits.max_message as u64;
    let mut up = Direction::new(
        Passthrough::from_client(max, Box::new(oobkit_io::mask_keys())),
        CLIENT_BUFFER,
        &[],
    );
    let mut down = Direction::new(
        Passthrough::from_server(max),
        CONSOLE_BUFFER,
        &upstream.early,
    );
    // Traffic pushes the idle deadline later on every read: one lazily re-armed timer.
    let mut timer = oobkit_io::LoopTimer::new();
    let mut ended = if down.held > 0 {
        relay_read(
            Source::Upstream,
            &mut down,
            &mut up,
            0,
            &mut client_tx,
            &mut upstream_tx,
            limits,
        )
        .await
        .err()
    } else {
        None
    };
    let reason = loop {
        if let Some(reason) = ended.take() {
            break reason;
        }
        if let Some(SessionEvent::Cut(cut)) = clock.poll_event() {
            let close = close_to_client(cut.close_code(), cut.text());
            down.control_to(&mut client_tx, &close, limits.write).await;
            let close = control_frame(Source::Upstream, &Control::Close(None));
            up.control_to(&mut upstream_tx, &close, limits.write).await;
            break match cut {
                CutReason::TokenExpired => "token expired".to_owned(),
                _ => format!("idle for {:?}", limits.idle),
            };
        }
        timer.arm(clock.poll_timeout());
        tokio::select! {
            biased;
            read = client_rx.read(up.spare()) => match read {
                Ok(0) | Err(_) => {
                    let close = control_frame(Source::Upstream, &Control::Close(None));
                    up.control_to(&mut upstream_tx, &close, limits.write).await;
                    break "the client went away".into();
                }
                Ok(n) => {
                    clock.handle_input(Instant::now(), &[]);
                    ended = relay_read(Source::Client, &mut up, &mut down, n, &mut upstream_tx, &mut client_tx, limits).await.err();
                }
            },
            read = upstream_rx.read(down.spare()) => match read {
                Ok(0) | Err(_) => {
                    let close = close_to_client(1011, "the VM's console went away");
                    down.control_to(&mut client_tx, &close, limits.write).await;
                    break "the upstream went away".into();
                }
                Ok(n) => {
                    clock.handle_input(Instant::now(), &[]);
                    ended = relay_read(Source::Upstream, &mut down, &mut up, n, &mut client_tx, &mut upstream_tx, limits).await.err();
                }
            },
            () = timer.fired() => clock.handle_timeout(Instant::now()),
        }
    };
    let _ = tokio::time::timeout(limits.write, client_tx.shutdown()).await;
    RelayEnd {
        reason,
        to_client: down.pass.payload_forwarded(),
        from_client: up.pass.payload_forwarded(),
    }
}

fn describe(reason: Option<&CloseReason>) -> String {
    reason.map_or("no code".into(), |r| format!("{} {:?}", r.code, r.reason))
}
