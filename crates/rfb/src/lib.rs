//! RFB (the VNC protocol, RFC 6143), sans-IO: what the simulated AMT's KVM screen, `kvm_vnc`'s
//! refusals and the browser consoles share.
//!
//! - [`ServerHandshake`]: the server side from the version string to ServerInit, with security
//!   type None or a refusal carrying a reason (which viewers show), under the run-loop contract
//!   of [`oobkit_runloop`] (a handshake deadline).
//! - [`ClientMessage`] and [`decode_client`]: the client's messages after the handshake,
//!   framed from a byte stream in any split, with bounds on the variable parts.
//! - [`PixelFormat`] and [`test_pattern_update`]: true-colour pixel formats and a framebuffer
//!   update of the colour-bar test pattern in Raw tiles of at most 64x64.
//!
//! The whole server loop, with a client's bytes fed in:
//!
//! ```
//! use std::time::Instant;
//! use oobkit_rfb::{decode_client, ClientMessage, HandshakeEvent, Machine, Output, Security,
//!     ServerHandshake, ServerInit};
//!
//! let now = Instant::now();
//! let init = ServerInit::new(1024, 768, "test screen");
//! let mut server = ServerHandshake::new(Security::None, init, now);
//! let mut to_client = Vec::new();
//! let mut rest = Vec::new();
//! // A 3.8 client: version, security type 1 (None), ClientInit (shared), then a request.
//! server.handle_input(now, b"RFB 003.008\n\x01\x01\x03\x00\x00\x00\x00\x00\x04\x00\x03\x00");
//! loop {
//!     match server.poll_output() {
//!         Output::Transmit(bytes) => to_client.extend_from_slice(&bytes),
//!         Output::Event(HandshakeEvent::Ready { leftover, .. }) => rest = leftover,
//!         Output::Event(other) => panic!("{other:?}"),
//!         Output::Timeout(_) => break,
//!     }
//! }
//! assert!(to_client.starts_with(b"RFB 003.008\n\x01\x01\x00\x00\x00\x00\x04\x00\x03\x00"));
//! let (message, _) = decode_client(&rest).unwrap().unwrap();
//! assert!(matches!(message, ClientMessage::FramebufferUpdateRequest { incremental: false, .. }));
//! ```
#![forbid(unsafe_code)]

mod handshake;
mod messages;
mod pixels;

pub use handshake::{
    HANDSHAKE_TIMEOUT, HandshakeEvent, RfbVersion, Security, ServerHandshake, ServerInit, VncAuth,
};
pub use messages::{ClientMessage, DecodeError, MAX_CUT_TEXT, MAX_ENCODINGS, decode_client};
pub use oobkit_runloop::{Machine, Output};
pub use pixels::{BARS, DESKTOP_SIZE, PixelFormat, pattern, test_pattern_update};

/// Entry points for the fuzz targets and their corpus-replay tests. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use std::time::{Duration, Instant};

    use crate::{HandshakeEvent, Security, ServerHandshake, ServerInit, decode_client};

    /// Arbitrary client bytes, in chunks sized by the first byte, through the handshake (both
    /// securities) and then the message decoder; the run-loop contract holds throughout.
    pub fn server(data: &[u8]) {
        let size = usize::from(data.first().copied().unwrap_or(1) % 16) + 1;
        let input = data.get(1..).unwrap_or_default();
        for security in [
            Security::None,
            Security::Refuse("no".into()),
            Security::VncPassword(crate::VncAuth::new("fuzz", [7; 16])),
        ] {
            let mut now = Instant::now();
            let mut server = ServerHandshake::new(security, ServerInit::new(64, 64, "f"), now);
            let mut rest = Vec::new();
            for chunk in input.chunks(size) {
                server.handle_input(now, chunk);
                now += Duration::from_secs(3);
                oobkit_runloop::check_timeout(&mut server, now);
                while server.poll_transmit().is_some() {}
                while let Some(event) = server.poll_event() {
                    if let HandshakeEvent::Ready { leftover, .. } = event {
                        rest = leftover;
                    }
                }
            }
            oobkit_runloop::check_run_down(&mut server, now, 4);
            let mut rest = rest.as_slice();
            while let Ok(Some((_, used))) = decode_client(rest) {
                assert!(used > 0 && used <= rest.len());
                rest = &rest[used..];
            }
        }
    }
}
