//! The Digest computation itself (RFC 7616 section 3.4), callable on its own: the AMT
//! redirection protocol's in-band digest uses it with method `POST` and URI
//! `/RedirectionService`.

use std::fmt;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

use crate::Error;

/// A Digest hash algorithm, with or without the `-sess` variant of HA1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// `MD5`, the default when a challenge names none (RFC 2617, and every AMT).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256` (RFC 7616).
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256` (RFC 7616).
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

impl Algorithm {
    /// Every algorithm, strongest first.
    pub const ALL: [Self; 6] = [
        Self::Sha512_256,
        Self::Sha512_256Sess,
        Self::Sha256,
        Self::Sha256Sess,
        Self::Md5,
        Self::Md5Sess,
    ];

    /// Parses an algorithm name, ignoring case.
    ///
    /// ```
    /// use oobkit_digest::Algorithm;
    /// assert_eq!(Algorithm::from_name("sha-256-SESS"), Some(Algorithm::Sha256Sess));
    /// assert_eq!(Algorithm::from_name("SHA-1"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// The name as RFC 7616 spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
            Self::Sha512_256 => "SHA-512-256",
            Self::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// Whether HA1 is the `-sess` form, `H(H(user:realm:password):nonce:cnonce)`.
    pub fn is_session(self) -> bool {
        matches!(
            self,
            Self::Md5Sess | Self::Sha256Sess | Self::Sha512_256Sess
        )
    }

    /// Relative strength of the hash, for choosing between challenges: higher is stronger.
    /// The `-sess` variants rank with their hash; they protect nothing more.
    pub fn strength(self) -> u8 {
        match self {
            Self::Md5 | Self::Md5Sess => 1,
            Self::Sha256 | Self::Sha256Sess => 2,
            Self::Sha512_256 | Self::Sha512_256Sess => 3,
        }
    }

    /// Length in characters of this algorithm's hex digests.
    pub fn hex_len(self) -> usize {
        match self.strength() {
            1 => 32,
            _ => 64,
        }
    }

    /// `H(parts[0] ":" parts[1] ":" ...)` as lowercase hex.
    ///
    /// ```
    /// use oobkit_digest::Algorithm;
    /// // HA2 of the AMT redirection digest, a constant.
    /// let ha2 = Algorithm::Md5.hash(&[b"POST", b"/RedirectionService"]);
    /// assert_eq!(ha2, "63719ae578d1b7ff84edbc5762bd658b");
    /// ```
    pub fn hash(self, parts: &[&[u8]]) -> HexDigest {
        match self.strength() {
            1 => hash_joined::<Md5>(parts),
            2 => hash_joined::<Sha256>(parts),
            _ => hash_joined::<Sha512_256>(parts),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn hash_joined<D: Digest>(parts: &[&[u8]]) -> HexDigest {
    let mut hasher = D::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(b":");
        }
        hasher.update(part);
    }
    HexDigest::from_bytes(&hasher.finalize())
}

/// A lowercase hex digest of at most 32 bytes (64 characters), kept inline so that computing a
/// response allocates nothing.
#[derive(Clone, Copy)]
pub struct HexDigest {
    buf: [u8; 64],
    len: u8,
}

impl HexDigest {
    fn from_bytes(bytes: &[u8]) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 64];
        // Every supported hash is at most 32 bytes; a longer one is a bug here, not input.
        assert!(bytes.len() <= 32, "digest longer than 32 bytes");
        for (i, b) in bytes.iter().enumerate() {
            buf[2 * i] = HEX[usize::from(b >> 4)];
            buf[2 * i + 1] = HEX[usize::from(b & 0x0f)];
        }
        Self {
            buf,
            len: (bytes.len() * 2) as u8,
        }
    }

    /// Copies a hex string of `algorithm`'s length, lowercasing it, or refuses it.
    fn parse(algorithm: Algorithm, hex: &str) -> Result<Self, Error> {
        if hex.len() != algorithm.hex_len() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidHa1);
        }
        let mut buf = [0u8; 64];
        for (dst, src) in buf.iter_mut().zip(hex.bytes()) {
            *dst = src.to_ascii_lowercase();
        }
        Ok(Self {
            buf,
            len: hex.len() as u8,
        })
    }

    /// The digest as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        std::str::from_utf8(self.as_bytes()).expect("hex digits are ASCII")
    }

    /// The digest as ASCII bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

impl fmt::Display for HexDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for HexDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HexDigest({})", self.as_str())
    }
}

impl PartialEq for HexDigest {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for HexDigest {}

impl PartialEq<str> for HexDigest {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for HexDigest {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Quality of protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Qop {
    /// `auth`: the request line is protected.
    Auth,
    /// `auth-int`: the request line and body are protected.
    AuthInt,
}

impl Qop {
    /// The name as sent on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::AuthInt => "auth-int",
        }
    }

