//! The server side: issue challenges with self-validating nonces, verify answers.
//!
//! # Nonces
//!
//! A nonce is 24 bytes, base64 (32 characters, the shape of an AMT nonce, and within the 32
//! that amtterm accepts): the issue time (u32 seconds, big-endian), 8 bytes of caller
//! randomness, and the first 12 bytes of HMAC-SHA256 over realm, time and randomness under the
//! server's key. So the server keeps no state per challenge: a nonce it did not issue fails the
//! tag, and an old one is stale.
//!
//! # Replay
//!
//! The highest accepted `nc` of each nonce in use is kept in a table of bounded size. When
//! the table is full the entry first used longest ago is dropped, and from then on every nonce
//! issued no later than that one is answered as stale: its client retries with a fresh nonce
//! instead of being able to replay. Memory is `capacity` entries, whatever the clients do.
//!
//! Answers without qop (RFC 2069) carry no `nc` and so cannot be protected from replay within
//! the nonce lifetime; they are accepted only when the server offers no qop at all.

use std::collections::{HashMap, VecDeque};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::{
    Algorithm, Authorization, DigestChallenge, Error, Exchange, QopSet, Secret, VerifyError,
    compute_response,
};

const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 12;

/// Server settings.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The realm.
    pub realm: String,
    /// Key for the nonce tag: 32 random bytes drawn once at start-up.
    pub nonce_key: [u8; 32],
    /// Algorithms offered, one challenge each, in this order (put the strongest first).
    pub algorithms: Vec<Algorithm>,
    /// Qop values offered. Empty means RFC 2069 only.
    pub qop: QopSet,
    /// Seconds a nonce stays valid; older ones are answered with `stale=true`.
    pub nonce_lifetime: u32,
    /// Opaque value sent with every challenge and required back.
    pub opaque: Option<String>,
    /// Offer `userhash=true`.
    pub userhash: bool,
    /// Name the algorithm even for MD5. AMT does not; RFC 7616 servers do.
    pub name_md5: bool,
    /// Most nonces whose `nc` is tracked at once.
    pub replay_capacity: usize,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("realm", &self.realm)
            .field("nonce_key", &"<redacted>")
            .field("algorithms", &self.algorithms)
            .field("qop", &self.qop)
            .field("nonce_lifetime", &self.nonce_lifetime)
            .field("opaque", &self.opaque)
            .field("userhash", &self.userhash)
            .field("replay_capacity", &self.replay_capacity)
            .finish()
    }
}

impl ServerConfig {
    /// Defaults: SHA-256 then MD5, qop `auth-int, auth`, 300 s nonces, 4096 tracked nonces.
    pub fn new(realm: impl Into<String>, nonce_key: [u8; 32]) -> Self {
        Self {
            realm: realm.into(),
            nonce_key,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            qop: QopSet::BOTH,
            nonce_lifetime: 300,
            opaque: None,
            userhash: false,
            name_md5: true,
            replay_capacity: 4096,
        }
    }
}

/// The request an answer must match.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The method (`GET`, `POST`, ...).
    pub method: &'a str,
    /// The request target exactly as on the request line.
    pub uri: &'a str,
    /// The body, if the server has it (required to accept `auth-int`).
    pub body: Option<&'a [u8]>,
}

/// An answer that passed every check that needs no secret. Look the user up, then hand it to
/// [`Server::finish`].
#[derive(Debug)]
#[must_use = "an answer is verified only by Server::finish"]
pub struct PendingAnswer {
    authorization: Authorization,
    nonce: [u8; NONCE_BYTES],
    issued: u32,
    nc: Option<u32>,
    body_hash_needed: bool,
}

impl PendingAnswer {
    /// The parsed answer: `username` (hashed if `userhash`), algorithm, ...
    pub fn authorization(&self) -> &Authorization {
        &self.authorization
    }
}

/// A verified answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// The user name as sent (hex `H(user:realm)` when `userhash` was used).
    pub username: String,
    /// The algorithm used.
    pub algorithm: Algorithm,
    /// The qop used.
    pub qop: Option<crate::Qop>,
}

