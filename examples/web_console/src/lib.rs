//! web_console: one browser console for SSH, AMT and RRMT. A web app (or a person, through the
//! home page) posts a target to `POST /sessions` behind the console's own authentication and
//! gets a one-time link; the page behind it is a terminal (xterm.js) for SSH shells, AMT serial
//! consoles and RRMT shells (one [`backend::TermBackend`] each, one relay loop for all, speaking
//! [`oobkit_term`]'s frames) or a screen (noVNC) for an AMT's KVM or a VNC server. The home page
//! lists the AMTs with power and user consent (`/targets`), the RRMT hosts and VNC servers.
//! Everything is served from the binary.
//!
//! What it does that its seed (alfresco-ssh) did not: gateway authentication (a bearer token or
//! HTTP Digest) and an Origin check on every state-changing request; a target allow-list; host
//! keys checked against the gateway's own known_hosts (reject unknown or accept-new; a changed
//! key always refused, both fingerprints shown); links used once, within a short window, never
//! in a query string (the id travels in the URL fragment and a websocket subprotocol); secrets
//! wiped when used or expired; flow control by byte credit so `yes` then Ctrl-C stops at once;
//! pings under proxies' 60 s timeouts; the exit status shown; limits on everything.

#![forbid(unsafe_code)]

pub mod amt;
pub mod assets;
pub mod backend;
mod inventory;
pub mod rrmt;
pub mod ssh;
pub mod targets;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use oobkit_digest::{Algorithm, Request as DigestRequest, Secret, Server as DigestServer, Verdict};
use oobkit_http1::HttpRequest;
use oobkit_io::web::{
    SessionPlace, json_response, offered_protocols, origin_allowed, read_request,
    switching_protocols, write_bounded,
};
use oobkit_io::{AuthFailures, LoopTimer, PreAuthBudget};
use oobkit_term::{
    CloseCode, OneTimeConfig, OneTimeSessions, SESSION_PROTOCOL_PREFIX, SUBPROTOCOL, SessionId,
    TermConfig, TermEvent, TermServer,
};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use zeroize::Zeroize as _;

pub use amt::AmtTarget;
use backend::{Step, TermBackend};
pub use rrmt::RrmtConfig;
pub use ssh::{Credential, HostKeyPolicy, Login, SshConfig, SshError};
pub use targets::{TargetList, TargetPattern};

/// The realm of the gateway's Digest authentication.
pub const REALM: &str = "web_console";

/// Limits on everything a client can hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Terminal sessions at once.
    pub max_sessions: usize,
    /// Terminal sessions at once from one client address.
    pub max_sessions_per_address: usize,
    /// Connections not yet authenticated, per address.
    pub max_unauthenticated_per_address: u32,
    /// Connections not yet authenticated, in total.
    pub max_unauthenticated: u32,
    /// Time for a client to send its request.
    pub handshake: Duration,
    /// A write that does not finish in this time ends the connection.
    pub write: Duration,
    /// The largest websocket message from the page.
    pub max_message: usize,
    /// The largest request body (`POST /sessions`: a private key fits).
    pub max_body: usize,
    /// Failed gateway logins from one address within [`Limits::failure_window`] before it is
    /// refused outright (429) until the window passes.
    pub max_failures: u32,
    /// See [`Limits::max_failures`].
    pub failure_window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_sessions: 64,
            max_sessions_per_address: 8,
            max_unauthenticated_per_address: 16,
            max_unauthenticated: 256,
            handshake: Duration::from_secs(10),
            write: Duration::from_secs(30),
            max_message: 1 << 20,
            max_body: 64 << 10,
            max_failures: 10,
            failure_window: Duration::from_secs(60),
        }
    }
}

/// How `POST /sessions` callers prove who they are.
#[derive(Clone)]
pub enum GatewayAuth {
    /// `Authorization: Bearer TOKEN` (compared in constant time). The login page carries it
    /// in its URL fragment, which browsers never send to a server.
    Bearer {
        /// The token.
        token: String,
        /// Whom it stands for, in logs and audit entries.
        user: String,
    },
    /// HTTP Digest (RFC 7616) for one user.
    Digest {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
}

/// Never printed.
impl std::fmt::Debug for GatewayAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bearer { user, .. } => write!(f, "Bearer({user}, ..)"),
            Self::Digest { user, .. } => write!(f, "Digest({user}, ..)"),
        }
    }
}

