//! The Digest challenge (`WWW-Authenticate: Digest ...`): parsing, choosing, rendering.

use crate::header::{Challenge, Param, parse_challenges, push_quoted};
use crate::{Algorithm, Error, MAX_CHALLENGES, ParseError, Qop};

/// The qop values a challenge offers. Empty means RFC 2069 (no qop).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct QopSet {
    /// `auth` is offered.
    pub auth: bool,
    /// `auth-int` is offered.
    pub auth_int: bool,
}

impl QopSet {
    /// Both `auth` and `auth-int`.
    pub const BOTH: Self = Self {
        auth: true,
        auth_int: true,
    };
    /// Only `auth`.
    pub const AUTH: Self = Self {
        auth: true,
        auth_int: false,
    };

    /// Whether no qop is offered (RFC 2069 compatibility).
    pub fn is_empty(self) -> bool {
        !self.auth && !self.auth_int
    }

    /// Whether `qop` is in the set.
    pub fn contains(self, qop: Qop) -> bool {
        match qop {
            Qop::Auth => self.auth,
            Qop::AuthInt => self.auth_int,
        }
    }

    /// Parses a qop list such as `auth-int, auth` (spacing as irregular as AMT's), ignoring
    /// values this crate does not know.
    fn parse(list: &str) -> Self {
        let mut set = Self::default();
        for item in list.split(',') {
            match Qop::from_name(item.trim_matches([' ', '\t'])) {
                Some(Qop::Auth) => set.auth = true,
                Some(Qop::AuthInt) => set.auth_int = true,
                None => {}
            }
        }
        set
    }
}

/// One Digest challenge, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DigestChallenge {
    /// The protection space (`Digest:<32 hex>` on an AMT).
    pub realm: String,
    /// The server nonce.
    pub nonce: String,
    /// Opaque data to echo back unchanged.
    pub opaque: Option<String>,
    /// The hash algorithm (MD5 when the challenge names none).
    pub algorithm: Algorithm,
    /// Whether the challenge named its algorithm. Answers name it only then, as curl does, so
    /// that RFC 2069-era servers never see a parameter they do not know.
    pub algorithm_explicit: bool,
    /// The qop values offered.
    pub qop: QopSet,
    /// `stale=true`: the previous answer was right but its nonce expired.
    pub stale: bool,
    /// `userhash=true`: the server accepts a hashed user name.
    pub userhash: bool,
    /// `charset=UTF-8` was given.
    pub charset_utf8: bool,
    /// The `domain` parameter, unparsed.
    pub domain: Option<String>,
}

impl DigestChallenge {
    /// A challenge with the given realm and nonce, MD5 named explicitly, qop `auth`.
    pub fn new(realm: impl Into<String>, nonce: impl Into<String>) -> Self {
        Self {
            realm: realm.into(),
            nonce: nonce.into(),
            opaque: None,
            algorithm: Algorithm::Md5,
            algorithm_explicit: true,
            qop: QopSet::AUTH,
            stale: false,
            userhash: false,
            charset_utf8: false,
            domain: None,
        }
    }

    /// Interprets one parsed challenge. It must be a Digest challenge.
    pub fn from_challenge(challenge: &Challenge<'_>) -> Result<Self, Error> {
        if !challenge.is_scheme("Digest") || challenge.token68.is_some() {
            return Err(Error::NoDigestChallenge {
                schemes: challenge.scheme.to_owned(),
            });
        }
        let params = Params::collect(&challenge.params)?;
        let algorithm = params.algorithm()?;
        let qop = match params.get("qop") {
            Some(list) => {
                let set = QopSet::parse(list);
                if set.is_empty() {
                    return Err(Error::UnsupportedQop(list.to_owned()));
                }
                set
            }
            None => QopSet::default(),
        };
        let charset_utf8 = match params.get("charset") {
            Some(cs) if cs.eq_ignore_ascii_case("UTF-8") => true,
            Some(_) => {
                return Err(Error::InvalidParam {
                    name: "charset",
                    reason: "only UTF-8 is defined",
                });
            }
            None => false,
        };
        Ok(Self {
            realm: params.require("realm")?.to_owned(),
            nonce: params.require("nonce")?.to_owned(),
            opaque: params.get("opaque").map(str::to_owned),
            algorithm: algorithm.unwrap_or(Algorithm::Md5),
            algorithm_explicit: algorithm.is_some(),
            qop,
            stale: params.flag("stale"),
            userhash: params.flag("userhash"),
            charset_utf8,
            domain: params.get("domain").map(str::to_owned),
        })
    }

