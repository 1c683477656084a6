//! The Intel AMT redirection protocol (Serial-over-LAN, KVM, IDE-R), sans-IO.
//!
//! - [`codec`]: every message of the session manager, SOL, KVM setup and IDE-R, decoded from a
//!   byte stream in any split and encoded into caller buffers.
//! - [`ClientSession`] and [`DeviceSession`]: the two roles as state machines under the run-loop
//!   contract of [`oobkit_runloop`] (the protocol itself: `docs/amt-redirection.md`).
//!
//! ```
//! use oobkit_redir::codec::{decode, Message, SessionKind};
//! let start = Message::StartSession(SessionKind::Sol).to_vec();
//! assert_eq!(start, b"\x10\x00\x00\x00SOL ");
//! assert_eq!(decode(&start, None).unwrap(), Some((Message::StartSession(SessionKind::Sol), 8)));
//! ```
//!
//! # The run loop
//!
//! Both roles are driven the same way: feed received bytes, the end of the stream and the
//! time in; drain [`Machine::poll_output`] until it answers [`Output::Timeout`] (bytes to
//! send and events come first, so nothing can be left behind); call `handle_timeout` when
//! that instant comes. Here a client and a device talk through two in-memory "wires" with a
//! virtual clock; a real driver reads a socket and sleeps until the deadline instead
//! (`oobkit-io` does exactly that).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use oobkit_redir::codec::{SessionKind, StartStatus};
//! use oobkit_redir::{ClientSession, ClientSessionConfig, DeviceSessionConfig, DeviceSession, Event, Machine, Output};
//!
//! let mut now = Instant::now();
//! let realm = "Digest:A3829B3827DE4D33D4449B366831FD01";
//! // The cnonce and nonce are the caller's randomness (fixed here for the example).
//! let config = ClientSessionConfig::new(SessionKind::Sol, "admin", "P@ssw0rd", "0123456789abcdef");
//! let mut client = ClientSession::new(config, now);
//! let device_config = DeviceSessionConfig::new([16, 1], realm, "admin", "P@ssw0rd");
//! let mut device = DeviceSession::new(device_config, now, "QYePBLMVAAAAAAAAjfXveceOM5bNfu/K");
//!
//! let (mut to_device, mut to_client) = (Vec::new(), Vec::new());
//! let mut serial = Vec::new();
//! for _ in 0..20 {
//!     // Drain the client completely; only then is its deadline known.
//!     let client_deadline = loop {
//!         match client.poll_output() {
//!             Output::Transmit(bytes) => to_device.extend_from_slice(&bytes),
//!             Output::Event(Event::SolReady) => client.send_sol(b"dir\r"),
//!             Output::Event(Event::SolData(bytes)) => serial.extend_from_slice(&bytes),
//!             Output::Event(_) => {}
//!             Output::Timeout(deadline) => break deadline,
//!         }
//!     };
//!     let device_deadline = loop {
//!         match device.poll_output() {
//!             Output::Transmit(bytes) => to_client.extend_from_slice(&bytes),
//!             // The host application decides: here SOL is enabled and free.
//!             Output::Event(Event::StartRequested(_)) => {
//!                 device.answer_start(now, StartStatus::Success)
//!             }
//!             // The serial port of the managed host answers what it is sent.
//!             Output::Event(Event::SolData(bytes)) => device.send_sol(&bytes),
//!             Output::Event(_) => {}
//!             Output::Timeout(deadline) => break deadline,
//!         }
//!     };
//!     if to_device.is_empty() && to_client.is_empty() {
//!         // Nothing in flight: time passes to the earliest deadline.
//!         let next = [client_deadline, device_deadline].into_iter().flatten().min();
//!         now = next.unwrap_or(now + Duration::from_secs(1));
//!         client.handle_timeout(now);
//!         device.handle_timeout(now);
//!         continue;
//!     }
//!     device.handle_input(now, &std::mem::take(&mut to_device));
//!     client.handle_input(now, &std::mem::take(&mut to_client));
//! }
//! assert_eq!(serial, b"dir\r");
//! ```
#![forbid(unsafe_code)]

pub mod client;
pub mod codec;
pub mod device;
pub mod el_torito;
mod error;
mod link;
pub mod storage;

use bytes::Bytes;

pub use client::{ClientSession, ClientSessionConfig, IderStart, Transport};
pub use device::{DeviceSession, DeviceSessionConfig};
pub use error::DecodeError;
pub use oobkit_runloop::{Machine, Output};

