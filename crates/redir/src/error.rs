//! Errors of the redirection crate.

/// Bytes that are not a valid redirection message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A command byte no message has (fatal in every client).
    #[error("unknown command byte {0:#04x}")]
    UnknownCommand(u8),
    /// A command that does not belong in this session (0x40 before a session type is known).
    #[error("command {0:#04x} is not valid in this session")]
    UnexpectedCommand(u8),
    /// 0x10 with a session tag other than `SOL `, `KVMR`, `IDER`.
    #[error("unknown session type {0:#010x}")]
    UnknownSessionType(u32),
    /// A length field over its limit (checked before anything is buffered for it).
    #[error("message {command:#04x} announces {len} bytes, over the {max}-byte limit")]
    TooLong {
        /// Command byte.
        command: u8,
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A length-prefixed auth field runs past the end of its message.
    #[error("auth field runs past the end of the message")]
    TruncatedField,
    /// An auth field over 255 bytes (the prefix is one byte).
    #[error("auth field over 255 bytes")]
    FieldTooLong,
}
