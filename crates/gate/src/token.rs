//! Compact JWS tokens: split, header, signature against the configured keys, and the claims
//! LabOrchestrator's auth library writes.

use base64::Engine as _;
use serde::Deserialize;

use crate::Refusal;
use crate::key::{Algorithm, VerifyingKey};

/// Longest token accepted, in bytes (LabOrchestrator's are a few hundred).
pub const MAX_TOKEN: usize = 8 * 1024;

/// A user or lab-instance id: the auth library writes numbers or strings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub(crate) enum Id {
    Number(serde_json::Number),
    Text(String),
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LabInstance {
    #[serde(default)]
    pub(crate) lab_id: Option<Id>,
    #[serde(default)]
    pub(crate) lab_instance_id: Option<Id>,
    pub(crate) namespace_name: String,
    pub(crate) allowed_vmi_names: Vec<String>,
}

/// The claims read; unknown ones (`additional_data`, anything later) are ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct Claims {
    #[serde(default)]
    pub(crate) id: Option<Id>,
    /// Seconds since the epoch, with fractions (`time.time() + lifetime`).
    pub(crate) exp: f64,
    pub(crate) lab_instance: LabInstance,
}

fn signature_part_len(token: &str) -> usize {
    token
        .rsplit_once('.')
        .map_or(0, |(_, signature)| signature.len())
}

fn b64(part: &str) -> Result<Vec<u8>, Refusal> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Refusal::Malformed("a part of the token is not base64url"))
}

/// Verifies `token` with the keys of its header's algorithm and returns its claims (not yet
/// checked against the time or the path).
pub(crate) fn verify(token: &str, keys: &[VerifyingKey]) -> Result<Claims, Refusal> {
    if token.len() > MAX_TOKEN {
        return Err(Refusal::Malformed("the token is too long"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed(
            "not a compact JWS (three dot-separated parts)",
        ));
    };
    let header: Header = serde_json::from_slice(&b64(header)?)
        .map_err(|_| Refusal::Malformed("the header is not a JSON object with alg"))?;
    // The header names the algorithm; only keys configured for exactly it are tried, so
    // `none` and anything unconfigured never verify, and no key serves two algorithms.
    let algorithm = Algorithm::from_name(&header.alg)
        .ok_or_else(|| Refusal::AlgorithmNotAllowed(header.alg.chars().take(16).collect()))?;
    let candidates: Vec<&VerifyingKey> =
        keys.iter().filter(|k| k.algorithm() == algorithm).collect();
    if candidates.is_empty() {
        return Err(Refusal::AlgorithmNotAllowed(algorithm.name().to_owned()));
    }
    let signature = b64(signature)?;
    // What was signed: the header and payload as they stand, with the dot between.
    let signed = token.len() - signature_part_len(token) - 1;
    let signed = &token.as_bytes()[..signed];
    if !candidates.iter().any(|k| k.verify(signed, &signature)) {
        return Err(Refusal::BadSignature);
    }
    let claims: serde_json::Value = serde_json::from_slice(&b64(payload)?)
        .map_err(|_| Refusal::Malformed("the claims are not JSON"))?;
    for (claim, present) in [
        (
            "exp",
            claims.get("exp").is_some_and(serde_json::Value::is_number),
        ),
        (
            "lab_instance",
            claims
                .get("lab_instance")
                .is_some_and(serde_json::Value::is_object),
        ),
    ] {
        if !present {
            return Err(Refusal::MissingClaim(claim));
        }
    }
    serde_json::from_value(claims)
        .map_err(|_| Refusal::MissingClaim("lab_instance.namespace_name or allowed_vmi_names"))
}