/// Something that happened in a session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Device side: a client asks for a session of this type; answer with
    /// [`DeviceSession::answer_start`].
    StartRequested(codec::SessionKind),
    /// The device accepted the session type (0x11 status 0).
    SessionStarted {
        /// Firmware version (major, minor) from the reply.
        firmware: [u8; 2],
    },
    /// Authentication succeeded with this [`codec::AuthType`].
    Authenticated {
        /// The method used.
        auth_type: codec::AuthType,
    },
    /// SOL is running: data can flow both ways.
    SolReady,
    /// Serial bytes from the host (client side) or for the host (device side).
    SolData(Bytes),
    /// SOL control lines and status from the host.
    SolControls {
        /// RTS 0x01, DTR 0x02, BREAK 0x04.
        control: u8,
        /// Bit 0x04: host powered on.
        status: u8,
    },
    /// KVM set up: from now on the connection carries raw RFB both ways, and the session no
    /// longer parses it. Relay the transport directly (no per-byte work).
    RfbHandoff,
    /// RFB bytes that arrived through the session (in the same read as the handoff, or fed
    /// after it).
    Rfb(Bytes),
    /// IDE-R opened; the body of the device's OPEN reply.
    IderOpened {
        /// Bytes after the 8-byte header (buffer sizes at 8 and 10, ...).
        reply: Bytes,
    },
    /// Device side: the client enabled the redirected drives (0x48 type 3); from now on the
    /// host may send drive commands. `register` is the value sent (bit 0 enable; 0x18 "now",
    /// 0x08 "on reboot", 0x10 "graceful").
    IderEnabled {
        /// The register value.
        register: u32,
    },
    /// An IDE-R message from the peer (its sequence already checked).
    Ider {
        /// The command.
        command: codec::IderCommand,
        /// Attributes byte.
        attributes: u8,
        /// Sequence number.
        seq: u32,
        /// Bytes after the 8-byte header.
        body: Bytes,
    },
    /// The session ended; nothing more will happen.
    Closed(CloseReason),
}

/// Why a session ended, worded for the person who has to act on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// Ended in order.
    #[error("session ended")]
    Ended,
    /// The transport closed under the session.
    #[error("the connection closed")]
    TransportClosed,
    /// Another session of this type is open on the device.
    #[error("the device is busy: another session of this type is already open")]
    Busy,
    /// The feature is disabled on the device.
    #[error(
        "the device does not allow this session: the feature is disabled (enable it with `amt redirection enable sol|ider|kvm`), or user consent is required (`amt consent start`, then `amt consent code N` with the code shown on the managed screen)"
    )]
    Unsupported,
    /// The device does not know the session type.
    #[error("the device does not know this session type")]
    TypeUnknown,
    /// 0x11 with another status.
    #[error("the device refused the session (status {:#04x})", .0.to_byte())]
    DeviceError(codec::StartStatus),
    /// No authentication method both sides support.
    #[error("no usable authentication method (device offers {0:?})")]
    NoUsableAuth(Vec<codec::AuthType>),
    /// Wrong user name or password.
    #[error("the device refused the user name or password")]
    AuthRejected,
    /// The device does not support the method (status 2).
    #[error("the device does not support this authentication method")]
    AuthNotSupported,
    /// Wrong credentials from the other side (device view).
    #[error("the client failed to authenticate")]
    ClientAuthFailed,
    /// 0x21 with a non-zero status.
    #[error("the device refused to start SOL (status {0:#04x})")]
    SolStartFailed(u8),
    /// The handshake did not complete in time.
    #[error("the session handshake timed out")]
    HandshakeTimeout,
    /// Nothing received for four heartbeat intervals (client) or the receive timeout (device).
    #[error("the peer went silent")]
    PeerDead,
    /// Bytes that are not a message.
    #[error("protocol error: {0}")]
    Protocol(DecodeError),
    /// A valid message at the wrong time.
    #[error("unexpected message {0:#04x} in this state")]
    UnexpectedMessage(u8),
    /// An IDE-R message out of sequence.
    #[error("IDE-R sequence gap: expected {expected}, got {got}")]
    IderSequence {
        /// Expected number.
        expected: u32,
        /// Received number.
        got: u32,
    },
}

