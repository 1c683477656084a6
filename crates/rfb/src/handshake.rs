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
    /// VNC Authentication (security type 2, RFC 6143 section 7.2.2): the client encrypts a
    /// random challenge with DES under the password. What AMT offers on port 5900.
    VncPassword(VncAuth),
}

/// The secret and the challenge of one VNC Authentication. The challenge is fresh randomness
/// from the caller (the crate has no RNG); the password never appears in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct VncAuth {
    key: [u8; 8],
    challenge: [u8; 16],
}

impl std::fmt::Debug for VncAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VncAuth(<redacted>)")
    }
}

impl VncAuth {
    /// `password` (its first 8 bytes count, as with every VNC server: the protocol's key is 8
    /// bytes) and a fresh 16-byte `challenge`.
    pub fn new(password: &str, challenge: [u8; 16]) -> Self {
        let mut key = [0u8; 8];
        for (k, b) in key.iter_mut().zip(password.as_bytes()) {
            // The VNC convention: each key byte with its bits mirrored (DES ignores bit 0 of
            // each byte, the password's low bits survive this way).
            *k = b.reverse_bits();
        }
        Self { key, challenge }
    }

    /// The response a client knowing the password sends: the challenge, DES-ECB encrypted.
    pub fn expected_response(&self) -> [u8; 16] {
        use des::cipher::{BlockCipherEncrypt, KeyInit};
        let des = des::Des::new(&self.key.into());
        let mut out = self.challenge;
        for half in out.chunks_exact_mut(8) {
            let block: &mut [u8; 8] = half.try_into().expect("8-byte chunks");
            let mut array = (*block).into();
            des.encrypt_block(&mut array);
            block.copy_from_slice(&array);
        }
        out
    }

    /// Whether `response` is right, compared in constant time.
    pub fn verify(&self, response: &[u8; 16]) -> bool {
        use subtle::ConstantTimeEq;
        self.expected_response().ct_eq(response).into()
    }
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
    /// The client's VNC password was wrong; the failure is sent, close after sending it
    /// (count it against the address, as for any failed login).
    PasswordRefused,
    /// The client is not speaking RFB as offered, or is too slow; close the connection.
    Failed(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Version,
    SecurityChoice(RfbVersion),
    VncResponse(RfbVersion),
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
                    match (&self.security, choice) {
                        (Security::None, 1) => {
                            if version == RfbVersion::V3_8 {
                                self.out.extend_from_slice(&0u32.to_be_bytes());
                            }
                            self.state = State::ClientInit(version);
                        }
                        (Security::VncPassword(auth), 2) => {
                            let challenge = auth.challenge;
                            self.out.extend_from_slice(&challenge);
                            self.state = State::VncResponse(version);
                        }
                        _ => {
                            return self
                                .finish(HandshakeEvent::Failed("security type not offered"));
                        }
                    }
                }
                State::VncResponse(version) => {
                    let Some(response) = self.inbuf.get(..16) else {
                        return;
                    };
                    let response: [u8; 16] = response.try_into().expect("16 bytes");
                    self.inbuf.drain(..16);
                    // Only a VNC password offer leads here; anything else fails, never panics.
                    let verified = match &self.security {
                        Security::VncPassword(auth) => auth.verify(&response),
                        _ => false,
                    };
                    if verified {
                        // SecurityResult OK (sent after VNC Authentication in every version).
                        self.out.extend_from_slice(&0u32.to_be_bytes());
                        self.state = State::ClientInit(version);
                    } else {
                        self.out.extend_from_slice(&1u32.to_be_bytes());
                        if version == RfbVersion::V3_8 {
                            self.push_text("Authentication failed");
                        }
                        return self.finish(HandshakeEvent::PasswordRefused);
                    }
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
            (Security::VncPassword(auth), RfbVersion::V3_3) => {
                let challenge = auth.challenge;
                self.out.extend_from_slice(&2u32.to_be_bytes());
                self.out.extend_from_slice(&challenge);
                self.state = State::VncResponse(version);
            }
            (Security::VncPassword(_), _) => {
                self.out.extend_from_slice(&[1, 2]);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(security: Security, client: &[u8]) -> (Vec<u8>, Option<HandshakeEvent>) {
        let now = Instant::now();
        let mut server = ServerHandshake::new(security, ServerInit::new(8, 8, "t"), now);
        server.handle_input(now, client);
        let mut out = Vec::new();
        while let Some(bytes) = server.poll_transmit() {
            out.extend_from_slice(&bytes);
        }
        (out, server.poll_event())
    }

    #[test]
    fn vnc_password_right_and_wrong_in_3_8_and_3_3() {
        let auth = VncAuth::new("Sim-P@ss1", [0x5A; 16]);
        let right = auth.expected_response();
        let mut hello = b"RFB 003.008\n\x02".to_vec();
        hello.extend_from_slice(&right);
        hello.push(1); // ClientInit, shared
        let (out, event) = run(Security::VncPassword(auth.clone()), &hello);
        assert_eq!(
            &out[12..14],
            &[1, 2],
            "one type offered: VNC Authentication"
        );
        assert_eq!(&out[14..30], &[0x5A; 16], "the challenge");
        assert_eq!(&out[30..34], &[0, 0, 0, 0], "SecurityResult OK");
        assert!(
            matches!(event, Some(HandshakeEvent::Ready { .. })),
            "{event:?}"
        );

        let mut wrong = b"RFB 003.008\n\x02".to_vec();
        wrong.extend_from_slice(&[0; 16]);
        let (out, event) = run(Security::VncPassword(auth.clone()), &wrong);
        assert_eq!(&out[30..34], &[0, 0, 0, 1], "SecurityResult failed");
        assert_eq!(&out[38..], b"Authentication failed", "3.8 says why");
        assert_eq!(event, Some(HandshakeEvent::PasswordRefused));

        // 3.3: the server names the type, then the challenge; no choice byte.
        let mut old = b"RFB 003.003\n".to_vec();
        old.extend_from_slice(&right);
        old.push(0);
        let (out, event) = run(Security::VncPassword(auth), &old);
        assert_eq!(&out[12..16], &[0, 0, 0, 2]);
        assert_eq!(&out[32..36], &[0, 0, 0, 0]);
        assert!(matches!(
            event,
            Some(HandshakeEvent::Ready { shared: false, .. })
        ));
    }

    #[test]
    fn only_the_first_eight_password_bytes_count_and_none_is_refused() {
        let long = VncAuth::new("12345678-and-more", [1; 16]);
        let eight = VncAuth::new("12345678", [1; 16]);
        assert_eq!(long.expected_response(), eight.expected_response());
        assert_ne!(
            VncAuth::new("12345679", [1; 16]).expected_response(),
            eight.expected_response()
        );
        assert_eq!(format!("{long:?}"), "VncAuth(<redacted>)");
        let (_, event) = run(Security::VncPassword(eight), b"RFB 003.008\n\x01");
        assert_eq!(
            event,
            Some(HandshakeEvent::Failed("security type not offered"))
        );
    }
}
