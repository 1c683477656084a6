//! RRMT framing (`docs/rrmt.md`): `Type (1) | Length (u16 BE) | Data`, and the payload of
//! every type.

use crate::{DecodeError, EncodeError};

/// Frame header size.
pub const HEADER: usize = 3;
/// Largest payload.
pub const MAX_DATA: usize = u16::MAX as usize;

/// Error codes of [`Frame::Error`]. Codes without a name here are kept as `Other`, so every
/// frame re-encodes to its own bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 1: bytes that are not a valid frame, or a frame at the wrong time.
    Protocol,
    /// 2: no common protocol version.
    Version,
    /// 3: bad or revoked token.
    NotAuthorized,
    /// 4: channel limit reached.
    TooManyChannels,
    /// 5: unknown channel or request.
    Unknown,
    /// 6: data beyond the granted window.
    FlowControl,
    /// 7: failure on the sender's side.
    Internal,
    /// Any other code.
    Other(u8),
}

impl ErrorCode {
    const NAMED: [Self; 7] = [
        Self::Protocol,
        Self::Version,
        Self::NotAuthorized,
        Self::TooManyChannels,
        Self::Unknown,
        Self::FlowControl,
        Self::Internal,
    ];

    /// The code for a byte on the wire.
    pub fn from_byte(byte: u8) -> Self {
        Self::NAMED
            .into_iter()
            .find(|code| code.to_byte() == byte)
            .unwrap_or(Self::Other(byte))
    }

    /// The byte on the wire.
    pub const fn to_byte(self) -> u8 {
        match self {
            Self::Protocol => 1,
            Self::Version => 2,
            Self::NotAuthorized => 3,
            Self::TooManyChannels => 4,
            Self::Unknown => 5,
            Self::FlowControl => 6,
            Self::Internal => 7,
            Self::Other(byte) => byte,
        }
    }
}

/// Flags of [`Frame::Result`].
pub mod result_flags {
    /// The command ran past its timeout and was killed.
    pub const TIMED_OUT: u8 = 0x01;
    /// Output beyond the cap was dropped.
    pub const TRUNCATED: u8 = 0x02;
    /// The command could not be started.
    pub const NOT_STARTED: u8 = 0x04;
}

/// One frame. Data borrows from the decoded buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame<'a> {
    /// 0x01.
    Ack {
        /// The request acknowledged (0: none).
        request: u32,
    },
    /// 0x02: a 16-byte RFC 4122 token.
    Authorize {
        /// The token.
        token: [u8; 16],
    },
    /// 0x03.
    Revoke,
    /// 0x04: authorization succeeded.
    Provision {
        /// The host's id on the server.
        host_id: [u8; 16],
        /// Keepalive period.
        heartbeat_secs: u16,
        /// Most shell channels at once.
        max_channels: u16,
        /// Initial window for data the agent sends on a channel.
        window: u32,
    },
    /// 0x05.
    Ping {
        /// Echoed in the Pong.
        nonce: u64,
    },
    /// 0x06.
    Pong {
        /// The Ping's nonce.
        nonce: u64,
    },
    /// 0x07: run a command.
    Execute {
        /// Request id, echoed in Output and Result.
        request: u32,
        /// Kill after this long (0: no limit).
        timeout_ms: u32,
        /// Most output bytes sent back.
        output_cap: u32,
        /// Program and arguments.
        argv: Vec<&'a [u8]>,
    },
    /// 0x08: a command finished.
    Result {
        /// The request.
        request: u32,
        /// Exit status (-1: killed or not started).
        exit: i32,
        /// See [`result_flags`].
        flags: u8,
    },
    /// 0x09: a new token.
    Reauthorize {
        /// The token to use from now on.
        token: [u8; 16],
    },
    /// 0x0A.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// Human-readable explanation.
        message: &'a str,
    },
    /// 0x10: versions spoken.
    Hello {
        /// Lowest version.
        min: u8,
        /// Highest version.
        max: u8,
        /// Agent or server name (at most 255 bytes).
        name: &'a str,
    },
    /// 0x11: open a shell.
    ShellOpen {
        /// Channel number chosen by the server.
        channel: u32,
        /// Terminal columns.
        cols: u16,
        /// Terminal rows.
        rows: u16,
        /// Window for data the server sends on this channel.
        window: u32,
        /// `TERM` (at most 255 bytes).
        term: &'a str,
    },
    /// 0x12: the shell runs.
    ShellOpened {
        /// Channel.
        channel: u32,
        /// Window for data the agent may send (also given by Provision).
        window: u32,
    },
    /// 0x13.
    ChannelData {
        /// Channel.
        channel: u32,
        /// Bytes.
        data: &'a [u8],
    },
    /// 0x14: more credit.
    WindowAdjust {
        /// Channel.
        channel: u32,
        /// Bytes granted.
        credit: u32,
    },
    /// 0x15.
    Resize {
        /// Channel.
        channel: u32,
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// 0x16.
    ChannelClose {
        /// Channel.
        channel: u32,
        /// Exit status (-1: not known).
        exit: i32,
    },
    /// 0x17: command output.
    Output {
        /// The request.
        request: u32,
        /// 1 stdout, 2 stderr.
        stream: u8,
        /// Bytes.
        data: &'a [u8],
    },
}