/// Entry points for the fuzz targets and their corpus-replay tests. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use std::time::{Duration, Instant};

    use crate::codec::{SessionKind, StartStatus, decode};
    use crate::{ClientSession, ClientSessionConfig, DeviceSession, DeviceSessionConfig, Event};

    const KINDS: [Option<SessionKind>; 4] = [
        None,
        Some(SessionKind::Sol),
        Some(SessionKind::Kvm),
        Some(SessionKind::Ider),
    ];

    /// Decodes a stream in every session context; whatever decodes must re-encode to bytes
    /// that decode to the same message.
    pub fn decoder(data: &[u8]) {
        for kind in KINDS {
            let mut rest = data;
            while let Ok(Some((message, used))) = decode(rest, kind) {
                assert!(used > 0 && used <= rest.len());
                let encoded = message.to_vec();
                let again = decode(&encoded, kind).expect("re-encoded message decodes");
                assert_eq!(again, Some((message, encoded.len())));
                rest = &rest[used..];
            }
        }
    }

    /// Splits `data` into chunks sized by its own bytes, for feeding state machines.
    fn chunks(data: &[u8]) -> impl Iterator<Item = &[u8]> {
        let size = usize::from(data.first().copied().unwrap_or(1) % 32) + 1;
        data.get(1..).unwrap_or_default().chunks(size)
    }

    /// Feeds arbitrary bytes (in arbitrary chunks, with time passing) to a client of each kind.
    pub fn client(data: &[u8]) {
        for kind in [SessionKind::Sol, SessionKind::Kvm, SessionKind::Ider] {
            let mut now = Instant::now();
            let mut client = ClientSession::new(
                ClientSessionConfig::new(kind, "admin", "P@ssw0rd", "cnonce"),
                now,
            );
            for chunk in chunks(data) {
                client.handle_input(now, chunk);
                now += Duration::from_millis(700);
                oobkit_runloop::check_timeout(&mut client, now);
                client.send_sol(chunk);
                if chunk.first() == Some(&0x22) {
                    client.end(now);
                }
                while client.poll_transmit().is_some() {}
                while client.poll_event().is_some() {}
            }
            oobkit_runloop::check_run_down(&mut client, now, 16);
            client.handle_eof();
        }
    }

    /// Arbitrary drive commands (20-byte bodies) answered by a media server whose image sizes
    /// come from the data; every read must stay inside its image and split into pieces that
    /// add up to it; the El Torito parsers see the same bytes as blocks.
    pub fn storage(data: &[u8]) {
        use crate::storage::{Answer, CommandWritten, Drive, MediaServer};
        let size = |b: &[u8]| u64::from(u32::from_le_bytes(b.try_into().unwrap_or([0; 4])));
        let cd = data.get(..4).map(size).filter(|n| *n >= 2048);
        let floppy = data.get(4..8).map(size).filter(|n| *n >= 512);
        let Ok(mut server) = MediaServer::new(cd, floppy) else {
            return;
        };
        for body in data.get(8..).unwrap_or_default().chunks(20) {
            let Ok(command) = CommandWritten::parse(body) else {
                continue;
            };
            assert_eq!(CommandWritten::parse(&command.body()), Ok(command));
            match server.answer(&command) {
                Answer::Read(plan) => {
                    let image = match command.drive {
                        Drive::Cdrom => cd,
                        Drive::Floppy => floppy,
                    };
                    let end = plan.offset + plan.len;
                    assert!(plan.len > 0 && image.is_some_and(|len| end <= len));
                    // Only the first and last pieces, so a 4 GiB plan costs nothing.
                    let mut pieces = plan.chunks(8192);
                    let first = pieces.next().expect("a read has a piece");
                    assert_eq!(first.0, plan.offset);
                    let last = pieces.last().unwrap_or(first);
                    assert!(last.2 && last.0 + last.1 as u64 == end && last.1 <= 8192);
                }
                Answer::Data(data) => assert!(data.len() <= usize::from(u16::MAX)),
                Answer::Status(_) => {}
            }
        }
        let _ = crate::el_torito::BootRecord::parse(data);
        let _ = crate::el_torito::BootEntry::parse(data);
        let layout = crate::el_torito::BootLayout::from_blocks(data, Some(data));
        let _ = layout.part(data.len() as u64);
    }

    /// Feeds arbitrary bytes to a device session, answering start requests from the data.
    pub fn device(data: &[u8]) {
        let mut now = Instant::now();
        let mut device = DeviceSession::new(
            DeviceSessionConfig::new([16, 1], "Digest:00", "admin", "P@ssw0rd"),
            now,
            "nonce",
        );
        for chunk in chunks(data) {
            device.handle_input(now, chunk);
            while let Some(event) = device.poll_event() {
                if let Event::StartRequested(_) = event {
                    let answer = chunk.first().copied().unwrap_or(0) % 4;
                    device.answer_start(now, StartStatus::from_byte(answer));
                }
            }
            now += Duration::from_millis(900);
            oobkit_runloop::check_timeout(&mut device, now);
            device.send_sol(chunk);
            while device.poll_transmit().is_some() {}
        }
        oobkit_runloop::check_run_down(&mut device, now, 16);
        device.handle_eof();
    }
}