    /// Parses `auth` or `auth-int`, ignoring case.
    pub fn from_name(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("auth") {
            Some(Self::Auth)
        } else if name.eq_ignore_ascii_case("auth-int") {
            Some(Self::AuthInt)
        } else {
            None
        }
    }
}

impl fmt::Display for Qop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The password, or the stored `HA1 = H(username ":" realm ":" password)` in hex.
///
/// `Debug` never shows the secret.
#[derive(Clone, Copy)]
pub enum Secret<'a> {
    /// The plaintext password.
    Password(&'a str),
    /// The hex HA1 for the algorithm in use (for `-sess` algorithms, the HA1 of the plain
    /// hash: the session part is computed from it).
    Ha1(&'a str),
}

impl fmt::Debug for Secret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Password(_) => f.write_str("Password(<redacted>)"),
            Self::Ha1(_) => f.write_str("Ha1(<redacted>)"),
        }
    }
}

/// Everything a Digest response is computed over, apart from the secret.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The user name in clear (also when it is sent hashed with `userhash`).
    pub username: &'a str,
    /// The realm.
    pub realm: &'a str,
    /// The server nonce.
    pub nonce: &'a str,
    /// The request method (`POST` for AMT redirection).
    pub method: &'a str,
    /// The `uri` parameter: the request target.
    pub uri: &'a str,
    /// The qop answered, or `None` for RFC 2069 (no nc, no cnonce in the hash).
    pub qop: Option<Qop>,
    /// The nonce count exactly as sent (`00000001`); unused without qop.
    pub nc: &'a str,
    /// The client nonce exactly as sent; unused without qop unless the algorithm is `-sess`.
    pub cnonce: &'a str,
    /// The request body, needed for `auth-int`.
    pub body: Option<&'a [u8]>,
}

/// Computes the `response` value (RFC 7616 section 3.4.1).
///
/// ```
/// use oobkit_digest::{compute_response, Algorithm, Exchange, Qop, Secret};
/// // The AMT redirection in-band digest (`docs/amt-redirection.md`, vector 3.2 b).
/// let exchange = Exchange {
///     algorithm: Algorithm::Md5,
///     username: "admin",
///     realm: "Digest:A3829B3827DE4D33D4449B366831FD01",
///     nonce: "QYePBLMVAAAAAAAAjfXveceOM5bNfu/K",
///     method: "POST",
///     uri: "/RedirectionService",
///     qop: Some(Qop::Auth),
///     nc: "00000002",
///     cnonce: "0123456789abcdef0123456789abcdef",
///     body: None,
/// };
/// let response = compute_response(&exchange, Secret::Password("P@ssw0rd")).unwrap();
/// assert_eq!(response, "4af4ea18084dc3527876314f9c7edf30");
/// ```
pub fn compute_response(exchange: &Exchange<'_>, secret: Secret<'_>) -> Result<HexDigest, Error> {
    let alg = exchange.algorithm;
    let base_ha1 = match secret {
        Secret::Password(password) => alg.hash(&[
            exchange.username.as_bytes(),
            exchange.realm.as_bytes(),
            password.as_bytes(),
        ]),
        Secret::Ha1(hex) => HexDigest::parse(alg, hex)?,
    };
    let ha1 = if alg.is_session() {
        alg.hash(&[
            base_ha1.as_bytes(),
            exchange.nonce.as_bytes(),
            exchange.cnonce.as_bytes(),
        ])
    } else {
        base_ha1
    };
    let ha2 = match exchange.qop {
        Some(Qop::AuthInt) => {
            let body = exchange.body.ok_or(Error::BodyRequired)?;
            let body_hash = alg.hash(&[body]);
            alg.hash(&[
                exchange.method.as_bytes(),
                exchange.uri.as_bytes(),
                body_hash.as_bytes(),
            ])
        }
        _ => alg.hash(&[exchange.method.as_bytes(), exchange.uri.as_bytes()]),
    };
    Ok(match exchange.qop {
        Some(qop) => alg.hash(&[
            ha1.as_bytes(),
            exchange.nonce.as_bytes(),
            exchange.nc.as_bytes(),
            exchange.cnonce.as_bytes(),
            qop.name().as_bytes(),
            ha2.as_bytes(),
        ]),
        None => alg.hash(&[ha1.as_bytes(), exchange.nonce.as_bytes(), ha2.as_bytes()]),
    })
}

/// The hashed user name sent with `userhash=true`: `H(username ":" realm)`.
///
/// A server that offers `userhash` looks users up by this value.
pub fn userhash(algorithm: Algorithm, username: &str, realm: &str) -> HexDigest {
    algorithm.hash(&[username.as_bytes(), realm.as_bytes()])
}

/// The HA1 to store instead of a password: `H(username ":" realm ":" password)`.
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> HexDigest {
    algorithm.hash(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()])
}
