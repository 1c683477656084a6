//! Admission for a token-gated websocket proxy (the KubeVirt VNC proxy of `vnc_proxy`),
//! sans-IO: the request path and the offered subprotocols in, an [`Admission`] (namespace and
//! VMI from the token, expiry) or a [`Refusal`] (HTTP status and a reason for the log that
//! never holds the token) out, decided before any upgrade. While admitted, a [`Session`] keeps
//! the token's expiry (and an idle limit) as deadlines under the run-loop contract, so a
//! session is cut when its token expires, not only checked at connect.
//!
//! Tokens are compact JWS as LabOrchestrator's auth library (PyPI `lab-orchestrator-lib-auth`)
//! mints them: `{"typ":"JWT","alg":"HS256"}`, claims `id`, `exp` (a float), and `lab_instance`
//! with `lab_id`, `lab_instance_id`, `namespace_name`, `allowed_vmi_names`; unknown claims are
//! ignored. The algorithms are pinned by the configured keys ([`VerifyingKey`]): HS256 with the
//! secret's bytes, RS256 / ES256 / EdDSA with a public key; `none` and anything not configured
//! are refused. Expiry has an explicit [`GateConfig::leeway`] (default 5 s).
//!
//! The whole loop: check a request, then let time run to the session's deadline.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use oobkit_gate::{Gate, GateConfig, Session, SessionEvent, VerifyingKey};
//! use oobkit_runloop::{Machine, Output};
//!
//! let key = VerifyingKey::hs256(b"classroom-secret").unwrap();
//! let gate = Gate::new(GateConfig::new(vec![key.clone()]));
//! let (now, unix) = (Instant::now(), 1_800_000_000.0);
//! // A token for namespace "lab-7", VM "ubuntu", valid 60 s (minted here for the example).
//! let token = oobkit_gate::testing::mint_hs256(b"classroom-secret", unix + 60.0, "lab-7", &["ubuntu"]);
//!
//! let admission = gate.check(&format!("/{token}/ubuntu?resize=1"), &[], unix).unwrap();
//! assert_eq!((admission.namespace.as_str(), admission.vmi.as_str()), ("lab-7", "ubuntu"));
//! // Not listed: 403; a bad path: 404; no or a bad token: 401.
//! assert_eq!(gate.check(&format!("/{token}/kali"), &[], unix).unwrap_err().status(), 403);
//! assert_eq!(gate.check("/too/many/parts", &[], unix).unwrap_err().status(), 404);
//!
//! let mut session = Session::new(&admission, now, Some(Duration::from_secs(300)));
//! let mut at = now;
//! let cut = loop {
//!     match session.poll_output() {
//!         Output::Transmit(_) => {}
//!         Output::Event(SessionEvent::Cut(reason)) => break reason,
//!         Output::Event(_) => {}
//!         Output::Timeout(Some(deadline)) => {
//!             at = deadline;
//!             session.handle_timeout(at);
//!         }
//!         Output::Timeout(None) => unreachable!("an admitted session always has a deadline"),
//!     }
//! };
//! assert_eq!(cut, oobkit_gate::CutReason::TokenExpired);
//! // Cut at the expiry plus the leeway, not before.
//! assert_eq!(at - now, Duration::from_secs(65));
//! ```
#![forbid(unsafe_code)]

mod key;
mod token;

use std::time::{Duration, Instant};

use oobkit_runloop::TimerTable;

pub use key::{Algorithm, KeyError, VerifyingKey};
pub use token::MAX_TOKEN;

/// The subprotocol prefix Kubernetes' browser clients carry a bearer token in
/// (`base64url.bearer.authorization.k8s.io.<base64url of the token>`), so that it stays out of
/// URLs and access logs.
pub const BEARER_PROTOCOL_PREFIX: &str = "base64url.bearer.authorization.k8s.io.";

/// Subprotocols the proxy answers, in order of preference: browsers fail a handshake whose
/// offered subprotocol is not echoed (noVNC offers `binary`; KubeVirt's clients
/// `plain.kubevirt.io`).
pub const SUBPROTOCOLS: [&str; 2] = ["binary", "plain.kubevirt.io"];

