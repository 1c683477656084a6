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
