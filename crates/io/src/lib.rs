//! The IO around oobkit's sans-IO cores, for tokio programs: connecting (plain TCP or TLS with a
//! policy that is safe by default), and a WS-Management client that drives `oobkit-wsman` and
//! `oobkit-digest` over a kept-alive connection.
//!
//! ```no_run
//! # async fn demo() -> Result<(), oobkit_io::IoError> {
//! use oobkit_io::{Endpoint, WsmanClient};
//! let endpoint = Endpoint::plain("127.0.0.1", 16992);
//! let mut client = WsmanClient::new(endpoint, "admin", "P@ssw0rd");
//! let reply = client.call(oobkit_wsman::ops::get_general_settings()).await?;
//! println!("{:?}", reply.body);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod budget;
mod failures;
pub mod ider;
pub mod redirection;
mod relay;
pub mod tls;
pub mod web;
pub mod websocket;
mod wsman_client;

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

pub use budget::{BudgetExceeded, PreAuthBudget, PreAuthSlot};
pub use failures::{AuthFailures, MAX_TRACKED_ADDRESSES};
pub use relay::{EndCause, RelayEnd, RelayLimits, Side, relay_bounded};
pub use tls::{ServerIdentity, TlsPolicy, format_fingerprint, parse_fingerprint};
pub use websocket::{
    RawWebSocket, WebSocket, redirection_websocket, websocket_connect, websocket_upgrade,
};
pub use wsman_client::{CallError, WsmanClient};

/// A byte stream: TCP, or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Where to connect and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// TLS, or `None` for plain TCP.
    pub tls: Option<TlsPolicy>,
    /// Limit on connecting (TCP and TLS handshake together).
    pub connect_timeout: Duration,
    /// The local address to connect from (`None`: the system's choice). Load tools spread
    /// many connections over loopback addresses with it, so that ports do not run out.
    pub source: Option<std::net::IpAddr>,
}

