//! The IO around `oobkit-digest` for the demo: a small Digest-protected HTTP/1.1 server and a
//! client that answers it, both over `std::net`.
//!
//! The server is what the curl interop test drives, so it is a real server within its means:
//! a cap on concurrent connections, on request-head and body sizes, an idle timeout, keep-alive,
//! and a log line per refusal that says why without showing a secret.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oobkit_digest::{Algorithm, Client, Request, Secret, Server, ServerConfig, Step, Verdict};
use oobkit_http1::{
    HttpRequest, HttpResponse, ReadStatus, RequestReader, ResponseReader, ResponseWriter,
};

pub use oobkit_io::unix_now as now_secs;

/// What the demo server protects and how.
#[derive(Clone)]
pub struct Settings {
    /// The one user.
    pub user: String,
    /// Its password.
    pub password: String,
    /// The realm.
    pub realm: String,
    /// Algorithms offered, strongest first.
    pub algorithms: Vec<Algorithm>,
    /// Seconds a nonce is valid.
    pub nonce_lifetime: u32,
    /// Most authenticated connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Connections that have not authenticated yet, from one address and in total: they have a
    /// budget of their own (`oobkit_io::PreAuthBudget`, as every server of the project), so
    /// clients that connect and never log in cannot take the places of those who do.
    pub max_unauthenticated: (u32, u32),
    /// A connection idle this long between requests is closed.
    pub idle_timeout: Duration,
    /// A request must arrive whole within this from its first byte (408 and close otherwise;
    /// a byte a second does not move it). Writes to the client have the same limit.
    pub request_timeout: Duration,
    /// The clock given to the Digest server, in seconds; [`now_secs`] unless a test moves
    /// time itself.
    pub clock: Arc<dyn Fn() -> u64 + Send + Sync>,
}

impl Settings {
    /// Defaults: realm `oobkit-demo`, SHA-256 and MD5, 300 s nonces, 64 authenticated
    /// connections (and 32 not yet authenticated, 8 per address), 30 s idle.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
            realm: "oobkit-demo".into(),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            nonce_lifetime: 300,
            max_connections: 64,
            max_unauthenticated: (8, 32),
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            clock: Arc::new(now_secs),
        }
    }
}

struct Shared {
    settings: Settings,
    digest: Mutex<Server>,
    /// Authenticated connections now.
    active: AtomicUsize,
    unauthenticated: oobkit_io::PreAuthBudget,
}

/// A Digest-protected HTTP server: `GET /` (or any path) answers `Hello, <user>!` once
/// authenticated.
pub struct DemoServer {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl DemoServer {
    /// Binds to `addr` (port 0 for any free port).
    pub fn bind(addr: impl ToSocketAddrs, settings: Settings) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let mut config = ServerConfig::new(settings.realm.clone(), oobkit_io::random_bytes());
        config.algorithms.clone_from(&settings.algorithms);
        config.nonce_lifetime = settings.nonce_lifetime;
        let (per_address, total) = settings.max_unauthenticated;
        let shared = Arc::new(Shared {
            digest: Mutex::new(Server::new(config)),
            settings,
            active: AtomicUsize::new(0),
            unauthenticated: oobkit_io::PreAuthBudget::new(per_address, total),
        });
        Ok(Self { listener, shared })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves forever, a thread per connection.
    pub fn serve(self) -> io::Result<()> {
        for stream in self.listener.incoming() {
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    continue;
                }
            };
            let shared = Arc::clone(&self.shared);
            let peer = stream.peer_addr().ok();
            let slot = match peer.map(|p| shared.unauthenticated.take(p.ip())) {
                Some(Ok(slot)) => slot,
                refused => {
                    tracing::warn!("{peer:?}: refused: {refused:?}");
                    refuse(stream);
                    continue;
                }
            };
            std::thread::spawn(move || {
                let mut place = Place::Unauthenticated { _slot: slot };
                if let Err(e) = handle_connection(stream, &shared, &mut place) {
                    tracing::debug!("connection {peer:?} ended: {e}");
                }
                if matches!(place, Place::Authenticated) {
                    shared.active.fetch_sub(1, Ordering::AcqRel);
                }
            });
        }
        Ok(())
    }

    /// Serves on a background thread; returns the bound address.
    pub fn spawn(self) -> io::Result<SocketAddr> {
        let addr = self.local_addr()?;
        std::thread::spawn(move || self.serve());
        Ok(addr)
    }
}

/// A connection's place: in the unauthenticated budget until a request is authorized, then
/// one of the `max_connections`.
enum Place {
    Unauthenticated {
        /// Held for its drop, which gives the place back.
        _slot: oobkit_io::PreAuthSlot,
    },
    Authenticated,
}

