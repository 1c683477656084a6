//! The simulated AMT's web port, sans-IO: an HTTP request in, the bytes of the response out,
//! exactly as firmware shapes them. `/wsman` behind HTTP Digest as AMT offers it (realm
//! `Digest:<32 hex>`, MD5 without naming the algorithm, qop `auth-int, auth`, a "Log on
//! failed" HTML page with the 401), replies chunked with AMT's headers, and the
//! `/ws-redirection` websocket upgrade behind the same Digest (`docs/wsman.md` section 2.3,
//! `docs/amt-redirection.md` section 1.2).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use oobkit_digest::{
    Algorithm, QopSet, Request as DigestRequest, Secret, Server, ServerConfig, Verdict, VerifyError,
};
use oobkit_http1::{HttpRequest, ResponseWriter};
use sha1::Digest as _;

use crate::{Context, Device};

/// AMT's page for a 401.
pub const LOGON_FAILED: &str = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\">\n<html><head><title>Intel&reg; Active Management Technology</title></head><body>Log on failed. Incorrect user name or password, or user account temporarily locked.</body></html>\n";

/// What the web port answers.
#[derive(Debug)]
#[non_exhaustive]
pub enum WebReply {
    /// Send these bytes; `refused` says why a Digest answer was refused (for the log).
    Response {
        /// The whole HTTP response.
        bytes: Vec<u8>,
        /// The refused answer's reason, when the request carried one.
        refused: Option<VerifyError>,
        /// Whether the request was authenticated (servers keep connections that never are in
        /// a smaller budget of their own).
        authenticated: bool,
    },
    /// Send this `101 Switching Protocols` response, then serve the redirection protocol in
    /// websocket binary messages on the connection.
    WebSocket {
        /// The upgrade response.
        bytes: Vec<u8>,
    },
}

/// The web port's state: the Digest server and the credentials.
#[derive(Debug)]
pub struct WebPort {
    digest: Server,
    user: String,
    password: String,
    server_header: String,
}

impl WebPort {
    /// A web port for `device`'s realm with one account; `nonce_key` is fresh randomness
    /// drawn once (it signs the Digest nonces).
    pub fn new(device: &Device, user: &str, password: &str, nonce_key: [u8; 32]) -> Self {
        let mut config = ServerConfig::new(device.config().realm.clone(), nonce_key);
        // As AMT: MD5 only, the algorithm not named, qop "auth-int, auth".
        config.algorithms = vec![Algorithm::Md5];
        config.name_md5 = false;
        config.qop = QopSet::BOTH;
        Self {
            digest: Server::new(config),
            user: user.into(),
            password: password.into(),
            server_header: format!(
                "Intel(R) Active Management Technology {}",
                device.config().firmware
            ),
        }
    }

    /// Answers one request. `nonce_random` is fresh randomness for a new Digest nonce.
    pub fn handle(
        &mut self,
        device: &mut Device,
        request: &HttpRequest,
        ctx: Context,
        nonce_random: [u8; 8],
    ) -> WebReply {
        let http = DigestRequest {
            method: &request.method,
            uri: &request.target,
            body: Some(&request.body),
        };
        let (user, password) = (&self.user, &self.password);
        let verdict = self.digest.authenticate(
            request.header("authorization"),
            &http,
            ctx.now_unix,
            nonce_random,
            |answer| {
                (answer.username == *user)
                    .then_some((user.as_str(), Secret::Password(password.as_str())))
            },
        );
        match verdict {
            Ok(Verdict::Authorized(_)) if request.target == "/ws-redirection" => {
                self.websocket_upgrade(request)
            }
            Ok(Verdict::Authorized(_)) => WebReply::Response {
                bytes: self.wsman(device, request, ctx),
                refused: None,
                authenticated: true,
            },
            Ok(Verdict::Challenge {
                www_authenticate,
                refused,
            }) => {
                let mut response = ResponseWriter::new(401, "Unauthorized");
                for challenge in &www_authenticate {
                    response = response.header("WWW-Authenticate", challenge);
                }
                WebReply::Response {
                    bytes: response
                        .header("Content-Type", "text/html")
                        .header("Server", &self.server_header)
                        .body(LOGON_FAILED.as_bytes()),
                    refused,
                    authenticated: false,
                }
            }
            // The challenge could not be rendered (a realm with control characters): only a
            // broken configuration gets here.
            Err(_) => WebReply::Response {
                bytes: self.empty(500, "Internal Server Error"),
                refused: None,
                authenticated: false,
            },
        }
    }

