//! The RRMT protocol (`docs/rrmt.md`): remote commands and shells for hosts behind firewalls,
//! sans-IO.
//!
//! - [`codec`]: the frames, decoded from a byte stream in any split.
//! - [`AgentSession`] and [`ServerSession`]: the two roles as state machines under the
//!   run-loop contract of [`oobkit_runloop`].
//!
//! ```
//! use oobkit_rrmt::codec::{decode, Frame};
//! let ping = Frame::Ping { nonce: 7 }.to_vec();
//! assert_eq!(ping, [0x05, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 7]);
//! assert_eq!(decode(&ping).unwrap(), Some((Frame::Ping { nonce: 7 }, 11)));
//! ```
//!
//! # The run loop
//!
//! Feed received bytes and the time in; drain [`Machine::poll_output`] until it answers
//! [`Output::Timeout`]; call `handle_timeout` at that instant. Here an agent and a server talk
//! through in-memory wires with a virtual clock: the server authorizes the agent's token and
//! runs a command, the agent answers with its output and exit status. A real driver reads a
//! websocket and sleeps until the deadline (`examples/rrmt` does).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use oobkit_rrmt::{AgentEvent, AgentSession, Machine, Output, ServerEvent, ServerSession,
//!     ServerSessionConfig};
//!
//! let mut now = Instant::now();
//! let token = [7u8; 16]; // the caller's randomness, stored by the server as a hash
//! let mut agent = AgentSession::new("web1", token, now);
//! let mut server = ServerSession::new(ServerSessionConfig::new("rrmt-server"), now);
//! let (mut to_server, mut to_agent) = (Vec::new(), Vec::new());
//! let mut output = Vec::new();
//! let mut exit = None;
//! for _ in 0..20 {
//!     let agent_deadline = loop {
//!         match agent.poll_output() {
//!             Output::Transmit(bytes) => to_server.extend_from_slice(&bytes),
//!             Output::Event(AgentEvent::Execute { request, argv, .. }) => {
//!                 // A real agent runs the program; this one echoes its first argument.
//!                 agent.output(request, 1, &argv[1]);
//!                 agent.result(request, 0, 0);
//!             }
//!             Output::Event(_) => {}
//!             Output::Timeout(deadline) => break deadline,
//!         }
//!     };
//!     let server_deadline = loop {
//!         match server.poll_output() {
//!             Output::Transmit(bytes) => to_agent.extend_from_slice(&bytes),
//!             Output::Event(ServerEvent::AuthorizeRequested { token: t, .. }) => {
//!                 // Look the token up (constant-time, by hash) in the registry.
//!                 assert_eq!(t, token);
//!                 server.accept([1; 16]);
//!                 server.execute(&[b"echo", b"hello"], 10_000, 1 << 20).unwrap();
//!             }
//!             Output::Event(ServerEvent::Output { data, .. }) => output.extend_from_slice(&data),
//!             Output::Event(ServerEvent::Result { exit: status, .. }) => exit = Some(status),
//!             Output::Event(_) => {}
//!             Output::Timeout(deadline) => break deadline,
//!         }
//!     };
//!     if to_server.is_empty() && to_agent.is_empty() {
//!         now = [agent_deadline, server_deadline].into_iter().flatten().min()
//!             .unwrap_or(now + Duration::from_secs(1));
//!         agent.handle_timeout(now);
//!         server.handle_timeout(now);
//!         continue;
//!     }
//!     server.handle_input(now, &std::mem::take(&mut to_server));
//!     agent.handle_input(now, &std::mem::take(&mut to_agent));
//! }
//! assert_eq!((output.as_slice(), exit), (&b"hello"[..], Some(0)));
//! ```
#![forbid(unsafe_code)]

pub mod codec;
pub mod session;

pub use oobkit_runloop::{Machine, Output};
pub use session::{
    AgentEvent, AgentSession, CloseReason, ProtocolViolation, RequestError, ServerEvent,
    ServerSession, ServerSessionConfig,
};

/// Bytes that are not a valid RRMT frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A type byte no frame has.
    #[error("unknown frame type {0:#04x}")]
    UnknownType(u8),
    /// The payload does not have its type's layout (too short, too long, bad UTF-8).
    #[error("malformed payload for frame type {0:#04x}")]
    BadPayload(u8),
}

/// A frame that cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A payload over 65 535 bytes (or a name over 255, an argument list over 65 535 items)
    /// does not fit one frame.
    #[error("payload too long for one frame")]
    TooLong,
}

/// Entry points for the fuzz targets and their corpus-replay tests. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use std::time::{Duration, Instant};

    use crate::codec::decode;
    use crate::session::{AgentSession, ServerEvent, ServerSession, ServerSessionConfig};

    /// A byte stream through the decoder; what decodes re-encodes to the same frame.
    pub fn decoder(data: &[u8]) {
        let mut rest = data;
        while let Ok(Some((frame, used))) = decode(rest) {
            let again = frame.to_vec();
            assert_eq!(
                decode(&again).expect("re-encoded frame decodes"),
                Some((frame, again.len()))
            );
            rest = &rest[used..];
        }
    }

    fn chunks(data: &[u8]) -> impl Iterator<Item = &[u8]> {
        let size = usize::from(data.first().copied().unwrap_or(1) % 64) + 1;
        data.get(1..).unwrap_or_default().chunks(size)
    }

    /// Arbitrary server bytes to an agent, in chunks, with time passing.
    pub fn agent(data: &[u8]) {
        let mut now = Instant::now();
        let mut agent = AgentSession::new("fuzz", [1; 16], now);
        for chunk in chunks(data) {
            agent.handle_input(now, chunk);
            agent.send_channel_data(1, chunk);
            now += Duration::from_secs(7);
            oobkit_runloop::check_timeout(&mut agent, now);
            while agent.poll_transmit().is_some() {}
            while agent.poll_event().is_some() {}
        }
        oobkit_runloop::check_run_down(&mut agent, now, 16);
    }

    /// Arbitrary agent bytes to a server session that accepts any token.
    pub fn server(data: &[u8]) {
        let mut now = Instant::now();
        let mut server = ServerSession::new(ServerSessionConfig::new("fuzz"), now);
        for chunk in chunks(data) {
            server.handle_input(now, chunk);
            while let Some(event) = server.poll_event() {
                if let ServerEvent::AuthorizeRequested { .. } = event {
                    server.accept([2; 16]);
                    let _ = server.open_shell(80, 24, "vt100");
                    let _ = server.execute(&[b"ls"], 0, 0);
                }
            }
            server.send_channel_data(1, chunk);
            now += Duration::from_secs(7);
            oobkit_runloop::check_timeout(&mut server, now);
            while server.poll_transmit().is_some() {}
        }
        oobkit_runloop::check_run_down(&mut server, now, 16);
    }
}
