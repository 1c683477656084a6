//! Framing of every redirection-layer message (`docs/amt-redirection.md` section 2).
//!
//! There is no generic length field: each command has a fixed size or a length field of its
//! own, and 0x40/0x41 mean KVM setup in a KVM session but IDE-R OPEN in an IDE-R session. So
//! [`decode`] takes the session kind, returns `Ok(None)` until a whole message is buffered, and
//! refuses unknown commands (every client treats them as fatal).
//!
//! Integers are little-endian in this layer.

use crate::DecodeError;

/// Most auth data accepted in one 0x13/0x14 message (QuMesh's cap; real data is under 300).
pub const MAX_AUTH_DATA: usize = 64 * 1024;

/// A redirection session type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionKind {
    /// Serial over LAN (`SOL `).
    Sol,
    /// Keyboard, video, mouse (`KVMR`), RFB after setup.
    Kvm,
    /// Storage redirection (`IDER`).
    Ider,
}

impl SessionKind {
    /// The 4-byte tag of 0x10.
    pub fn tag(self) -> [u8; 4] {
        match self {
            Self::Sol => *b"SOL ",
            Self::Kvm => *b"KVMR",
            Self::Ider => *b"IDER",
        }
    }

    fn from_tag(tag: &[u8]) -> Option<Self> {
        match tag {
            b"SOL " => Some(Self::Sol),
            b"KVMR" => Some(Self::Kvm),
            b"IDER" => Some(Self::Ider),
            _ => None,
        }
    }
}

/// Declares a protocol byte vocabulary: known values as variants, anything else kept as
/// `Other(byte)` so that every byte decodes and re-encodes unchanged.
macro_rules! byte_vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value without a name here (decoding never puts a named value in it).
            Other(u8),
        }

        impl $name {
            /// The value for a byte on the wire.
            pub const fn from_byte(byte: u8) -> Self {
                match byte {
                    $($value => Self::$variant,)+
                    other => Self::Other(other),
                }
            }

            /// The byte on the wire.
            pub const fn to_byte(self) -> u8 {
                match self {
                    $(Self::$variant => $value,)+
                    Self::Other(byte) => byte,
                }
            }
        }

        impl From<u8> for $name {
            fn from(byte: u8) -> Self {
                Self::from_byte(byte)
            }
        }

        impl From<$name> for u8 {
            fn from(value: $name) -> Self {
                value.to_byte()
            }
        }
    };
}

byte_vocabulary! {
    /// Authentication types of 0x13/0x14.
    AuthType {
        /// Ask which types the device supports.
        Query = 0,
        /// User name and password in clear (deprecated).
        UserPassword = 1,
        /// Kerberos ticket; empty on the AMT websocket transport.
        Kerberos = 2,
        /// Digest, RFC 2069 (no qop).
        Digest2069 = 3,
        /// Digest, RFC 2617 (qop auth).
        Digest = 4,
    }
}

byte_vocabulary! {
    /// Status of 0x11, the device's answer to a session request.
    StartStatus {
        /// Session started.
        Success = 0,
        /// Unknown session type.
        TypeUnknown = 1,
        /// A session of that type is already open.
        Busy = 2,
        /// The feature is disabled (or user consent is required).
        Unsupported = 3,
        /// Any other error.
        Error = 0xFF,
    }
}

