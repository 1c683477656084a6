//! One-time session links: a web app creates a session (its target and credential) and gets a
//! link; the page presents the link's id once, on the websocket upgrade, within a short attach
//! window. Ids are 128 random bits chosen by the caller (sans-IO: no RNG here).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// A session link's id: 128 random bits, written as 22 base64url characters.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId([u8; 16]);

impl SessionId {
    /// An id from 16 random bytes (from the operating system's RNG).
    pub fn from_random(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// Parses the text form; anything but 22 base64url characters is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 22 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// The text form, for the link.
    pub fn to_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0).into()
    }
}

/// Never printed: an id is a bearer secret.
impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId(..)")
    }
}

/// Caps on pending (created, not yet used) sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OneTimeConfig {
    /// Pending sessions in total.
    pub max_pending: usize,
    /// Pending sessions created by one client address.
    pub max_per_address: usize,
    /// Time from creation within which the link must be used.
    pub attach_window: Duration,
}

impl Default for OneTimeConfig {
    fn default() -> Self {
        Self {
            max_pending: 256,
            max_per_address: 16,
            attach_window: Duration::from_secs(30),
        }
    }
}

/// Why a session was not created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// [`OneTimeConfig::max_pending`] sessions wait already.
    #[error("{0} sessions are waiting to be opened already")]
    Full(usize),
    /// [`OneTimeConfig::max_per_address`] sessions of this address wait already.
    #[error("{0} sessions from this address are waiting to be opened already")]
    TooManyForAddress(usize),
    /// The id is in use (the caller's RNG repeated itself).
    #[error("the session id is in use")]
    DuplicateId,
}

struct Pending<T> {
    id: SessionId,
    owner: IpAddr,
    expires: Instant,
    value: T,
}

/// Sessions created and not yet used. The value is dropped when the session expires: give it a
/// type that wipes its secrets on drop.
pub struct OneTimeSessions<T> {
    config: OneTimeConfig,
    // Keyed by the SHA-256 of the id, so the map's hashing and comparisons run on a digest
    // that tells a guesser nothing, and the id itself is compared in constant time.
    pending: HashMap<[u8; 32], Pending<T>>,
}

impl<T> std::fmt::Debug for OneTimeSessions<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneTimeSessions")
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl<T> OneTimeSessions<T> {
    /// An empty table.
    pub fn new(config: OneTimeConfig) -> Self {
        Self {
            config,
            pending: HashMap::new(),
        }
    }

    /// Creates a session for `owner` at `now` under `id`; it must be used within the attach
    /// window. Expired sessions are dropped first, so they never count against the caps.
    pub fn create(
        &mut self,
        now: Instant,
        id: SessionId,
        owner: IpAddr,
        value: T,
    ) -> Result<Instant, CreateError> {
        self.handle_timeout(now);
        if self.pending.len() >= self.config.max_pending {
            return Err(CreateError::Full(self.config.max_pending));
        }
        let mine = self.pending.values().filter(|p| p.owner == owner).count();
        if mine >= self.config.max_per_address {
            return Err(CreateError::TooManyForAddress(self.config.max_per_address));
        }
        let key = id.digest();
        if self.pending.contains_key(&key) {
            return Err(CreateError::DuplicateId);
        }
        let expires = now + self.config.attach_window;
        self.pending.insert(
            key,
            Pending {
                id,
                owner,
                expires,
                value,
            },
        );
        Ok(expires)
    }

    /// Takes the session `id` names, once: `None` when unknown, used already or expired.
    pub fn consume(&mut self, now: Instant, id: &SessionId) -> Option<T> {
        let key = id.digest();
        let found = self
            .pending
            .get(&key)
            .is_some_and(|p| bool::from(p.id.0.ct_eq(&id.0)) && p.expires > now);
        if found {
            self.pending.remove(&key).map(|p| p.value)
        } else {
            None
        }
    }

    /// Drops the sessions whose attach window ended at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.pending.retain(|_, p| p.expires > now);
    }

    /// When the next pending session expires.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.expires).min()
    }

    /// Sessions waiting to be opened.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}
