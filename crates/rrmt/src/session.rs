//! Agent and server sessions (`docs/rrmt.md`, "Session"), sans-IO: bytes and `now` in; bytes,
//! events and the next deadline out. Drain [`AgentSession::poll_transmit`] and
//! `poll_event` after every call.
//!
//! Both roles share one core: framing, version handshake, keepalive with dead-peer detection,
//! and channels with flow control (a side may send on a channel only what the other side
//! granted; data beyond the grant ends the session).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use oobkit_runloop::TimerTable;

use crate::codec::{ErrorCode, Frame, MAX_CHANNEL_DATA, decode};

/// `text` cut to at most `max` bytes at a character boundary, for fields with a length limit
/// (names: 255 bytes; error messages: one frame).
fn fit(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Protocol versions this crate speaks.
pub const VERSIONS: (u8, u8) = (2, 2);

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// Closed in order (revoked, or by the local side).
    #[error("session closed")]
    Closed,
    /// The server revoked this agent's token.
    #[error("the token was revoked")]
    Revoked,
    /// Authorization was refused.
    #[error("authorization refused: {0}")]
    NotAuthorized(String),
    /// No common protocol version.
    #[error("no common protocol version (peer speaks {min}..={max})")]
    Version {
        /// Peer's lowest.
        min: u8,
        /// Peer's highest.
        max: u8,
    },
    /// The peer sent an Error frame.
    #[error("peer error {}: {message}", .code.to_byte())]
    PeerError {
        /// Code.
        code: ErrorCode,
        /// Message.
        message: String,
    },
    /// Bytes that are not frames, or a frame at the wrong time.
    #[error("protocol error: {0}")]
    Protocol(ProtocolViolation),
    /// The peer sent more than its window on a channel.
    #[error("flow-control violation on channel {0}")]
    FlowControl(u32),
    /// Nothing received for three heartbeat intervals.
    #[error("peer silent for three heartbeat intervals")]
    PeerDead,
    /// The handshake did not finish in time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The transport closed.
    #[error("connection closed")]
    TransportClosed,
}

