//! The RRMT programs around the sans-IO `oobkit-rrmt` core: the server (agents over wss,
//! administrators on a separate Digest-authenticated websocket endpoint, registry and audit in
//! SQLite), the agent, and the pieces the `rrmt` CLI and the load program share.
//!
//! ```
//! let token = rrmt::Token::parse("a1b6858e-25cc-4354-a0ff-06fca30b1109").unwrap();
//! assert_eq!(token.bytes()[0], 0xA1);
//! assert_eq!(token.to_string(), "a1b6858e-25cc-4354-a0ff-06fca30b1109");
//! ```
#![forbid(unsafe_code)]

pub mod admin;
pub mod agent;
pub mod directory;
pub mod peer;
pub mod pty;
pub mod registry;
pub mod server;

use std::fmt;

/// The Digest realm of the admin endpoint (stored HA1 values depend on it).
pub const REALM: &str = "rrmt";

/// An agent token: an RFC 4122 UUID (the seed's Authorize payload).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Token(uuid::Uuid);

impl Token {
    /// A new random (version 4) token from the operating system's RNG.
    pub fn random() -> Self {
        Self(uuid::Builder::from_random_bytes(oobkit_io::random_bytes()).into_uuid())
    }

    /// Parses the usual forms (`8-4-4-4-12` hex, with or without hyphens, braces or `urn:uuid:`).
    pub fn parse(text: &str) -> Option<Self> {
        uuid::Uuid::try_parse(text.trim()).ok().map(Self)
    }

    /// The 16 bytes sent in Authorize.
    pub fn bytes(&self) -> [u8; 16] {
        *self.0.as_bytes()
    }

    /// From the 16 bytes of a frame.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(uuid::Uuid::from_bytes(bytes))
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Tokens are secrets: never printed by accident.
impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Where a server's websocket endpoint is (`wss://host:port`, or `ws://` for plain TCP) and
/// how to trust it; the bool says whether it is TLS.
pub fn endpoint_from_url(
    url: &str,
    tls: oobkit_io::TlsPolicy,
) -> Result<(oobkit_io::Endpoint, bool), String> {
    use tokio_tungstenite::tungstenite::http::Uri;
    let uri: Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let secure = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        _ => {
            return Err(format!(
                "{url}: the server address must start with wss:// (or ws://)"
            ));
        }
    };
    let host = uri
        .host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{url}: no host"))?;
    // `Uri::port` reads an out-of-range port as none at all; read it from the authority.
    let port_text = uri
        .authority()
        .and_then(|a| a.as_str().rsplit_once(':'))
        .map(|(_, port)| port)
        .filter(|port| !port.contains(']'));
    let port = match port_text {
        None => {
            if secure {
                443
            } else {
                80
            }
        }
        Some(port) => port
            .parse::<u16>()
            .map_err(|_| format!("{url}: bad port {port:?}"))?,
    };
    let mut endpoint = oobkit_io::Endpoint::plain(host, port);
    if secure {
        endpoint.tls = Some(tls);
    }
    Ok((endpoint, secure))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        let tls = oobkit_io::TlsPolicy::Insecure;
        let (e, secure) =
            endpoint_from_url("wss://rrmt.example.com:7700/agent", tls.clone()).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, secure, e.tls.is_some()),
            ("rrmt.example.com", 7700, true, true)
        );
        let (e, secure) = endpoint_from_url("ws://[::1]", tls.clone()).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, secure, e.tls.is_none()),
            ("::1", 80, false, true)
        );
        assert!(endpoint_from_url("https://x:1", tls.clone()).is_err());
        assert!(endpoint_from_url("wss://x:99999", tls.clone()).is_err());
        assert!(endpoint_from_url("rrmt.example.com:7700", tls).is_err());
    }
}

/// Largest websocket message the programs send. RRMT frames delimit themselves, so a burst
/// of output is cut anywhere into messages of at most this size, well under any peer's
/// message limit (the server's `--max-message` cannot go below it).
pub const MAX_SEND: usize = 64 * 1024;

/// Sends everything a session has to send (each `poll_transmit` result, cut into messages of
/// at most [`MAX_SEND`] bytes), then flushes. False when the connection failed.
pub async fn send_pending<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    mut poll_transmit: impl FnMut() -> Option<Vec<u8>>,
) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    while let Some(bytes) = poll_transmit() {
        if bytes.len() <= MAX_SEND {
            if ws.feed(Message::Binary(bytes.into())).await.is_err() {
                return false;
            }
            continue;
        }
        for chunk in bytes.chunks(MAX_SEND) {
            if ws
                .feed(Message::Binary(chunk.to_vec().into()))
                .await
                .is_err()
            {
                return false;
            }
        }
    }
    ws.flush().await.is_ok()
}

/// The certificate flags of the programs that connect to a server.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsFlags {
    /// Trust exactly the certificate with this SHA-256 fingerprint (rrmt-server prints it).
    #[arg(long, env = "RRMT_FINGERPRINT", conflicts_with = "insecure")]
    pub fingerprint: Option<String>,
    /// Also trust the CAs in this PEM file.
    #[arg(long, conflicts_with_all = ["insecure", "fingerprint"])]
    pub ca: Option<std::path::PathBuf>,
    /// Accept any certificate (prefer --fingerprint).
    #[arg(long)]
    pub insecure: bool,
}

impl TlsFlags {
    /// The policy these flags ask for.
    pub fn policy(&self) -> Result<oobkit_io::TlsPolicy, String> {
        oobkit_io::TlsPolicy::from_flags(
            self.fingerprint.as_deref(),
            self.ca.as_deref(),
            self.insecure,
        )
    }
}

/// Makes `dir` and the files in it private to this user: the directory 0700, every file 0600
/// (the registry holds the administrators' HA1, enough to answer Digest; the key file signs
/// the server's TLS). Wider modes are narrowed, with a warning naming what was open.
pub fn make_private(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let narrow = |path: &std::path::Path, mode: u32| -> std::io::Result<()> {
        let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if current & !mode != 0 {
            tracing::warn!(
                "{} was mode {current:o}, readable by others; narrowing it to {mode:o}",
                path.display()
            );
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
        Ok(())
    };
    narrow(dir, 0o700)?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            narrow(&path, 0o600)?;
        }
    }
    Ok(())
}

/// Creates `dir` (and its parents) private to this user, or makes an existing one so
/// ([`make_private`]), before anything secret is written into it: files created afterwards
/// with wider modes are then unreachable through it until they are narrowed too.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    make_private(dir)
}

/// Writes a file only its owner can read (keys, tokens), atomically: a temporary file beside
/// it is renamed over it, so a crash leaves the old contents or the new, never half.
pub fn write_private_file(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("new");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// UNIX seconds as the registry stores them.
pub fn now_secs() -> i64 {
    i64::try_from(oobkit_io::unix_now()).unwrap_or(i64::MAX)
}
