//! The client side: answer challenges, count nonces, survive nonce changes.

use std::fmt;

use crate::header::check_no_controls;
use crate::{
    Authorization, DigestChallenge, Error, Exchange, Qop, Secret, compute_response, userhash,
};

/// What a new challenge means for the request that drew it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChallengeOutcome {
    /// A first challenge, or a new nonce after earlier answers were accepted: answer it.
    Fresh,
    /// `stale=true`: the credentials were right, only the nonce expired. Answer again without
    /// asking the user for the password.
    Stale,
    /// The server refused an answer made with these credentials for a nonce that never
    /// worked: the user name or password is wrong. Retrying will not help.
    Rejected,
}

struct Session {
    challenge: DigestChallenge,
    /// Answers made with the current nonce; the next `nc` is this plus one.
    nc: u32,
    /// Whether the server accepted an answer made with the current nonce.
    accepted: bool,
}

/// A Digest client for one user against one server.
///
/// Feed it every 401's `WWW-Authenticate` values with [`Client::handle_challenge`], ask it for
/// an `Authorization` value per request with [`Client::authorize`], and tell it when the server
/// accepted one with [`Client::accepted`] so that a later nonce change is not mistaken for a
/// wrong password. The client reuses the nonce (preemptive authentication) and counts `nc` per
/// nonce, so after the first 401 every request goes through in one round trip, as AMT wants.
///
/// `Debug` never shows the password.
pub struct Client {
    username: String,
    password: String,
    prefer_auth_int: bool,
    session: Option<Session>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("prefer_auth_int", &self.prefer_auth_int)
            .field("challenge", &self.session.as_ref().map(|s| &s.challenge))
            .finish()
    }
}

impl Client {
    /// A client for `username` with `password`.
    ///
    /// By default it answers `auth-int` when the server offers it and the request body is
    /// given (as MeshCommander does with AMT 14+), `auth` otherwise.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            prefer_auth_int: true,
            session: None,
        }
    }

    /// Whether to answer `auth-int` when both qops are offered and the body is known.
    pub fn prefer_auth_int(mut self, prefer: bool) -> Self {
        self.prefer_auth_int = prefer;
        self
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The challenge being answered, if any.
    pub fn challenge(&self) -> Option<&DigestChallenge> {
        self.session.as_ref().map(|s| &s.challenge)
    }

    /// Takes the `WWW-Authenticate` values of a 401 and chooses the strongest Digest
    /// challenge among them.
    ///
    /// On error the previous challenge is kept.
    pub fn handle_challenge<'a>(
        &mut self,
        www_authenticate: impl IntoIterator<Item = &'a str>,
    ) -> Result<ChallengeOutcome, Error> {
        let challenge = DigestChallenge::select(www_authenticate)?;
        Ok(self.use_challenge(challenge))
    }

    /// Like [`Client::handle_challenge`], with a challenge already chosen (the AMT redirection
    /// protocol carries realm, nonce and qop in binary fields, not in a header).
    pub fn use_challenge(&mut self, challenge: DigestChallenge) -> ChallengeOutcome {
        let outcome = match &self.session {
            None => ChallengeOutcome::Fresh,
            Some(_) if challenge.stale => ChallengeOutcome::Stale,
            Some(old) if old.nc > 0 && !old.accepted => ChallengeOutcome::Rejected,
            Some(_) => ChallengeOutcome::Fresh,
        };
        self.session = Some(Session {
            challenge,
            nc: 0,
            accepted: false,
        });
        outcome
    }

    /// Records that the server accepted the last answer (a response other than 401).
    pub fn accepted(&mut self) {
        if let Some(session) = &mut self.session {
            session.accepted = true;
        }
    }

    /// Forgets the challenge, for example after the server changed the credentials.
    pub fn reset(&mut self) {
        self.session = None;
    }

    /// Builds the answer for one request, counting `nc` up.
    ///
    /// `uri` is the request target exactly as on the request line; `body` is the request body
    /// if known (needed for `auth-int`); `cnonce` is fresh client randomness, printable ASCII
    /// (32 hex characters is what AMT clients send).
    ///
    /// ```
    /// use oobkit_digest::Client;
    /// let mut client = Client::new("admin", "P@ssw0rd");
    /// client
    ///     .handle_challenge([r#"Digest realm="Digest:2517B2332AFD88353D5F5FD352697901", nonce="QYePBLMVAAAAAAAAjfXveceOM5bNfu/K",stale="false",qop="auth-int, auth""#])
    ///     .unwrap();
    /// let answer = client.authorize("POST", "/wsman", Some(b"<Envelope/>"), "0a4f113b").unwrap();
    /// assert_eq!(answer.nc.as_deref(), Some("00000001"));
    /// let header = answer.to_header_value().unwrap();
    /// assert!(header.starts_with("Digest username=\"admin\""));
    /// ```
    pub fn authorize(
        &mut self,
        method: &str,
        uri: &str,
        body: Option<&[u8]>,
        cnonce: &str,
    ) -> Result<Authorization, Error> {
        let prefer_auth_int = self.prefer_auth_int;
        let session = self.session.as_mut().ok_or(Error::NoChallenge)?;
        let challenge = &session.challenge;
        let offered = challenge.qop;
        let qop = if offered.is_empty() {
            None
        } else if offered.auth_int && body.is_some() && (prefer_auth_int || !offered.auth) {
            Some(Qop::AuthInt)
        } else if offered.auth {
            Some(Qop::Auth)
        } else {
            return Err(Error::BodyRequired);
        };
        // Refuse now what could not be rendered into a header (a CR in a caller's URI, or in a
        // hand-built challenge), so that nc counts only answers that can be sent.
        for (field, value) in [
            ("username", self.username.as_str()),
            ("uri", uri),
            ("cnonce", cnonce),
            ("realm", challenge.realm.as_str()),
            ("nonce", challenge.nonce.as_str()),
            ("opaque", challenge.opaque.as_deref().unwrap_or("")),
        ] {
            check_no_controls(field, value)?;
        }
        let nc = session
            .nc
            .checked_add(1)
            .ok_or(Error::NonceCountExhausted)?;
        let nc_text = format!("{nc:08x}");
        let response = compute_response(
            &Exchange {
                algorithm: challenge.algorithm,
                username: &self.username,
                realm: &challenge.realm,
                nonce: &challenge.nonce,
                method,
                uri,
                qop,
                nc: &nc_text,
                cnonce,
                body,
            },
            Secret::Password(&self.password),
        )?;
        let username = if challenge.userhash {
            userhash(challenge.algorithm, &self.username, &challenge.realm).to_string()
        } else {
            self.username.clone()
        };
        let answer = Authorization {
            username,
            userhash: challenge.userhash,
            realm: challenge.realm.clone(),
            nonce: challenge.nonce.clone(),
            uri: uri.to_owned(),
            response: response.to_string(),
            algorithm: challenge.algorithm,
            algorithm_explicit: challenge.algorithm_explicit,
            // Without qop (RFC 2069) there is no cnonce, except that -sess needs one.
            cnonce: (qop.is_some() || challenge.algorithm.is_session()).then(|| cnonce.to_owned()),
            opaque: challenge.opaque.clone(),
            qop,
            nc: qop.map(|_| nc_text),
        };
        session.nc = nc;
        Ok(answer)
    }
}

