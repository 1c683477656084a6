//! The crate's error types: one for the header grammar, one for Digest semantics, one for the
//! server's verdict on an `Authorization` header.

/// A header value that does not follow the RFC 7235 grammar, or breaks a size limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The header value is empty or only white space.
    #[error("empty header value")]
    Empty,
    /// The header value is longer than [`MAX_HEADER_LEN`](crate::MAX_HEADER_LEN).
    #[error("header value is {len} bytes, over the {max}-byte limit")]
    TooLong {
        /// Length of the value seen.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More challenges than [`MAX_CHALLENGES`](crate::MAX_CHALLENGES).
    #[error("more than {max} challenges in the header")]
    TooManyChallenges {
        /// The limit.
        max: usize,
    },
    /// More parameters in one challenge than [`MAX_PARAMS`](crate::MAX_PARAMS).
    #[error("more than {max} parameters in one challenge")]
    TooManyParams {
        /// The limit.
        max: usize,
    },
    /// A byte that the grammar does not allow where it stands.
    #[error("unexpected byte {byte:#04x} at offset {offset}")]
    Unexpected {
        /// Byte offset in the header value.
        offset: usize,
        /// The byte found.
        byte: u8,
    },
    /// The value ends where the grammar needs more (after `name=`, for example).
    #[error("header value ends in the middle of a parameter")]
    UnexpectedEnd,
    /// A quoted string without its closing quote.
    #[error("quoted string starting at offset {offset} is not terminated")]
    UnterminatedQuote {
        /// Offset of the opening quote.
        offset: usize,
    },
    /// A quoted string holds bytes that are not UTF-8.
    #[error("quoted string at offset {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Offset of the opening quote.
        offset: usize,
    },
}

/// A Digest challenge or answer that parses but cannot be used, or a request the client cannot
/// answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The header does not follow the RFC 7235 grammar.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// None of the challenges is a Digest challenge.
    #[error("no Digest challenge offered (schemes seen: {schemes})")]
    NoDigestChallenge {
        /// The schemes that were offered, comma-separated, for the log.
        schemes: String,
    },
    /// The `Authorization` header is not a Digest answer.
    #[error("not a Digest authorization")]
    NotDigest,
    /// A parameter that Digest requires is missing.
    #[error("missing parameter `{0}`")]
    MissingParam(&'static str),
    /// A parameter appears twice (RFC 7235 forbids it; accepting either copy invites confusion).
    #[error("parameter `{0}` appears more than once")]
    DuplicateParam(String),
    /// A parameter has a value that Digest does not allow.
    #[error("parameter `{name}` is invalid: {reason}")]
    InvalidParam {
        /// Parameter name.
        name: &'static str,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The algorithm is not one this crate implements.
    #[error("unsupported algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// The challenge offers a qop list with neither `auth` nor `auth-int`.
    #[error("no supported qop in `{0}`")]
    UnsupportedQop(String),
    /// A value to be written into a header holds a control character (CR, LF, NUL ...), which
    /// would allow header injection.
    #[error("`{0}` contains a control character and cannot be sent in a header")]
    ControlCharacter(&'static str),
    /// The client was asked for an answer before it saw a challenge.
    #[error("no challenge received yet")]
    NoChallenge,
    /// The nonce count for this nonce reached 0xFFFFFFFF; a new challenge is needed.
    #[error("nonce count exhausted for this nonce")]
    NonceCountExhausted,
    /// `auth-int` needs the request body, and none was given.
    #[error("qop auth-int needs the request body")]
    BodyRequired,
    /// A stored HA1 is not the hex digest of the algorithm in use.
    #[error("stored HA1 has the wrong length or is not lowercase hex")]
    InvalidHa1,
}

/// Why a server refused an `Authorization` header.
///
/// Every variant means "answer 401 with a new challenge"; [`VerifyError::is_stale`] tells when
/// that challenge should carry `stale=true`, so that the client retries with the same
/// credentials instead of asking its user again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The header could not be parsed or is not a usable Digest answer.
    #[error(transparent)]
    Malformed(#[from] Error),
    /// The realm is not this server's.
    #[error("realm does not match")]
    RealmMismatch,
    /// The `uri` parameter differs from the request target.
    #[error("uri parameter does not match the request target")]
    UriMismatch,
    /// The opaque value is not the one this server sends.
    #[error("opaque does not match")]
    OpaqueMismatch,
    /// The algorithm was not offered by this server.
    #[error("algorithm {0} was not offered")]
    AlgorithmNotOffered(crate::Algorithm),
    /// The qop (or its absence) was not offered by this server.
    #[error("qop not offered")]
    QopNotOffered,
    /// The nonce was not issued by this server (wrong length, encoding or tag).
    #[error("nonce was not issued by this server")]
    ForeignNonce,
    /// The nonce is older than the configured lifetime, or its use record was evicted.
    #[error("nonce is stale")]
    StaleNonce,
    /// The nonce count was not greater than the last one seen for this nonce.
    #[error("nonce count {nc:#010x} replayed (last seen {last:#010x})")]
    Replay {
        /// The nonce count in this request.
        nc: u32,
        /// The highest nonce count accepted before.
        last: u32,
    },
    /// The user is not known (the lookup returned nothing).
    #[error("unknown user")]
    UnknownUser,
    /// The response digest is wrong: wrong password, or a tampered request.
    #[error("response digest does not match")]
    BadResponse,
}

impl VerifyError {
    /// True when the right answer is a new challenge with `stale=true`: the client's
    /// credentials were fine, only the nonce was not.
    pub fn is_stale(&self) -> bool {
        matches!(self, Self::StaleNonce)
    }
}