/// The console's configuration.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// How targets are reached.
    pub ssh: SshConfig,
    /// Which targets may be reached.
    pub targets: TargetList,
    /// Who may create sessions.
    pub auth: GatewayAuth,
    /// Origins allowed besides the console's own (`scheme://host[:port]`).
    pub allowed_origins: Vec<String>,
    /// Limits.
    pub limits: Limits,
    /// The terminal protocol's marks and rhythms.
    pub term: TermConfig,
    /// One-time links: caps and attach window.
    pub links: OneTimeConfig,
    /// AMTs offered by name: their serial console, screen, power and consent.
    pub amts: Vec<AmtTarget>,
    /// An RRMT server whose hosts' shells are offered.
    pub rrmt: Option<RrmtConfig>,
    /// VNC servers offered by name (their screens in noVNC; VNC passwords are asked by noVNC
    /// in the page and never pass through the console).
    pub vnc: Vec<VncTarget>,
}

impl ConsoleConfig {
    /// A console checking SSH host keys against `known_hosts` (unknown keys refused) and
    /// authenticating callers with `auth`; no targets, default limits and rhythms.
    pub fn new(known_hosts: impl Into<std::path::PathBuf>, auth: GatewayAuth) -> Self {
        Self {
            ssh: SshConfig::new(known_hosts),
            targets: TargetList::default(),
            auth,
            allowed_origins: Vec::new(),
            limits: Limits::default(),
            term: TermConfig::default(),
            links: OneTimeConfig::default(),
            amts: Vec::new(),
            rrmt: None,
            vnc: Vec::new(),
        }
    }
}

/// A VNC server the console offers.
#[derive(Debug, Clone)]
pub struct VncTarget {
    /// The name in the page and the API.
    pub name: String,
    /// Where it listens.
    pub addr: String,
}

/// A session created and not yet opened.
struct Pending {
    opening: Opening,
    /// Who created it, for the log.
    creator: String,
}

/// What a session opens.
enum Opening {
    /// An SSH shell (a terminal).
    Ssh(Login),
    /// An AMT's serial console (a terminal).
    Sol(Arc<AmtTarget>),
    /// An AMT's screen (a display, in noVNC).
    Kvm(Arc<AmtTarget>),
    /// A VNC server's screen (a display, in noVNC).
    Vnc(VncTarget),
    /// A shell on an RRMT host (a terminal), opened for the session's creator (named in the
    /// RRMT server's audit log).
    Rrmt {
        /// The host.
        host: String,
    },
}

impl Opening {
    fn describe(&self) -> String {
        match self {
            Self::Ssh(login) => format!("{}@{}:{}", login.user, login.host, login.port),
            Self::Sol(amt) => format!("{} (serial console)", amt.name),
            Self::Kvm(amt) => format!("{} (screen)", amt.name),
            Self::Vnc(vnc) => format!("{} (VNC at {})", vnc.name, vnc.addr),
            Self::Rrmt { host, .. } => format!("{host} (RRMT shell)"),
        }
    }

    fn is_display(&self) -> bool {
        matches!(self, Self::Kvm(_) | Self::Vnc(_))
    }
}

