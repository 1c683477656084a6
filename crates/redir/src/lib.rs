//! The Intel AMT redirection protocol (Serial-over-LAN, KVM, IDE-R), sans-IO.
//!
//! - [`codec`]: every message of the session manager, SOL, KVM setup and IDE-R, decoded from a
//!   byte stream in any split and encoded into caller buffers.
//!
//! ```
//! use oobkit_redir::codec::{decode, Message, SessionKind};
//! let start = Message::StartSession(SessionKind::Sol).to_vec();
//! assert_eq!(start, b"\x10\x00\x00\x00SOL ");
//! assert_eq!(decode(&start, None).unwrap(), Some((Message::StartSession(SessionKind::Sol), 8)));
//! ```
#![forbid(unsafe_code)]

pub mod codec;
mod error;

pub use error::DecodeError;