    /// Chooses the strongest usable Digest challenge among all `WWW-Authenticate` values of a
    /// response (each may hold several challenges of any scheme).
    ///
    /// Strength ranks the hash first (SHA-512-256 > SHA-256 > MD5), then a qop over none, then
    /// the plain over the `-sess` form; ties go to the first offered. Challenges this crate
    /// cannot use (unknown algorithm, broken parameters) are passed over; if none is usable the
    /// error of the first Digest challenge is returned.
    ///
    /// ```
    /// use oobkit_digest::{Algorithm, DigestChallenge};
    /// let chosen = DigestChallenge::select([
    ///     r#"Basic realm="x", Digest realm="r", nonce="1", algorithm=MD5"#,
    ///     r#"Digest realm="r", nonce="2", algorithm=SHA-256, qop="auth""#,
    /// ]).unwrap();
    /// assert_eq!(chosen.algorithm, Algorithm::Sha256);
    /// ```
    pub fn select<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Self, Error> {
        let mut best: Option<(u8, Self)> = None;
        let mut first_error = None;
        let mut schemes: Vec<&str> = Vec::new();
        let mut seen = 0usize;
        for value in values {
            for challenge in parse_challenges(value)? {
                seen += 1;
                if seen > MAX_CHALLENGES {
                    return Err(ParseError::TooManyChallenges {
                        max: MAX_CHALLENGES,
                    }
                    .into());
                }
                if !challenge.is_scheme("Digest") {
                    schemes.push(challenge.scheme);
                    continue;
                }
                match Self::from_challenge(&challenge) {
                    Ok(digest) => {
                        let rank = digest.rank();
                        if best.as_ref().is_none_or(|(r, _)| rank > *r) {
                            best = Some((rank, digest));
                        }
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        match (best, first_error) {
            (Some((_, digest)), _) => Ok(digest),
            (None, Some(e)) => Err(e),
            (None, None) => Err(Error::NoDigestChallenge {
                schemes: schemes.join(", "),
            }),
        }
    }

    fn rank(&self) -> u8 {
        self.algorithm.strength() * 4
            + u8::from(!self.qop.is_empty()) * 2
            + u8::from(!self.algorithm.is_session())
    }

    /// Renders the challenge as a `WWW-Authenticate` value.
    ///
    /// Fails only if a field holds a control character.
    pub fn to_header_value(&self) -> Result<String, Error> {
        let mut out = String::with_capacity(128 + self.realm.len() + self.nonce.len());
        out.push_str("Digest realm=");
        push_quoted(&mut out, "realm", &self.realm)?;
        if let Some(domain) = &self.domain {
            out.push_str(", domain=");
            push_quoted(&mut out, "domain", domain)?;
        }
        out.push_str(", nonce=");
        push_quoted(&mut out, "nonce", &self.nonce)?;
        if let Some(opaque) = &self.opaque {
            out.push_str(", opaque=");
            push_quoted(&mut out, "opaque", opaque)?;
        }
        if self.algorithm_explicit {
            out.push_str(", algorithm=");
            out.push_str(self.algorithm.name());
        }
        match (self.qop.auth, self.qop.auth_int) {
            // AMT's order (wsman.md fixture 4); both orders mean the same to a client.
            (true, true) => out.push_str(", qop=\"auth-int, auth\""),
            (true, false) => out.push_str(", qop=\"auth\""),
            (false, true) => out.push_str(", qop=\"auth-int\""),
            (false, false) => {}
        }
        if self.stale {
            out.push_str(", stale=true");
        }
        if self.charset_utf8 {
            out.push_str(", charset=UTF-8");
        }
        if self.userhash {
            out.push_str(", userhash=true");
        }
        Ok(out)
    }
}

/// The parameters of one challenge or answer, names lower-cased, duplicates refused.
pub(crate) struct Params<'p, 'a> {
    params: &'p [Param<'a>],
}

impl<'p, 'a> Params<'p, 'a> {
    pub(crate) fn collect(params: &'p [Param<'a>]) -> Result<Self, Error> {
        // At most MAX_PARAMS entries, so the quadratic check is bounded and cheap.
        for (i, p) in params.iter().enumerate() {
            if params[..i]
                .iter()
                .any(|q| q.name.eq_ignore_ascii_case(p.name))
            {
                return Err(Error::DuplicateParam(p.name.to_ascii_lowercase()));
            }
        }
        Ok(Self { params })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&'p str> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| &*p.value)
    }

    pub(crate) fn require(&self, name: &'static str) -> Result<&'p str, Error> {
        self.get(name).ok_or(Error::MissingParam(name))
    }

    /// The `algorithm` parameter: `None` when absent (MD5 is then implied), an error when it
    /// names an algorithm this crate does not implement.
    pub(crate) fn algorithm(&self) -> Result<Option<Algorithm>, Error> {
        self.get("algorithm")
            .map(|name| {
                Algorithm::from_name(name)
                    .ok_or_else(|| Error::UnsupportedAlgorithm(name.to_owned()))
            })
            .transpose()
    }

    pub(crate) fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMT: &str = r#"Digest realm="Digest:2517B2332AFD88353D5F5FD352697901", nonce="QYePBLMVAAAAAAAAjfXveceOM5bNfu/K",stale="false",qop="auth-int, auth""#;

    #[test]
    fn amt_challenge() {
        let c = DigestChallenge::select([AMT]).unwrap();
        assert_eq!(c.realm, "Digest:2517B2332AFD88353D5F5FD352697901");
        assert_eq!(c.nonce, "QYePBLMVAAAAAAAAjfXveceOM5bNfu/K");
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert!(!c.algorithm_explicit);
        assert_eq!(c.qop, QopSet::BOTH);
        assert!(!c.stale);
    }

    #[test]
    fn strongest_wins_across_headers_and_unknown_is_skipped() {
        let c = DigestChallenge::select([
            r#"Digest realm="r", nonce="a", algorithm=MD5, qop="auth""#,
            r#"Digest realm="r", nonce="b", algorithm=SHA-1, qop="auth", Digest realm="r", nonce="c", algorithm=SHA-512-256-sess, qop="auth""#,
            r#"Digest realm="r", nonce="d", algorithm=SHA-512-256, qop="auth""#,
            r#"Digest realm="r", nonce="e", algorithm=SHA-256, qop="auth""#,
        ])
        .unwrap();
        assert_eq!(c.nonce, "d");
        assert_eq!(c.algorithm, Algorithm::Sha512_256);
    }

    #[test]
    fn qop_beats_no_qop_within_a_hash() {
        let c = DigestChallenge::select([
            r#"Digest realm="r", nonce="a""#,
            r#"Digest realm="r", nonce="b", qop="auth""#,
        ])
        .unwrap();
        assert_eq!(c.nonce, "b");
    }

    #[test]
    fn errors() {
        assert_eq!(
            DigestChallenge::select([r#"Basic realm="x", Bearer"#]),
            Err(Error::NoDigestChallenge {
                schemes: "Basic, Bearer".into()
            })
        );
        assert_eq!(
            DigestChallenge::select([r#"Digest realm="x""#]),
            Err(Error::MissingParam("nonce"))
        );
        assert_eq!(
            DigestChallenge::select([r#"Digest realm="x", nonce=1, algorithm=SHA-1"#]),
            Err(Error::UnsupportedAlgorithm("SHA-1".into()))
        );
        assert_eq!(
            DigestChallenge::select([r#"Digest realm="x", nonce=1, qop="auth-conf""#]),
            Err(Error::UnsupportedQop("auth-conf".into()))
        );
        assert_eq!(
            DigestChallenge::select([r#"Digest realm="x", nonce=1, Realm=y"#]),
            Err(Error::DuplicateParam("realm".into()))
        );
    }

    #[test]
    fn render_parse_round_trip() {
        let mut c = DigestChallenge::new("a \"quoted\" \\ realm", "n/o+n=ce");
        c.opaque = Some("op".into());
        c.algorithm = Algorithm::Sha256Sess;
        c.qop = QopSet::BOTH;
        c.stale = true;
        c.userhash = true;
        c.charset_utf8 = true;
        c.domain = Some("/a /b".into());
        let rendered = c.to_header_value().unwrap();
        assert_eq!(DigestChallenge::select([rendered.as_str()]).unwrap(), c);
    }

    #[test]
    fn render_refuses_header_injection() {
        let c = DigestChallenge::new("r\r\nX-Evil: 1", "n");
        assert_eq!(c.to_header_value(), Err(Error::ControlCharacter("realm")));
    }
}