/// The commands of an IDE-R session (`docs/amt-redirection.md` section 2.5). The decoder refuses any other byte,
/// so every decoded IDE-R message has one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IderCommand {
    /// 0x40 client: open the session (timeouts, heartbeat, version).
    Open = 0x40,
    /// 0x41 device: the open reply (buffer sizes, features).
    OpenReply = 0x41,
    /// 0x42 client: close.
    Close = 0x42,
    /// 0x43 device: close reply.
    CloseReply = 0x43,
    /// 0x44 either side: ping.
    Ping = 0x44,
    /// 0x45 either side: pong.
    Pong = 0x45,
    /// 0x46 device: the host reset.
    ResetOccurred = 0x46,
    /// 0x47 client: reset acknowledged.
    ResetOccurredResponse = 0x47,
    /// 0x48 client: get or set the enabled features (type 1, 2 or 3).
    DisableEnableFeatures = 0x48,
    /// 0x49 device: the features reply.
    FeaturesReply = 0x49,
    /// 0x4A device: an error occurred.
    ErrorOccurred = 0x4A,
    /// 0x4B either side: heartbeat.
    Heartbeat = 0x4B,
    /// 0x50 device: the host wrote an ATA command.
    CommandWritten = 0x50,
    /// 0x51 client: command completed (registers, sense).
    CommandEndResponse = 0x51,
    /// 0x52 client: asks for data the host writes.
    GetDataFromHost = 0x52,
    /// 0x53 device: data the host wrote.
    DataFromHost = 0x53,
    /// 0x54 client: data for the host (read data).
    DataToHost = 0x54,
}

impl IderCommand {
    /// The command for a byte, if it is one.
    pub const fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            0x40 => Self::Open,
            0x41 => Self::OpenReply,
            0x42 => Self::Close,
            0x43 => Self::CloseReply,
            0x44 => Self::Ping,
            0x45 => Self::Pong,
            0x46 => Self::ResetOccurred,
            0x47 => Self::ResetOccurredResponse,
            0x48 => Self::DisableEnableFeatures,
            0x49 => Self::FeaturesReply,
            0x4A => Self::ErrorOccurred,
            0x4B => Self::Heartbeat,
            0x50 => Self::CommandWritten,
            0x51 => Self::CommandEndResponse,
            0x52 => Self::GetDataFromHost,
            0x53 => Self::DataFromHost,
            0x54 => Self::DataToHost,
            _ => return None,
        })
    }

    /// The byte on the wire.
    pub const fn to_byte(self) -> u8 {
        self as u8
    }
}

/// The SOL parameters of 0x20 (milliseconds, except `max_tx_buffer` in bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SolSettings {
    /// Sequence number of the 0x20 message.
    pub seq: u32,
    /// Largest SOL data message the device accepts.
    pub max_tx_buffer: u16,
    /// TxBufferTimeout.
    pub tx_buffer_timeout: u16,
    /// TxOverflowTimeout.
    pub tx_overflow_timeout: u16,
    /// HostSessionRxTimeout: the device drops a silent client after this.
    pub host_session_rx_timeout: u16,
    /// HostFifoRxFlushTimeout.
    pub host_fifo_rx_flush_timeout: u16,
    /// HeartbeatInterval: the device sends 0x2B this often (0 = never).
    pub heartbeat_interval: u16,
}

impl SolSettings {
    /// What MeshCommander, the ui-toolkit, pyws and QuMesh send (heartbeat off; the client
    /// keeps the session alive with 0x2B every 2 s).
    pub const MESHCOMMANDER: Self = Self {
        seq: 1,
        max_tx_buffer: 10000,
        tx_buffer_timeout: 100,
        tx_overflow_timeout: 0,
        host_session_rx_timeout: 10000,
        host_fifo_rx_flush_timeout: 100,
        heartbeat_interval: 0,
    };

    /// What amtterm sends (device heartbeats every 5 s).
    pub const AMTTERM: Self = Self {
        seq: 0,
        max_tx_buffer: 1000,
        tx_buffer_timeout: 100,
        tx_overflow_timeout: 0,
        host_session_rx_timeout: 10000,
        host_fifo_rx_flush_timeout: 0,
        heartbeat_interval: 5000,
    };

    fn fields(&self) -> [u16; 6] {
        [
            self.max_tx_buffer,
            self.tx_buffer_timeout,
            self.tx_overflow_timeout,
            self.host_session_rx_timeout,
            self.host_fifo_rx_flush_timeout,
            self.heartbeat_interval,
        ]
    }
}

