//! The device side of a redirection session: what a real AMT does (`docs/amt-redirection.md` section 4.5), for the
//! simulator and for tests of clients.
//!
//! The session asks its driver whether a session type may start ([`Event::StartRequested`],
//! answered with [`DeviceSession::answer_start`]), because availability lives in the device
//! model (SOL enabled? another KVM session open? consent given?).

use crate::link::Link;
use std::time::{Duration, Instant};

use oobkit_runloop::TimerTable;

use bytes::Bytes;
use oobkit_digest::{Algorithm, Exchange, Qop, Secret, compute_response};
use subtle::ConstantTimeEq;

use crate::client::URI;
use crate::codec::{
    AuthType, IderCommand, Message, SessionKind, SolSettings, StartStatus, decode, fields,
};
use crate::{CloseReason, Event};

/// Device settings.
#[derive(Clone)]
#[non_exhaustive]
pub struct DeviceSessionConfig {
    /// Firmware version (major, minor) reported in 0x11 and the IDE-R OPEN reply.
    pub firmware: [u8; 2],
    /// Digest realm (`Digest:<32 hex>`).
    pub realm: String,
    /// The user.
    pub username: String,
    /// Its password.
    pub password: String,
    /// Authentication types offered to a query; real AMT offers `[4]`.
    pub auth_types: Vec<AuthType>,
    /// Accept empty Kerberos as success (the AMT websocket transport, where HTTP Digest
    /// already authenticated the user).
    pub accept_empty_kerberos: bool,
    /// Limit on everything before the session is active.
    pub handshake_timeout: Duration,
}

impl std::fmt::Debug for DeviceSessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSessionConfig")
            .field("firmware", &self.firmware)
            .field("realm", &self.realm)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("auth_types", &self.auth_types)
            .finish_non_exhaustive()
    }
}

