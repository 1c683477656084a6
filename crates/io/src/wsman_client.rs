//! A WS-Management client over HTTP/1.1 with Digest, as AMT wants it: one connection kept
//! alive, the challenge reused with a counted `nc` so each call after the first takes one round
//! trip, and a new challenge (nonce reset, `stale=true`) answered without asking again.

use std::time::Duration;

use oobkit_digest::{Client as DigestClient, Step};
use oobkit_wsman::http::{HttpResponse, ReadStatus, ResponseReader};
use oobkit_wsman::ops::AmtStatus;
use oobkit_wsman::pager::{Enumeration, PagerError};
use oobkit_wsman::{Instance, MethodOutput, Request, Response, ResponseBody, Style};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Endpoint, Io, IoError, connect, random_hex16};

/// The client.
pub struct WsmanClient {
    endpoint: Endpoint,
    digest: DigestClient,
    conn: Option<Box<dyn Io>>,
    next_message_id: u64,
    style: Style,
    /// Limit on one request and its reply (AMT enforces an operation timeout of at least 30 s).
    pub request_timeout: Duration,
    server: Option<String>,
}

impl std::fmt::Debug for WsmanClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsmanClient")
            .field("endpoint", &self.endpoint)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl WsmanClient {
    /// A client for `endpoint` (path `/wsman`) as `user`.
    pub fn new(endpoint: Endpoint, user: &str, password: &str) -> Self {
        Self {
            endpoint,
            digest: DigestClient::new(user, password),
            conn: None,
            next_message_id: 0,
            style: Style::Intel,
            request_timeout: Duration::from_secs(60),
            server: None,
        }
    }

    /// Envelope style (Intel by default).
    pub fn with_style(mut self, style: Style) -> Self {
        self.style = style;
        self
    }

    /// The `Server` header of the last reply (AMT puts its firmware version there).
    pub fn server_header(&self) -> Option<&str> {
        self.server.as_deref()
    }

    /// Sends `request` (its MessageID is replaced by the client's counter) and parses the
    /// reply. SOAP faults come back as [`IoError::Wsman`] with [`oobkit_wsman::Error::Fault`].
    pub async fn call(&mut self, request: Request) -> Result<Response, IoError> {
        let request = request.message_id(self.next_message_id.to_string());
        self.next_message_id += 1;
        let body = request.to_xml(self.style)?;
        let mut round = self.digest.round_trip();
        loop {
            let authorization =
                round.authorization("POST", "/wsman", Some(body.as_bytes()), &random_hex16())?;
            let timeout = self.request_timeout;
            let response = tokio::time::timeout(
                timeout,
                exchange(
                    &mut self.conn,
                    &self.endpoint,
                    &body,
                    authorization.as_deref(),
                ),
            )
            .await
            .map_err(|_| IoError::Timeout("the WS-Management request"))??;
            if let Some(server) = response.header("server") {
                self.server = Some(server.to_owned());
            }
            match round.response(response.status, response.headers_named("www-authenticate"))? {
                Step::Done => {
                    let text = std::str::from_utf8(&response.body)
                        .map_err(|_| oobkit_wsman::Error::Xml(oobkit_wsman::XmlError::NotUtf8))?;
                    return Ok(Response::parse(text, response.status)?);
                }
                Step::Retry => {
                    tracing::debug!("401 from {}: answering", self.endpoint.authority());
                }
                _ => return Err(IoError::AuthRejected),
            }
        }
    }
}