/// One IDE-R message: `cmd, 0, 0, attributes, seq u32`, then a command-specific body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IderMessage<'a> {
    /// The command.
    pub command: IderCommand,
    /// Byte 3: bit 1 "completed", bit 0 DMA.
    pub attributes: u8,
    /// Per-direction sequence number.
    pub seq: u32,
    /// The bytes after the 8-byte header.
    pub body: &'a [u8],
}

/// A redirection-layer message. Data borrows from the decoded buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message<'a> {
    /// 0x10 StartRedirectionSession.
    StartSession(SessionKind),
    /// 0x11 StartRedirectionSessionReply.
    StartSessionReply {
        /// The device's answer.
        status: StartStatus,
        /// Protocol version (major, minor); observed 1.0.
        protocol: [u8; 2],
        /// Firmware version (major, minor).
        firmware: [u8; 2],
        /// OEM IANA number (Intel: 343).
        iana: u32,
        /// OEM data (observed empty).
        oem: &'a [u8],
    },
    /// 0x12 EndRedirectionSession.
    EndSession,
    /// 0x13 AuthenticateSession.
    Authenticate {
        /// The method.
        auth_type: AuthType,
        /// Type-specific data.
        data: &'a [u8],
    },
    /// 0x14 AuthenticateSessionReply.
    AuthenticateReply {
        /// 0 success, 1 failure (or "here is the digest challenge"), 2 not supported.
        status: u8,
        /// Echo of the request's type.
        auth_type: AuthType,
        /// Type-specific data.
        data: &'a [u8],
    },
    /// 0x20 START_SOL_REDIRECTION.
    SolStart(SolSettings),
    /// 0x21 START_SOL_REDIRECTION_REPLY (23 bytes; layout beyond byte 1 not established).
    SolStartReply {
        /// Byte 1.
        status: u8,
        /// Bytes 8..20: the simulator echoes the six settings there.
        echo: [u8; 12],
    },
    /// 0x22 END_SOL_REDIRECTION.
    SolEnd {
        /// Sequence.
        seq: u32,
    },
    /// 0x23 END_SOL_REDIRECTION_REPLY.
    SolEndReply {
        /// Sequence.
        seq: u32,
    },
    /// 0x24 SOL_KEEP_ALIVE_PING.
    SolPing {
        /// Sequence.
        seq: u32,
    },
    /// 0x25 SOL_KEEP_ALIVE_PONG.
    SolPong {
        /// Sequence.
        seq: u32,
    },
    /// 0x27, sent once after 0x21 by MeshCommander; meaning undocumented (byte 10 = 0x1B).
    SolSettingsExtra {
        /// Sequence.
        seq: u32,
        /// Bytes 8..14.
        tail: [u8; 6],
    },
    /// 0x28 SOL_DATA_TO_HOST.
    SolDataToHost {
        /// Sequence.
        seq: u32,
        /// Serial bytes for the host.
        data: &'a [u8],
    },
    /// 0x29 SOL_CONTROLS_FROM_HOST.
    SolControls {
        /// Host sequence.
        seq: u32,
        /// RTS 0x01, DTR 0x02, BREAK 0x04.
        control: u8,
        /// TX_OVERFLOW 0x01, LOOPBACK 0x02, SYSTEM_POWER_STATE 0x04 (on), RX_FLUSH_TIMEOUT 0x08,
        /// TESTMODE 0x10.
        status: u8,
    },
    /// 0x2A SOL_DATA_FROM_HOST.
    SolDataFromHost {
        /// Host sequence.
        seq: u32,
        /// Serial bytes from the host.
        data: &'a [u8],
    },
    /// 0x2B SOL_HEARTBEAT (both directions).
    SolHeartbeat {
        /// Sequence.
        seq: u32,
    },
    /// 0x40 in a KVM session: start RFB (8 bytes).
    KvmStart,
    /// 0x41 in a KVM session: RFB follows (8 bytes).
    KvmStartReply,
    /// Any IDE-R message (in an IDE-R session).
    Ider(IderMessage<'a>),
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The size of the IDE-R message starting `buf`, if the bytes that decide it are there.
fn ider_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    let need = |n: usize| buf.len() >= n;
    Ok(match buf[0] {
        0x40 => Some(18),
        0x41 => need(30).then(|| 30 + usize::from(buf[29])),
        0x42..=0x45 | 0x47 | 0x4B => Some(8),
        0x46 => Some(9),
        // Type 1 asks; types 2 and 3 carry a u32 value.
        0x48 => need(9).then(|| if buf[8] == 1 { 9 } else { 13 }),
        0x49 => Some(13),
        0x4A => Some(11),
        0x50 => Some(28),
        0x51 | 0x52 => Some(31),
        0x53 => need(11).then(|| 14 + usize::from(u16_at(buf, 9))),
        0x54 => need(11).then(|| 34 + usize::from(u16_at(buf, 9))),
        other => return Err(DecodeError::UnknownCommand(other)),
    })
}

