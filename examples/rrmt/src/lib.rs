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

/// Where a server's TLS endpoint is and how to trust it, from the programs' flags.
pub fn endpoint_from_url(
    url: &str,
    tls: oobkit_io::TlsPolicy,
) -> Result<(oobkit_io::Endpoint, bool), String> {
    let (secure, rest) = if let Some(rest) = url.strip_prefix("wss://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("ws://") {
        (false, rest)
    } else {
        return Err(format!(
            "{url}: the server address must start with wss:// (or ws://)"
        ));
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (
            host,
            port.parse::<u16>()
                .map_err(|_| format!("{url}: bad port {port:?}"))?,
        ),
        _ => (authority, if secure { 443 } else { 80 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{url}: no host"));
    }
    let mut endpoint = oobkit_io::Endpoint::plain(host, port);
    if secure {
        endpoint.tls = Some(tls);
    }
    Ok((endpoint, secure))
}

/// Sleeps until a session's next deadline; forever when it has none.
pub async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
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

/// UNIX seconds as the registry stores them.
pub fn now_secs() -> i64 {
    i64::try_from(oobkit_io::unix_now()).unwrap_or(i64::MAX)
}
