//! A terminal over a websocket, sans-IO: the frames a page and a gateway exchange
//! ([`Frame`]: output, input, resize, credit acknowledgements, pings, close with a reason), the
//! gateway's side of one connection ([`TermServer`]: byte-credit flow control, pings every
//! 25 s so proxies' 60 s timeouts never cut an idle session, deadlines for the page's size, a
//! silent page and idleness), and one-time session links ([`OneTimeSessions`]). Frames are
//! documented with byte diagrams in `docs/web-console.md`.
//!
//! Flow control: every output byte sent costs credit; at [`TermConfig::high_water`]
//! unacknowledged bytes (256 KiB) the driver stops reading the backend, and resumes once the
//! page's acknowledgements (sent from xterm.js's write callbacks, i.e. for bytes rendered) bring
//! it under [`TermConfig::low_water`]. So `yes` never queues more than a screenful of seconds,
//! and Ctrl-C shows at once.
//!
//! The whole loop, with the page and the backend played by the example:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use oobkit_term::{CloseCode, Frame, TermConfig, TermEvent, TermServer};
//! use oobkit_runloop::{Machine, Output};
//!
//! let now = Instant::now();
//! let mut term = TermServer::new(now, TermConfig::default());
//! // The page's first frame is its size: the driver opens the backend's terminal with it.
//! term.handle_input(now, &Frame::Resize { cols: 100, rows: 30 }.encode());
//! assert_eq!(term.poll_event(), Some(TermEvent::Started { cols: 100, rows: 30 }));
//! term.handle_input(now, &Frame::Input(b"yes\r").encode());
//! assert_eq!(term.poll_event(), Some(TermEvent::Input(b"yes\r".to_vec())));
//!
//! // The backend floods; the driver reads only while credit lasts.
//! let mut sent_to_page = Vec::new();
//! while term.may_read_backend() {
//!     term.send_output(now, &[b'y'; 4096]);
//!     while let Some(message) = term.poll_transmit() {
//!         sent_to_page.push(message);
//!     }
//! }
//! assert_eq!(term.unacknowledged(), 256 * 1024);
//! // The page renders and acknowledges; reading resumes under the low mark.
//! term.handle_input(now, &Frame::Ack(200 * 1024).encode());
//! assert!(term.may_read_backend());
//!
//! // Left alone, the session pings, and a page that never answers is closed.
//! let mut at = now;
//! let ended = loop {
//!     match term.poll_output() {
//!         Output::Transmit(message) => sent_to_page.push(message),
//!         Output::Event(TermEvent::Ended { code, reason }) => break (code, reason),
//!         Output::Event(other) => panic!("unexpected {other:?}"),
//!         Output::Timeout(Some(deadline)) => {
//!             at = deadline;
//!             term.handle_timeout(at);
//!         }
//!         Output::Timeout(None) => unreachable!("a live session always has a deadline"),
//!     }
//! };
//! assert_eq!(ended.0, CloseCode::Unresponsive);
//! assert_eq!(at - now, Duration::from_secs(25 + 30));
//! // The page was told why, in the last message.
//! let last = sent_to_page.last().unwrap();
//! assert!(matches!(Frame::decode(last), Ok(Frame::Close { code: CloseCode::Unresponsive, .. })));
//! ```
#![forbid(unsafe_code)]

mod frame;
mod onetime;
mod server;

pub use frame::{
    CloseCode, Frame, FrameError, FrameType, MAX_DIMENSION, MAX_REASON, truncate_reason,
};
pub use onetime::{CreateError, OneTimeConfig, OneTimeSessions, SessionId};
pub use server::{TermConfig, TermEvent, TermServer};

/// The websocket subprotocol of this protocol; the gateway echoes it.
pub const SUBPROTOCOL: &str = "oobkit.term.v1";

/// The prefix of the subprotocol value that carries a session link's id on the upgrade
/// (`oobkit.session.<id>`), so the id never travels in a URL, a log line or a Referer.
pub const SESSION_PROTOCOL_PREFIX: &str = "oobkit.session.";

/// Entry points for the fuzz targets and their corpus-replay tests. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use std::time::{Duration, Instant};

    use crate::{Frame, TermConfig, TermEvent, TermServer};

    /// Arbitrary bytes as page messages (split at each 0xff byte, which no frame type uses as
    /// its first byte) into a [`TermServer`], with backend output between them and time moving;
    /// every frame decodes to a typed error or re-encodes to its own bytes, credit never goes
    /// negative, and the run-loop contract holds.
    pub fn term_server(data: &[u8]) {
        let mut now = Instant::now();
        let mut term = TermServer::new(now, TermConfig::default());
        for message in data.split(|&b| b == 0xff) {
            if let Ok(frame) = Frame::decode(message) {
                assert_eq!(frame.encode(), message, "canonical frames round-trip");
            }
            term.handle_input(now, message);
            if term.may_read_backend() {
                term.send_output(now, &message[..message.len().min(64)]);
            }
            now += Duration::from_secs(u64::from(message.first().copied().unwrap_or(0) % 8));
            oobkit_runloop::check_timeout(&mut term, now);
            while term.poll_transmit().is_some() {}
            while let Some(event) = term.poll_event() {
                if let TermEvent::Input(bytes) = event {
                    assert!(bytes.len() <= TermConfig::default().max_input);
                }
            }
        }
        let _ = oobkit_runloop::check_run_down(&mut term, now, 8);
    }
}