/// A Digest server for one realm.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    replay: ReplayTable,
}

impl Server {
    /// A server with `config`.
    pub fn new(config: ServerConfig) -> Self {
        let replay = ReplayTable::new(config.replay_capacity.max(1));
        Self { config, replay }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// A new nonce issued at `now_secs` (seconds on any clock that does not go backwards,
    /// the same one later passed to [`Server::check`]) from 8 bytes of fresh randomness.
    pub fn nonce(&self, now_secs: u64, random: [u8; 8]) -> String {
        // Truncation is deliberate: ages are computed with wrapping arithmetic.
        let issued = now_secs as u32;
        let mut raw = [0u8; NONCE_BYTES];
        raw[..4].copy_from_slice(&issued.to_be_bytes());
        raw[4..12].copy_from_slice(&random);
        let tag = self.tag(&raw[..12]);
        raw[12..].copy_from_slice(&tag);
        STANDARD.encode(raw)
    }

    /// The challenge for `algorithm` with `nonce`.
    pub fn challenge(&self, algorithm: Algorithm, nonce: &str, stale: bool) -> DigestChallenge {
        let mut challenge = DigestChallenge::new(self.config.realm.clone(), nonce);
        challenge.algorithm = algorithm;
        challenge.algorithm_explicit = algorithm != Algorithm::Md5 || self.config.name_md5;
        challenge.qop = self.config.qop;
        challenge.opaque.clone_from(&self.config.opaque);
        challenge.stale = stale;
        challenge.userhash = self.config.userhash;
        challenge
    }

    /// The `WWW-Authenticate` values for a 401: one per configured algorithm, sharing one new
    /// nonce. `stale` is [`VerifyError::is_stale`] of the refused answer, if any.
    pub fn challenges(
        &self,
        now_secs: u64,
        random: [u8; 8],
        stale: bool,
    ) -> Result<Vec<String>, Error> {
        let nonce = self.nonce(now_secs, random);
        self.config
            .algorithms
            .iter()
            .map(|&alg| self.challenge(alg, &nonce, stale).to_header_value())
            .collect()
    }

    fn tag(&self, issued_and_random: &[u8]) -> [u8; TAG_BYTES] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.config.nonce_key)
            .expect("HMAC takes keys of any length");
        mac.update(&(self.config.realm.len() as u64).to_be_bytes());
        mac.update(self.config.realm.as_bytes());
        mac.update(issued_and_random);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }

    /// First step of verification: parses an `Authorization` value and checks everything that
    /// needs no secret (realm, URI, algorithm, qop, opaque, nonce tag and age, nc replay).
    pub fn check(
        &self,
        authorization: &str,
        request: &Request<'_>,
        now_secs: u64,
    ) -> Result<PendingAnswer, VerifyError> {
        let answer = Authorization::parse(authorization)?;
        let config = &self.config;
        if answer.realm != config.realm {
            return Err(VerifyError::RealmMismatch);
        }
        if answer.uri != request.uri {
            return Err(VerifyError::UriMismatch);
        }
        if !config.algorithms.contains(&answer.algorithm) {
            return Err(VerifyError::AlgorithmNotOffered(answer.algorithm));
        }
        match answer.qop {
            Some(qop) if config.qop.contains(qop) => {}
            None if config.qop.is_empty() => {}
            _ => return Err(VerifyError::QopNotOffered),
        }
        if answer.opaque.as_deref() != config.opaque.as_deref() {
            return Err(VerifyError::OpaqueMismatch);
        }
        if answer.userhash && !config.userhash {
            return Err(VerifyError::Malformed(Error::InvalidParam {
                name: "userhash",
                reason: "not offered",
            }));
        }
        let (nonce, issued) = self.open_nonce(&answer.nonce)?;
        let age = (now_secs as u32).wrapping_sub(issued);
        if age > config.nonce_lifetime {
            return Err(VerifyError::StaleNonce);
        }
        let nc = answer.nc_value();
        if let Some(nc) = nc {
            self.replay.check(&nonce, issued, nc)?;
        }
        let body_hash_needed = answer.qop == Some(crate::Qop::AuthInt);
        if body_hash_needed && request.body.is_none() {
            return Err(VerifyError::QopNotOffered);
        }
        Ok(PendingAnswer {
            authorization: answer,
            nonce,
            issued,
            nc,
            body_hash_needed,
        })
    }

    fn open_nonce(&self, nonce: &str) -> Result<([u8; NONCE_BYTES], u32), VerifyError> {
        // Check the length before decoding, so a hostile nonce costs nothing.
        if nonce.len() != 32 {
            return Err(VerifyError::ForeignNonce);
        }
        let mut raw = [0u8; NONCE_BYTES];
        match STANDARD.decode_slice(nonce, &mut raw) {
            Ok(NONCE_BYTES) => {}
            _ => return Err(VerifyError::ForeignNonce),
        }
        let expected = self.tag(&raw[..12]);
        if !bool::from(expected.ct_eq(&raw[12..])) {
            return Err(VerifyError::ForeignNonce);
        }
        let issued = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        Ok((raw, issued))
    }

    /// Second step: computes the expected response from the user's secret, compares it in
    /// constant time, and records the nonce count.
    pub fn finish(
        &mut self,
        pending: PendingAnswer,
        secret: Secret<'_>,
        request: &Request<'_>,
        username_in_clear: &str,
    ) -> Result<Verified, VerifyError> {
        let answer = &pending.authorization;
        debug_assert!(!pending.body_hash_needed || request.body.is_some());
        let expected = compute_response(
            &Exchange {
                algorithm: answer.algorithm,
                username: username_in_clear,
                realm: &answer.realm,
                nonce: &answer.nonce,
                method: request.method,
                uri: request.uri,
                qop: answer.qop,
                nc: answer.nc.as_deref().unwrap_or(""),
                cnonce: answer.cnonce.as_deref().unwrap_or(""),
                body: request.body,
            },
            secret,
        )?;
        if !bool::from(expected.as_bytes().ct_eq(answer.response.as_bytes())) {
            return Err(VerifyError::BadResponse);
        }
        if let Some(nc) = pending.nc {
            // Checked again: another answer with the same nonce may have been accepted since
            // `check`.
            self.replay.check(&pending.nonce, pending.issued, nc)?;
            self.replay.record(pending.nonce, pending.issued, nc);
        }
        Ok(Verified {
            username: pending.authorization.username,
            algorithm: pending.authorization.algorithm,
            qop: pending.authorization.qop,
        })
    }

    /// Both steps at once, for a server that keeps plaintext passwords or HA1s in memory.
    ///
    /// `lookup` gets the user name as sent (hex `H(user:realm)` when the answer says
    /// `userhash`) and returns the user name in clear with its secret.
    pub fn verify<'s>(
        &mut self,
        authorization: &str,
        request: &Request<'_>,
        now_secs: u64,
        lookup: impl FnOnce(&Authorization) -> Option<(&'s str, Secret<'s>)>,
    ) -> Result<Verified, VerifyError> {
        let pending = self.check(authorization, request, now_secs)?;
        let (username, secret) = lookup(pending.authorization()).ok_or(VerifyError::UnknownUser)?;
        self.finish(pending, secret, request, username)
    }
}