/// How the gate decides.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GateConfig {
    /// Keys, each verifying one algorithm; a token is checked only against the keys of the
    /// algorithm its header names.
    pub keys: Vec<VerifyingKey>,
    /// A path prefix (`/PREFIX/TOKEN/VMI`), without slashes; `None`: `/TOKEN/VMI`.
    pub prefix: Option<String>,
    /// Tolerance on `exp` for clocks that differ a little (PyJWT's default is none,
    /// jsonwebtoken's a minute; 5 s here).
    pub leeway: Duration,
}

impl GateConfig {
    /// No prefix, 5 s leeway.
    pub fn new(keys: Vec<VerifyingKey>) -> Self {
        Self {
            keys,
            prefix: None,
            leeway: Duration::from_secs(5),
        }
    }
}

/// Why a request is refused. [`Refusal::status`] is the HTTP status to answer with; the
/// `Display` text is for the log and the JSON body and never holds the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The path is not `/[PREFIX/]TOKEN/VMI` (or `/[PREFIX/]VMI` with the token in a
    /// subprotocol).
    #[error("not found: the path must be /{}TOKEN/VMI", if *.0 { "PREFIX/" } else { "" })]
    BadPath(bool),
    /// No token at all.
    #[error("no token in the path or the subprotocols")]
    NoToken,
    /// Not a well-formed token.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header names an algorithm no configured key verifies (`none` included).
    #[error("token algorithm {0:?} is not accepted")]
    AlgorithmNotAllowed(String),
    /// The signature does not verify.
    #[error("token signature does not verify")]
    BadSignature,
    /// A claim the proxy needs is missing or of the wrong type.
    #[error("token claim {0} is missing or not of the expected type")]
    MissingClaim(&'static str),
    /// The token expired (beyond the leeway).
    #[error("token expired {0} s ago")]
    Expired(u64),
    /// The token does not list this VMI.
    #[error("the token does not allow VMI {0:?}")]
    VmiNotAllowed(String),
}

impl Refusal {
    /// The HTTP status: 404 bad path, 403 VMI not allowed, 401 anything about the token.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadPath(_) => 404,
            Self::VmiNotAllowed(_) => 403,
            _ => 401,
        }
    }

    /// A short machine-readable word for the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadPath(_) => "not_found",
            Self::VmiNotAllowed(_) => "forbidden",
            Self::Expired(_) => "token_expired",
            _ => "unauthorized",
        }
    }

    /// The JSON body of the refusal: `{"error":CODE,"reason":TEXT}`.
    pub fn json(&self) -> String {
        serde_json::json!({"error": self.code(), "reason": self.to_string()}).to_string()
    }
}

/// A request let through.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Admission {
    /// The namespace, from the token only (never from the request).
    pub namespace: String,
    /// The VMI named in the path (and listed in the token).
    pub vmi: String,
    /// The token's `id` (the user), for the log.
    pub user: Option<String>,
    /// The token's lab instance, for the log.
    pub lab_instance: Option<String>,
    /// `exp`, seconds since the epoch.
    pub expires_at: f64,
    /// The subprotocol to answer with (`None`: the client offered none).
    pub subprotocol: Option<&'static str>,
    /// Time to the end of the session's validity (expiry plus leeway) when admitted, rounded
    /// down to the millisecond.
    pub valid_for: Duration,
}

/// Checks requests.
#[derive(Debug, Clone)]
pub struct Gate {
    config: GateConfig,
}

/// The subprotocol to answer from those offered: the first of [`SUBPROTOCOLS`] offered, or
/// `None` when none of them is (bearer-token entries are never echoed).
pub fn choose_subprotocol(offered: &[&str]) -> Option<&'static str> {
    SUBPROTOCOLS
        .into_iter()
        .find(|p| offered.iter().any(|o| o.trim() == *p))
}

