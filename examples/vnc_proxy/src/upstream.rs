//! The upstream: KubeVirt's VNC subresource through the Kubernetes API server (TLS trusting the
//! service account's CA, the service account's bearer token), or `kubectl proxy` in dev mode
//! (plain websocket, no credentials).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use oobkit_io::{Endpoint, RawWebSocket};

/// How often the service-account token file is read again: bound tokens rotate (the kubelet
/// renews them from 80% of their hour), and client-go and kube-rs re-read at least this often.
pub const TOKEN_REREAD: Duration = Duration::from_secs(60);

/// The service-account token, read from its file at most every [`TOKEN_REREAD`]; the last
/// good one is kept when a re-read fails.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    cached: Mutex<Option<(Instant, String)>>,
}

impl TokenFile {
    /// The token at `path`.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            cached: Mutex::new(None),
        }
    }

    /// The token (trailing whitespace and newline stripped).
    pub fn get(&self) -> Result<String, UpstreamError> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((read, token)) = cached.as_ref()
            && read.elapsed() < TOKEN_REREAD
        {
            return Ok(token.clone());
        }
        match std::fs::read_to_string(&self.path) {
            Ok(text) if !text.trim().is_empty() => {
                let token = text.trim_end().to_owned();
                *cached = Some((Instant::now(), token.clone()));
                Ok(token)
            }
            Ok(_) | Err(_) if cached.is_some() => {
                let (_, token) = cached.as_ref().expect("checked");
                tracing::warn!(
                    "cannot re-read the service-account token {}; using the last one",
                    self.path.display()
                );
                Ok(token.clone())
            }
            Ok(_) => Err(UpstreamError::Credentials(format!(
                "{} is empty",
                self.path.display()
            ))),
            Err(e) => Err(UpstreamError::Credentials(format!(
                "cannot read {}: {e}",
                self.path.display()
            ))),
        }
    }
}

/// Where VMIs' consoles are.
#[derive(Debug)]
pub struct Upstream {
    /// The API server (TLS per its policy) or `kubectl proxy` (plain).
    pub api: Endpoint,
    /// The subresource API version (`v1`; KubeVirt also serves `v1alpha3`).
    pub version: String,
    /// The bearer token; `None` in dev mode.
    pub token: Option<TokenFile>,
}

/// Why the upstream could not be reached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// Connecting or the TLS handshake failed.
    #[error("the API server is unreachable: {0}")]
    Unreachable(String),
    /// The API server answered the upgrade with this status.
    #[error("the API server answered HTTP {status}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The Kubernetes Status message, if any.
        message: String,
    },
    /// The proxy's own credentials could not be read.
    #[error("the proxy's credentials: {0}")]
    Credentials(String),
}

impl UpstreamError {
    /// The close code and reason the client gets.
    pub fn close(&self) -> (u16, String) {
        match self {
            Self::Unreachable(_) => (1011, "the VM console service is unreachable".into()),
            Self::Refused { status: 404, .. } => (4404, "VM not found".into()),
            Self::Refused {
                status: 400,
                message,
            } => (4400, format!("VM console unavailable: {message}")),
            Self::Refused { status: 401, .. } => (
                4401,
                "the API server refused the proxy's credentials".into(),
            ),
            Self::Refused { status: 403, .. } => (
                4403,
                "the proxy is not allowed to open this VM's console".into(),
            ),
            Self::Refused { status, .. } => (
                1011,
                format!("the VM console service answered HTTP {status}"),
            ),
            Self::Credentials(_) => (1011, "the proxy is misconfigured".into()),
        }
    }
}

/// The message of a Kubernetes `Status` body, or the start of the body.
fn status_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned())
        .chars()
        .take(120)
        .collect()
}

/// The path of KubeVirt's VNC subresource of `namespace`/`vmi` in API `version`.
pub fn vnc_path(version: &str, namespace: &str, vmi: &str) -> String {
    format!(
        "/apis/subresources.kubevirt.io/{version}/namespaces/{namespace}/virtualmachineinstances/{vmi}/vnc"
    )
}

impl Upstream {
    /// The subresource path of a VMI.
    pub fn path(&self, namespace: &str, vmi: &str) -> String {
        vnc_path(&self.version, namespace, vmi)
    }

    /// Opens the VNC websocket of `namespace`/`vmi`: the raw connection after the API
    /// server's 101, whose frames the relay forwards as they are.
    pub async fn dial(&self, namespace: &str, vmi: &str) -> Result<RawWebSocket, UpstreamError> {
        let bearer = match &self.token {
            Some(token) => Some(format!("Bearer {}", token.get()?)),
            None => None,
        };
        if bearer.as_ref().is_some_and(|b| b.contains(['\r', '\n'])) {
            return Err(UpstreamError::Credentials(
                "the token is not a header value".into(),
            ));
        }
        let mut headers = vec![("Sec-WebSocket-Protocol", "plain.kubevirt.io")];
        if let Some(bearer) = &bearer {
            headers.push(("Authorization", bearer.as_str()));
        }
        match oobkit_io::websocket_upgrade(&self.api, &self.path(namespace, vmi), &headers).await {
            Ok(Ok(ws)) => Ok(ws),
            Ok(Err(response)) => Err(UpstreamError::Refused {
                status: response.status,
                message: status_message(&response.body),
            }),
            Err(e) => Err(UpstreamError::Unreachable(e.to_string())),
        }
    }
}
