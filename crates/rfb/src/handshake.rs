//! The server side of the RFB handshake: ProtocolVersion, security, ClientInit, ServerInit.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use oobkit_runloop::TimerTable;

use crate::PixelFormat;

/// How long a client has from the connection to ClientInit.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest reason or desktop name sent.
const MAX_TEXT: usize = 4096;

/// The protocol versions a client can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RfbVersion {
    /// 3.3: the server picks the security type.
    V3_3,
    /// 3.7: the client picks, no SecurityResult for None.
    V3_7,
    /// 3.8: the client picks, SecurityResult always, failure reasons.
    V3_8,
}

impl RfbVersion {
    /// The version a client's 12-byte ProtocolVersion names; other 3.x minors count as 3.3,
    /// as RFC 6143 says. `None` for anything that is not RFB 3.
    pub fn parse(version: &[u8; 12]) -> Option<Self> {
        Some(match version {
            b"RFB 003.007\n" => Self::V3_7,
            b"RFB 003.008\n" => Self::V3_8,
            v if v.starts_with(b"RFB 003.") && v[11] == b'\n' => Self::V3_3,
            _ => return None,
        })
    }
}

/// What the server offers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Security {
    /// Security type None: the transport already authenticated the user (AMT's redirection
    /// port), or nothing is protected.
    None,
    /// No security type: the connection fails with this reason, which viewers display.
    Refuse(String),
}

/// What ServerInit announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInit {
    /// Framebuffer width.
    pub width: u16,
    /// Framebuffer height.
    pub height: u16,
    /// The server's pixel format.
    pub format: PixelFormat,
    /// The desktop name.
    pub name: String,
}

impl ServerInit {
    /// A `width` x `height` screen in [`PixelFormat::DEFAULT`].
    pub fn new(width: u16, height: u16, name: &str) -> Self {
        Self {
            width,
            height,
            format: PixelFormat::DEFAULT,
            name: name.into(),
        }
    }
}

/// What the handshake produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeEvent {
    /// ServerInit is sent: the session runs. `leftover` are client bytes that followed
    /// ClientInit (its first messages).
    Ready {
        /// The client's version.
        version: RfbVersion,
        /// ClientInit's shared flag.
        shared: bool,
        /// Bytes after ClientInit.
        leftover: Vec<u8>,
    },
    /// The refusal reason is sent; close the connection after sending it.
    Refused,
    /// The client is not speaking RFB as offered, or is too slow; close the connection.
    Failed(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Version,
    SecurityChoice(RfbVersion),
    ClientInit(RfbVersion),
    Done,
}

oobkit_runloop::timers! {
    enum HandshakeTimer {
        Deadline,
    }
}

/// The server handshake as a state machine. The server speaks first: `RFB 003.008\n` is
/// ready in [`ServerHandshake::poll_transmit`] from the start.
#[derive(Debug)]
pub struct ServerHandshake {
    security: Security,
    init: ServerInit,
    state: State,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    events: VecDeque<HandshakeEvent>,
    timers: TimerTable<HandshakeTimer, { HandshakeTimer::COUNT }>,
}

impl ServerHandshake {
    /// A handshake on a new connection.
    pub fn new(security: Security, init: ServerInit, now: Instant) -> Self {
        let mut timers = TimerTable::new();
        timers.set(HandshakeTimer::Deadline, now + HANDSHAKE_TIMEOUT);
        Self {
            security,
            init,
            state: State::Version,
            inbuf: Vec::new(),
            out: b"RFB 003.008\n".to_vec(),
            events: VecDeque::new(),
            timers,
        }
    }

    fn finish(&mut self, event: HandshakeEvent) {
        self.state = State::Done;
        self.timers.stop_all();
        self.inbuf.clear();
        self.events.push_back(event);
    }

    fn push_text(&mut self, text: &str) {
        let text = &text.as_bytes()[..text.len().min(MAX_TEXT)];
        self.out
            .extend_from_slice(&(text.len() as u32).to_be_bytes());
        self.out.extend_from_slice(text);
    }

    /// Bytes from the client.
    pub fn handle_input(&mut self, _now: Instant, bytes: &[u8]) {
        if self.state == State::Done {
            return;
        }
        self.inbuf.extend_from_slice(bytes);
        loop {
            match self.state {
                State::Version => {
                    let Some(version) = self.inbuf.get(..12) else {
                        return;
                    };
                    let version: [u8; 12] = version.try_into().expect("12 bytes");
                    let Some(version) = RfbVersion::parse(&version) else {
                        return self.finish(HandshakeEvent::Failed("not an RFB 3 client"));
                    };
                    self.inbuf.drain(..12);
                    self.offer(version);
                }
                State::SecurityChoice(version) => {
                    let Some(&choice) = self.inbuf.first() else {
                        return;
                    };
                    self.inbuf.drain(..1);
                    if choice != 1 {
                        return self.finish(HandshakeEvent::Failed("security type not offered"));
                    }
                    if version == RfbVersion::V3_8 {
                        self.out.extend_from_slice(&0u32.to_be_bytes());
                    }
                    self.state = State::ClientInit(version);
                }
                State::ClientInit(version) => {
                    let Some(&shared) = self.inbuf.first() else {
                        return;
                    };
                    self.inbuf.drain(..1);
                    self.server_init();
                    let leftover = std::mem::take(&mut self.inbuf);
                    return self.finish(HandshakeEvent::Ready {
                        version,
                        shared: shared != 0,
                        leftover,
                    });
                }
                State::Done => return,
            }
        }
    }

    fn offer(&mut self, version: RfbVersion) {
        match (&self.security, version) {
            (Security::None, RfbVersion::V3_3) => {
                self.out.extend_from_slice(&1u32.to_be_bytes());
                self.state = State::ClientInit(version);
            }
            (Security::None, _) => {
                self.out.extend_from_slice(&[1, 1]);
                self.state = State::SecurityChoice(version);
            }
            (Security::Refuse(reason), _) => {
                let reason = reason.clone();
                if version == RfbVersion::V3_3 {
                    self.out.extend_from_slice(&0u32.to_be_bytes());
                } else {
                    self.out.push(0); // no security types: a reason follows
                }
                self.push_text(&reason);
                self.finish(HandshakeEvent::Refused);
            }
        }
    }

    fn server_init(&mut self) {
        self.out.extend_from_slice(&self.init.width.to_be_bytes());
        self.out.extend_from_slice(&self.init.height.to_be_bytes());
        self.out.extend_from_slice(&self.init.format.to_bytes());
        let name = self.init.name.clone();
        self.push_text(&name);
    }

    /// The connection closed.
    pub fn handle_eof(&mut self) {
        if self.state != State::Done {
            self.finish(HandshakeEvent::Failed(
                "the client closed during the handshake",
            ));
        }
    }

    /// Fails the handshake when its deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timers.expire(now).next().is_some() {
            self.finish(HandshakeEvent::Failed(
                "the client did not finish the handshake in time",
            ));
        }
    }

    /// Bytes to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    /// The outcome, once.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<HandshakeEvent> {
        self.events.pop_front()
    }

    /// The handshake deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }
}

oobkit_runloop::impl_machine!(ServerHandshake, HandshakeEvent);