/// The token carried in an offered subprotocol, if any.
fn protocol_token(offered: &[&str]) -> Option<String> {
    use base64::Engine as _;
    offered.iter().find_map(|o| {
        let encoded = o.trim().strip_prefix(BEARER_PROTOCOL_PREFIX)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded.trim_end_matches('='))
            .ok()?;
        String::from_utf8(bytes).ok()
    })
}

impl Gate {
    /// A gate with `config`.
    pub fn new(config: GateConfig) -> Self {
        Self { config }
    }

    /// Its configuration.
    pub fn config(&self) -> &GateConfig {
        &self.config
    }

    /// Decides on a request: its path (query string allowed), the subprotocols it offers, and
    /// the wall-clock time in seconds since the epoch.
    pub fn check(
        &self,
        path_and_query: &str,
        offered: &[&str],
        now_unix: f64,
    ) -> Result<Admission, Refusal> {
        let prefixed = self.config.prefix.is_some();
        let path = path_and_query.split(['?', '#']).next().unwrap_or_default();
        let mut parts = path
            .strip_prefix('/')
            .ok_or(Refusal::BadPath(prefixed))?
            .split('/');
        if let Some(prefix) = &self.config.prefix
            && parts.next() != Some(prefix.trim_matches('/'))
        {
            return Err(Refusal::BadPath(prefixed));
        }
        let rest: Vec<&str> = parts.collect();
        let from_protocol = protocol_token(offered);
        let (token, vmi) = match (rest.as_slice(), from_protocol) {
            ([token, vmi], _) => ((*token).to_owned(), *vmi),
            ([vmi], Some(token)) => (token, *vmi),
            ([_], None) => return Err(Refusal::NoToken),
            _ => return Err(Refusal::BadPath(prefixed)),
        };
        if vmi.is_empty() {
            return Err(Refusal::BadPath(prefixed));
        }
        if token.is_empty() {
            return Err(Refusal::NoToken);
        }
        let claims = token::verify(&token, &self.config.keys)?;
        let leeway = self.config.leeway.as_secs_f64();
        let left = claims.exp + leeway - now_unix;
        if !left.is_finite() || left <= 0.0 {
            return Err(Refusal::Expired(if left.is_finite() {
                (-left).clamp(0.0, 1e12) as u64
            } else {
                0
            }));
        }
        let lab = claims.lab_instance;
        if !lab.allowed_vmi_names.iter().any(|v| v == vmi) {
            return Err(Refusal::VmiNotAllowed(vmi.chars().take(64).collect()));
        }
        Ok(Admission {
            namespace: lab.namespace_name,
            vmi: vmi.to_owned(),
            user: claims.id.map(|id| id.to_string()),
            lab_instance: lab.lab_instance_id.or(lab.lab_id).map(|id| id.to_string()),
            expires_at: claims.exp,
            subprotocol: choose_subprotocol(offered),
            // Unix times near 1.8e9 carry rounding of a few hundred nanoseconds in `f64`, so
            // `exp + leeway - now` can come out a hair past the true instant; whole
            // milliseconds, rounded down, never let that rounding extend a session.
            valid_for: Duration::from_millis((left.min(1e9) * 1000.0) as u64),
        })
    }
}

/// Why a session is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CutReason {
    /// The token expired (plus the leeway).
    TokenExpired,
    /// Nothing passed either way for the idle limit.
    Idle,
}

impl CutReason {
    /// The websocket close code to send (application range 4000-4999).
    pub const fn close_code(self) -> u16 {
        match self {
            Self::TokenExpired => 4001,
            Self::Idle => 4002,
        }
    }

    /// The close reason text.
    pub const fn text(self) -> &'static str {
        match self {
            Self::TokenExpired => "token expired",
            Self::Idle => "idle timeout",
        }
    }
}

/// What a session reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// End the session now, for this reason.
    Cut(CutReason),
}

oobkit_runloop::timers! {
    enum SessionTimer {
        Expiry,
        Idle,
    }
}