impl DeviceSessionConfig {
    /// Digest only, as AMT; 30 s handshake limit.
    pub fn new(firmware: [u8; 2], realm: &str, username: &str, password: &str) -> Self {
        Self {
            firmware,
            realm: realm.into(),
            username: username.into(),
            password: password.into(),
            auth_types: vec![AuthType::Digest],
            accept_empty_kerberos: false,
            handshake_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitStart,
    AwaitStartDecision(SessionKind),
    AwaitAuth(SessionKind),
    AwaitDigestResponse(SessionKind, AuthType),
    AwaitSolStart,
    SolActive,
    AwaitKvmStart,
    Handoff,
    AwaitIderOpen,
    IderActive,
    /// Closing after a final message (auth failure): nothing more is read.
    Closed,
}

/// Intel's minimum IDE-R receive timeout (*IDERTout*), milliseconds.
pub const IDER_MIN_RX_TIMEOUT_MS: u16 = 10_000;

oobkit_runloop::timers! {
    /// The device's deadlines, in the order they are handled when several fall due together.
    enum DeviceTimer {
        /// Everything before the session is active.
        Handshake,
        /// SOL: nothing from the client for HostSessionRxTimeout.
        ClientSilent,
        /// SOL: the next heartbeat to the client.
        Heartbeat,
    }
}

/// One device-side session (one connection).
pub struct DeviceSession {
    config: DeviceSessionConfig,
    nonce: String,
    state: State,
    link: Link,
    host_seq: u32,
    timers: TimerTable<DeviceTimer, { DeviceTimer::COUNT }>,
    rx_timeout: Option<Duration>,
    heartbeat: Option<Duration>,
    max_tx: usize,
}

impl std::fmt::Debug for DeviceSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSession")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl DeviceSession {
    /// A session on a new connection. `nonce` is fresh randomness for this connection's
    /// digest challenge (AMT sends 32 characters).
    pub fn new(config: DeviceSessionConfig, now: Instant, nonce: &str) -> Self {
        let mut timers = TimerTable::new();
        timers.set(DeviceTimer::Handshake, now + config.handshake_timeout);
        Self {
            timers,
            config,
            nonce: nonce.into(),
            state: State::AwaitStart,
            link: Link::default(),
            host_seq: 0,
            rx_timeout: None,
            heartbeat: None,
            max_tx: usize::from(u16::MAX),
        }
    }

    fn close(&mut self, reason: CloseReason) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.timers.stop_all();
            self.link.push_event(Event::Closed(reason));
        }
    }

    /// Whether the session has ended (send what [`DeviceSession::poll_transmit`] still has,
    /// then close the connection).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Bytes to send.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.link.poll_transmit()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.link.poll_event()
    }

    /// When [`DeviceSession::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Timers: handshake limit, the host-session receive timeout, heartbeats. Afterwards
    /// [`DeviceSession::poll_timeout`] is `None` or later than `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in self.timers.expire(now) {
            match timer {
                DeviceTimer::Handshake => self.close(CloseReason::HandshakeTimeout),
                // AMT drops a client silent for HostSessionRxTimeout.
                DeviceTimer::ClientSilent => self.close(CloseReason::PeerDead),
                DeviceTimer::Heartbeat => {
                    if let (State::SolActive, Some(period)) = (self.state, self.heartbeat) {
                        let seq = self.host_seq;
                        self.link.send(Message::SolHeartbeat { seq });
                        self.timers.set(DeviceTimer::Heartbeat, now + period);
                    }
                }
            }
        }
    }

    /// Answers [`Event::StartRequested`] (`Success`, `Busy`, `Unsupported`, ...) and goes on
    /// with the bytes that came after the request (they wait in the buffer until the answer).
    pub fn answer_start(&mut self, now: Instant, status: StartStatus) {
        let State::AwaitStartDecision(kind) = self.state else {
            return;
        };
        self.link.send(Message::StartSessionReply {
            status,
            protocol: [1, 0],
            firmware: self.config.firmware,
            iana: 343,
            oem: &[],
        });
        if status == StartStatus::Success {
            self.state = State::AwaitAuth(kind);
        } else {
            self.close(match status {
                StartStatus::Busy => CloseReason::Busy,
                StartStatus::Unsupported => CloseReason::Unsupported,
                other => CloseReason::DeviceError(other),
            });
        }
        self.handle_input(now, &[]);
    }

    /// Serial bytes from the host to the client (0x2A), split to the client's MaxTxBuffer.
    pub fn send_sol(&mut self, data: &[u8]) {
        if self.state != State::SolActive {
            return;
        }
        for chunk in data.chunks(self.max_tx) {
            self.host_seq = self.host_seq.wrapping_add(1);
            let seq = self.host_seq;
            self.link
                .send(Message::SolDataFromHost { seq, data: chunk });
        }
    }

    /// SOL control lines and host status (0x29).
    pub fn send_controls(&mut self, control: u8, status: u8) {
        if self.state == State::SolActive {
            let seq = self.host_seq;
            self.link.send(Message::SolControls {
                seq,
                control,
                status,
            });
        }
    }

    /// Sends an IDE-R message with the next sequence number.
    pub fn send_ider(&mut self, command: IderCommand, attributes: u8, body: &[u8]) {
        self.link.send_ider(command, attributes, body);
    }

    /// The connection closed.
    pub fn handle_eof(&mut self) {
        self.close(CloseReason::TransportClosed);
    }

    /// Bytes from the client.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if self.state == State::Closed {
            return;
        }
        if matches!(self.state, State::SolActive | State::IderActive)
            && let Some(t) = self.rx_timeout
        {
            self.timers.set(DeviceTimer::ClientSilent, now + t);
        }
        if self.state == State::Handoff {
            self.link.rfb(bytes);
            return;
        }
        self.link.receive(bytes);
        loop {
            let kind = match self.state {
                State::AwaitStart => None,
                State::AwaitStartDecision(_) => break, // wait for the driver's answer
                State::Closed | State::Handoff => break,
                _ => Some(self.kind()),
            };
            let frame = match self.link.next_frame(kind) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    self.close(CloseReason::Protocol(e));
                    break;
                }
            };
            let Ok(Some((message, _))) = decode(&frame, kind) else {
                unreachable!("split_frame returned a whole message")
            };
            if let Err(reason) = self.on_message(now, message) {
                self.close(reason);
                break;
            }
            self.deliver(frame);
        }
        if self.state == State::Handoff {
            // RFB bytes that came in the same read as 0x41.
            self.link.rfb(&[]);
        }
    }

    fn kind(&self) -> SessionKind {
        match self.state {
            State::AwaitStartDecision(k)
            | State::AwaitAuth(k)
            | State::AwaitDigestResponse(k, _) => k,
            State::AwaitSolStart | State::SolActive => SessionKind::Sol,
            State::AwaitKvmStart | State::Handoff => SessionKind::Kvm,
            _ => SessionKind::Ider,
        }
    }

    fn deliver(&mut self, frame: Bytes) {
        match frame.first() {
            Some(0x28) if self.state == State::SolActive => self.link.deliver_sol(frame),
            // Close, ping, features and heartbeats are answered here, not handed out.
            Some(cmd)
                if self.state == State::IderActive && !matches!(cmd, 0x42 | 0x44 | 0x48 | 0x4B) =>
            {
                self.link.deliver_ider(frame);
            }
            _ => {}
        }
    }

    fn auth_ok(&mut self, kind: SessionKind, t: AuthType) {
        self.link.send(Message::AuthenticateReply {
            status: 0,
            auth_type: t,
            data: &[],
        });
        self.link.push_event(Event::Authenticated { auth_type: t });
        self.state = match kind {
            SessionKind::Sol => State::AwaitSolStart,
            SessionKind::Kvm => State::AwaitKvmStart,
            SessionKind::Ider => State::AwaitIderOpen,
        };
    }

    fn auth_failed(&mut self, t: AuthType) -> Result<(), CloseReason> {
        self.link.send(Message::AuthenticateReply {
            status: 1,
            auth_type: t,
            data: &[],
        });
        Err(CloseReason::ClientAuthFailed)
    }

    fn on_message(&mut self, now: Instant, message: Message<'_>) -> Result<(), CloseReason> {
        match (self.state, message) {
            (State::AwaitStart, Message::StartSession(kind)) => {
                self.state = State::AwaitStartDecision(kind);
                self.link.push_event(Event::StartRequested(kind));
            }
            (
                State::AwaitAuth(_),
                Message::Authenticate {
                    auth_type: AuthType::Query,
                    ..
                },
            ) => {
                let types: Vec<u8> = self.config.auth_types.iter().map(|t| t.to_byte()).collect();
                self.link.send(Message::AuthenticateReply {
                    status: 0,
                    auth_type: AuthType::Query,
                    data: &types,
                });
            }
            (
                State::AwaitAuth(kind),
                Message::Authenticate {
                    auth_type: AuthType::Kerberos,
                    data,
                },
            ) if data.is_empty() && self.config.accept_empty_kerberos => {
                self.auth_ok(kind, AuthType::Kerberos);
            }
            (State::AwaitAuth(kind), Message::Authenticate { auth_type: t, data })
                if t == AuthType::UserPassword && self.config.auth_types.contains(&t) =>
            {
                let f = fields::split(data).map_err(CloseReason::Protocol)?;
                let ok = matches!(f.as_slice(), [user, pass]
                    if bool::from(user.ct_eq(self.config.username.as_bytes()) & pass.ct_eq(self.config.password.as_bytes())));
                if ok {
                    self.auth_ok(kind, t);
                } else {
                    return self.auth_failed(t);
                }
            }
            (State::AwaitAuth(kind), Message::Authenticate { auth_type: t, .. })
                if (t == AuthType::Digest || t == AuthType::Digest2069)
                    && self.config.auth_types.contains(&t) =>
            {
                // Digest-init: answer with realm, this connection's nonce and (type 4) qop.
                let mut d = Vec::new();
                fields::push(&mut d, self.config.realm.as_bytes())
                    .map_err(CloseReason::Protocol)?;
                fields::push(&mut d, self.nonce.as_bytes()).map_err(CloseReason::Protocol)?;
                if t == AuthType::Digest {
                    fields::push(&mut d, b"auth").map_err(CloseReason::Protocol)?;
                }
                self.link.send(Message::AuthenticateReply {
                    status: 1,
                    auth_type: t,
                    data: &d,
                });
                self.state = State::AwaitDigestResponse(kind, t);
            }
            (State::AwaitAuth(_), Message::Authenticate { auth_type: t, .. }) => {
                // Not offered (AMT 12 on the websocket refuses empty user/password so).
                self.link.send(Message::AuthenticateReply {
                    status: 2,
                    auth_type: t,
                    data: &[],
                });
            }
            (
                State::AwaitDigestResponse(kind, t),
                Message::Authenticate {
                    auth_type: got,
                    data,
                },
            ) if got == t => {
                if self.digest_valid(t, data) {
                    self.auth_ok(kind, t);
                } else {
                    return self.auth_failed(t);
                }
            }
            (State::AwaitSolStart, Message::SolStart(settings)) => self.start_sol(now, settings),
            (State::SolActive, Message::SolDataToHost { .. }) => {}
            (State::SolActive, Message::SolSettingsExtra { .. }) => {}
            // Client keepalives and echoed heartbeats only refresh the receive timer.
            (State::SolActive, Message::SolHeartbeat { .. } | Message::SolPong { .. }) => {}
            (State::SolActive, Message::SolPing { seq }) => {
                self.link.send(Message::SolPong { seq })
            }
            (State::SolActive, Message::SolEnd { seq }) => {
                self.link.send(Message::SolEndReply { seq });
                // No more heartbeats; the receive timeout stays armed for the client's 0x12.
                self.heartbeat = None;
                self.timers.stop(DeviceTimer::Heartbeat);
            }
            (State::AwaitKvmStart, Message::KvmStart) => {
                self.link.send(Message::KvmStartReply);
                self.timers.stop_all();
                self.state = State::Handoff;
                self.link.push_event(Event::RfbHandoff);
            }
            (State::AwaitIderOpen, Message::Ider(m)) if m.command == IderCommand::Open => {
                self.link.check_ider_seq(m.seq)?;
                let mut reply = [0u8; 22];
                reply[0] = 1; // protocol major
                reply[2] = self.config.firmware[0];
                reply[3] = self.config.firmware[1];
                reply[8..10].copy_from_slice(&8192u16.to_le_bytes()); // read buffer
                reply[10..12].copy_from_slice(&8192u16.to_le_bytes()); // write buffer
                reply[17..21].copy_from_slice(&343u32.to_le_bytes()); // IANA
                self.send_ider(IderCommand::OpenReply, 0, &reply);
                self.timers.stop(DeviceTimer::Handshake);
                self.state = State::IderActive;
                // The client's rx timeout from OPEN (bytes 0-1 of the body), never under
                // Intel's 10 s minimum: a client gone silent frees the one IDE-R session.
                let asked = m
                    .body
                    .get(..2)
                    .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
                let rx = Duration::from_millis(u64::from(asked.max(IDER_MIN_RX_TIMEOUT_MS)));
                self.rx_timeout = Some(rx);
                self.timers.set(DeviceTimer::ClientSilent, now + rx);
                self.link.push_event(Event::IderOpened {
                    reply: Bytes::new(),
                });
            }
            (State::IderActive, Message::Ider(m)) => {
                self.link.check_ider_seq(m.seq)?;
                match m.command {
                    IderCommand::Close => {
                        self.send_ider(IderCommand::CloseReply, 0, &[]);
                        return Err(CloseReason::Ended);
                    }
                    IderCommand::Ping => self.send_ider(IderCommand::Pong, 0, &[]),
                    IderCommand::DisableEnableFeatures => {
                        let kind = m.body.first().copied().unwrap_or(0);
                        // Type 1: registers available; 2: enabled; 3: set, always accepted.
                        let value: u32 = match kind {
                            1 => 1,
                            2 => 2,
                            _ => 1,
                        };
                        let mut body = vec![kind];
                        body.extend_from_slice(&value.to_le_bytes());
                        self.send_ider(IderCommand::FeaturesReply, 0, &body);
                        if kind == 3 {
                            let register = m
                                .body
                                .get(1..5)
                                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                            self.link.push_event(Event::IderEnabled { register });
                        }
                    }
                    _ => {}
                }
            }
            (_, Message::EndSession) => return Err(CloseReason::Ended),
            (_, other) => {
                let mut v = Vec::new();
                other.encode(&mut v);
                return Err(CloseReason::UnexpectedMessage(
                    v.first().copied().unwrap_or(0),
                ));
            }
        }
        Ok(())
    }

    fn start_sol(&mut self, now: Instant, settings: SolSettings) {
        // Echo the settings in bytes 8..20: satisfies every client in the spec's corpus.
        let mut echo = [0u8; 12];
        let mut encoded = Vec::new();
        Message::SolStart(settings).encode(&mut encoded);
        echo.copy_from_slice(&encoded[8..20]);
        self.link.send(Message::SolStartReply { status: 0, echo });
        self.max_tx = usize::from(settings.max_tx_buffer.max(1));
        self.timers.stop(DeviceTimer::Handshake);
        self.rx_timeout = (settings.host_session_rx_timeout > 0)
            .then(|| Duration::from_millis(u64::from(settings.host_session_rx_timeout)));
        if let Some(t) = self.rx_timeout {
            self.timers.set(DeviceTimer::ClientSilent, now + t);
        }
        self.heartbeat = (settings.heartbeat_interval > 0)
            .then(|| Duration::from_millis(u64::from(settings.heartbeat_interval)));
        if let Some(h) = self.heartbeat {
            self.timers.set(DeviceTimer::Heartbeat, now + h);
        }
        self.state = State::SolActive;
        self.link.push_event(Event::SolReady);
    }

    /// Checks a digest response: fields user, realm, nonce, uri, cnonce, nc, response[, qop].
    /// Any nc and cnonce are accepted, as AMT does; the nonce must be this connection's.
    fn digest_valid(&self, t: AuthType, data: &[u8]) -> bool {
        let Ok(f) = fields::split(data) else {
            return false;
        };
        let expected_len = if t == AuthType::Digest { 8 } else { 7 };
        if f.len() < expected_len {
            return false;
        }
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let (user, realm, nonce, uri, cnonce, nc, response) = (
            text(f[0]),
            text(f[1]),
            f[2],
            f[3],
            text(f[4]),
            text(f[5]),
            f[6],
        );
        if realm != self.config.realm
            || !bool::from(nonce.ct_eq(self.nonce.as_bytes()))
            || uri != URI.as_bytes()
            || user != self.config.username
        {
            return false;
        }
        let Ok(expected) = compute_response(
            &Exchange {
                algorithm: Algorithm::Md5,
                username: &user,
                realm: &realm,
                nonce: &self.nonce,
                method: "POST",
                uri: URI,
                qop: (t == AuthType::Digest).then_some(Qop::Auth),
                nc: &nc,
                cnonce: &cnonce,
                body: None,
            },
            Secret::Password(&self.config.password),
        ) else {
            return false;
        };
        bool::from(expected.as_bytes().ct_eq(response))
    }
}

oobkit_runloop::impl_machine!(DeviceSession, Event);
