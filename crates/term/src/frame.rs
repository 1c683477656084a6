//! The frames of the terminal protocol: one websocket binary message is one frame, a type byte
//! then its payload. Output and input are raw bytes, never decoded here (a UTF-8 character split
//! across two frames is the terminal's to join); the other frames are fixed-size big-endian
//! fields, and a close carries a code and a UTF-8 reason.
//!
//! ```text
//! 0x00 Output   server -> page   bytes...
//! 0x01 Input    page -> server   bytes...
//! 0x02 Resize   page -> server   cols:u16 rows:u16
//! 0x03 Ack      page -> server   rendered:u32   (bytes rendered since the last Ack)
//! 0x04 Ping     either way       stamp:u64      (opaque to the receiver)
//! 0x05 Pong     either way       stamp:u64      (the Ping's stamp, echoed)
//! 0x06 Close    either way       code:u16 reason:UTF-8 (at most MAX_REASON bytes)
//! ```

/// The longest close reason, in bytes (a websocket close reason holds 123; this one travels in a
/// data frame and says more, e.g. both fingerprints of a changed host key).
pub const MAX_REASON: usize = 1024;

/// The largest terminal size either way: a sanity bound, far above any screen.
pub const MAX_DIMENSION: u16 = 4096;

/// What a frame is, by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameType {
    /// Terminal output, server to page.
    Output = 0x00,
    /// Keyboard input, page to server.
    Input = 0x01,
    /// The page's terminal size.
    Resize = 0x02,
    /// Output the page has rendered: credit returned to the server.
    Ack = 0x03,
    /// A liveness probe carrying a stamp.
    Ping = 0x04,
    /// The answer to a probe.
    Pong = 0x05,
    /// The end of the session, with a code and a reason.
    Close = 0x06,
}

impl FrameType {
    /// The type of a frame's first byte.
    pub fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            0x00 => Self::Output,
            0x01 => Self::Input,
            0x02 => Self::Resize,
            0x03 => Self::Ack,
            0x04 => Self::Ping,
            0x05 => Self::Pong,
            0x06 => Self::Close,
            _ => return None,
        })
    }
}

/// Why a session ended, as a close frame's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseCode {
    /// The remote shell ended (the reason gives its exit status).
    Exited,
    /// The person closed the page or the page ended the session.
    Left,
    /// Nothing was typed and nothing printed for the idle limit.
    Idle,
    /// The page stopped answering pings.
    Unresponsive,
    /// The page broke the protocol (the reason says how).
    ProtocolError,
    /// The target could not be reached or refused us (connection, host key, authentication).
    TargetFailed,
    /// The target connection broke during the session.
    TargetLost,
    /// The gateway is shutting down or over a limit.
    GatewayUnavailable,
    /// A code this version does not know.
    Other(u16),
}

impl CloseCode {
    /// The code on the wire.
    pub fn code(self) -> u16 {
        match self {
            Self::Exited => 1000,
            Self::Left => 1001,
            Self::ProtocolError => 1002,
            Self::GatewayUnavailable => 1013,
            Self::Idle => 4000,
            Self::Unresponsive => 4001,
            Self::TargetFailed => 4002,
            Self::TargetLost => 4003,
            Self::Other(code) => code,
        }
    }

    /// The close code for a wire value.
    pub fn from_code(code: u16) -> Self {
        match code {
            1000 => Self::Exited,
            1001 => Self::Left,
            1002 => Self::ProtocolError,
            1013 => Self::GatewayUnavailable,
            4000 => Self::Idle,
            4001 => Self::Unresponsive,
            4002 => Self::TargetFailed,
            4003 => Self::TargetLost,
            other => Self::Other(other),
        }
    }
}

/// One frame, borrowing its payload from the message it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame<'a> {
    /// Terminal output.
    Output(&'a [u8]),
    /// Keyboard input.
    Input(&'a [u8]),
    /// The terminal's size in character cells.
    Resize {
        /// Columns, 1..=[`MAX_DIMENSION`].
        cols: u16,
        /// Rows, 1..=[`MAX_DIMENSION`].
        rows: u16,
    },
    /// Bytes of output rendered since the last acknowledgement.
    Ack(u32),
    /// A probe.
    Ping(u64),
    /// A probe's answer.
    Pong(u64),
    /// The end.
    Close {
        /// Why.
        code: CloseCode,
        /// Said for a person.
        reason: &'a str,
    },
}

/// Why a message is not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// An empty message.
    #[error("an empty message")]
    Empty,
    /// A type byte this version does not know.
    #[error("unknown frame type {0:#04x}")]
    UnknownType(u8),
    /// A fixed-size frame of the wrong length.
    #[error("a {kind:?} frame of {got} bytes (want {want})")]
    BadLength {
        /// The frame's type.
        kind: FrameType,
        /// Payload bytes received.
        got: usize,
        /// Payload bytes expected.
        want: usize,
    },
    /// A size of zero or above [`MAX_DIMENSION`].
    #[error("a terminal size of {cols}x{rows}")]
    BadSize {
        /// Columns given.
        cols: u16,
        /// Rows given.
        rows: u16,
    },
    /// A close frame too short for its code, with a reason over [`MAX_REASON`], or not UTF-8.
    #[error("a malformed close frame")]
    BadClose,
}