    fn empty(&self, status: u16, reason: &str) -> Vec<u8> {
        ResponseWriter::new(status, reason)
            .header("Server", &self.server_header)
            .body(b"")
    }

    /// `GET /ws-redirection` with a websocket upgrade (RFC 6455 section 4.2.2).
    fn websocket_upgrade(&self, request: &HttpRequest) -> WebReply {
        let upgrade = request
            .header("upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        match (
            request.method.as_str(),
            upgrade,
            request.header("sec-websocket-key"),
        ) {
            ("GET", true, Some(key)) => {
                let mut sha1 = sha1::Sha1::new();
                sha1.update(key.trim().as_bytes());
                sha1.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
                let accept = BASE64.encode(sha1.finalize());
                let bytes = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                )
                .into_bytes();
                WebReply::WebSocket { bytes }
            }
            _ => WebReply::Response {
                bytes: self.empty(400, "Bad Request"),
                refused: None,
                authenticated: true,
            },
        }
    }

    /// An authorized request to the WS-Management service.
    fn wsman(&self, device: &mut Device, request: &HttpRequest, ctx: Context) -> Vec<u8> {
        if request.target != "/wsman" {
            return self.empty(404, "Not Found");
        }
        if request.method != "POST" {
            return ResponseWriter::new(405, "Method Not Allowed")
                .header("Allow", "POST")
                .header("Server", &self.server_header)
                .body(b"");
        }
        let Ok(body) = std::str::from_utf8(&request.body) else {
            return self.empty(400, "Bad Request");
        };
        let reply = device.handle(body, ctx);
        let reason = match reply.status {
            200 => "OK",
            400 => "Bad Request",
            500 => "Internal Server Error",
            _ => "Status",
        };
        // Chunked, as AMT sends its replies.
        ResponseWriter::new(reply.status, reason)
            .header("Content-Type", "application/soap+xml; charset=UTF-8")
            .header("X-Frame-Options", "DENY")
            .header("Server", &self.server_header)
            .chunked(reply.body.as_bytes(), 4096)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeviceConfig;

    fn request(text: &[u8]) -> HttpRequest {
        let mut reader = oobkit_http1::RequestReader::new();
        reader.next(text).unwrap().unwrap()
    }

    #[test]
    fn the_websocket_accept_key_is_rfc_6455s() {
        let device = Device::new(DeviceConfig::new("16.1.25", [1; 16]));
        let web = WebPort::new(&device, "admin", "pw", [2; 32]);
        // RFC 6455 section 1.3's example key and accept value.
        let upgrade = request(b"GET /ws-redirection HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
        let WebReply::WebSocket { bytes } = web.websocket_upgrade(&upgrade) else {
            panic!("no upgrade");
        };
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
            "{text}"
        );
    }

    #[test]
    fn unauthenticated_requests_get_amts_401() {
        let mut device = Device::new(DeviceConfig::new("16.1.25", [1; 16]));
        let mut web = WebPort::new(&device, "admin", "pw", [2; 32]);
        let ctx = Context {
            now_unix: 1_700_000_000,
            random: 1,
        };
        let post = request(b"POST /wsman HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        let WebReply::Response {
            bytes,
            refused,
            authenticated,
        } = web.handle(&mut device, &post, ctx, [3; 8])
        else {
            panic!("an upgrade without credentials");
        };
        assert!(!authenticated);
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.starts_with(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"Digest:"
            )
        );
        assert!(text.contains("qop=\"auth-int, auth\""), "{text}");
        assert!(
            !text.contains("algorithm"),
            "AMT names no algorithm: {text}"
        );
        assert!(text.ends_with(LOGON_FAILED));
        assert!(refused.is_none());
    }
}