/// What [`Server::authenticate`] decided about one request.
#[derive(Debug)]
#[must_use = "a refused request must be answered with the challenges"]
pub enum Verdict {
    /// The answer is right: serve the request as this user.
    Authorized(Verified),
    /// Answer `401 Unauthorized` with one `WWW-Authenticate` header per value.
    Challenge {
        /// The header values, one new nonce shared by all.
        www_authenticate: Vec<String>,
        /// Why the request's answer was refused; `None` when it carried no answer (the normal
        /// first request). Worth logging, and counting toward a failure limit unless it is
        /// only [`VerifyError::StaleNonce`].
        refused: Option<VerifyError>,
    },
}

impl Server {
    /// The whole server side of one request: its `Authorization` value (if any) verified, or
    /// the challenges to send back (marked stale when only the nonce had expired, so clients
    /// answer again without asking for the password).
    ///
    /// `random` is fresh randomness for the new nonce; `lookup` is as in [`Server::verify`].
    pub fn authenticate<'s>(
        &mut self,
        authorization: Option<&str>,
        request: &Request<'_>,
        now_secs: u64,
        random: [u8; 8],
        lookup: impl FnOnce(&Authorization) -> Option<(&'s str, Secret<'s>)>,
    ) -> Result<Verdict, Error> {
        let refused = match authorization {
            None => None,
            Some(value) => match self.verify(value, request, now_secs, lookup) {
                Ok(verified) => return Ok(Verdict::Authorized(verified)),
                Err(e) => Some(e),
            },
        };
        let stale = refused.as_ref().is_some_and(VerifyError::is_stale);
        Ok(Verdict::Challenge {
            www_authenticate: self.challenges(now_secs, random, stale)?,
            refused,
        })
    }
}