impl<'a> Frame<'a> {
    /// Decodes one message.
    pub fn decode(message: &'a [u8]) -> Result<Self, FrameError> {
        let (&first, payload) = message.split_first().ok_or(FrameError::Empty)?;
        let kind = FrameType::from_byte(first).ok_or(FrameError::UnknownType(first))?;
        let fixed = |want: usize| {
            if payload.len() == want {
                Ok(payload)
            } else {
                Err(FrameError::BadLength {
                    kind,
                    got: payload.len(),
                    want,
                })
            }
        };
        Ok(match kind {
            FrameType::Output => Self::Output(payload),
            FrameType::Input => Self::Input(payload),
            FrameType::Resize => {
                let p = fixed(4)?;
                let cols = u16::from_be_bytes([p[0], p[1]]);
                let rows = u16::from_be_bytes([p[2], p[3]]);
                if !(1..=MAX_DIMENSION).contains(&cols) || !(1..=MAX_DIMENSION).contains(&rows) {
                    return Err(FrameError::BadSize { cols, rows });
                }
                Self::Resize { cols, rows }
            }
            FrameType::Ack => {
                let p = fixed(4)?;
                Self::Ack(u32::from_be_bytes([p[0], p[1], p[2], p[3]]))
            }
            FrameType::Ping | FrameType::Pong => {
                let mut stamp = [0u8; 8];
                stamp.copy_from_slice(fixed(8)?);
                let stamp = u64::from_be_bytes(stamp);
                if kind == FrameType::Ping {
                    Self::Ping(stamp)
                } else {
                    Self::Pong(stamp)
                }
            }
            FrameType::Close => {
                let (code, reason) = payload
                    .split_first_chunk::<2>()
                    .ok_or(FrameError::BadClose)?;
                if reason.len() > MAX_REASON {
                    return Err(FrameError::BadClose);
                }
                let reason = std::str::from_utf8(reason).map_err(|_| FrameError::BadClose)?;
                Self::Close {
                    code: CloseCode::from_code(u16::from_be_bytes(*code)),
                    reason,
                }
            }
        })
    }

    /// The frame's type.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Self::Output(_) => FrameType::Output,
            Self::Input(_) => FrameType::Input,
            Self::Resize { .. } => FrameType::Resize,
            Self::Ack(_) => FrameType::Ack,
            Self::Ping(_) => FrameType::Ping,
            Self::Pong(_) => FrameType::Pong,
            Self::Close { .. } => FrameType::Close,
        }
    }

    /// Encodes the frame as one message. A close reason longer than [`MAX_REASON`] is cut at a
    /// character boundary.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.payload_len());
        out.push(self.frame_type() as u8);
        match self {
            Self::Output(bytes) | Self::Input(bytes) => out.extend_from_slice(bytes),
            Self::Resize { cols, rows } => {
                out.extend_from_slice(&cols.to_be_bytes());
                out.extend_from_slice(&rows.to_be_bytes());
            }
            Self::Ack(n) => out.extend_from_slice(&n.to_be_bytes()),
            Self::Ping(stamp) | Self::Pong(stamp) => out.extend_from_slice(&stamp.to_be_bytes()),
            Self::Close { code, reason } => {
                out.extend_from_slice(&code.code().to_be_bytes());
                out.extend_from_slice(truncate(reason, MAX_REASON).as_bytes());
            }
        }
        out
    }

    fn payload_len(&self) -> usize {
        match self {
            Self::Output(bytes) | Self::Input(bytes) => bytes.len(),
            Self::Resize { .. } | Self::Ack(_) => 4,
            Self::Ping(_) | Self::Pong(_) => 8,
            Self::Close { reason, .. } => 2 + reason.len().min(MAX_REASON),
        }
    }
}

/// `text` cut to at most `max` bytes at a character boundary (a websocket close reason holds
/// 123 bytes).
pub fn truncate_reason(text: &str, max: usize) -> &str {
    truncate(text, max)
}

/// `text` cut to at most `max` bytes at a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_vectors() {
        assert_eq!(Frame::Output(b"hi").encode(), b"\x00hi");
        assert_eq!(
            Frame::Resize { cols: 80, rows: 24 }.encode(),
            [0x02, 0x00, 0x50, 0x00, 0x18]
        );
        assert_eq!(Frame::Ack(65536).encode(), [0x03, 0, 1, 0, 0]);
        assert_eq!(Frame::Ping(1).encode(), [0x04, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            Frame::Close {
                code: CloseCode::Exited,
                reason: "ok"
            }
            .encode(),
            [0x06, 0x03, 0xe8, b'o', b'k']
        );
    }

    #[test]
    fn malformed_messages_are_typed_errors() {
        assert_eq!(Frame::decode(b""), Err(FrameError::Empty));
        assert_eq!(Frame::decode(b"\x07"), Err(FrameError::UnknownType(7)));
        assert!(matches!(
            Frame::decode(b"\x02\x00\x50\x00"),
            Err(FrameError::BadLength {
                want: 4,
                got: 3,
                ..
            })
        ));
        assert_eq!(
            Frame::decode(b"\x02\x00\x00\x00\x18"),
            Err(FrameError::BadSize { cols: 0, rows: 24 })
        );
        assert_eq!(Frame::decode(b"\x06\x03"), Err(FrameError::BadClose));
        assert_eq!(
            Frame::decode(b"\x06\x03\xe8\xff"),
            Err(FrameError::BadClose)
        );
    }

    #[test]
    fn long_reasons_are_cut_at_a_character() {
        let reason = "é".repeat(MAX_REASON);
        let encoded = Frame::Close {
            code: CloseCode::TargetFailed,
            reason: &reason,
        }
        .encode();
        let Ok(Frame::Close { reason: got, .. }) = Frame::decode(&encoded) else {
            panic!("decodes");
        };
        assert_eq!(got.len(), MAX_REASON);
        assert!(reason.starts_with(got));
    }
}