struct Shared {
    config: ConsoleConfig,
    amts: Vec<Arc<AmtTarget>>,
    ssh: Arc<SshConfig>,
    unauthenticated: PreAuthBudget,
    sessions: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    pending: Mutex<OneTimeSessions<Pending>>,
    digest: Mutex<DigestServer>,
    failures: Mutex<AuthFailures>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Serves `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, config: ConsoleConfig) {
    let limits = config.limits;
    let shared = Arc::new(Shared {
        amts: config.amts.iter().cloned().map(Arc::new).collect(),
        ssh: Arc::new(config.ssh.clone()),
        unauthenticated: PreAuthBudget::new(
            limits.max_unauthenticated_per_address,
            limits.max_unauthenticated,
        ),
        sessions: AtomicUsize::new(0),
        per_address: Mutex::new(HashMap::new()),
        pending: Mutex::new(OneTimeSessions::new(config.links)),
        digest: Mutex::new(DigestServer::new(oobkit_digest::ServerConfig::new(
            REALM,
            oobkit_io::random_bytes(),
        ))),
        failures: Mutex::new(AuthFailures::new(
            limits.max_failures,
            limits.failure_window,
        )),
        config,
    });
    // Links not used in time are dropped (and their secrets wiped) when their window ends,
    // not only when the next link is created.
    let sweeper = Arc::clone(&shared);
    tokio::spawn(async move {
        loop {
            let next = lock(&sweeper.pending).poll_timeout();
            let at = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::time::sleep_until(at.min(Instant::now() + Duration::from_secs(1)).into()).await;
            lock(&sweeper.pending).handle_timeout(Instant::now());
        }
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

fn error_json(status: u16, reason: &str, error: &str, text: &str) -> Vec<u8> {
    json_response(
        status,
        reason,
        &serde_json::json!({ "error": error, "reason": text }).to_string(),
    )
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
) -> std::io::Result<String> {
    let limits = shared.config.limits;
    let _ = stream.set_nodelay(true);
    // Not authenticated yet: a budget of its own, so slow or hostile clients never take the
    // places of people with sessions.
    let slot = match shared.unauthenticated.take(peer.ip()) {
        Ok(slot) => slot,
        Err(e) => {
            let body = error_json(
                503,
                "Service Unavailable",
                "busy",
                "too many connections being set up",
            );
            let _ = write_bounded(&mut stream, &body, limits.write).await;
            return Ok(format!("refused before reading: {e}"));
        }
    };
    let mut request =
        match tokio::time::timeout(limits.handshake, read_request(&mut stream, limits.max_body))
            .await
        {
            Ok(Ok(Some(request))) => request,
            Ok(Ok(None)) => return Ok("closed before a request".into()),
            Ok(Err(e)) => {
                let body = error_json(400, "Bad Request", "bad_request", &e.to_string());
                let _ = write_bounded(&mut stream, &body, limits.write).await;
                return Ok(format!("malformed request: {e}"));
            }
            Err(_) => return Ok(format!("no request within {:?}; closed", limits.handshake)),
        };
    let path = request
        .target
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_owned();
    let upgrade = request
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if upgrade && (path == "/ws" || path == "/ws/display") {
        return upgrade_session(stream, peer, request, shared, slot, path == "/ws/display").await;
    }
    if path == "/targets" || path.starts_with("/targets/") {
        let (reply, line) = inventory::handle(&request, &path, peer, shared).await;
        write_bounded(&mut stream, &reply, limits.write).await?;
        return Ok(line);
    }
    if path == "/sessions" {
        let (reply, line) = create_session(&mut request, peer, shared);
        // The body held the credential.
        request.body.zeroize();
        write_bounded(&mut stream, &reply, limits.write).await?;
        return Ok(line);
    }
    let reply = assets::respond(&request.method, &path);
    write_bounded(&mut stream, &reply.bytes, limits.write).await?;
    Ok(format!("{} {path} {}", request.method, reply.status))
}

/// The body of `POST /sessions`.
#[derive(Deserialize)]
struct SessionRequest {
    /// An AMT of the console's, by name (then `kind` says what of it).
    target: Option<String>,
    /// A host of the RRMT server: a shell on it.
    rrmt_host: Option<String>,
    /// A VNC server of the console's, by name.
    vnc: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    host: String,
    #[serde(default = "default_port")]
    port: u16,
    #[serde(default)]
    user: String,
    password: Option<String>,
    private_key: Option<String>,
    passphrase: Option<String>,
    gateway_key: Option<usize>,
}

fn default_port() -> u16 {
    22
}

/// Whether the request's Origin (when a browser sent one) may act here.
fn origin_ok(request: &HttpRequest, shared: &Shared) -> Result<(), String> {
    match request.header("origin") {
        Some(origin)
            if !origin_allowed(
                origin,
                request.header("host"),
                &shared.config.allowed_origins,
            ) =>
        {
            Err(format!("origin {:?} not allowed", truncate(origin, 100)))
        }
        _ => Ok(()),
    }
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Checks the gateway's authentication; the user's name, or the answer to send.
fn gateway_user(
    request: &HttpRequest,
    peer: SocketAddr,
    shared: &Shared,
) -> Result<String, (Vec<u8>, String)> {
    let now = Instant::now();
    if lock(&shared.failures).blocked(peer.ip(), now) {
        return Err((
            error_json(
                429,
                "Too Many Requests",
                "too_many_failures",
                "too many failed logins from this address; wait a minute",
            ),
            "refused: too many failed logins".into(),
        ));
    }
    let authorization = request.header("authorization");
    let refused = |why: String| {
        lock(&shared.failures).record(peer.ip(), now);
        why
    };
    match &shared.config.auth {
        GatewayAuth::Bearer { token, user } => {
            let given = authorization
                .and_then(|a| a.strip_prefix("Bearer "))
                .map(str::trim);
            match given {
                Some(given) if bool::from(given.as_bytes().ct_eq(token.as_bytes())) => {
                    Ok(user.clone())
                }
                _ => {
                    let why = refused(if given.is_some() {
                        "a wrong bearer token".into()
                    } else {
                        "no credentials".into()
                    });
                    let reply = oobkit_http1::ResponseWriter::new(401, "Unauthorized")
                        .header("Content-Type", "application/json")
                        .header("Cache-Control", "no-store")
                        .header("WWW-Authenticate", "Bearer realm=\"web_console\"")
                        .header("Connection", "close")
                        .body(br#"{"error":"unauthorized","reason":"a bearer token is required"}"#);
                    Err((reply, format!("refused: {why}")))
                }
            }
        }
        GatewayAuth::Digest { user, password } => {
            let digest_request = DigestRequest {
                method: &request.method,
                uri: &request.target,
                body: Some(&request.body),
            };
            let verdict = lock(&shared.digest).authenticate(
                authorization,
                &digest_request,
                oobkit_io::unix_now(),
                oobkit_io::random_bytes(),
                |answer| {
                    (answer.username == *user
                        && matches!(
                            answer.algorithm,
                            Algorithm::Md5
                                | Algorithm::Md5Sess
                                | Algorithm::Sha256
                                | Algorithm::Sha256Sess
                        ))
                    .then_some((user.as_str(), Secret::Password(password.as_str())))
                },
            );
            match verdict {
                Ok(Verdict::Authorized(verified)) => Ok(verified.username),
                Ok(Verdict::Challenge {
                    www_authenticate,
                    refused: why,
                }) => {
                    let line = match why {
                        Some(e) if !e.is_stale() => refused(format!("refused: {e}")),
                        _ => "challenged".to_owned(),
                    };
                    let mut reply = oobkit_http1::ResponseWriter::new(401, "Unauthorized")
                        .header("Content-Type", "application/json")
                        .header("Cache-Control", "no-store");
                    for challenge in &www_authenticate {
                        reply = reply.header("WWW-Authenticate", challenge);
                    }
                    let reply = reply.header("Connection", "close").body(
                        br#"{"error":"unauthorized","reason":"HTTP Digest authentication is required"}"#,
                    );
                    Err((reply, line))
                }
                Err(e) => Err((
                    error_json(500, "Internal Server Error", "internal", &e.to_string()),
                    format!("digest: {e}"),
                )),
            }
        }
    }
}

/// What every API request goes through: the method, the Origin, the gateway's
/// authentication and (for `POST`) a JSON body. The caller's name, or the answer to send.
fn api_prelude(
    request: &HttpRequest,
    peer: SocketAddr,
    shared: &Shared,
    method: &str,
) -> Result<String, (Vec<u8>, String)> {
    let path = request.target.split('?').next().unwrap_or_default();
    if request.method != method {
        return Err((
            error_json(
                405,
                "Method Not Allowed",
                "method",
                &format!("{method} {path}"),
            ),
            format!("{} {path}: 405", request.method),
        ));
    }
    if let Err(why) = origin_ok(request, shared) {
        return Err((
            error_json(403, "Forbidden", "origin", &why),
            format!("refused: {why}"),
        ));
    }
    let creator = gateway_user(request, peer, shared)?;
    if method == "POST" {
        let json = request.header("content-type").is_some_and(|t| {
            t.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
        if !json {
            return Err((
                error_json(
                    415,
                    "Unsupported Media Type",
                    "content_type",
                    "send the request as application/json",
                ),
                format!("{creator}: refused a body that is not JSON (415)"),
            ));
        }
    }
    Ok(creator)
}

/// `POST /sessions`: the answer and a line for the log (never a secret).
fn create_session(
    request: &mut HttpRequest,
    peer: SocketAddr,
    shared: &Shared,
) -> (Vec<u8>, String) {
    let creator = match api_prelude(request, peer, shared, "POST") {
        Ok(creator) => creator,
        Err(answer) => return answer,
    };
    let bad = |why: &str| {
        (
            error_json(400, "Bad Request", "bad_request", why),
            format!("{creator}: bad session request: {why}"),
        )
    };
    let parsed: SessionRequest = match serde_json::from_slice(&request.body) {
        Ok(parsed) => parsed,
        // serde's message may quote the input: say only where it broke.
        Err(e) => {
            return bad(&format!(
                "not a session request (line {}, column {}): want host, port, user and one of password, private_key, gateway_key",
                e.line(),
                e.column()
            ));
        }
    };
    let SessionRequest {
        target: amt_name,
        rrmt_host,
        vnc,
        kind,
        host,
        port,
        user,
        password,
        private_key,
        passphrase,
        gateway_key,
    } = parsed;
    if let Some(name) = vnc {
        let Some(target) = shared.config.vnc.iter().find(|v| v.name == name) else {
            return bad(&format!("no VNC server named {:?}", truncate(&name, 64)));
        };
        return link(Opening::Vnc(target.clone()), creator, peer, shared);
    }
    if let Some(host) = rrmt_host {
        if shared.config.rrmt.is_none() {
            return bad("this console has no RRMT server");
        }
        if host.is_empty() || host.len() > 128 {
            return bad("rrmt_host: a host name");
        }
        return link(Opening::Rrmt { host }, creator, peer, shared);
    }
    if let Some(name) = amt_name {
        let Some(amt) = shared.amts.iter().find(|a| a.name == name) else {
            return bad(&format!("no target named {:?}", truncate(&name, 64)));
        };
        let opening = match kind.as_deref() {
            Some("sol") => Opening::Sol(Arc::clone(amt)),
            Some("kvm") => Opening::Kvm(Arc::clone(amt)),
            _ => return bad("kind: sol (the serial console) or kvm (the screen)"),
        };
        return link(opening, creator, peer, shared);
    }
    if host.is_empty() || host.len() > 253 || user.is_empty() || user.len() > 64 {
        return bad("host (at most 253 bytes) and user (at most 64) are required");
    }
    let credential = match (password, private_key, gateway_key) {
        (Some(password), None, None) => Credential::Password(password),
        (None, Some(pem), None) => Credential::PrivateKey { pem, passphrase },
        (None, None, Some(index)) if index < shared.config.ssh.gateway_keys.len() => {
            Credential::GatewayKey(index)
        }
        (None, None, Some(_)) => return bad("no such gateway key"),
        _ => return bad("give exactly one of password, private_key, gateway_key"),
    };
    let target = format!("{user}@{host}:{port}");
    if !shared.config.targets.allows(&host, port) {
        return (
            error_json(
                403,
                "Forbidden",
                "target_not_allowed",
                &format!("{host}:{port} is not on this console's list of targets"),
            ),
            format!("{creator}: refused {target}: not on the target list"),
        );
    }
    link(
        Opening::Ssh(Login {
            host,
            port,
            user,
            credential,
        }),
        creator,
        peer,
        shared,
    )
}

/// Creates the one-time link for `opening`: the answer and the log line.
fn link(opening: Opening, creator: String, peer: SocketAddr, shared: &Shared) -> (Vec<u8>, String) {
    let id = SessionId::from_random(oobkit_io::random_bytes());
    let link = id.to_text();
    let what = opening.describe();
    let page = if opening.is_display() {
        "/display"
    } else {
        "/term"
    };
    let pending = Pending {
        opening,
        creator: creator.clone(),
    };
    let created = lock(&shared.pending).create(Instant::now(), id, peer.ip(), pending);
    match created {
        Ok(expires) => {
            let window = expires.saturating_duration_since(Instant::now()).as_secs();
            let body = serde_json::json!({
                "url": format!("{page}#{link}"),
                "expires_in": window,
                "target": what,
            })
            .to_string();
            let reply = oobkit_http1::ResponseWriter::new(201, "Created")
                .header("Content-Type", "application/json")
                .header("Cache-Control", "no-store")
                .header("Referrer-Policy", "no-referrer")
                .header("Connection", "close")
                .body(body.as_bytes());
            (reply, format!("{creator}: created a session for {what}"))
        }
        Err(e) => (
            error_json(
                429,
                "Too Many Requests",
                "too_many_sessions",
                &e.to_string(),
            ),
            format!("{creator}: refused a session for {what}: {e}"),
        ),
    }
}

/// A live session's place, per address as well as in total.
struct AddressPlace<'a> {
    shared: &'a Shared,
    ip: IpAddr,
}

impl<'a> AddressPlace<'a> {
    fn take(shared: &'a Shared, ip: IpAddr) -> Option<Self> {
        let mut counts = lock(&shared.per_address);
        let count = counts.entry(ip).or_insert(0);
        if *count >= shared.config.limits.max_sessions_per_address {
            return None;
        }
        *count += 1;
        Some(Self { shared, ip })
    }
}

impl Drop for AddressPlace<'_> {
    fn drop(&mut self) {
        let mut counts = lock(&self.shared.per_address);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// `GET /ws` (a terminal) or `GET /ws/display` (a screen, from noVNC) with an upgrade: the
/// link's id in a subprotocol, consumed before the upgrade.
async fn upgrade_session(
    mut stream: TcpStream,
    peer: SocketAddr,
    request: HttpRequest,
    shared: &Shared,
    slot: oobkit_io::PreAuthSlot,
    display: bool,
) -> std::io::Result<String> {
    let limits = shared.config.limits;
    let what = if display { "display" } else { "terminal" };
    if let Err(why) = origin_ok(&request, shared) {
        let body = error_json(403, "Forbidden", "origin", &why);
        write_bounded(&mut stream, &body, limits.write).await?;
        return Ok(format!("refused a {what}: {why}"));
    }
    let offered = offered_protocols(&request);
    let id = offered
        .iter()
        .find_map(|p| p.strip_prefix(SESSION_PROTOCOL_PREFIX))
        .and_then(SessionId::parse);
    // Terminals speak oobkit.term.v1; noVNC offers `binary`.
    let protocol = if display {
        DISPLAY_PROTOCOL
    } else {
        SUBPROTOCOL
    };
    let (Some(id), true) = (id, offered.contains(&protocol)) else {
        let body = error_json(
            400,
            "Bad Request",
            "bad_request",
            &format!("a {what} client offers the {protocol} subprotocol and a session"),
        );
        write_bounded(&mut stream, &body, limits.write).await?;
        return Ok(format!("refused a {what}: no protocol or session offered"));
    };
    let Some(key) = request.header("sec-websocket-key").map(str::to_owned) else {
        let body = error_json(400, "Bad Request", "bad_request", "no Sec-WebSocket-Key");
        write_bounded(&mut stream, &body, limits.write).await?;
        return Ok(format!("refused a {what}: no Sec-WebSocket-Key"));
    };
    let Some(pending) = lock(&shared.pending).consume(Instant::now(), &id) else {
        let body = error_json(
            403,
            "Forbidden",
            "unknown_session",
            "this link was used already, expired, or never existed: create a new session",
        );
        write_bounded(&mut stream, &body, limits.write).await?;
        return Ok(format!("refused a {what}: unknown, used or expired link"));
    };
    let who = format!("{} ({})", pending.creator, pending.opening.describe());
    if pending.opening.is_display() != display {
        let body = error_json(
            400,
            "Bad Request",
            "wrong_page",
            "this link belongs to the other page (terminal or display): create a new session",
        );
        write_bounded(&mut stream, &body, limits.write).await?;
        return Ok(format!("{who}: refused: opened on the wrong page"));
    }
    // The link was the credential: a session place now, no longer an unauthenticated one.
    drop(slot);
    let (Some(place), Some(address_place)) = (
        SessionPlace::take(&shared.sessions, limits.max_sessions),
        AddressPlace::take(shared, peer.ip()),
    ) else {
        let body = error_json(503, "Service Unavailable", "busy", "session limit reached");
        write_bounded(&mut stream, &body, limits.write).await?;
        return Ok(format!("{who}: refused: session limit reached"));
    };
    write_bounded(
        &mut stream,
        &switching_protocols(&key, Some(protocol)),
        limits.write,
    )
    .await?;
    let mut ws_config = WebSocketConfig::default();
    ws_config.max_message_size = Some(limits.max_message);
    ws_config.max_frame_size = Some(limits.max_message);
    let ws = WebSocketStream::from_raw_socket(stream, Role::Server, Some(ws_config)).await;
    let started = Instant::now();
    let end = match pending.opening {
        Opening::Kvm(amt) => display_session(ws, &amt, shared).await,
        Opening::Vnc(vnc) => vnc_session(ws, &vnc, shared).await,
        terminal => run(ws, terminal, &pending.creator, shared).await,
    };
    drop((place, address_place));
    Ok(format!(
        "{who}: session ended after {:.1} s: {} ({} bytes out, {} in)",
        started.elapsed().as_secs_f64(),
        end.reason,
        end.output,
        end.input
    ))
}

/// The subprotocol noVNC offers.
const DISPLAY_PROTOCOL: &str = "binary";

struct RunEnd {
    reason: String,
    output: u64,
    input: u64,
}

/// A screen: the AMT's KVM session, handed over to RFB, relayed to noVNC's websocket as bytes.
async fn display_session(
    ws: WebSocketStream<TcpStream>,
    amt: &AmtTarget,
    shared: &Shared,
) -> RunEnd {
    match amt.open(oobkit_redir::codec::SessionKind::Kvm).await {
        Ok(session) => {
            let rfb = session.into_rfb();
            relay_screen(ws, rfb.stream, &rfb.early, shared).await
        }
        // The RFB stream never started: busy, consent missing, KVM disabled, refused.
        Err(reason) => refuse_screen(ws, format!("KVM failed: {reason}"), shared).await,
    }
}

/// A VNC server's screen: its TCP stream relayed to noVNC's websocket as bytes.
async fn vnc_session(ws: WebSocketStream<TcpStream>, vnc: &VncTarget, shared: &Shared) -> RunEnd {
    let limits = shared.config.limits;
    let connected =
        tokio::time::timeout(limits.handshake, TcpStream::connect(vnc.addr.as_str())).await;
    match connected {
        Ok(Ok(tcp)) => {
            let _ = tcp.set_nodelay(true);
            relay_screen(ws, tcp, &[], shared).await
        }
        Ok(Err(e)) => {
            refuse_screen(ws, format!("{} cannot be reached: {e}", vnc.name), shared).await
        }
        Err(_) => {
            let why = format!("{} did not answer within {:?}", vnc.name, limits.handshake);
            refuse_screen(ws, why, shared).await
        }
    }
}

/// Ends a screen that never started with `why` in the websocket's close, which the page shows.
async fn refuse_screen(mut ws: WebSocketStream<TcpStream>, why: String, shared: &Shared) -> RunEnd {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    let frame = CloseFrame {
        code: CloseCode::TargetFailed.code().into(),
        reason: oobkit_term::truncate_reason(&why, 120).to_owned().into(),
    };
    let _ = tokio::time::timeout(shared.config.limits.write, ws.close(Some(frame))).await;
    RunEnd {
        reason: why,
        output: 0,
        input: 0,
    }
}

/// Relays a screen's RFB stream (after the `early` bytes already read from it) and the page's
/// websocket as bytes, every write bounded, a page silent for the idle limit ended.
async fn relay_screen<S>(
    ws: WebSocketStream<TcpStream>,
    screen: S,
    early: &[u8],
    shared: &Shared,
) -> RunEnd
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt as _;
    let limits = shared.config.limits;
    let mut page = oobkit_io::websocket::into_byte_stream(ws, limits.write);
    if !early.is_empty() && page.write_all(early).await.is_err() {
        return RunEnd {
            reason: "the page went away".into(),
            output: 0,
            input: 0,
        };
    }
    let relayed = oobkit_io::relay_bounded(
        page,
        screen,
        oobkit_io::RelayLimits {
            write: limits.write,
            a_silent: shared.config.term.idle,
        },
    )
    .await;
    RunEnd {
        reason: format!("{:?} {:?}", relayed.side, relayed.cause),
        output: relayed.b_to_a,
        input: relayed.a_to_b,
    }
}

type WsSink = futures_util::stream::SplitSink<WebSocketStream<TcpStream>, Message>;

/// Sends what the terminal has for the page; false when the page stopped reading.
async fn send_pending(term: &mut TermServer, tx: &mut WsSink, limit: Duration) -> bool {
    let mut fed = false;
    while let Some(message) = term.poll_transmit() {
        fed = true;
        if !matches!(
            tokio::time::timeout(limit, tx.feed(Message::Binary(message.into()))).await,
            Ok(Ok(()))
        ) {
            return false;
        }
    }
    !fed || matches!(tokio::time::timeout(limit, tx.flush()).await, Ok(Ok(())))
}

/// A terminal session: the page's size first, then the backend opened with it, then the relay.
async fn run(
    ws: WebSocketStream<TcpStream>,
    opening: Opening,
    creator: &str,
    shared: &Shared,
) -> RunEnd {
    let limits = shared.config.limits;
    let mut term = TermServer::new(Instant::now(), shared.config.term);
    let (mut tx, mut rx) = ws.split();
    let mut timer = LoopTimer::new();
    let mut end = RunEnd {
        reason: String::new(),
        output: 0,
        input: 0,
    };
    // First the page's size: a PTY is opened with it.
    let size = loop {
        if !send_pending(&mut term, &mut tx, limits.write).await {
            end.reason = "the page stopped reading".into();
            return end;
        }
        match term.poll_event() {
            Some(TermEvent::Started { cols, rows }) => break Some((cols, rows)),
            Some(TermEvent::Ended { reason, .. }) => {
                end.reason = reason;
                break None;
            }
            Some(_) => continue,
            None => {}
        }
        timer.arm(term.poll_timeout());
        tokio::select! {
            message = rx.next() => page_message(&mut term, message),
            () = timer.fired() => term.handle_timeout(Instant::now()),
        }
    };
    let Some((cols, rows)) = size else {
        let _ = tokio::time::timeout(limits.write, tx.close()).await;
        return end;
    };
    let what = opening.describe();
    // Each backend opens its own way; then one relay drives them all.
    let failed = match opening {
        Opening::Ssh(login) => {
            match ssh::open_shell(Arc::clone(&shared.ssh), login, cols, rows).await {
                Ok(shell) => {
                    tracing::info!("{what}: opened, {cols}x{rows}");
                    return relay(shell, term, tx, rx, timer, end, shared).await;
                }
                Err(e) => e.to_string(),
            }
        }
        Opening::Sol(amt) => match amt::SolTerm::open(&amt).await {
            Ok(sol) => {
                tracing::info!("{what}: opened");
                return relay(sol, term, tx, rx, timer, end, shared).await;
            }
            Err(e) => e,
        },
        Opening::Rrmt { host } => match &shared.config.rrmt {
            Some(config) => match rrmt::RrmtTerm::open(config, &host, cols, rows, creator).await {
                Ok(shell) => {
                    tracing::info!("{what}: opened for {creator}, {cols}x{rows}");
                    return relay(shell, term, tx, rx, timer, end, shared).await;
                }
                Err(e) => e,
            },
            None => "this console has no RRMT server".into(),
        },
        Opening::Kvm(_) | Opening::Vnc(_) => "a screen is not a terminal".into(),
    };
    term.close(CloseCode::TargetFailed, &failed);
    let _ = send_pending(&mut term, &mut tx, limits.write).await;
    let _ = tokio::time::timeout(limits.write, tx.close()).await;
    end.reason = format!("opening failed: {failed}");
    end
}

/// The page and a backend, until either ends.
async fn relay<B: TermBackend>(
    mut backend: B,
    mut term: TermServer,
    mut tx: WsSink,
    mut rx: futures_util::stream::SplitStream<WebSocketStream<TcpStream>>,
    mut timer: LoopTimer,
    mut end: RunEnd,
    shared: &Shared,
) -> RunEnd {
    let limits = shared.config.limits;
    'session: loop {
        if !send_pending(&mut term, &mut tx, limits.write).await {
            end.reason = "the page stopped reading".into();
            break;
        }
        while let Some(event) = term.poll_event() {
            match event {
                TermEvent::Input(bytes) => {
                    end.input += bytes.len() as u64;
                    if backend.input(bytes.into()).is_err() {
                        term.close(
                            CloseCode::TargetLost,
                            "input arrives faster than the target takes it",
                        );
                    }
                }
                TermEvent::Resized { cols, rows } => backend.resize(cols, rows),
                TermEvent::Ended { reason, .. } => {
                    end.reason = reason;
                    break 'session;
                }
                _ => {}
            }
        }
        if term.is_ended() {
            // Closed from this side; the close frame goes out now.
            let _ = send_pending(&mut term, &mut tx, limits.write).await;
            break;
        }
        timer.arm(term.poll_timeout());
        let read_output = term.may_read_backend();
        let busy = read_output || backend.has_pending_input();
        tokio::select! {
            biased;
            message = rx.next() => page_message(&mut term, message),
            step = backend.step(read_output), if busy => match step {
                Step::Output(bytes) => {
                    end.output += bytes.len() as u64;
                    term.send_output(Instant::now(), &bytes);
                }
                Step::Progress => {}
                Step::Ended { code, reason } => {
                    term.close(code, &reason);
                    end.reason = reason;
                }
            },
            () = timer.fired() => term.handle_timeout(Instant::now()),
        }
    }
    let _ = tokio::time::timeout(limits.write, tx.close()).await;
    backend.close().await;
    end
}

/// One websocket message from the page into the terminal.
fn page_message(
    term: &mut TermServer,
    message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) {
    match message {
        Some(Ok(Message::Binary(bytes))) => term.handle_input(Instant::now(), &bytes),
        // Websocket-level pings are answered by tungstenite; text has no meaning here.
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Text(_) | Message::Frame(_))) => {}
        Some(Ok(Message::Close(_)) | Err(_)) | None => term.handle_eof(),
    }
}