/// What the peer did wrong, for [`CloseReason::Protocol`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolViolation {
    /// The bytes are not a frame.
    #[error(transparent)]
    Decode(#[from] crate::DecodeError),
    /// A frame type that has no place in the session's state.
    #[error("unexpected frame {0:#04x}")]
    UnexpectedFrame(u8),
    /// A frame other than Hello, Authorize or Error before authorization.
    #[error("frame {0:#04x} before authorization")]
    BeforeAuthorization(u8),
    /// Data, a resize or a close for a channel that is not open.
    #[error("unknown channel {0}")]
    UnknownChannel(u32),
    /// A channel opened twice.
    #[error("channel {0} opened twice")]
    ChannelOpenedTwice(u32),
    /// Output or a result for a request that is not pending.
    #[error("reply for unknown request {0}")]
    UnknownRequest(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Channel {
    /// Bytes we may still send.
    send_window: u64,
    /// Bytes the peer may still send us.
    recv_window: u64,
}

oobkit_runloop::timers! {
    /// A session's deadlines, in the order they are handled when several fall due together.
    enum SessionTimer {
        /// Hello, authorization and provisioning.
        Handshake,
        /// Nothing heard for three heartbeat intervals.
        DeadPeer,
        /// Nothing heard for one heartbeat interval: send a Ping.
        Keepalive,
    }
}

/// What both roles share.
#[derive(Debug)]
struct Core {
    inbuf: Vec<u8>,
    out: Vec<u8>,
    closed: Option<CloseReason>,
    heartbeat: Option<Duration>,
    /// When the peer was last heard from: the heartbeat timers start from it.
    last_rx: Instant,
    ping_nonce: u64,
    timers: TimerTable<SessionTimer, { SessionTimer::COUNT }>,
    channels: BTreeMap<u32, Channel>,
    /// Whether the end was reported as an event.
    reported_close: bool,
}

/// Most bytes buffered of an incomplete frame: one frame.
const MAX_INBUF: usize = crate::codec::HEADER + crate::codec::MAX_DATA;

impl Core {
    fn new(now: Instant, handshake: Duration) -> Self {
        Self {
            inbuf: Vec::new(),
            out: Vec::new(),
            closed: None,
            heartbeat: None,
            last_rx: now,
            ping_nonce: 0,
            timers: {
                let mut timers = TimerTable::new();
                timers.set(SessionTimer::Handshake, now + handshake);
                timers
            },
            channels: BTreeMap::new(),
            reported_close: false,
        }
    }

    fn send(&mut self, frame: &Frame<'_>) {
        // Frames built here always fit; a failure would be a bug in this module.
        frame.encode(&mut self.out).expect("frame fits");
    }

    fn fail(&mut self, code: ErrorCode, reason: CloseReason) {
        if self.closed.is_none() {
            let message = reason.to_string();
            self.send(&Frame::Error {
                code,
                message: fit(&message, crate::codec::MAX_DATA - 1),
            });
            self.closed = Some(reason);
        }
    }

    /// The reason the session ended, once, for the roles' `Closed` events.
    fn take_close(&mut self) -> Option<CloseReason> {
        match &self.closed {
            Some(reason) if !self.reported_close => {
                self.reported_close = true;
                Some(reason.clone())
            }
            _ => None,
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        self.timers.next()
    }

    /// The session is authorized: heartbeats every `secs` (0: none), timed from the last
    /// frame heard.
    fn activate(&mut self, secs: u16) {
        self.timers.stop(SessionTimer::Handshake);
        self.heartbeat = (secs > 0).then(|| Duration::from_secs(u64::from(secs)));
        self.heard(self.last_rx);
    }

    /// The peer was heard at `now`: the keepalive and dead-peer timers start over.
    fn heard(&mut self, now: Instant) {
        self.last_rx = now;
        if let Some(h) = self.heartbeat {
            self.timers.set(SessionTimer::Keepalive, now + h);
            self.timers.set(SessionTimer::DeadPeer, now + h * 3);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        for timer in self.timers.expire(now) {
            if self.closed.is_some() {
                break;
            }
            match timer {
                SessionTimer::Handshake => self.closed = Some(CloseReason::HandshakeTimeout),
                SessionTimer::DeadPeer => self.closed = Some(CloseReason::PeerDead),
                // Nothing heard for a heartbeat interval: ask for a Pong.
                SessionTimer::Keepalive => {
                    if let Some(h) = self.heartbeat {
                        self.ping_nonce = self.ping_nonce.wrapping_add(1);
                        let nonce = self.ping_nonce;
                        self.send(&Frame::Ping { nonce });
                        self.timers.set(SessionTimer::Keepalive, now + h);
                    }
                }
            }
        }
        if self.closed.is_some() {
            self.timers.stop_all();
        }
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    /// Accounts for received channel data; beyond the window the session fails.
    fn receive_data(&mut self, channel: u32, len: usize) -> Result<(), CloseReason> {
        let entry = self
            .channels
            .get_mut(&channel)
            .ok_or(CloseReason::Protocol(ProtocolViolation::UnknownChannel(
                channel,
            )))?;
        if len as u64 > entry.recv_window {
            return Err(CloseReason::FlowControl(channel));
        }
        entry.recv_window -= len as u64;
        Ok(())
    }

    /// Sends as much of `data` as the window allows; returns how much was taken.
    fn send_data(&mut self, channel: u32, data: &[u8]) -> usize {
        if self.closed.is_some() {
            return 0;
        }
        let Some(entry) = self.channels.get_mut(&channel) else {
            return 0;
        };
        let n = data
            .len()
            .min(usize::try_from(entry.send_window).unwrap_or(usize::MAX));
        entry.send_window -= n as u64;
        for chunk in data[..n].chunks(MAX_CHANNEL_DATA) {
            self.send(&Frame::ChannelData {
                channel,
                data: chunk,
            });
        }
        n
    }

    fn grant(&mut self, channel: u32, credit: u32) {
        if let Some(entry) = self.channels.get_mut(&channel) {
            entry.recv_window = entry.recv_window.saturating_add(u64::from(credit));
            self.send(&Frame::WindowAdjust { channel, credit });
        }
    }

    /// Frames the two roles treat alike. Returns `Ok(true)` if handled.
    fn common<E>(
        &mut self,
        frame: &Frame<'_>,
        events: &mut VecDeque<E>,
        data_event: impl FnOnce(u32, Vec<u8>) -> E,
        close_event: impl FnOnce(u32, i32) -> E,
    ) -> Result<bool, CloseReason> {
        match frame {
            Frame::Ping { nonce } => self.send(&Frame::Pong { nonce: *nonce }),
            Frame::Pong { .. } => {}
            Frame::Error { code, message } => {
                return Err(CloseReason::PeerError {
                    code: *code,
                    message: (*message).to_owned(),
                });
            }
            Frame::ChannelData { channel, data } => {
                self.receive_data(*channel, data.len())?;
                events.push_back(data_event(*channel, data.to_vec()));
            }
            Frame::WindowAdjust { channel, credit } => {
                if let Some(entry) = self.channels.get_mut(channel) {
                    entry.send_window = entry.send_window.saturating_add(u64::from(*credit));
                }
            }
            Frame::ChannelClose { channel, exit } => {
                if self.channels.remove(channel).is_some() {
                    events.push_back(close_event(*channel, *exit));
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Feeds bytes through the decoder, calling `on_frame` for each complete frame.
fn feed(
    core: &mut Core,
    now: Instant,
    bytes: &[u8],
    mut on_frame: impl FnMut(&mut Core, Frame<'_>) -> Result<(), CloseReason>,
) {
    if core.closed.is_some() {
        return;
    }
    core.heard(now);
    core.inbuf.extend_from_slice(bytes);
    let mut consumed = 0;
    // Taken out so that frames borrowing it can be handed to `on_frame` with the core; put
    // back afterwards with the consumed bytes drained (the allocation is kept: no copy of the
    // rest into a new buffer on every input).
    let mut buf = std::mem::take(&mut core.inbuf);
    loop {
        match decode(&buf[consumed..]) {
            Ok(None) => break,
            Ok(Some((frame, used))) => {
                consumed += used;
                if let Err(reason) = on_frame(core, frame) {
                    let code = match reason {
                        CloseReason::FlowControl(_) => ErrorCode::FlowControl,
                        CloseReason::NotAuthorized(_) => ErrorCode::NotAuthorized,
                        CloseReason::Version { .. } => ErrorCode::Version,
                        _ => ErrorCode::Protocol,
                    };
                    if matches!(reason, CloseReason::PeerError { .. } | CloseReason::Revoked) {
                        core.closed = Some(reason);
                    } else {
                        core.fail(code, reason);
                    }
                    return;
                }
                if core.closed.is_some() {
                    return;
                }
            }
            Err(e) => {
                core.fail(ErrorCode::Protocol, CloseReason::Protocol(e.into()));
                return;
            }
        }
    }
    buf.drain(..consumed);
    core.inbuf = buf;
    debug_assert!(core.inbuf.len() <= MAX_INBUF);
}

fn negotiate(min: u8, max: u8) -> Result<u8, CloseReason> {
    let chosen = max.min(VERSIONS.1);
    if chosen < min.max(VERSIONS.0) {
        return Err(CloseReason::Version { min, max });
    }
    Ok(chosen)
}

/// What happens on the agent side.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentEvent {
    /// Authorized: the server's parameters.
    Provisioned {
        /// This host's id.
        host_id: [u8; 16],
        /// Most shells at once.
        max_channels: u16,
    },
    /// Run a command; answer with `output` and `result`.
    Execute {
        /// Request id.
        request: u32,
        /// Kill after this long (0: none).
        timeout_ms: u32,
        /// Most output bytes to send.
        output_cap: u32,
        /// Program and arguments.
        argv: Vec<Vec<u8>>,
    },
    /// Open a shell on a pseudo-terminal; answer with `shell_opened` (or `close_channel`).
    ShellOpen {
        /// Channel.
        channel: u32,
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
        /// TERM.
        term: String,
    },
    /// Input for a shell.
    ChannelData {
        /// Channel.
        channel: u32,
        /// Bytes.
        data: Vec<u8>,
    },
    /// Terminal size change.
    Resize {
        /// Channel.
        channel: u32,
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// The server closed a channel.
    ChannelClosed {
        /// Channel.
        channel: u32,
    },
    /// Store this token, then call `token_stored`.
    Reauthorize {
        /// The new token.
        token: [u8; 16],
    },
    /// The session ended.
    Closed(CloseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AgentState {
    AwaitHello,
    AwaitProvision,
    Active,
}

/// The agent's session.
#[derive(Debug)]
pub struct AgentSession {
    core: Core,
    state: AgentState,
    token: [u8; 16],
    window: u32,
    events: VecDeque<AgentEvent>,
}

impl AgentSession {
    /// A session authorizing with `token`; Hello is ready to send.
    pub fn new(name: &str, token: [u8; 16], now: Instant) -> Self {
        let mut core = Core::new(now, Duration::from_secs(30));
        core.send(&Frame::Hello {
            min: VERSIONS.0,
            max: VERSIONS.1,
            name: fit(name, 255),
        });
        Self {
            core,
            state: AgentState::AwaitHello,
            token,
            window: 0,
            events: VecDeque::new(),
        }
    }

    /// Bytes to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.core.poll_transmit()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<AgentEvent> {
        self.events
            .pop_front()
            .or_else(|| self.core.take_close().map(AgentEvent::Closed))
    }

    /// When `handle_timeout` is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// Timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
    }

    /// The transport closed.
    pub fn handle_eof(&mut self) {
        self.core.closed.get_or_insert(CloseReason::TransportClosed);
    }

    /// Bytes from the server.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        let (state, token, events) = (&mut self.state, self.token, &mut self.events);
        let window = &mut self.window;
        feed(&mut self.core, now, bytes, |core, frame| {
            match (*state, &frame) {
                (AgentState::AwaitHello, Frame::Hello { min, max, .. }) => {
                    negotiate(*min, *max)?;
                    core.send(&Frame::Authorize { token });
                    *state = AgentState::AwaitProvision;
                }
                (
                    AgentState::AwaitProvision,
                    Frame::Provision {
                        host_id,
                        heartbeat_secs,
                        max_channels,
                        window: w,
                    },
                ) => {
                    core.activate(*heartbeat_secs);
                    *window = *w;
                    *state = AgentState::Active;
                    events.push_back(AgentEvent::Provisioned {
                        host_id: *host_id,
                        max_channels: *max_channels,
                    });
                }
                (
                    _,
                    Frame::Error {
                        code: ErrorCode::NotAuthorized,
                        message,
                    },
                ) => {
                    return Err(CloseReason::NotAuthorized((*message).to_owned()));
                }
                (
                    AgentState::Active,
                    Frame::Execute {
                        request,
                        timeout_ms,
                        output_cap,
                        argv,
                    },
                ) => {
                    events.push_back(AgentEvent::Execute {
                        request: *request,
                        timeout_ms: *timeout_ms,
                        output_cap: *output_cap,
                        argv: argv.iter().map(|a| a.to_vec()).collect(),
                    });
                }
                (
                    AgentState::Active,
                    Frame::ShellOpen {
                        channel,
                        cols,
                        rows,
                        window: server_window,
                        term,
                    },
                ) => {
                    if core.channels.contains_key(channel) {
                        return Err(CloseReason::Protocol(
                            ProtocolViolation::ChannelOpenedTwice(*channel),
                        ));
                    }
                    // Our window toward the server is Provision's; the server's toward us is
                    // in ShellOpen.
                    core.channels.insert(
                        *channel,
                        Channel {
                            send_window: 0,
                            recv_window: u64::from(*server_window),
                        },
                    );
                    events.push_back(AgentEvent::ShellOpen {
                        channel: *channel,
                        cols: *cols,
                        rows: *rows,
                        term: (*term).to_owned(),
                    });
                }
                (
                    AgentState::Active,
                    Frame::Resize {
                        channel,
                        cols,
                        rows,
                    },
                ) => {
                    events.push_back(AgentEvent::Resize {
                        channel: *channel,
                        cols: *cols,
                        rows: *rows,
                    });
                }
                (AgentState::Active, Frame::Reauthorize { token }) => {
                    events.push_back(AgentEvent::Reauthorize { token: *token });
                }
                (AgentState::Active, Frame::Revoke) => return Err(CloseReason::Revoked),
                (AgentState::Active, f) => {
                    if !core.common(
                        f,
                        events,
                        |channel, data| AgentEvent::ChannelData { channel, data },
                        |channel, _| AgentEvent::ChannelClosed { channel },
                    )? {
                        return Err(CloseReason::Protocol(ProtocolViolation::UnexpectedFrame(
                            f.kind(),
                        )));
                    }
                }
                (_, f @ (Frame::Ping { .. } | Frame::Pong { .. } | Frame::Error { .. })) => {
                    core.common(
                        f,
                        events,
                        |channel, data| AgentEvent::ChannelData { channel, data },
                        |channel, _| AgentEvent::ChannelClosed { channel },
                    )?;
                }
                (_, f) => {
                    return Err(CloseReason::Protocol(
                        ProtocolViolation::BeforeAuthorization(f.kind()),
                    ));
                }
            }
            Ok(())
        });
    }

    /// Command output (split into frames as needed).
    pub fn output(&mut self, request: u32, stream: u8, data: &[u8]) {
        for chunk in data.chunks(crate::codec::MAX_DATA - 5) {
            self.core.send(&Frame::Output {
                request,
                stream,
                data: chunk,
            });
        }
    }

    /// A command finished.
    pub fn result(&mut self, request: u32, exit: i32, flags: u8) {
        self.core.send(&Frame::Result {
            request,
            exit,
            flags,
        });
    }

    /// The shell for `channel` runs.
    pub fn shell_opened(&mut self, channel: u32) {
        if let Some(entry) = self.core.channels.get_mut(&channel) {
            entry.send_window = u64::from(self.window);
            let window = u32::try_from(entry.recv_window).unwrap_or(u32::MAX);
            self.core.send(&Frame::ShellOpened { channel, window });
        }
    }

    /// Shell output: sends what the window allows, returns how much was taken. The caller
    /// keeps the rest (and stops reading the shell) until the server grants more.
    pub fn send_channel_data(&mut self, channel: u32, data: &[u8]) -> usize {
        self.core.send_data(channel, data)
    }

    /// Grants the server `credit` more bytes of input on `channel` (after consuming some).
    pub fn grant(&mut self, channel: u32, credit: u32) {
        self.core.grant(channel, credit);
    }

    /// Closes a channel with the shell's exit status.
    pub fn close_channel(&mut self, channel: u32, exit: i32) {
        if self.core.channels.remove(&channel).is_some() {
            self.core.send(&Frame::ChannelClose { channel, exit });
        }
    }

    /// The token from Reauthorize is stored; the server may forget the old one.
    pub fn token_stored(&mut self, token: [u8; 16]) {
        self.token = token;
        self.core.send(&Frame::Ack { request: 0 });
    }

    /// Bytes the server still lets us send on `channel`.
    pub fn send_window(&self, channel: u32) -> u64 {
        self.core
            .channels
            .get(&channel)
            .map_or(0, |c| c.send_window)
    }
}

/// What happens on the server side.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// The agent presents a token: answer with `accept` or `reject`.
    AuthorizeRequested {
        /// The token.
        token: [u8; 16],
        /// The agent's name from Hello.
        name: String,
    },
    /// Command output.
    Output {
        /// Request id.
        request: u32,
        /// 1 stdout, 2 stderr.
        stream: u8,
        /// Bytes.
        data: Vec<u8>,
    },
    /// A command finished.
    Result {
        /// Request id.
        request: u32,
        /// Exit status.
        exit: i32,
        /// Flags.
        flags: u8,
    },
    /// A shell runs.
    ShellOpened {
        /// Channel.
        channel: u32,
    },
    /// Shell output.
    ChannelData {
        /// Channel.
        channel: u32,
        /// Bytes.
        data: Vec<u8>,
    },
    /// A shell ended.
    ChannelClosed {
        /// Channel.
        channel: u32,
        /// Exit status.
        exit: i32,
    },
    /// The agent stored the new token.
    TokenRotated,
    /// The session ended.
    Closed(CloseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    AwaitHello,
    AwaitAuthorize,
    AwaitDecision,
    Active,
}

/// Server settings for a session.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerSessionConfig {
    /// Server name in Hello.
    pub name: String,
    /// Keepalive period.
    pub heartbeat_secs: u16,
    /// Most shells per agent.
    pub max_channels: u16,
    /// Window granted for each direction of a channel.
    pub window: u32,
    /// Handshake limit.
    pub handshake_timeout: Duration,
}

impl ServerSessionConfig {
    /// Heartbeat 30 s, 8 channels, 256 KiB windows, 30 s handshake.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            heartbeat_secs: 30,
            max_channels: 8,
            window: 256 * 1024,
            handshake_timeout: Duration::from_secs(30),
        }
    }
}

/// The server's side of one agent connection.
#[derive(Debug)]
pub struct ServerSession {
    core: Core,
    config: ServerSessionConfig,
    state: ServerState,
    name: String,
    next_request: u32,
    pending_requests: BTreeMap<u32, ()>,
    next_channel: u32,
    rotating: Option<[u8; 16]>,
    events: VecDeque<ServerEvent>,
}

/// Why a request could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The agent is not authorized yet, or the session ended.
    #[error("the agent is not connected and authorized")]
    NotActive,
    /// The channel limit is reached.
    #[error("too many shells open on this agent")]
    TooManyChannels,
    /// An argument or name does not fit a frame.
    #[error("request too large for one frame")]
    TooLarge,
}

impl ServerSession {
    /// A session for a new agent connection.
    pub fn new(config: ServerSessionConfig, now: Instant) -> Self {
        Self {
            core: Core::new(now, config.handshake_timeout),
            config,
            state: ServerState::AwaitHello,
            name: String::new(),
            next_request: 1,
            pending_requests: BTreeMap::new(),
            next_channel: 1,
            rotating: None,
            events: VecDeque::new(),
        }
    }

    /// Bytes to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.core.poll_transmit()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events
            .pop_front()
            .or_else(|| self.core.take_close().map(ServerEvent::Closed))
    }

    /// When `handle_timeout` is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// Timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
    }

    /// The transport closed.
    pub fn handle_eof(&mut self) {
        self.core.closed.get_or_insert(CloseReason::TransportClosed);
    }

    /// Whether the agent is authorized and the session open.
    pub fn is_active(&self) -> bool {
        self.state == ServerState::Active && self.core.closed.is_none()
    }

    /// Bytes from the agent.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        let (state, name, events) = (&mut self.state, &mut self.name, &mut self.events);
        let (pending, rotating, server_name) = (
            &mut self.pending_requests,
            &mut self.rotating,
            self.config.name.as_str(),
        );
        feed(&mut self.core, now, bytes, |core, frame| {
            match (*state, &frame) {
                (
                    ServerState::AwaitHello,
                    Frame::Hello {
                        min,
                        max,
                        name: agent,
                    },
                ) => {
                    let v = negotiate(*min, *max)?;
                    *name = (*agent).to_owned();
                    core.send(&Frame::Hello {
                        min: v,
                        max: v,
                        name: fit(server_name, 255),
                    });
                    *state = ServerState::AwaitAuthorize;
                }
                (ServerState::AwaitAuthorize, Frame::Authorize { token }) => {
                    *state = ServerState::AwaitDecision;
                    events.push_back(ServerEvent::AuthorizeRequested {
                        token: *token,
                        name: name.clone(),
                    });
                }
                (
                    ServerState::Active,
                    Frame::Output {
                        request,
                        stream,
                        data,
                    },
                ) => {
                    if !pending.contains_key(request) {
                        return Err(CloseReason::Protocol(ProtocolViolation::UnknownRequest(
                            *request,
                        )));
                    }
                    events.push_back(ServerEvent::Output {
                        request: *request,
                        stream: *stream,
                        data: data.to_vec(),
                    });
                }
                (
                    ServerState::Active,
                    Frame::Result {
                        request,
                        exit,
                        flags,
                    },
                ) => {
                    if pending.remove(request).is_none() {
                        return Err(CloseReason::Protocol(ProtocolViolation::UnknownRequest(
                            *request,
                        )));
                    }
                    events.push_back(ServerEvent::Result {
                        request: *request,
                        exit: *exit,
                        flags: *flags,
                    });
                }
                (ServerState::Active, Frame::ShellOpened { channel, window }) => {
                    let entry = core.channels.get_mut(channel).ok_or(CloseReason::Protocol(
                        ProtocolViolation::UnknownChannel(*channel),
                    ))?;
                    entry.send_window = u64::from(*window);
                    events.push_back(ServerEvent::ShellOpened { channel: *channel });
                }
                (ServerState::Active, Frame::Ack { request: 0 }) if rotating.is_some() => {
                    *rotating = None;
                    events.push_back(ServerEvent::TokenRotated);
                }
                (ServerState::Active, f) => {
                    if !core.common(
                        f,
                        events,
                        |channel, data| ServerEvent::ChannelData { channel, data },
                        |channel, exit| ServerEvent::ChannelClosed { channel, exit },
                    )? {
                        return Err(CloseReason::Protocol(ProtocolViolation::UnexpectedFrame(
                            f.kind(),
                        )));
                    }
                }
                // Before authorization nothing but Hello and Authorize (and keepalive).
                (_, f @ (Frame::Ping { .. } | Frame::Pong { .. } | Frame::Error { .. })) => {
                    core.common(
                        f,
                        events,
                        |channel, data| ServerEvent::ChannelData { channel, data },
                        |channel, exit| ServerEvent::ChannelClosed { channel, exit },
                    )?;
                }
                (_, f) => {
                    return Err(CloseReason::Protocol(
                        ProtocolViolation::BeforeAuthorization(f.kind()),
                    ));
                }
            }
            Ok(())
        });
    }

    /// The token is valid: provision the agent.
    pub fn accept(&mut self, host_id: [u8; 16]) {
        if self.state != ServerState::AwaitDecision {
            return;
        }
        self.core.send(&Frame::Provision {
            host_id,
            heartbeat_secs: self.config.heartbeat_secs,
            max_channels: self.config.max_channels,
            window: self.config.window,
        });
        self.core.activate(self.config.heartbeat_secs);
        self.state = ServerState::Active;
    }

    /// The token is not valid.
    pub fn reject(&mut self, why: &str) {
        self.core.fail(
            ErrorCode::NotAuthorized,
            CloseReason::NotAuthorized(why.to_owned()),
        );
    }

    /// Asks the agent to run `argv`; returns the request id that pairs the reply.
    pub fn execute(
        &mut self,
        argv: &[&[u8]],
        timeout_ms: u32,
        output_cap: u32,
    ) -> Result<u32, RequestError> {
        if !self.is_active() {
            return Err(RequestError::NotActive);
        }
        let request = self.next_request;
        let mut probe = Vec::new();
        Frame::Execute {
            request,
            timeout_ms,
            output_cap,
            argv: argv.to_vec(),
        }
        .encode(&mut probe)
        .map_err(|_| RequestError::TooLarge)?;
        self.core.out.extend_from_slice(&probe);
        self.next_request = self.next_request.wrapping_add(1).max(1);
        self.pending_requests.insert(request, ());
        Ok(request)
    }

    /// Opens a shell; returns its channel.
    pub fn open_shell(&mut self, cols: u16, rows: u16, term: &str) -> Result<u32, RequestError> {
        if !self.is_active() {
            return Err(RequestError::NotActive);
        }
        if self.core.channels.len() >= usize::from(self.config.max_channels) {
            return Err(RequestError::TooManyChannels);
        }
        if term.len() > 255 {
            return Err(RequestError::TooLarge);
        }
        let channel = self.next_channel;
        self.next_channel = self.next_channel.wrapping_add(1).max(1);
        self.core.channels.insert(
            channel,
            Channel {
                send_window: 0,
                recv_window: u64::from(self.config.window),
            },
        );
        self.core.send(&Frame::ShellOpen {
            channel,
            cols,
            rows,
            window: self.config.window,
            term,
        });
        Ok(channel)
    }

    /// Input for a shell: sends what the window allows, returns how much was taken.
    pub fn send_channel_data(&mut self, channel: u32, data: &[u8]) -> usize {
        self.core.send_data(channel, data)
    }

    /// Grants the agent `credit` more bytes of output on `channel`.
    pub fn grant(&mut self, channel: u32, credit: u32) {
        self.core.grant(channel, credit);
    }

    /// Terminal size change.
    pub fn resize(&mut self, channel: u32, cols: u16, rows: u16) {
        if self.core.channels.contains_key(&channel) {
            self.core.send(&Frame::Resize {
                channel,
                cols,
                rows,
            });
        }
    }

    /// Closes a shell from the server side.
    pub fn close_channel(&mut self, channel: u32) {
        if self.core.channels.remove(&channel).is_some() {
            self.core.send(&Frame::ChannelClose { channel, exit: -1 });
        }
    }

    /// Gives the agent a new token (it answers ACK once stored).
    pub fn reauthorize(&mut self, token: [u8; 16]) {
        if self.is_active() {
            self.rotating = Some(token);
            self.core.send(&Frame::Reauthorize { token });
        }
    }

    /// Revokes the agent: Revoke is sent and the session ends.
    pub fn revoke(&mut self) {
        if self.core.closed.is_none() {
            self.core.send(&Frame::Revoke);
            self.core.closed = Some(CloseReason::Revoked);
        }
    }

    /// Requests sent and not answered yet.
    pub fn pending_requests(&self) -> usize {
        self.pending_requests.len()
    }
}

oobkit_runloop::impl_machine!(AgentSession, AgentEvent);

oobkit_runloop::impl_machine!(ServerSession, ServerEvent);
