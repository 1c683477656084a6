//! The client side of a redirection session (`docs/amt-redirection.md` sections 4.1-4.4).
//!
//! Drive it as any sans-IO machine: feed received bytes to [`ClientSession::handle_input`], call
//! [`ClientSession::handle_timeout`] when [`ClientSession::poll_timeout`] is reached, and after each call
//! drain [`ClientSession::poll_transmit`] (bytes to send) and [`ClientSession::poll_event`] (what happened)
//! until both return `None`.

use crate::link::Link;
use std::time::{Duration, Instant};

use oobkit_runloop::TimerTable;

use bytes::Bytes;
use oobkit_digest::{Algorithm, Exchange, Qop, Secret, compute_response};

use crate::codec::{
    AuthType, IderCommand, Message, SessionKind, SolSettings, StartStatus, decode, fields,
};
use crate::storage::{self, Answer, CommandWritten, ReadPlan, Sense};
use crate::{CloseReason, Event};

/// How often an IDE-R client sends a heartbeat: a third of the 30 s receive timeout it asks
/// for in OPEN (Intel's library uses half), so one late heartbeat does not end the session.
pub const IDER_HEARTBEAT: Duration = Duration::from_secs(10);

/// The largest IDE-R read-data payload (AMT's read buffer is at most 8192 bytes).
pub const MAX_IDER_CHUNK: usize = 8192;

/// How the client reaches the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// Raw TCP (16994) or TLS (16995): in-band authentication.
    Tcp,
    /// The AMT firmware's `/ws-redirection` websocket: HTTP Digest already authenticated the
    /// user, so the in-band step is an empty Kerberos message.
    AmtWebSocket,
}

/// Client session settings.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientSessionConfig {
    /// Session type.
    pub kind: SessionKind,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Transport.
    pub transport: Transport,
    /// SOL parameters sent in 0x20.
    pub sol: SolSettings,
    /// Limit on everything before the session is active.
    pub handshake_timeout: Duration,
    /// SOL keepalive (0x2B) period; MeshCommander and most clients use 2 s.
    pub keepalive_interval: Duration,
    /// Client nonce for the in-band digest (fresh randomness from the caller; 32 hex digits
    /// is what AMT clients send).
    pub cnonce: String,
    /// Accept the clear-text user/password method when it is the only one offered.
    pub allow_userpass: bool,
    /// IDE-R: when the device starts using the redirected drives.
    pub ider_start: IderStart,
}

/// When the managed host sees the redirected IDE-R drives (0x48 type 3, sent once the device
/// answered OPEN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IderStart {
    /// At once, resetting the host's view of the drives.
    Now,
    /// At the host's next reset (then boot it with `amt boot cd` and a power cycle).
    OnReboot,
    /// Once the host is idle.
    Graceful,
}

impl IderStart {
    /// The value of 0x48 type 3: enable (bit 0) and the start mode.
    pub const fn register_value(self) -> u32 {
        match self {
            Self::Now => 0x19,
            Self::OnReboot => 0x09,
            Self::Graceful => 0x11,
        }
    }
}