/// Most requests one round trip sends: without credentials, with the answer to the challenge,
/// and once more when the nonce changed under the answer (stale, or a server restart).
pub const MAX_ATTEMPTS: u8 = 3;

/// What to do after a response, in a [`RoundTrip`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// The response is the server's answer to the request (not a 401): use it.
    Done,
    /// A 401 with a challenge to answer: send the request again with
    /// [`RoundTrip::authorization`].
    Retry,
    /// The user name or password is wrong (or the server keeps refusing): give up.
    Rejected,
}

/// One request's Digest round trip over any transport: ask for the `Authorization` value,
/// send, report the response status and `WWW-Authenticate` values, repeat while it says
/// [`Step::Retry`]. At most [`MAX_ATTEMPTS`] sends; the client's nonce and count carry over to
/// later requests, so after the first 401 each request normally takes one send.
///
/// ```
/// use oobkit_digest::{Client, Request, Secret, Server, ServerConfig, Step, Verdict};
/// let mut server = Server::new(ServerConfig::new("Digest:00", [7; 32]));
/// let mut client = Client::new("admin", "P@ssw0rd");
/// let mut round = client.round_trip();
/// let request = Request { method: "GET", uri: "/", body: None };
/// loop {
///     let authorization = round.authorization("GET", "/", None, "c0ffee")?;
///     // The server side: verified, or a 401 with challenges.
///     let (status, challenges) =
///         match server.authenticate(authorization.as_deref(), &request, 100, [1; 8], |_| {
///             Some(("admin", Secret::Password("P@ssw0rd")))
///         })? {
///             Verdict::Authorized(_) => (200, Vec::new()),
///             Verdict::Challenge { www_authenticate, .. } => (401, www_authenticate),
///         };
///     match round.response(status, challenges.iter().map(String::as_str))? {
///         Step::Done => break,
///         Step::Retry => continue,
///         Step::Rejected => panic!("wrong password"),
///         _ => unreachable!(),
///     }
/// }
/// # Ok::<(), oobkit_digest::Error>(())
/// ```
#[derive(Debug)]
pub struct RoundTrip<'c> {
    client: &'c mut Client,
    sent: u8,
}

impl Client {
    /// Starts the round trip of one request.
    pub fn round_trip(&mut self) -> RoundTrip<'_> {
        RoundTrip {
            client: self,
            sent: 0,
        }
    }
}

impl RoundTrip<'_> {
    /// The `Authorization` value for the next send (`None` before any challenge: the first
    /// request goes without one). Arguments as in [`Client::authorize`].
    pub fn authorization(
        &mut self,
        method: &str,
        uri: &str,
        body: Option<&[u8]>,
        cnonce: &str,
    ) -> Result<Option<String>, Error> {
        self.sent = self.sent.saturating_add(1);
        if self.client.challenge().is_none() {
            return Ok(None);
        }
        self.client
            .authorize(method, uri, body, cnonce)?
            .to_header_value()
            .map(Some)
    }

    /// The response's status and `WWW-Authenticate` values: done, retry, or rejected.
    pub fn response<'a>(
        &mut self,
        status: u16,
        www_authenticate: impl IntoIterator<Item = &'a str>,
    ) -> Result<Step, Error> {
        if status != 401 {
            self.client.accepted();
            return Ok(Step::Done);
        }
        if self.client.handle_challenge(www_authenticate)? == ChallengeOutcome::Rejected
            || self.sent >= MAX_ATTEMPTS
        {
            return Ok(Step::Rejected);
        }
        Ok(Step::Retry)
    }
}