/// An admitted session's clock: the token's expiry and an idle limit, as deadlines.
#[derive(Debug)]
pub struct Session {
    timers: TimerTable<SessionTimer, { SessionTimer::COUNT }>,
    idle: Option<Duration>,
    cut: Option<CutReason>,
    reported: bool,
}

impl Session {
    /// The clock of an admitted session starting at `now`, cut after `idle` without traffic.
    /// The expiry is what was left of the token's validity when it was checked.
    pub fn new(admission: &Admission, now: Instant, idle: Option<Duration>) -> Self {
        let mut timers = TimerTable::new();
        timers.set(SessionTimer::Expiry, now + admission.valid_for);
        if let Some(limit) = idle {
            timers.set(SessionTimer::Idle, now + limit);
        }
        Self {
            timers,
            idle,
            cut: None,
            reported: false,
        }
    }

    /// Bytes passed one way or the other: the idle limit starts again.
    pub fn handle_input(&mut self, now: Instant, _bytes: &[u8]) {
        if let (Some(limit), None) = (self.idle, self.cut) {
            self.timers.set(SessionTimer::Idle, now + limit);
        }
    }

    /// The session ended on its own.
    pub fn handle_eof(&mut self) {
        self.timers.stop_all();
        self.reported = true;
    }

    /// Deadlines at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in self.timers.expire(now) {
            let reason = match timer {
                SessionTimer::Expiry => CutReason::TokenExpired,
                SessionTimer::Idle => CutReason::Idle,
            };
            self.cut.get_or_insert(reason);
        }
        if self.cut.is_some() {
            self.timers.stop_all();
        }
    }

    /// Never any bytes: the proxy relays, the clock only decides when to stop.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        None
    }

    /// The cut, once.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        match (self.cut, self.reported) {
            (Some(reason), false) => {
                self.reported = true;
                Some(SessionEvent::Cut(reason))
            }
            _ => None,
        }
    }

    /// The next deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }
}

oobkit_runloop::impl_machine!(Session, SessionEvent);

/// Token minting for tests and examples (HS256 with LabOrchestrator's claim layout). Not for
/// production: tokens come from the web application.
#[doc(hidden)]
pub mod testing {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};

    /// A token as LabOrchestrator's auth library writes it.
    pub fn mint_hs256(secret: &[u8], exp: f64, namespace: &str, vmis: &[&str]) -> String {
        let claims = serde_json::json!({
            "id": 1,
            "exp": exp,
            "lab_instance": {
                "lab_id": 1, "lab_instance_id": 1,
                "namespace_name": namespace, "allowed_vmi_names": vmis,
            }
        });
        sign_hs256(
            secret,
            r#"{"typ":"JWT","alg":"HS256"}"#,
            &claims.to_string(),
        )
    }

    /// A compact JWS over any header and claims text.
    pub fn sign_hs256(secret: &[u8], header: &str, claims: &str) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let signed = format!("{}.{}", b64.encode(header), b64.encode(claims));
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key size");
        mac.update(signed.as_bytes());
        format!("{signed}.{}", b64.encode(mac.finalize().into_bytes()))
    }
}

/// Entry point of the `gate_check` fuzz target and its corpus replay. Not a stable API.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, offered) = text.split_once('\n').unwrap_or((text, ""));
    let offered: Vec<&str> = offered.split(',').collect();
    let key = VerifyingKey::hs256(b"fuzz-secret").expect("non-empty");
    let mut config = GateConfig::new(vec![key]);
    if path.starts_with("/lab/") {
        config.prefix = Some("lab".into());
    }
    let gate = Gate::new(config);
    match gate.check(path, &offered, 1_800_000_000.0) {
        Ok(admission) => {
            let now = Instant::now();
            let mut session = Session::new(&admission, now, None);
            oobkit_runloop::check_run_down(&mut session, now, 4);
        }
        Err(refusal) => {
            assert!(matches!(refusal.status(), 401 | 403 | 404));
            let body = refusal.json();
            // Whatever the input, the reason never echoes a long token back.
            assert!(body.len() < 300, "{body}");
        }
    }
}