impl std::fmt::Debug for ClientSessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSessionConfig")
            .field("kind", &self.kind)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl ClientSessionConfig {
    /// Defaults: TCP, MeshCommander's SOL settings but with device heartbeats every 5 s (so a
    /// dead device is noticed after 20 s), 30 s handshake limit, 2 s keepalive.
    pub fn new(kind: SessionKind, username: &str, password: &str, cnonce: &str) -> Self {
        Self {
            kind,
            username: username.into(),
            password: password.into(),
            transport: Transport::Tcp,
            sol: SolSettings {
                heartbeat_interval: 5000,
                ..SolSettings::MESHCOMMANDER
            },
            handshake_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(2),
            cnonce: cnonce.into(),
            allow_userpass: true,
            ider_start: IderStart::Now,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitStartReply,
    AwaitAuthTypes,
    AwaitChallenge(AuthType),
    AwaitAuthResult(AuthType),
    AwaitSolReply,
    SolActive,
    AwaitSolEnd,
    AwaitKvmStart,
    /// The connection now carries raw RFB.
    Handoff,
    AwaitIderOpen,
    IderActive,
    Closed,
}

/// How long the client waits for the device to confirm the end of SOL (0x23) before it
/// closes anyway: a device that stopped answering must not keep the session open.
pub const END_CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

oobkit_runloop::timers! {
    /// The client's deadlines, in the order they are handled when several fall due together.
    enum ClientTimer {
        /// Everything before the session is active.
        Handshake,
        /// SOL: nothing heard from the device for four heartbeat intervals.
        DeadPeer,
        /// The device has not confirmed the end of SOL.
        EndConfirm,
        /// SOL: the next keepalive (0x2B).
        Keepalive,
    }
}

/// A client session.
pub struct ClientSession {
    config: ClientSessionConfig,
    state: State,
    link: Link,
    seq: u32,
    timers: TimerTable<ClientTimer, { ClientTimer::COUNT }>,
    /// Data queued before SOL is active.
    pending: Vec<u8>,
    max_tx: usize,
    /// IDE-R: the device's read buffer from its OPEN reply, the largest DATA_TO_HOST payload.
    ider_chunk: usize,
}

impl std::fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSession")
            .field("config", &self.config)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl ClientSession {
    /// Starts a session: the first bytes (0x10) are ready in [`ClientSession::poll_transmit`].
    pub fn new(config: ClientSessionConfig, now: Instant) -> Self {
        let max_tx = usize::from(config.sol.max_tx_buffer.max(1));
        let mut timers = TimerTable::new();
        timers.set(ClientTimer::Handshake, now + config.handshake_timeout);
        let mut client = Self {
            state: State::AwaitStartReply,
            link: Link::default(),
            seq: config.sol.seq,
            timers,
            pending: Vec::new(),
            max_tx,
            ider_chunk: MAX_IDER_CHUNK,
            config,
        };
        client.link.send(Message::StartSession(client.config.kind));
        client
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn close(&mut self, reason: CloseReason) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.timers.stop_all();
            self.link.push_event(Event::Closed(reason));
        }
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Bytes to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.link.poll_transmit()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.link.poll_event()
    }

    /// When [`ClientSession::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// The device's heartbeat period times four, when it sends heartbeats.
    fn dead_peer_after(&self) -> Option<Duration> {
        let hb = self.config.sol.heartbeat_interval;
        (hb > 0).then(|| Duration::from_millis(u64::from(hb)) * 4)
    }

    /// Timers: handshake limit, dead peer, end confirmation, keepalive. Afterwards
    /// [`ClientSession::poll_timeout`] is `None` or later than `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in self.timers.expire(now) {
            match timer {
                ClientTimer::Handshake => self.close(CloseReason::HandshakeTimeout),
                ClientTimer::DeadPeer => self.close(CloseReason::PeerDead),
                // The orderly end was asked for; the device just did not confirm it.
                ClientTimer::EndConfirm => self.close(CloseReason::Ended),
                ClientTimer::Keepalive if self.state == State::SolActive => {
                    let seq = self.next_seq();
                    self.link.send(Message::SolHeartbeat { seq });
                    self.timers
                        .set(ClientTimer::Keepalive, now + self.config.keepalive_interval);
                }
                // IDE-R: the device drops a client silent for its rx timeout (30 s asked in
                // OPEN); a host that reads nothing for a while must not end the session.
                ClientTimer::Keepalive if self.state == State::IderActive => {
                    self.send_ider(IderCommand::Heartbeat, 0, &[]);
                    self.timers
                        .set(ClientTimer::Keepalive, now + IDER_HEARTBEAT);
                }
                ClientTimer::Keepalive => {}
            }
        }
    }

    /// Sends serial bytes to the host, split to the device's MaxTxBuffer; queued until SOL is
    /// active.
    pub fn send_sol(&mut self, data: &[u8]) {
        match self.state {
            State::SolActive => {
                for chunk in data.chunks(self.max_tx.min(usize::from(u16::MAX))) {
                    let seq = self.next_seq();
                    self.link.send(Message::SolDataToHost { seq, data: chunk });
                }
            }
            State::Closed | State::AwaitSolEnd => {}
            _ => self.pending.extend_from_slice(data),
        }
    }

    /// Sends an IDE-R message, numbering it.
    pub fn send_ider(&mut self, command: IderCommand, attributes: u8, body: &[u8]) {
        self.link.send_ider(command, attributes, body);
    }

    /// IDE-R: the largest read-data payload the device takes in one message (its read buffer,
    /// at most 8192 bytes). Chunk [`crate::storage::ReadPlan`]s with it.
    pub fn ider_chunk(&self) -> usize {
        self.ider_chunk
    }

    /// IDE-R: completes a drive command without data, good (`None`) or CHECK CONDITION.
    pub fn ider_complete(&mut self, command: &CommandWritten, sense: Option<Sense>) {
        if self.state == State::IderActive {
            let body = storage::command_end_body(command.drive, sense);
            self.send_ider(IderCommand::CommandEndResponse, 2, &body);
        }
    }

    /// IDE-R: read data for a drive command, split at [`ClientSession::ider_chunk`]; with
    /// `last`, its final message completes the command. Call it as many times as the data
    /// takes (for example once per chunk read from an image).
    pub fn ider_data(&mut self, command: &CommandWritten, data: &[u8], last: bool) {
        if self.state != State::IderActive {
            return;
        }
        let mut pieces = data.chunks(self.ider_chunk).peekable();
        if data.is_empty() {
            // An empty reply still completes the command.
            if last {
                self.ider_complete(command, None);
            }
            return;
        }
        let mut message = Vec::with_capacity(storage::DATA_TO_HOST_HEADER + self.ider_chunk);
        while let Some(piece) = pieces.next() {
            let done = last && pieces.peek().is_none();
            // ider_chunk is at most 8192, so the length fits the u16 field.
            let len = piece.len() as u16;
            message.clear();
            message.extend_from_slice(&storage::data_to_host_header(command, len, done));
            message.extend_from_slice(piece);
            let attributes = storage::data_attributes(command, done);
            self.link
                .send_ider(IderCommand::DataToHost, attributes, &message);
        }
    }

    /// IDE-R: sends an [`Answer`] of [`crate::storage::MediaServer`] to `command`. Status and
    /// constant data complete it here; a read is returned for the caller to serve from the
    /// image with [`ClientSession::ider_data`].
    pub fn ider_answer(&mut self, command: &CommandWritten, answer: Answer) -> Option<ReadPlan> {
        match answer {
            Answer::Status(sense) => self.ider_complete(command, sense),
            Answer::Data(data) => self.ider_data(command, &data, true),
            Answer::Read(plan) => return Some(plan),
        }
        None
    }

    /// Ends the session in order: SOL end (0x22), then 0x12 after the reply (closed anyway
    /// after [`END_CONFIRM_TIMEOUT`] without one); other sessions close at once.
    pub fn end(&mut self, now: Instant) {
        match self.state {
            State::SolActive => {
                let seq = self.next_seq();
                self.link.send(Message::SolEnd { seq });
                self.state = State::AwaitSolEnd;
                self.timers.stop(ClientTimer::Keepalive);
                self.timers.stop(ClientTimer::DeadPeer);
                self.timers
                    .set(ClientTimer::EndConfirm, now + END_CONFIRM_TIMEOUT);
            }
            State::IderActive => {
                self.send_ider(IderCommand::Close, 0, &[]);
                self.link.send(Message::EndSession);
                self.close(CloseReason::Ended);
            }
            State::Closed => {}
            _ => {
                self.link.send(Message::EndSession);
                self.close(CloseReason::Ended);
            }
        }
    }

    /// The transport closed.
    pub fn handle_eof(&mut self) {
        let reason = if self.state == State::AwaitSolEnd {
            CloseReason::Ended
        } else {
            CloseReason::TransportClosed
        };
        self.close(reason);
    }

    /// Bytes received from the device.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if self.state == State::Closed {
            return;
        }
        if self.state == State::SolActive
            && let Some(after) = self.dead_peer_after()
        {
            self.timers.set(ClientTimer::DeadPeer, now + after);
        }
        if self.state == State::Handoff {
            self.link.rfb(bytes);
            return;
        }
        self.link.receive(bytes);
        while self.state != State::Closed && self.state != State::Handoff {
            let kind = Some(self.config.kind);
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

    /// Data-bearing messages become events after `on_message` accepted them, so their
    /// payloads can be cut from the buffer without copying.
    fn deliver(&mut self, frame: Bytes) {
        match frame.first() {
            Some(0x2A) if matches!(self.state, State::SolActive | State::AwaitSolEnd) => {
                self.link.deliver_sol(frame);
            }
            Some(0x40..=0x54) if self.state == State::IderActive => self.link.deliver_ider(frame),
            _ => {}
        }
    }

    fn on_message(&mut self, now: Instant, message: Message<'_>) -> Result<(), CloseReason> {
        match (self.state, message) {
            (
                State::AwaitStartReply,
                Message::StartSessionReply {
                    status, firmware, ..
                },
            ) => {
                match status {
                    StartStatus::Success => {}
                    StartStatus::Busy => return Err(CloseReason::Busy),
                    StartStatus::Unsupported => return Err(CloseReason::Unsupported),
                    StartStatus::TypeUnknown => return Err(CloseReason::TypeUnknown),
                    other => return Err(CloseReason::DeviceError(other)),
                }
                self.link.push_event(Event::SessionStarted { firmware });
                if self.config.transport == Transport::AmtWebSocket {
                    self.link.send(Message::Authenticate {
                        auth_type: AuthType::Kerberos,
                        data: &[],
                    });
                    self.state = State::AwaitAuthResult(AuthType::Kerberos);
                } else {
                    self.link.send(Message::Authenticate {
                        auth_type: AuthType::Query,
                        data: &[],
                    });
                    self.state = State::AwaitAuthTypes;
                }
            }
            (
                State::AwaitAuthTypes,
                Message::AuthenticateReply {
                    status: 0,
                    auth_type: AuthType::Query,
                    data,
                },
            ) => {
                // Preference 4 > 3 > 1, as amtterm, MeshCentral and the ui-toolkit.
                let chosen = [AuthType::Digest, AuthType::Digest2069]
                    .into_iter()
                    .chain(self.config.allow_userpass.then_some(AuthType::UserPassword))
                    .find(|t| data.contains(&t.to_byte()))
                    .ok_or_else(|| {
                        CloseReason::NoUsableAuth(
                            data.iter().map(|&b| AuthType::from_byte(b)).collect(),
                        )
                    })?;
                if chosen == AuthType::UserPassword {
                    let mut d = Vec::new();
                    fields::push(&mut d, self.config.username.as_bytes())
                        .map_err(CloseReason::Protocol)?;
                    fields::push(&mut d, self.config.password.as_bytes())
                        .map_err(CloseReason::Protocol)?;
                    self.link.send(Message::Authenticate {
                        auth_type: chosen,
                        data: &d,
                    });
                    self.state = State::AwaitAuthResult(chosen);
                } else {
                    // Digest-init: user, then empty realm and nonce, the URI, empty rest.
                    let mut d = Vec::new();
                    fields::push(&mut d, self.config.username.as_bytes())
                        .map_err(CloseReason::Protocol)?;
                    d.extend_from_slice(&[0, 0]);
                    fields::push(&mut d, URI.as_bytes()).map_err(CloseReason::Protocol)?;
                    d.extend_from_slice(if chosen == AuthType::Digest {
                        &[0; 4]
                    } else {
                        &[0; 3]
                    });
                    self.link.send(Message::Authenticate {
                        auth_type: chosen,
                        data: &d,
                    });
                    self.state = State::AwaitChallenge(chosen);
                }
            }
            (
                State::AwaitChallenge(kind),
                Message::AuthenticateReply {
                    status: 1,
                    auth_type: t,
                    data,
                },
            ) if t == kind => {
                let f = fields::split(data).map_err(CloseReason::Protocol)?;
                let (realm, nonce) = match f.as_slice() {
                    [realm, nonce, ..] => (*realm, *nonce),
                    _ => return Err(CloseReason::AuthRejected),
                };
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                let (realm, nonce) = (text(realm), text(nonce));
                // Type 4 uses qop auth (amtterm requires it); some firmware omits the qop
                // field (QuMesh), and auth is still what the device expects.
                let qop = (kind == AuthType::Digest).then_some(Qop::Auth);
                // nc 00000002 is what MeshCommander, MeshCentral, amtterm and nomis send.
                let nc = "00000002";
                let response = compute_response(
                    &Exchange {
                        algorithm: Algorithm::Md5,
                        username: &self.config.username,
                        realm: &realm,
                        nonce: &nonce,
                        method: "POST",
                        uri: URI,
                        qop,
                        nc,
                        cnonce: &self.config.cnonce,
                        body: None,
                    },
                    Secret::Password(&self.config.password),
                )
                .map_err(|_| CloseReason::AuthRejected)?;
                let mut d = Vec::new();
                let mut parts: Vec<&[u8]> = vec![
                    self.config.username.as_bytes(),
                    realm.as_bytes(),
                    nonce.as_bytes(),
                    URI.as_bytes(),
                    self.config.cnonce.as_bytes(),
                    nc.as_bytes(),
                    response.as_bytes(),
                ];
                if kind == AuthType::Digest {
                    parts.push(b"auth");
                }
                for part in parts {
                    fields::push(&mut d, part).map_err(CloseReason::Protocol)?;
                }
                self.link.send(Message::Authenticate {
                    auth_type: kind,
                    data: &d,
                });
                self.state = State::AwaitAuthResult(kind);
            }
            (
                State::AwaitChallenge(_) | State::AwaitAuthResult(_),
                Message::AuthenticateReply {
                    status,
                    auth_type: t,
                    ..
                },
            ) => {
                if status != 0 {
                    return Err(if status == 2 {
                        CloseReason::AuthNotSupported
                    } else {
                        CloseReason::AuthRejected
                    });
                }
                self.link.push_event(Event::Authenticated { auth_type: t });
                self.start_session(now);
            }
            (State::AwaitSolReply, Message::SolStartReply { status, .. }) => {
                if status != 0 {
                    return Err(CloseReason::SolStartFailed(status));
                }
                self.state = State::SolActive;
                self.timers.stop(ClientTimer::Handshake);
                self.timers
                    .set(ClientTimer::Keepalive, now + self.config.keepalive_interval);
                if let Some(after) = self.dead_peer_after() {
                    self.timers.set(ClientTimer::DeadPeer, now + after);
                }
                self.link.push_event(Event::SolReady);
                let pending = std::mem::take(&mut self.pending);
                self.send_sol(&pending);
            }
            (State::SolActive | State::AwaitSolEnd, Message::SolDataFromHost { .. }) => {}
            (
                State::SolActive | State::AwaitSolEnd,
                Message::SolControls {
                    control, status, ..
                },
            ) => {
                self.link.push_event(Event::SolControls { control, status });
            }
            // AMT may send heartbeats and pings; amtterm echoes them verbatim, and so do we.
            (State::SolActive | State::AwaitSolEnd, Message::SolHeartbeat { seq }) => {
                self.link.send(Message::SolHeartbeat { seq });
            }
            (State::SolActive | State::AwaitSolEnd, Message::SolPing { seq }) => {
                self.link.send(Message::SolPong { seq });
            }
            (State::SolActive | State::AwaitSolEnd, Message::SolPong { .. }) => {}
            (State::AwaitSolEnd, Message::SolEndReply { .. }) => {
                self.link.send(Message::EndSession);
                self.close(CloseReason::Ended);
            }
            (State::AwaitKvmStart, Message::KvmStartReply) => {
                self.timers.stop_all();
                self.state = State::Handoff;
                self.link.push_event(Event::RfbHandoff);
            }
            (State::AwaitIderOpen, Message::Ider(m)) if m.command == IderCommand::OpenReply => {
                self.link.check_ider_seq(m.seq)?;
                self.timers.stop(ClientTimer::Handshake);
                self.state = State::IderActive;
                // The read buffer (message byte 16); 0 or out of range means the default.
                let read_buffer = m
                    .body
                    .get(8..10)
                    .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
                if (1..=MAX_IDER_CHUNK).contains(&read_buffer) {
                    self.ider_chunk = read_buffer;
                }
                // Enable the drives (0x48 type 3) with the configured start.
                let mut enable = vec![3u8];
                enable.extend_from_slice(&self.config.ider_start.register_value().to_le_bytes());
                self.send_ider(IderCommand::DisableEnableFeatures, 0, &enable);
                self.timers
                    .set(ClientTimer::Keepalive, now + IDER_HEARTBEAT);
                self.link.push_event(Event::IderOpened {
                    reply: Bytes::copy_from_slice(m.body),
                });
            }
            (State::IderActive, Message::Ider(m)) => {
                self.link.check_ider_seq(m.seq)?;
                match m.command {
                    IderCommand::Ping => self.send_ider(IderCommand::Pong, 0, &[]),
                    IderCommand::CloseReply => return Err(CloseReason::Ended),
                    _ => {}
                }
            }
            (_, other) => return Err(CloseReason::UnexpectedMessage(first_byte(&other))),
        }
        Ok(())
    }

    fn start_session(&mut self, _now: Instant) {
        match self.config.kind {
            SessionKind::Sol => {
                self.link.send(Message::SolStart(self.config.sol));
                self.state = State::AwaitSolReply;
            }
            SessionKind::Kvm => {
                self.link.send(Message::KvmStart);
                self.state = State::AwaitKvmStart;
            }
            SessionKind::Ider => {
                // MeshCommander's OPEN: rx timeout 30 s, tx timeout 0, heartbeat 20 s, version 1.
                let mut body = Vec::with_capacity(10);
                body.extend_from_slice(&30000u16.to_le_bytes());
                body.extend_from_slice(&0u16.to_le_bytes());
                body.extend_from_slice(&20000u16.to_le_bytes());
                body.extend_from_slice(&1u32.to_le_bytes());
                self.send_ider(IderCommand::Open, 0, &body);
                self.state = State::AwaitIderOpen;
            }
        }
    }
}

/// The URI of the in-band digest.
pub const URI: &str = "/RedirectionService";

fn first_byte(message: &Message<'_>) -> u8 {
    let mut v = Vec::new();
    message.encode(&mut v);
    v.first().copied().unwrap_or(0)
}

oobkit_runloop::impl_machine!(ClientSession, Event);
