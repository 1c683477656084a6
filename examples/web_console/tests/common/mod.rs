//! Shared by web_console's tests: the console in-process in front of a test sshd, a terminal
//! client speaking oobkit.term.v1 like the page does, and HTTP requests.
#![allow(dead_code, unreachable_pub)]

pub mod page;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use oobkit_term::{CloseCode, Frame};
use oobkit_testkit::sshd::{self, Sshd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use web_console::{ConsoleConfig, GatewayAuth, HostKeyPolicy, TargetList};

pub const TOKEN: &str = "test-token-0123456789abcdef";

pub struct Console {
    pub addr: SocketAddr,
    pub known_hosts: PathBuf,
    _dir: TempDir,
}

pub use oobkit_testkit::TempDir;

pub fn config(known_hosts: PathBuf, policy: HostKeyPolicy) -> ConsoleConfig {
    let mut config = ConsoleConfig::new(
        known_hosts,
        GatewayAuth::Bearer {
            token: TOKEN.into(),
            user: "web-alice".into(),
        },
    );
    config.ssh.policy = policy;
    config.targets = TargetList(vec!["127.0.0.1:*".parse().unwrap()]);
    config
}

impl Console {
    /// A console whose known_hosts holds `known_hosts` (text), under `policy`.
    pub async fn start(known_hosts: &str, policy: HostKeyPolicy) -> Self {
        Self::start_with(known_hosts, |c| c.ssh.policy = policy).await
    }

    pub async fn start_with(known_hosts: &str, adjust: impl FnOnce(&mut ConsoleConfig)) -> Self {
        let dir = TempDir::new("console");
        let path = dir.0.join("known_hosts");
        if !known_hosts.is_empty() {
            std::fs::write(&path, known_hosts).unwrap();
        }
        let mut config = config(path.clone(), HostKeyPolicy::Reject);
        adjust(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(web_console::serve(listener, config));
        Self {
            addr,
            known_hosts: path,
            _dir: dir,
        }
    }

    /// POST /sessions with `body`; (status, JSON answer).
    pub async fn create(&self, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let body = body.to_string();
        let head = format!(
            "POST /sessions HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let raw = http(self.addr, format!("{head}{body}").as_bytes()).await;
        parse_response(&raw)
    }

    /// A session for the test account with its password; the link's id.
    pub async fn password_session(&self, sshd: &Sshd) -> String {
        let (status, answer) = self
            .create(&serde_json::json!({
                "host": "127.0.0.1", "port": sshd.port, "user": sshd::USER,
                "password": sshd::password(),
            }))
            .await;
        assert_eq!(status, 201, "{answer}");
        link_id(&answer)
    }

    /// Opens the terminal websocket for `id` (with `origin`, if any); the HTTP status on a
    /// refusal.
    pub async fn open(&self, id: &str, origin: Option<&str>) -> Result<TermClient, u16> {
        let mut request = format!("ws://{}/ws", self.addr)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            format!("oobkit.term.v1, oobkit.session.{id}")
                .parse()
                .unwrap(),
        );
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("Origin", origin.parse().unwrap());
        }
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        // As browsers do: small frames (acknowledgements, keys) go out at once.
        tcp.set_nodelay(true).unwrap();
        match tokio_tungstenite::client_async(request, tcp).await {
            Ok((ws, response)) => {
                assert_eq!(
                    response.headers().get("sec-websocket-protocol").unwrap(),
                    "oobkit.term.v1"
                );
                Ok(TermClient {
                    ws,
                    output: Vec::new(),
                    closed: None,
                    acknowledge: true,
                    mute: false,
                })
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(e) => panic!("websocket: {e}"),
        }
    }
}

pub fn link_id(answer: &serde_json::Value) -> String {
    let url = answer["url"].as_str().expect("a url");
    url.strip_prefix("/term#")
        .expect("a /term# link")
        .to_owned()
}

pub async fn http(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("an answer")
        .unwrap();
    raw
}

pub fn parse_response(raw: &[u8]) -> (u16, serde_json::Value) {
    let text = String::from_utf8_lossy(raw);
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// A terminal client doing what the page does: answers pings, acknowledges output.
pub struct TermClient {
    pub ws: Ws,
    /// All output so far.
    pub output: Vec<u8>,
    /// The close frame, once received.
    pub closed: Option<(CloseCode, String)>,
    /// Whether output is acknowledged as it arrives (false: a page that stopped rendering).
    pub acknowledge: bool,
    /// Whether nothing at all is answered (a page that stopped: no acknowledgements, no pongs).
    pub mute: bool,
}

impl TermClient {
    pub async fn send(&mut self, frame: Frame<'_>) {
        self.ws
            .send(Message::Binary(frame.encode().into()))
            .await
            .unwrap();
    }

    /// Sends without caring whether the console still listens (answers while reading what
    /// arrived before a close).
    async fn answer(&mut self, frame: Frame<'_>) {
        if self.mute {
            return;
        }
        let _ = self.ws.send(Message::Binary(frame.encode().into())).await;
    }

    pub async fn start(&mut self, cols: u16, rows: u16) {
        self.send(Frame::Resize { cols, rows }).await;
    }

    pub async fn input(&mut self, text: &str) {
        self.send(Frame::Input(text.as_bytes())).await;
    }

    /// Reads one message (handling it); false when the websocket ended.
    pub async fn step(&mut self, within: Duration) -> bool {
        let message = match tokio::time::timeout(within, self.ws.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(_) => return false,
            Err(_) => return true,
        };
        let Message::Binary(bytes) = message else {
            return !matches!(message, Message::Close(_));
        };
        match Frame::decode(&bytes).expect("the console sends valid frames") {
            Frame::Output(data) => {
                self.output.extend_from_slice(data);
                if self.acknowledge {
                    let n = data.len() as u32;
                    self.answer(Frame::Ack(n)).await;
                }
            }
            Frame::Ping(stamp) => self.answer(Frame::Pong(stamp)).await,
            Frame::Close { code, reason } => self.closed = Some((code, reason.to_owned())),
            _ => {}
        }
        true
    }

    /// Reads until the output (as text) contains `needle`, or panics after `within`.
    pub async fn until(&mut self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        // Only the output since the last look (and a needle's length before it) is searched:
        // a flood of output must not make the client itself the slow part.
        let mut searched = 0usize;
        loop {
            let from = searched.saturating_sub(needle.len());
            if String::from_utf8_lossy(&self.output[from..]).contains(needle) {
                break;
            }
            searched = self.output.len();
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero() && self.closed.is_none(),
                "no {needle:?} within {within:?}; closed {:?}; output: {:?}",
                self.closed,
                String::from_utf8_lossy(&self.output[self.output.len().saturating_sub(2000)..])
            );
            if !self.step(left.min(Duration::from_millis(200))).await {
                assert!(self.closed.is_some(), "ended without a close frame");
            }
        }
    }

    /// Reads until the close frame, or panics after `within`.
    pub async fn until_closed(&mut self, within: Duration) -> (CloseCode, String) {
        let deadline = Instant::now() + within;
        while self.closed.is_none() {
            assert!(Instant::now() < deadline, "not closed within {within:?}");
            if !self.step(Duration::from_millis(200)).await && self.closed.is_none() {
                panic!("the websocket ended without a close frame");
            }
        }
        self.closed.clone().unwrap()
    }
}