/// A cursor over a payload that refuses to read past its end.
struct Reader<'a> {
    data: &'a [u8],
    kind: u8,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.data.len() < n {
            return Err(DecodeError::BadPayload(self.kind));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn token(&mut self) -> Result<[u8; 16], DecodeError> {
        Ok(self.take(16)?.try_into().expect("16 bytes"))
    }
    fn short_str(&mut self) -> Result<&'a str, DecodeError> {
        let n = usize::from(self.u8()?);
        std::str::from_utf8(self.take(n)?).map_err(|_| DecodeError::BadPayload(self.kind))
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
    fn end(self) -> Result<(), DecodeError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::BadPayload(self.kind))
        }
    }
}

/// Decodes one frame from the front of `buf`: `Ok(None)` until it is complete.
///
/// ```
/// use oobkit_rrmt::codec::{decode, Frame};
/// let seed = [0x02, 0x00, 0x10, 0xA1, 0xB6, 0x85, 0x8E, 0x25, 0xCC, 0x43, 0x54, 0xA0, 0xFF, 0x06, 0xFC, 0xA3, 0x0B, 0x11, 0x09];
/// let (frame, used) = decode(&seed).unwrap().unwrap();
/// assert_eq!(used, 19);
/// assert!(matches!(frame, Frame::Authorize { token } if token[0] == 0xA1 && token[15] == 0x09));
/// ```
pub fn decode(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, DecodeError> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    let kind = buf[0];
    let len = usize::from(u16::from_be_bytes([buf[1], buf[2]]));
    if buf.len() < HEADER + len {
        // The length is at most 65 535, so waiting for it is bounded.
        if !matches!(kind, 0x01..=0x0A | 0x10..=0x17) {
            return Err(DecodeError::UnknownType(kind));
        }
        return Ok(None);
    }
    let mut r = Reader {
        data: &buf[HEADER..HEADER + len],
        kind,
    };
    let frame = match kind {
        0x01 => Frame::Ack { request: r.u32()? },
        0x02 => Frame::Authorize { token: r.token()? },
        0x03 => Frame::Revoke,
        0x04 => Frame::Provision {
            host_id: r.token()?,
            heartbeat_secs: r.u16()?,
            max_channels: r.u16()?,
            window: r.u32()?,
        },
        0x05 => Frame::Ping { nonce: r.u64()? },
        0x06 => Frame::Pong { nonce: r.u64()? },
        0x07 => {
            let request = r.u32()?;
            let timeout_ms = r.u32()?;
            let output_cap = r.u32()?;
            let argc = usize::from(r.u16()?);
            // Each argument takes at least its 2-byte length: bound the allocation by the data.
            if argc > r.data.len() / 2 {
                return Err(DecodeError::BadPayload(kind));
            }
            let mut argv = Vec::with_capacity(argc);
            for _ in 0..argc {
                let n = usize::from(r.u16()?);
                argv.push(r.take(n)?);
            }
            Frame::Execute {
                request,
                timeout_ms,
                output_cap,
                argv,
            }
        }
        0x08 => Frame::Result {
            request: r.u32()?,
            exit: r.u32()? as i32,
            flags: r.u8()?,
        },
        0x09 => Frame::Reauthorize { token: r.token()? },
        0x0A => {
            let code = ErrorCode::from_byte(r.u8()?);
            let message =
                std::str::from_utf8(r.rest()).map_err(|_| DecodeError::BadPayload(kind))?;
            Frame::Error { code, message }
        }
        0x10 => Frame::Hello {
            min: r.u8()?,
            max: r.u8()?,
            name: r.short_str()?,
        },
        0x11 => Frame::ShellOpen {
            channel: r.u32()?,
            cols: r.u16()?,
            rows: r.u16()?,
            window: r.u32()?,
            term: r.short_str()?,
        },
        0x12 => Frame::ShellOpened {
            channel: r.u32()?,
            window: r.u32()?,
        },
        0x13 => Frame::ChannelData {
            channel: r.u32()?,
            data: r.rest(),
        },
        0x14 => Frame::WindowAdjust {
            channel: r.u32()?,
            credit: r.u32()?,
        },
        0x15 => Frame::Resize {
            channel: r.u32()?,
            cols: r.u16()?,
            rows: r.u16()?,
        },
        0x16 => Frame::ChannelClose {
            channel: r.u32()?,
            exit: r.u32()? as i32,
        },
        0x17 => Frame::Output {
            request: r.u32()?,
            stream: r.u8()?,
            data: r.rest(),
        },
        other => return Err(DecodeError::UnknownType(other)),
    };
    r.end()?;
    Ok(Some((frame, HEADER + len)))
}

