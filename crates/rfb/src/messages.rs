//! The client's messages after the handshake (RFC 6143 section 7.5), framed from a stream.

use crate::PixelFormat;

/// Most encodings accepted in one SetEncodings (real clients send about twenty).
pub const MAX_ENCODINGS: usize = 1024;
/// Longest cut text accepted (AMT carries its KvmExtCmd extension in it; real ones are short).
pub const MAX_CUT_TEXT: usize = 1 << 20;

/// Bytes that are not RFB client messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A message type no client sends.
    #[error("unknown client message type {0}")]
    UnknownType(u8),
    /// SetPixelFormat with a colour map or an unusable depth.
    #[error("unsupported pixel format")]
    PixelFormat,
    /// SetEncodings over [`MAX_ENCODINGS`].
    #[error("{0} encodings in one message")]
    TooManyEncodings(usize),
    /// Cut text over [`MAX_CUT_TEXT`].
    #[error("cut text of {0} bytes")]
    CutTextTooLong(u64),
}

/// A client message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientMessage {
    /// 0 SetPixelFormat.
    SetPixelFormat(PixelFormat),
    /// 2 SetEncodings.
    SetEncodings(Vec<i32>),
    /// 3 FramebufferUpdateRequest.
    FramebufferUpdateRequest {
        /// Only changes are wanted.
        incremental: bool,
        /// Left.
        x: u16,
        /// Top.
        y: u16,
        /// Width.
        width: u16,
        /// Height.
        height: u16,
    },
    /// 4 KeyEvent.
    Key {
        /// Pressed (true) or released.
        down: bool,
        /// X keysym.
        keysym: u32,
    },
    /// 5 PointerEvent.
    Pointer {
        /// Button mask.
        buttons: u8,
        /// X.
        x: u16,
        /// Y.
        y: u16,
    },
    /// 6 ClientCutText (Latin-1 bytes).
    CutText(Vec<u8>),
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes the client message at the front of `buf`: the message and its length, or
/// `Ok(None)` until it is complete. Sizes are checked before anything is buffered.
pub fn decode_client(buf: &[u8]) -> Result<Option<(ClientMessage, usize)>, DecodeError> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let need = match kind {
        0 => 20,
        2 if buf.len() >= 4 => {
            let n = usize::from(be16(buf, 2));
            if n > MAX_ENCODINGS {
                return Err(DecodeError::TooManyEncodings(n));
            }
            4 + 4 * n
        }
        3 => 10,
        4 => 8,
        5 => 6,
        6 if buf.len() >= 8 => {
            let n = u64::from(be32(buf, 4));
            if n > MAX_CUT_TEXT as u64 {
                return Err(DecodeError::CutTextTooLong(n));
            }
            8 + n as usize
        }
        2 | 6 => return Ok(None),
        other => return Err(DecodeError::UnknownType(other)),
    };
    if buf.len() < need {
        return Ok(None);
    }
    let b = &buf[..need];
    let message = match kind {
        0 => {
            let format: [u8; 16] = b[4..20].try_into().expect("16 bytes");
            ClientMessage::SetPixelFormat(
                PixelFormat::from_bytes(&format).ok_or(DecodeError::PixelFormat)?,
            )
        }
        2 => ClientMessage::SetEncodings(
            b[4..]
                .chunks_exact(4)
                .map(|e| i32::from_be_bytes([e[0], e[1], e[2], e[3]]))
                .collect(),
        ),
        3 => ClientMessage::FramebufferUpdateRequest {
            incremental: b[1] != 0,
            x: be16(b, 2),
            y: be16(b, 4),
            width: be16(b, 6),
            height: be16(b, 8),
        },
        4 => ClientMessage::Key {
            down: b[1] != 0,
            keysym: be32(b, 4),
        },
        5 => ClientMessage::Pointer {
            buttons: b[1],
            x: be16(b, 2),
            y: be16(b, 4),
        },
        _ => ClientMessage::CutText(b[8..].to_vec()),
    };
    Ok(Some((message, need)))
}
