//! HTTP Digest access authentication (RFC 7616, with RFC 2617 and RFC 2069 compatibility),
//! client and server, sans-IO.
//!
//! This crate never opens a socket, reads a clock or draws random numbers: the caller passes
//! header values in and gets header values out, and supplies the time (`now_secs`) and the
//! randomness (server nonces, client cnonces).
//!
//! A full round trip, as an HTTP client and server would drive it:
//!
//! ```
//! use oobkit_digest::{Client, ChallengeOutcome, Request, Secret, Server, ServerConfig};
//!
//! // Server: a realm and a key for its nonces, drawn once from a real RNG at start-up.
//! let mut server = Server::new(ServerConfig::new("Digest:2517B2332AFD88353D5F5FD352697901", [42; 32]));
//! let now = 1_700_000_000; // seconds, from the caller's clock
//!
//! // 1. The request arrives without credentials: answer 401 with these WWW-Authenticate values.
//! let challenges = server.challenges(now, *b"rand0m!!", false)?;
//!
//! // 2. The client takes the challenges and answers.
//! let mut client = Client::new("admin", "P@ssw0rd");
//! let outcome = client.handle_challenge(challenges.iter().map(String::as_str))?;
//! assert_eq!(outcome, ChallengeOutcome::Fresh);
//! let body = b"<Envelope/>";
//! let authorization = client.authorize("POST", "/wsman", Some(body), "0a4f113b")?.to_header_value()?;
//!
//! // 3. The server verifies the retried request.
//! let request = Request { method: "POST", uri: "/wsman", body: Some(body) };
//! let verified = server.verify(&authorization, &request, now + 1, |answer| {
//!     (answer.username == "admin").then_some(("admin", Secret::Password("P@ssw0rd")))
//! })?;
//! assert_eq!(verified.username, "admin");
//! client.accepted();
//!
//! // The same answer again is a replay.
//! assert!(server.verify(&authorization, &request, now + 2, |_| Some(("admin", Secret::Password("P@ssw0rd")))).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layers
//!
//! - [`parse_challenges`] / [`parse_credentials`]: the RFC 7235 grammar, for any scheme.
//! - [`DigestChallenge`] and [`Authorization`]: the Digest parameters, parsed and rendered.
//! - [`compute_response`]: the hash itself, usable alone (the AMT redirection protocol carries
//!   the same digest in binary fields, with method `POST` and URI `/RedirectionService`).
//! - [`Client`] and [`Server`]: the two roles, with nonce counting, stale handling and replay
//!   protection.
//!
//! # Time
//!
//! The server takes `now_secs`, seconds on any clock that does not go backwards (UNIX time is
//! fine). It is written into nonces as a wrapping u32, so only differences matter.
//!
//! # Panics vs errors
//!
//! Nothing here panics on input: malformed, oversized or hostile header values give a
//! [`ParseError`], [`Error`] or [`VerifyError`]. Header values are capped at
//! [`MAX_HEADER_LEN`] bytes, [`MAX_CHALLENGES`] challenges and [`MAX_PARAMS`] parameters, so
//! memory use is bounded by the input size.
#![forbid(unsafe_code)]

mod authorization;
mod challenge;
mod client;
mod compute;
mod error;
mod header;
mod server;

pub use authorization::Authorization;
pub use challenge::{DigestChallenge, QopSet};
pub use client::{ChallengeOutcome, Client, MAX_ATTEMPTS, RoundTrip, Step};
pub use compute::{Algorithm, Exchange, HexDigest, Qop, Secret, compute_response, ha1, userhash};
pub use error::{Error, ParseError, VerifyError};
pub use header::{
    Challenge, MAX_CHALLENGES, MAX_HEADER_LEN, MAX_PARAMS, Param, parse_challenges,
    parse_credentials,
};
pub use server::{PendingAnswer, Request, Server, ServerConfig, Verdict, Verified};

/// Entry points for the fuzz targets and their corpus-replay test. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use crate::{Authorization, DigestChallenge, Request, Secret, Server, ServerConfig};

    /// Parses arbitrary bytes as `WWW-Authenticate` values, and checks that what parses
    /// renders and parses back to the same challenge.
    pub fn challenge_parser(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let values: Vec<&str> = text.split('\n').collect();
        if let Ok(challenge) = DigestChallenge::select(values.iter().copied()) {
            let rendered = challenge
                .to_header_value()
                .expect("parsed fields have no control characters");
            let again =
                DigestChallenge::select([rendered.as_str()]).expect("rendered challenge parses");
            assert_eq!(again, challenge);
        }
    }

    /// Parses arbitrary bytes as an `Authorization` value, checks the render/parse round trip,
    /// and runs the server's verification on it.
    pub fn authorization_parser(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(answer) = Authorization::parse(text) {
            let rendered = answer
                .to_header_value()
                .expect("parsed fields have no control characters");
            assert_eq!(Authorization::parse(&rendered).as_ref(), Ok(&answer));
        }
        let mut server = Server::new(ServerConfig::new("r", [1; 32]));
        let request = Request {
            method: "GET",
            uri: "/",
            body: Some(b""),
        };
        let _ = server.verify(text, &request, 0, |_| Some(("u", Secret::Password("p"))));
    }
}