/// Decodes one message from the front of `buf`, in a session of `kind` (`None` before the
/// session type is known). Returns the message and its length, or `Ok(None)` if more bytes
/// are needed.
///
/// ```
/// use oobkit_redir::codec::{decode, Message, SessionKind};
/// let bytes = [0x2A, 0, 0, 0, 0, 0, 0, 0, 5, 0, b'h', b'e', b'l', b'l', b'o'];
/// let (message, used) = decode(&bytes, Some(SessionKind::Sol)).unwrap().unwrap();
/// assert_eq!(message, Message::SolDataFromHost { seq: 0, data: b"hello" });
/// assert_eq!(used, 15);
/// assert_eq!(decode(&bytes[..9], Some(SessionKind::Sol)).unwrap(), None);
/// ```
pub fn decode(
    buf: &[u8],
    kind: Option<SessionKind>,
) -> Result<Option<(Message<'_>, usize)>, DecodeError> {
    let Some(&cmd) = buf.first() else {
        return Ok(None);
    };
    // The size of the message, or None while the bytes that decide it are missing.
    let len = match cmd {
        0x10 => Some(8),
        0x11 => (buf.len() >= 13).then(|| 13 + usize::from(buf[12])),
        0x12 => Some(4),
        0x13 | 0x14 => {
            if buf.len() < 9 {
                None
            } else {
                let n = u32_at(buf, 5) as usize;
                if n > MAX_AUTH_DATA {
                    return Err(DecodeError::TooLong {
                        command: cmd,
                        len: n,
                        max: MAX_AUTH_DATA,
                    });
                }
                Some(9 + n)
            }
        }
        0x20 => Some(24),
        0x21 => Some(23),
        0x22..=0x25 | 0x2B => Some(8),
        0x27 => Some(14),
        0x29 => Some(10),
        0x28 | 0x2A => (buf.len() >= 10).then(|| 10 + usize::from(u16_at(buf, 8))),
        0x40..=0x54 => match kind {
            Some(SessionKind::Kvm) if cmd == 0x40 || cmd == 0x41 => Some(8),
            Some(SessionKind::Ider) => ider_len(buf)?,
            _ => return Err(DecodeError::UnexpectedCommand(cmd)),
        },
        other => return Err(DecodeError::UnknownCommand(other)),
    };
    let Some(len) = len else {
        return Ok(None);
    };
    if buf.len() < len {
        return Ok(None);
    }
    let b = &buf[..len];
    let message = match cmd {
        0x10 => Message::StartSession(
            SessionKind::from_tag(&b[4..8]).ok_or(DecodeError::UnknownSessionType(u32_at(b, 4)))?,
        ),
        0x11 => Message::StartSessionReply {
            status: StartStatus::from_byte(b[1]),
            protocol: [b[4], b[5]],
            firmware: [b[6], b[7]],
            iana: u32_at(b, 8),
            oem: &b[13..],
        },
        0x12 => Message::EndSession,
        0x13 => Message::Authenticate {
            auth_type: AuthType::from_byte(b[4]),
            data: &b[9..],
        },
        0x14 => Message::AuthenticateReply {
            status: b[1],
            auth_type: AuthType::from_byte(b[4]),
            data: &b[9..],
        },
        0x20 => Message::SolStart(SolSettings {
            seq: u32_at(b, 4),
            max_tx_buffer: u16_at(b, 8),
            tx_buffer_timeout: u16_at(b, 10),
            tx_overflow_timeout: u16_at(b, 12),
            host_session_rx_timeout: u16_at(b, 14),
            host_fifo_rx_flush_timeout: u16_at(b, 16),
            heartbeat_interval: u16_at(b, 18),
        }),
        0x21 => {
            let mut echo = [0u8; 12];
            echo.copy_from_slice(&b[8..20]);
            Message::SolStartReply { status: b[1], echo }
        }
        0x22 => Message::SolEnd { seq: u32_at(b, 4) },
        0x23 => Message::SolEndReply { seq: u32_at(b, 4) },
        0x24 => Message::SolPing { seq: u32_at(b, 4) },
        0x25 => Message::SolPong { seq: u32_at(b, 4) },
        0x27 => {
            let mut tail = [0u8; 6];
            tail.copy_from_slice(&b[8..14]);
            Message::SolSettingsExtra {
                seq: u32_at(b, 4),
                tail,
            }
        }
        0x28 => Message::SolDataToHost {
            seq: u32_at(b, 4),
            data: &b[10..],
        },
        0x29 => Message::SolControls {
            seq: u32_at(b, 4),
            control: b[8],
            status: b[9],
        },
        0x2A => Message::SolDataFromHost {
            seq: u32_at(b, 4),
            data: &b[10..],
        },
        0x2B => Message::SolHeartbeat { seq: u32_at(b, 4) },
        0x40 if kind == Some(SessionKind::Kvm) => Message::KvmStart,
        0x41 if kind == Some(SessionKind::Kvm) => Message::KvmStartReply,
        _ => Message::Ider(IderMessage {
            // ider_len refused every other byte above.
            command: IderCommand::from_byte(cmd).ok_or(DecodeError::UnknownCommand(cmd))?,
            attributes: b[3],
            seq: u32_at(b, 4),
            body: &b[8..],
        }),
    };
    Ok(Some((message, len)))
}