impl Frame<'_> {
    /// The type byte.
    pub fn kind(&self) -> u8 {
        match self {
            Self::Ack { .. } => 0x01,
            Self::Authorize { .. } => 0x02,
            Self::Revoke => 0x03,
            Self::Provision { .. } => 0x04,
            Self::Ping { .. } => 0x05,
            Self::Pong { .. } => 0x06,
            Self::Execute { .. } => 0x07,
            Self::Result { .. } => 0x08,
            Self::Reauthorize { .. } => 0x09,
            Self::Error { .. } => 0x0A,
            Self::Hello { .. } => 0x10,
            Self::ShellOpen { .. } => 0x11,
            Self::ShellOpened { .. } => 0x12,
            Self::ChannelData { .. } => 0x13,
            Self::WindowAdjust { .. } => 0x14,
            Self::Resize { .. } => 0x15,
            Self::ChannelClose { .. } => 0x16,
            Self::Output { .. } => 0x17,
        }
    }

    /// Appends the encoded frame to `out`. A payload that would exceed 65 535 bytes, or a
    /// name over 255, is refused with [`EncodeError::TooLong`] and nothing is written.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&[self.kind(), 0, 0]);
        let short = |out: &mut Vec<u8>, s: &str| -> Result<(), EncodeError> {
            let n = u8::try_from(s.len()).map_err(|_| EncodeError::TooLong)?;
            out.push(n);
            out.extend_from_slice(s.as_bytes());
            Ok(())
        };
        let result = (|| {
            match self {
                Self::Ack { request } => out.extend_from_slice(&request.to_be_bytes()),
                Self::Authorize { token } | Self::Reauthorize { token } => {
                    out.extend_from_slice(token)
                }
                Self::Revoke => {}
                Self::Provision {
                    host_id,
                    heartbeat_secs,
                    max_channels,
                    window,
                } => {
                    out.extend_from_slice(host_id);
                    out.extend_from_slice(&heartbeat_secs.to_be_bytes());
                    out.extend_from_slice(&max_channels.to_be_bytes());
                    out.extend_from_slice(&window.to_be_bytes());
                }
                Self::Ping { nonce } | Self::Pong { nonce } => {
                    out.extend_from_slice(&nonce.to_be_bytes())
                }
                Self::Execute {
                    request,
                    timeout_ms,
                    output_cap,
                    argv,
                } => {
                    out.extend_from_slice(&request.to_be_bytes());
                    out.extend_from_slice(&timeout_ms.to_be_bytes());
                    out.extend_from_slice(&output_cap.to_be_bytes());
                    let argc = u16::try_from(argv.len()).map_err(|_| EncodeError::TooLong)?;
                    out.extend_from_slice(&argc.to_be_bytes());
                    for arg in argv {
                        let n = u16::try_from(arg.len()).map_err(|_| EncodeError::TooLong)?;
                        out.extend_from_slice(&n.to_be_bytes());
                        out.extend_from_slice(arg);
                    }
                }
                Self::Result {
                    request,
                    exit,
                    flags,
                } => {
                    out.extend_from_slice(&request.to_be_bytes());
                    out.extend_from_slice(&exit.to_be_bytes());
                    out.push(*flags);
                }
                Self::Error { code, message } => {
                    out.push(code.to_byte());
                    out.extend_from_slice(message.as_bytes());
                }
                Self::Hello { min, max, name } => {
                    out.extend_from_slice(&[*min, *max]);
                    short(out, name)?;
                }
                Self::ShellOpen {
                    channel,
                    cols,
                    rows,
                    window,
                    term,
                } => {
                    out.extend_from_slice(&channel.to_be_bytes());
                    out.extend_from_slice(&cols.to_be_bytes());
                    out.extend_from_slice(&rows.to_be_bytes());
                    out.extend_from_slice(&window.to_be_bytes());
                    short(out, term)?;
                }
                Self::ShellOpened { channel, window } => {
                    out.extend_from_slice(&channel.to_be_bytes());
                    out.extend_from_slice(&window.to_be_bytes());
                }
                Self::ChannelData { channel, data } => {
                    out.extend_from_slice(&channel.to_be_bytes());
                    out.extend_from_slice(data);
                }
                Self::WindowAdjust { channel, credit } => {
                    out.extend_from_slice(&channel.to_be_bytes());
                    out.extend_from_slice(&credit.to_be_bytes());
                }
                Self::Resize {
                    channel,
                    cols,
                    rows,
                } => {
                    out.extend_from_slice(&channel.to_be_bytes());
                    out.extend_from_slice(&cols.to_be_bytes());
                    out.extend_from_slice(&rows.to_be_bytes());
                }
                Self::ChannelClose { channel, exit } => {
                    out.extend_from_slice(&channel.to_be_bytes());
                    out.extend_from_slice(&exit.to_be_bytes());
                }
                Self::Output {
                    request,
                    stream,
                    data,
                } => {
                    out.extend_from_slice(&request.to_be_bytes());
                    out.push(*stream);
                    out.extend_from_slice(data);
                }
            }
            Ok(())
        })();
        let len = out.len() - start - HEADER;
        match result {
            Ok(()) if len <= MAX_DATA => {
                out[start + 1..start + 3].copy_from_slice(&(len as u16).to_be_bytes());
                Ok(())
            }
            Ok(()) => {
                out.truncate(start);
                Err(EncodeError::TooLong)
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// The encoding as a new vector (panics only on a payload over 65 535 bytes).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out).expect("payload fits a frame");
        out
    }
}

/// Most data bytes that fit one ChannelData frame.
pub const MAX_CHANNEL_DATA: usize = MAX_DATA - 4;