/// Tells a connection there is no room, and closes it.
fn refuse(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.write_all(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
}

fn handle_connection(mut stream: TcpStream, shared: &Shared, place: &mut Place) -> io::Result<()> {
    let settings = &shared.settings;
    stream.set_write_timeout(Some(settings.request_timeout))?;
    let mut reader = RequestReader::new();
    let mut buf = [0u8; 4096];
    let mut request_started: Option<std::time::Instant> = None;
    loop {
        // A pipelined request already buffered first, then more bytes.
        let request = match reader.next(&[]) {
            Ok(Some(request)) => request,
            Ok(None) => {
                // Idle between requests; within one, a deadline from its first byte.
                let wait = if reader.has_partial() {
                    let started = *request_started.get_or_insert_with(std::time::Instant::now);
                    let left = settings.request_timeout.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        let _ = stream.write_all(
                            b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                    left
                } else {
                    request_started = None;
                    settings.idle_timeout
                };
                stream.set_read_timeout(Some(wait))?;
                let n = match stream.read(&mut buf) {
                    // The deadline is checked above on the next turn (408), idle just closes.
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) && reader.has_partial() =>
                    {
                        continue;
                    }
                    other => other?,
                };
                if n == 0 {
                    return Ok(());
                }
                match reader.next(&buf[..n]) {
                    Ok(Some(request)) => request,
                    Ok(None) => continue,
                    Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
                }
            }
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        };
        request_started = None;
        let (response, authorized) = respond(shared, &request);
        if authorized && matches!(place, Place::Unauthenticated { .. }) {
            // The unauthenticated place is given back; an authenticated one is taken.
            if shared.active.fetch_add(1, Ordering::AcqRel) >= shared.settings.max_connections {
                shared.active.fetch_sub(1, Ordering::AcqRel);
                tracing::warn!(
                    "connection limit ({}) reached, refusing",
                    shared.settings.max_connections
                );
                refuse(stream);
                return Ok(());
            }
            *place = Place::Authenticated;
        }
        stream.write_all(&response)?;
        if request.closes() {
            return Ok(());
        }
    }
}

/// The response to `request`, and whether it was authorized.
fn respond(shared: &Shared, request: &HttpRequest) -> (Vec<u8>, bool) {
    let settings = &shared.settings;
    let http_request = Request {
        method: &request.method,
        uri: &request.target,
        body: Some(&request.body),
    };
    let now = (settings.clock)();
    // A poisoned lock means a panic in another connection's verify, which the digest crate
    // does not do on any input; carry on with its state.
    let mut digest = shared.digest.lock().unwrap_or_else(|e| e.into_inner());
    let verdict = digest.authenticate(
        request.header("authorization"),
        &http_request,
        now,
        oobkit_io::random_bytes(),
        |answer| {
            (answer.username == settings.user)
                .then_some((settings.user.as_str(), Secret::Password(&settings.password)))
        },
    );
    match verdict {
        Ok(Verdict::Authorized(verified)) => {
            let qop = verified.qop.map_or("no qop", |q| q.name());
            tracing::info!(
                "{} {} by {} ({}, {qop}): 200",
                request.method,
                request.target,
                verified.username,
                verified.algorithm,
            );
            let body = format!("Hello, {}!\n", verified.username);
            let response = ResponseWriter::new(200, "OK")
                .header("Content-Type", "text/plain")
                .body(body.as_bytes());
            (response, true)
        }
        Ok(Verdict::Challenge {
            www_authenticate,
            refused,
        }) => {
            if let Some(e) = refused {
                tracing::info!("{} {}: 401, {e}", request.method, request.target);
            }
            let mut response = ResponseWriter::new(401, "Unauthorized");
            for challenge in &www_authenticate {
                response = response.header("WWW-Authenticate", challenge);
            }
            let response = response
                .header("Content-Type", "text/plain")
                .body(b"Authentication required.\n");
            (response, false)
        }
        Err(e) => {
            tracing::error!("cannot render a challenge: {e}");
            (
                ResponseWriter::new(500, "Internal Server Error").body(b""),
                false,
            )
        }
    }
}

/// One request/response of a client run, for the demo's transcript.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The `Authorization` header sent, if any.
    pub authorization: Option<String>,
    /// The response status.
    pub status: u16,
    /// The `WWW-Authenticate` values received.
    pub challenges: Vec<String>,
    /// The response body as text.
    pub body: String,
}

/// Why a client run failed.
#[derive(Debug)]
pub enum ClientError {
    /// The connection failed.
    Io(io::Error),
    /// The server sent a challenge the client cannot use.
    Digest(oobkit_digest::Error),
    /// The server refused the credentials.
    Rejected,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "connection failed: {e}"),
            Self::Digest(e) => write!(f, "cannot answer the server's challenge: {e}"),
            Self::Rejected => f.write_str("the server refused the user name or password"),
        }
    }
}

impl std::error::Error for ClientError {}

/// GETs `path` from `addr` with Digest authentication, one connection kept alive; returns
/// every exchange made.
pub fn fetch(
    addr: SocketAddr,
    path: &str,
    client: &mut Client,
) -> Result<Vec<Exchange>, ClientError> {
    let mut stream = TcpStream::connect(addr).map_err(ClientError::Io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(ClientError::Io)?;
    let mut reader = ResponseReader::new();
    let mut transcript = Vec::new();
    let mut round = client.round_trip();
    loop {
        let authorization = round
            .authorization("GET", path, Some(b""), &oobkit_io::random_hex16())
            .map_err(ClientError::Digest)?;
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
        if let Some(a) = &authorization {
            request.push_str(&format!("Authorization: {a}\r\n"));
        }
        request.push_str("\r\n");
        stream
            .write_all(request.as_bytes())
            .map_err(ClientError::Io)?;
        let response = read_response(&mut stream, &mut reader).map_err(ClientError::Io)?;
        let challenges: Vec<String> = response
            .headers_named("www-authenticate")
            .map(str::to_owned)
            .collect();
        transcript.push(Exchange {
            authorization,
            status: response.status,
            challenges: challenges.clone(),
            body: String::from_utf8_lossy(&response.body).into_owned(),
        });
        match round
            .response(response.status, challenges.iter().map(String::as_str))
            .map_err(ClientError::Digest)?
        {
            Step::Done => return Ok(transcript),
            Step::Retry => {}
            _ => return Err(ClientError::Rejected),
        }
    }
}

/// Reads one response on a kept-alive connection.
fn read_response(stream: &mut TcpStream, reader: &mut ResponseReader) -> io::Result<HttpResponse> {
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        let status = if n == 0 {
            reader.finish().map(ReadStatus::Complete)
        } else {
            reader.feed(&buf[..n])
        };
        match status {
            Ok(ReadStatus::Complete(response)) => return Ok(response),
            Ok(_) => {}
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }
}
