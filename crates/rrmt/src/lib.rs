//! The RRMT protocol (`docs/rrmt.md`): remote commands and shells for hosts behind firewalls,
//! sans-IO.
//!
//! ```
//! use oobkit_rrmt::codec::{decode, Frame};
//! let ping = Frame::Ping { nonce: 7 }.to_vec();
//! assert_eq!(ping, [0x05, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 7]);
//! assert_eq!(decode(&ping).unwrap(), Some((Frame::Ping { nonce: 7 }, 11)));
//! ```
#![forbid(unsafe_code)]

pub mod codec;
pub mod session;

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
    /// A payload over 65 535 bytes (or a name over 255) cannot be encoded.
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