/// Highest accepted nc per nonce, bounded; see the module docs.
#[derive(Debug)]
struct ReplayTable {
    capacity: usize,
    last_nc: HashMap<[u8; NONCE_BYTES], u32>,
    /// Nonces in order of first use, with their issue time.
    order: VecDeque<([u8; NONCE_BYTES], u32)>,
    /// Issue time of the newest nonce whose record was dropped.
    evicted_up_to: Option<u32>,
}

/// Whether issue time `a` is at or before `b`, on the wrapping u32 clock.
fn not_after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) >= 0
}

impl ReplayTable {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            last_nc: HashMap::new(),
            order: VecDeque::new(),
            evicted_up_to: None,
        }
    }

    fn check(&self, nonce: &[u8; NONCE_BYTES], issued: u32, nc: u32) -> Result<(), VerifyError> {
        match self.last_nc.get(nonce) {
            Some(&last) if nc <= last => Err(VerifyError::Replay { nc, last }),
            Some(_) => Ok(()),
            None if self.evicted_up_to.is_some_and(|e| not_after(issued, e)) => {
                Err(VerifyError::StaleNonce)
            }
            None if nc == 0 => Err(VerifyError::Replay { nc, last: 0 }),
            None => Ok(()),
        }
    }

    fn record(&mut self, nonce: [u8; NONCE_BYTES], issued: u32, nc: u32) {
        if let Some(last) = self.last_nc.get_mut(&nonce) {
            *last = nc;
            return;
        }
        if self.order.len() >= self.capacity
            && let Some((old, old_issued)) = self.order.pop_front()
        {
            self.last_nc.remove(&old);
            self.evicted_up_to = Some(match self.evicted_up_to {
                Some(e) if not_after(old_issued, e) => e,
                _ => old_issued,
            });
        }
        self.last_nc.insert(nonce, nc);
        self.order.push_back((nonce, issued));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Client;

    const KEY: [u8; 32] = [7; 32];

    fn request() -> Request<'static> {
        Request {
            method: "GET",
            uri: "/x",
            body: None,
        }
    }

    fn answer(server: &Server, client: &mut Client, now: u64) -> String {
        if client.challenge().is_none() {
            let values = server.challenges(now, [1; 8], false).unwrap();
            client
                .handle_challenge(values.iter().map(String::as_str))
                .unwrap();
        }
        client
            .authorize("GET", "/x", None, "cnonce")
            .unwrap()
            .to_header_value()
            .unwrap()
    }

    fn verify(server: &mut Server, header: &str, now: u64) -> Result<Verified, VerifyError> {
        server.verify(header, &request(), now, |a| {
            (a.username == "u").then_some(("u", Secret::Password("p")))
        })
    }

    #[test]
    fn nonce_shape_is_amt_like() {
        let server = Server::new(ServerConfig::new("r", KEY));
        let nonce = server.nonce(1_700_000_000, [9; 8]);
        assert_eq!(nonce.len(), 32);
        assert_eq!(
            server.open_nonce(&nonce).unwrap().1,
            1_700_000_000u64 as u32
        );
        let mut forged = nonce.into_bytes();
        forged[20] = if forged[20] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            server.open_nonce(std::str::from_utf8(&forged).unwrap()),
            Err(VerifyError::ForeignNonce)
        );
    }

    #[test]
    fn replay_and_staleness() {
        let mut server = Server::new(ServerConfig::new("r", KEY));
        let mut client = Client::new("u", "p");
        let first = answer(&server, &mut client, 1000);
        verify(&mut server, &first, 1000).unwrap();
        assert_eq!(
            verify(&mut server, &first, 1001),
            Err(VerifyError::Replay { nc: 1, last: 1 })
        );
        client.accepted();
        let second = answer(&server, &mut client, 1001);
        verify(&mut server, &second, 1001).unwrap();
        let late = answer(&server, &mut client, 1400);
        let err = verify(&mut server, &late, 1400).unwrap_err();
        assert!(err.is_stale(), "{err:?}");
    }

    #[test]
    fn wrong_password_realm_uri_user() {
        let mut server = Server::new(ServerConfig::new("r", KEY));
        let mut client = Client::new("u", "wrong");
        let header = answer(&server, &mut client, 5);
        assert_eq!(
            verify(&mut server, &header, 5),
            Err(VerifyError::BadResponse)
        );
        let mut stranger = Client::new("v", "p");
        let header = answer(&server, &mut stranger, 5);
        assert_eq!(
            verify(&mut server, &header, 5),
            Err(VerifyError::UnknownUser)
        );
        let mut client = Client::new("u", "p");
        let header = answer(&server, &mut client, 5);
        let other_uri = Request {
            uri: "/y",
            ..request()
        };
        assert_eq!(
            server.check(&header, &other_uri, 5).unwrap_err(),
            VerifyError::UriMismatch
        );
        let mut other = Server::new(ServerConfig::new("other", KEY));
        assert_eq!(
            verify(&mut other, &header, 5),
            Err(VerifyError::RealmMismatch)
        );
    }

    #[test]
    fn eviction_turns_untracked_old_nonces_stale() {
        let mut config = ServerConfig::new("r", KEY);
        config.replay_capacity = 2;
        let mut server = Server::new(config);
        let mut headers = Vec::new();
        for t in 0..4u64 {
            let mut client = Client::new("u", "p");
            let values = server.challenges(t, [t as u8; 8], false).unwrap();
            client
                .handle_challenge(values.iter().map(String::as_str))
                .unwrap();
            let a = client.authorize("GET", "/x", None, "c").unwrap();
            let b = client.authorize("GET", "/x", None, "c").unwrap();
            headers.push((a.to_header_value().unwrap(), b.to_header_value().unwrap()));
        }
        for (first, _) in &headers[1..] {
            verify(&mut server, first, 10).unwrap();
        }
        // Nonce 1 was evicted by nonce 3; nonce 0 was never used but is older: both stale.
        assert_eq!(
            verify(&mut server, &headers[1].1, 10),
            Err(VerifyError::StaleNonce)
        );
        assert_eq!(
            verify(&mut server, &headers[0].0, 10),
            Err(VerifyError::StaleNonce)
        );
        verify(&mut server, &headers[3].1, 10).unwrap();
        assert_eq!(server.replay.last_nc.len(), 2);
    }

    #[test]
    fn no_qop_downgrade_is_refused() {
        let mut server = Server::new(ServerConfig::new("r", KEY));
        let nonce = server.nonce(0, [0; 8]);
        let mut challenge = server.challenge(Algorithm::Md5, &nonce, false);
        challenge.qop = QopSet::default();
        let mut client = Client::new("u", "p");
        client.use_challenge(challenge);
        let header = client
            .authorize("GET", "/x", None, "c")
            .unwrap()
            .to_header_value()
            .unwrap();
        assert_eq!(
            verify(&mut server, &header, 0),
            Err(VerifyError::QopNotOffered)
        );
    }
}