/// Cuts the next complete message off the front of `buf` as shared bytes (so that payloads
/// can be handed out without copying), or returns `Ok(None)` if it is not complete yet.
/// Decode the returned frame with [`decode`] and the same `kind`.
pub fn split_frame(
    buf: &mut bytes::BytesMut,
    kind: Option<SessionKind>,
) -> Result<Option<bytes::Bytes>, DecodeError> {
    let used = decode(buf, kind)?.map(|(_, used)| used);
    Ok(used.map(|used| buf.split_to(used).freeze()))
}

impl Message<'_> {
    /// Appends the encoded message to `out`.
    ///
    /// Lengths that do not fit their field (auth data over [`MAX_AUTH_DATA`], SOL data over
    /// 65535 bytes, OEM data over 255) are a caller bug and panic; the state machines split
    /// data before encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let header = |out: &mut Vec<u8>, cmd: u8, seq: u32| {
            out.extend_from_slice(&[cmd, 0, 0, 0]);
            out.extend_from_slice(&seq.to_le_bytes());
        };
        match *self {
            Self::StartSession(kind) => {
                // Every client sends byte 1 = 1 for KVM; its meaning is undocumented.
                out.extend_from_slice(&[0x10, u8::from(kind == SessionKind::Kvm), 0, 0]);
                out.extend_from_slice(&kind.tag());
            }
            Self::StartSessionReply {
                status,
                protocol,
                firmware,
                iana,
                oem,
            } => {
                let n = u8::try_from(oem.len()).expect("OEM data of at most 255 bytes");
                out.extend_from_slice(&[
                    0x11,
                    status.to_byte(),
                    0,
                    0,
                    protocol[0],
                    protocol[1],
                    firmware[0],
                    firmware[1],
                ]);
                out.extend_from_slice(&iana.to_le_bytes());
                out.push(n);
                out.extend_from_slice(oem);
            }
            Self::EndSession => out.extend_from_slice(&[0x12, 0, 0, 0]),
            Self::Authenticate { auth_type, data } => {
                assert!(data.len() <= MAX_AUTH_DATA, "auth data too long");
                out.extend_from_slice(&[0x13, 0, 0, 0, auth_type.to_byte()]);
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                out.extend_from_slice(data);
            }
            Self::AuthenticateReply {
                status,
                auth_type,
                data,
            } => {
                assert!(data.len() <= MAX_AUTH_DATA, "auth data too long");
                out.extend_from_slice(&[0x14, status, 0, 0, auth_type.to_byte()]);
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                out.extend_from_slice(data);
            }
            Self::SolStart(settings) => {
                header(out, 0x20, settings.seq);
                for field in settings.fields() {
                    out.extend_from_slice(&field.to_le_bytes());
                }
                out.extend_from_slice(&[0; 4]);
            }
            Self::SolStartReply { status, echo } => {
                out.extend_from_slice(&[0x21, status, 0, 0, 0x01, 0, 0, 0]);
                out.extend_from_slice(&echo);
                out.extend_from_slice(&[0; 3]);
            }
            Self::SolEnd { seq } => header(out, 0x22, seq),
            Self::SolEndReply { seq } => header(out, 0x23, seq),
            Self::SolPing { seq } => header(out, 0x24, seq),
            Self::SolPong { seq } => header(out, 0x25, seq),
            Self::SolSettingsExtra { seq, tail } => {
                header(out, 0x27, seq);
                out.extend_from_slice(&tail);
            }
            Self::SolDataToHost { seq, data } | Self::SolDataFromHost { seq, data } => {
                let cmd = if matches!(self, Self::SolDataToHost { .. }) {
                    0x28
                } else {
                    0x2A
                };
                let n = u16::try_from(data.len()).expect("SOL data of at most 65535 bytes");
                header(out, cmd, seq);
                out.extend_from_slice(&n.to_le_bytes());
                out.extend_from_slice(data);
            }
            Self::SolControls {
                seq,
                control,
                status,
            } => {
                header(out, 0x29, seq);
                out.extend_from_slice(&[control, status]);
            }
            Self::SolHeartbeat { seq } => header(out, 0x2B, seq),
            Self::KvmStart => out.extend_from_slice(&[0x40, 0, 0, 0, 0, 0, 0, 0]),
            Self::KvmStartReply => out.extend_from_slice(&[0x41, 0, 0, 0, 0, 0, 0, 0]),
            Self::Ider(m) => {
                out.extend_from_slice(&[m.command.to_byte(), 0, 0, m.attributes]);
                out.extend_from_slice(&m.seq.to_le_bytes());
                out.extend_from_slice(m.body);
            }
        }
    }

    /// The encoding as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Length-prefixed (`[u8 len][bytes]`) fields of the in-band auth data.
pub mod fields {
    use crate::DecodeError;

    /// Appends `[len][bytes]`; values over 255 bytes are refused.
    pub fn push(out: &mut Vec<u8>, value: &[u8]) -> Result<(), DecodeError> {
        let n = u8::try_from(value.len()).map_err(|_| DecodeError::FieldTooLong)?;
        out.push(n);
        out.extend_from_slice(value);
        Ok(())
    }

    /// Splits `data` into `[len][bytes]` fields; a length past the end is an error.
    pub fn split(mut data: &[u8]) -> Result<Vec<&[u8]>, DecodeError> {
        let mut out = Vec::new();
        while let Some((&n, rest)) = data.split_first() {
            let n = usize::from(n);
            if rest.len() < n {
                return Err(DecodeError::TruncatedField);
            }
            out.push(&rest[..n]);
            data = &rest[n..];
        }
        Ok(out)
    }
}