impl Endpoint {
    /// Plain TCP, 10 s to connect.
    pub fn plain(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            tls: None,
            connect_timeout: Duration::from_secs(10),
            source: None,
        }
    }

    /// `host:port`, with brackets around an IPv6 literal.
    pub fn authority(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Why talking to a peer failed, worded for the person who has to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IoError {
    /// TCP connect failed (refused, unreachable, name not found).
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// `host:port`.
        endpoint: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A step took longer than its limit.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// The TLS handshake failed; the fingerprint seen is given so the user can pin it after
    /// checking it out of band.
    #[error("TLS handshake with {endpoint} failed: {message}{}", fingerprint.as_ref().map(|f| format!(" (server certificate SHA-256 {f})")).unwrap_or_default())]
    Tls {
        /// `host:port`.
        endpoint: String,
        /// What rustls said.
        message: String,
        /// The server certificate's SHA-256 fingerprint, if the handshake got that far.
        fingerprint: Option<String>,
    },
    /// Bad local configuration (CA file, host name).
    #[error("{0}")]
    Config(String),
    /// Reading or writing failed after connecting.
    #[error("connection to {endpoint} failed: {source}")]
    Stream {
        /// `host:port`.
        endpoint: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server refused the user name or password.
    #[error("the server refused the user name or password (HTTP 401)")]
    AuthRejected,
    /// The server's authentication challenge could not be answered.
    #[error("cannot answer the device's authentication challenge: {0}")]
    Digest(#[from] oobkit_digest::Error),
    /// The reply was not usable (including SOAP faults: see [`IoError::fault`]).
    #[error(transparent)]
    Wsman(#[from] oobkit_wsman::Error),
}

impl IoError {
    /// The SOAP fault, if the device answered with one.
    pub fn fault(&self) -> Option<&oobkit_wsman::Fault> {
        match self {
            Self::Wsman(oobkit_wsman::Error::Fault(f)) => Some(f),
            _ => None,
        }
    }
}

/// Connects to `endpoint`, doing the TLS handshake if asked, within its connect timeout.
pub async fn connect(endpoint: &Endpoint) -> Result<Box<dyn Io>, IoError> {
    let authority = endpoint.authority();
    let work = async {
        let failed = |source| IoError::Connect {
            endpoint: authority.clone(),
            source,
        };
        let tcp = match endpoint.source {
            None => TcpStream::connect((endpoint.host.as_str(), endpoint.port))
                .await
                .map_err(failed)?,
            Some(local) => {
                let remote = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))
                    .await
                    .map_err(failed)?
                    .find(|a| a.is_ipv4() == local.is_ipv4())
                    .ok_or_else(|| {
                        failed(std::io::Error::new(
                            std::io::ErrorKind::AddrNotAvailable,
                            format!("no address of the family of {local}"),
                        ))
                    })?;
                let socket = if local.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()
                } else {
                    tokio::net::TcpSocket::new_v6()
                }
                .map_err(failed)?;
                socket
                    .bind(std::net::SocketAddr::new(local, 0))
                    .map_err(failed)?;
                socket.connect(remote).await.map_err(failed)?
            }
        };
        tcp.set_nodelay(true).ok();
        let Some(policy) = &endpoint.tls else {
            return Ok(Box::new(tcp) as Box<dyn Io>);
        };
        let (config, seen) = tls::client_config(policy)?;
        let name = rustls_pki_types::ServerName::try_from(endpoint.host.clone())
            .map_err(|e| IoError::Config(format!("bad host name {}: {e}", endpoint.host)))?;
        let connector = tokio_rustls::TlsConnector::from(config);
        match connector.connect(name, tcp).await {
            Ok(stream) => Ok(Box::new(stream) as Box<dyn Io>),
            Err(e) => {
                let fingerprint = seen
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                    .map(format_fingerprint);
                Err(IoError::Tls {
                    endpoint: authority.clone(),
                    message: e.to_string(),
                    fingerprint,
                })
            }
        }
    };
    tokio::time::timeout(endpoint.connect_timeout, work)
        .await
        .map_err(|_| IoError::Timeout("connecting"))?
}

/// The next connection on `listener`. Accept errors (out of descriptors, a connection reset
/// before it was taken) are logged and retried after 100 ms: a server must neither stop nor
/// spin on them.
pub async fn accept(listener: &TcpListener) -> (TcpStream, std::net::SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `default_filter`, e.g. `"info"`). Colour
/// only when stderr is a terminal and `NO_COLOR` is unset or empty (<https://no-color.org>), so
/// log files hold plain text. Secrets are never logged by oobkit; this only sets where the
/// lines go.
pub fn init_logging(default_filter: &str) {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_ansi(!no_color && std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// Waits for a request to stop: SIGINT (Ctrl-C), SIGTERM (service managers, `kill`) or SIGHUP
/// (the terminal went away). Returning from `main` then drops every task, and with them the
/// child processes spawned with `kill_on_drop` (a SOL console's program): a stop by any of
/// these signals leaves no orphans, where the default action of SIGTERM would.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut streams = Vec::new();
    for kind in [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ] {
        match signal(kind) {
            Ok(stream) => streams.push(stream),
            Err(e) => tracing::warn!("cannot watch signal {kind:?}: {e}"),
        }
    }
    if streams.is_empty() {
        return std::future::pending().await;
    }
    futures_util::future::select_all(streams.iter_mut().map(|s| Box::pin(s.recv()))).await;
}

/// Sleeps until a session's next deadline (its `poll_timeout`); forever when it has none, so
/// it can stand in a `select!` beside the reads.
pub async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// A run loop's one timer for a machine whose deadline moves later on every message (an idle
/// limit): re-armed only when the machine wants an earlier deadline than the one armed, or
/// after it fired, because re-arming a timer per message costs more than a busy relay's own
/// work. Firing early is harmless: the machine's `handle_timeout` ignores deadlines not due,
/// and the loop arms the next one.
#[derive(Debug)]
pub struct LoopTimer {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    armed: Option<std::time::Instant>,
}

impl Default for LoopTimer {
    fn default() -> Self {
        Self::new()
    }
}

impl LoopTimer {
    /// A timer not armed.
    pub fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep(std::time::Duration::from_secs(86_400))),
            armed: None,
        }
    }

    /// Arms the timer for `wanted` (the machine's `poll_timeout`) if nothing earlier is armed.
    pub fn arm(&mut self, wanted: Option<std::time::Instant>) {
        if let Some(at) = wanted
            && self.armed.is_none_or(|armed| at < armed)
        {
            self.armed = Some(at);
            self.sleep.as_mut().reset(at.into());
        }
    }

    /// Completes when the armed deadline is reached (never when none is armed); then the
    /// timer is disarmed until the next [`LoopTimer::arm`].
    pub async fn fired(&mut self) {
        if self.armed.is_none() {
            return std::future::pending().await;
        }
        self.sleep.as_mut().await;
        self.armed = None;
    }
}

/// `N` bytes from the operating system's RNG (nonces, cnonces, keys).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system RNG is available");
    bytes
}

/// Websocket mask keys from the operating system's RNG, drawn 256 bytes at a time: a relay
/// masks every frame a client sends on to a server, and one system call per frame would let
/// a client that sends empty frames make the proxy spend a call on every six bytes it reads.
pub fn mask_keys() -> impl FnMut() -> [u8; 4] + Send {
    let mut pool = [0u8; 256];
    let mut used = pool.len();
    move || {
        if used == pool.len() {
            pool = random_bytes();
            used = 0;
        }
        used += 4;
        pool[used - 4..used].try_into().expect("four bytes")
    }
}

/// 16 random bytes as 32 hex digits: a cnonce as AMT clients send it.
pub fn random_hex16() -> String {
    random_bytes::<16>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// UNIX seconds: the clock programs hand to the sans-IO cores.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_keys_are_fresh_across_pool_refills() {
        let mut keys = mask_keys();
        let drawn: Vec<[u8; 4]> = (0..1000).map(|_| keys()).collect();
        let distinct: std::collections::HashSet<_> = drawn.iter().collect();
        // 1000 draws of 32 random bits: one repeat is a one-in-ten-thousand event, two about
        // one in a hundred million.
        assert!(distinct.len() >= 999, "{} distinct of 1000", distinct.len());
        // A refill is new randomness, not the same pool again.
        assert_ne!(drawn[..64], drawn[64..128]);
    }
}