/// One HTTP exchange, on the kept-alive connection if there is one. A kept-alive
/// connection the server has closed in the meantime is replaced once.
async fn exchange(
    conn: &mut Option<Box<dyn Io>>,
    endpoint: &Endpoint,
    body: &str,
    authorization: Option<&str>,
) -> Result<HttpResponse, IoError> {
    let mut head = format!(
        "POST /wsman HTTP/1.1\r\nHost: {}\r\nContent-Type: application/soap+xml; charset=utf-8\r\nContent-Length: {}\r\n",
        endpoint.authority(),
        body.len()
    );
    if let Some(a) = authorization {
        head.push_str("Authorization: ");
        head.push_str(a);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let reused = conn.is_some();
    match send_and_read(conn, endpoint, &head, body).await {
        Err(IoError::Stream { .. }) if reused => {
            tracing::debug!("kept-alive connection closed by the device; reconnecting");
            *conn = None;
            send_and_read(conn, endpoint, &head, body).await
        }
        other => other,
    }
}

async fn send_and_read(
    slot: &mut Option<Box<dyn Io>>,
    endpoint: &Endpoint,
    head: &str,
    body: &str,
) -> Result<HttpResponse, IoError> {
    let authority = endpoint.authority();
    let stream_error = |source| IoError::Stream {
        endpoint: authority.clone(),
        source,
    };
    if slot.is_none() {
        *slot = Some(connect(endpoint).await?);
    }
    let conn = slot.as_mut().expect("connected above");
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body.as_bytes());
    if let Err(e) = conn.write_all(&out).await {
        *slot = None;
        return Err(stream_error(e));
    }
    let mut reader = ResponseReader::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut received = 0usize;
    let response = loop {
        let n = match conn.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                *slot = None;
                return Err(stream_error(e));
            }
        };
        if n == 0 {
            *slot = None;
            return match reader.finish() {
                Ok(r) => Ok(r),
                // Closed before answering at all: the request may be sent again (this is
                // how a kept-alive connection the device dropped shows).
                Err(_) if received == 0 => {
                    Err(stream_error(std::io::ErrorKind::UnexpectedEof.into()))
                }
                // Closed in the middle of a reply: the request was processed, so it must
                // not be repeated (a power action would run twice).
                Err(e) => Err(oobkit_wsman::Error::from(e).into()),
            };
        }
        received += n;
        if let ReadStatus::Complete(r) =
            reader.feed(&buf[..n]).map_err(oobkit_wsman::Error::from)?
        {
            break r;
        }
    };
    if response.closes() {
        *slot = None;
    }
    Ok(response)
}

/// Why a typed call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The request did not complete (connection, authentication, a SOAP fault).
    #[error(transparent)]
    Io(#[from] IoError),
    /// The reply was not of the kind the operation returns.
    #[error("unexpected reply to {action}: {got}")]
    Unexpected {
        /// What was asked.
        action: String,
        /// What came back, briefly.
        got: String,
    },
    /// A method ran and returned a non-zero `ReturnValue`.
    #[error("{class}.{method} returned {code}: {text}")]
    Method {
        /// The class.
        class: String,
        /// The method.
        method: String,
        /// Its `ReturnValue`.
        code: u32,
        /// What the code means for this class.
        text: &'static str,
    },
    /// An enumeration went wrong (too many pages, a reply of the wrong kind).
    #[error(transparent)]
    Pager(#[from] PagerError),
}

fn brief(body: &ResponseBody) -> String {
    let text = format!("{body:?}");
    text.chars().take(120).collect()
}

impl WsmanClient {
    /// A `Get`: the instance.
    pub async fn get(&mut self, request: Request) -> Result<Instance, CallError> {
        let action = request.class().to_owned();
        match self.call(request).await?.body {
            ResponseBody::Instance(instance) => Ok(instance),
            other => Err(CallError::Unexpected {
                action: format!("Get {action}"),
                got: brief(&other),
            }),
        }
    }

    /// Every instance of `class` (Enumerate, then Pull until the end).
    pub async fn enumerate(&mut self, class: &str) -> Result<Vec<Instance>, CallError> {
        let mut pager = Enumeration::new(class);
        let mut instances = Vec::new();
        while let Some(request) = pager.next_request() {
            let body = self.call(request).await?.body;
            instances.extend(pager.handle(body)?);
        }
        Ok(instances)
    }

    /// Invokes a method; a non-zero `ReturnValue` is a [`CallError::Method`], explained.
    pub async fn invoke(&mut self, request: Request) -> Result<MethodOutput, CallError> {
        let class = request.class().to_owned();
        let output = match self.call(request).await?.body {
            ResponseBody::Output(output) => output,
            other => {
                return Err(CallError::Unexpected {
                    action: format!("a method of {class}"),
                    got: brief(&other),
                });
            }
        };
        match output.return_value {
            Some(0) | None => Ok(output),
            Some(code) => Err(CallError::Method {
                text: oobkit_wsman::return_value_text(&class, code),
                class,
                method: output.method,
                code,
            }),
        }
    }

    /// The device at a glance: firmware, provisioning, power, SOL / IDE-R / KVM, consent.
    pub async fn status(&mut self) -> Result<AmtStatus, CallError> {
        use oobkit_wsman::ops;
        let software = self.enumerate("CIM_SoftwareIdentity").await?;
        let setup = self.get(ops::get_setup_and_configuration()).await?;
        let power = self.get(ops::get_power_state()).await?;
        let redirection = self.get(ops::get_redirection_service()).await?;
        let kvm = self.get(ops::get_kvm_redirection_sap()).await?;
        let opt_in = self.get(ops::get_opt_in_service()).await?;
        Ok(AmtStatus::from_instances(
            &software,
            &setup,
            &power,
            &redirection,
            &kvm,
            &opt_in,
        ))
    }
}
