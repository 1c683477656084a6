//! Websocket frames relayed without being rebuilt, sans-IO.
//!
//! A proxy between a websocket client and a websocket server (a browser and KubeVirt's VNC
//! endpoint) usually decodes every message on one side and encodes it again on the other: the
//! payload is copied into a message, then into a new frame, and every read buffer is zeroed
//! before use. A [`Passthrough`] reads frame headers only. Binary data frames go on as they
//! arrive, payload included, even before the frame is complete, so the bytes read from one
//! side are written to the other from the same buffer:
//!
//! - frames from a server are unmasked and reach the client unchanged;
//! - frames from a client are masked; the relay is the server's client and masks with keys of
//!   its own (RFC 6455 section 5.3: a client's keys must be unpredictable, and a client of the
//!   proxy must not choose the bytes on the proxy's upstream wire), by writing its key into the
//!   header and XOR-ing the payload in place with the difference of the two keys;
//! - control frames (ping, pong, close) are handed to the program whole ([`Step::Control`]),
//!   which answers pings, ends on close, and writes frames of its own with [`encode`];
//! - text messages are dropped ([`Step::Discard`]): the binary protocols this is for (VNC)
//!   give text no meaning;
//! - everything RFC 6455 forbids (a client frame without a mask, reserved bits or opcodes,
//!   fragmented or long control frames, a continuation with no message, a message over the
//!   limit) is a typed [`FrameError`] with the close code to send.
//!
//! The program's loop for one direction, with both sides played by the example (the bytes are
//! RFC 6455 section 5.7's masked frame, as binary):
//!
//! ```
//! use oobkit_wspass::{Control, Passthrough, Step, encode};
//!
//! // A browser sent a masked binary "Hello" and a masked ping "!", and the reads cut the
//! // ping in two.
//! let reads: [&[u8]; 2] = [
//!     &[0x82, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58, 0x89],
//!     &[0x81, 0x01, 0x02, 0x03, 0x04, 0x20],
//! ];
//! // The relay's own keys come from the program (the operating system's RNG in real use).
//! let mut from_browser = Passthrough::from_client(1 << 20, Box::new(|| [9, 9, 9, 9]));
//! let (mut to_server, mut to_browser) = (Vec::new(), Vec::new());
//! let mut buffer = Vec::new();
//! for read in reads {
//!     buffer.extend_from_slice(read);
//!     let mut start = 0;
//!     loop {
//!         match from_browser.step(&mut buffer[start..]).unwrap() {
//!             Step::NeedMore => break,
//!             Step::Forward(n) => to_server.extend_from_slice(&buffer[start..start + n]),
//!             Step::Discard(_) => {}
//!             Step::Control { control: Control::Ping(data), .. } => {
//!                 to_browser.extend(encode(&Control::Pong(data), None));
//!             }
//!             Step::Control { control, .. } => panic!("{control:?}"),
//!         }
//!         start += from_browser.consumed();
//!     }
//!     // What is left is the start of a frame; it waits for the next read.
//!     buffer.drain(..start);
//! }
//! // The server gets "Hello" under the relay's key, the browser its pong.
//! let hello: Vec<u8> = b"Hello".iter().zip([9u8; 4].iter().cycle()).map(|(b, k)| b ^ k).collect();
//! assert_eq!(to_server, [&[0x82, 0x85, 9, 9, 9, 9][..], &hello].concat());
//! assert_eq!(to_browser, [0x8a, 0x01, 0x21]);
//! ```
#![forbid(unsafe_code)]

use std::io::Cursor;

use tungstenite::protocol::frame::coding::{CloseCode, Control as ControlCode, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame, FrameHeader};

/// The longest control frame payload (RFC 6455 section 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The longest frame header: 2 bytes, a 64-bit length, a mask key.
pub const MAX_HEADER: usize = 14;

/// Whose frames a [`Passthrough`] reads.
enum Sender {
    /// A websocket client: frames are masked; the relay masks them again with its own keys.
    Client(Box<dyn FnMut() -> [u8; 4] + Send>),
    /// A websocket server: frames are unmasked and go on unchanged.
    Server,
}

/// The kind of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MessageKind {
    Binary,
    Text,
}

/// The data frame whose payload is passing.
#[derive(Debug, Clone, Copy)]
struct PayloadInFlight {
    /// Payload bytes not seen yet.
    remaining: u64,
    /// Forwarded (binary) or discarded (text).
    forward: bool,
    /// The XOR of the sender's key and the relay's, applied from `offset` on.
    remask: Option<[u8; 4]>,
    /// Payload bytes seen so far, modulo 4 (where in the key the next byte is).
    offset: usize,
}

/// One direction of a relay: the frames one side sends, and what to do with each byte.
pub struct Passthrough {
    sender: Sender,
    max_message: u64,
    /// The fragmented data message in progress (its first frame was not final): its kind and
    /// length so far.
    message: Option<(MessageKind, u64)>,
    payload: Option<PayloadInFlight>,
    /// The bytes the last [`Step`] covered.
    consumed: usize,
    /// Payload bytes of binary messages forwarded so far.
    payload_forwarded: u64,
}

impl std::fmt::Debug for Passthrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passthrough")
            .field(
                "sender",
                &match self.sender {
                    Sender::Client(_) => "client",
                    Sender::Server => "server",
                },
            )
            .field("max_message", &self.max_message)
            .field("message", &self.message)
            .field("payload", &self.payload)
            .finish()
    }
}

/// What to do with the bytes at the front of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Step {
    /// The input holds only the start of a frame header or of a control frame: keep it, read
    /// more, and call again with it in front.
    NeedMore,
    /// The first `n` bytes (whole frames, or a frame's header and the part of its payload
    /// read so far) go to the other side as they now are.
    Forward(usize),
    /// The first `n` bytes belong to a text message, or a frame of one: dropped.
    Discard(usize),
    /// The first `len` bytes are a complete control frame.
    Control {
        /// Its length on the wire.
        len: usize,
        /// What it says.
        control: Control,
    },
}

/// A control frame's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Control {
    /// Answer with a pong carrying the same data, on the side the ping came from.
    Ping(Vec<u8>),
    /// The answer to a ping.
    Pong(Vec<u8>),
    /// The sender is closing, with a code and reason if it gave them.
    Close(Option<CloseReason>),
}

/// A close frame's code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// The close code (RFC 6455 section 7.4).
    pub code: u16,
    /// The reason, at most 123 bytes of UTF-8.
    pub reason: String,
}

/// Why the frames cannot be relayed; the session ends with [`FrameError::close_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// An opcode RFC 6455 reserves.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A reserved bit is set, and no extension was negotiated.
    #[error("a reserved header bit is set")]
    ReservedBits,
    /// A client sent a frame without a mask (RFC 6455 section 5.1).
    #[error("a client frame without a mask")]
    Unmasked,
    /// A server sent a masked frame (RFC 6455 section 5.1).
    #[error("a masked frame from the server")]
    Masked,
    /// A control frame longer than 125 bytes, or fragmented.
    #[error("a control frame that is fragmented or longer than 125 bytes")]
    BadControl,
    /// A continuation frame with no message to continue.
    #[error("a continuation frame with no message started")]
    UnexpectedContinuation,
    /// A new message started before the fragmented one ended.
    #[error("a new message before the previous one ended")]
    UnfinishedMessage,
    /// A message over the limit.
    #[error("a message over {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// A close frame with a one-byte payload, a code that may not be sent, or a reason that is
    /// not UTF-8.
    #[error("a malformed close frame")]
    BadClose,
}

impl FrameError {
    /// The close code to end the session with: 1009 for a message over the limit, 1002
    /// (protocol error) otherwise.
    pub fn close_code(&self) -> u16 {
        match self {
            Self::TooLarge { .. } => 1009,
            _ => 1002,
        }
    }
}

impl Passthrough {
    /// Reads a websocket client's frames, to be sent on to a server masked with keys from
    /// `new_mask` (one per frame; it must be unpredictable: the operating system's RNG).
    /// Messages over `max_message` bytes are refused.
    pub fn from_client(max_message: u64, new_mask: Box<dyn FnMut() -> [u8; 4] + Send>) -> Self {
        Self::new(Sender::Client(new_mask), max_message)
    }

    /// Reads a websocket server's frames, to be sent on to a client unchanged. Messages over
    /// `max_message` bytes are refused.
    pub fn from_server(max_message: u64) -> Self {
        Self::new(Sender::Server, max_message)
    }

    fn new(sender: Sender, max_message: u64) -> Self {
        Self {
            sender,
            max_message,
            message: None,
            payload: None,
            consumed: 0,
            payload_forwarded: 0,
        }
    }

    /// The number of input bytes the last [`Step`] covered (0 after [`Step::NeedMore`]): the
    /// next call starts after them.
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// Payload bytes of binary messages forwarded so far (what the two ends exchanged, without
    /// frame headers).
    pub fn payload_forwarded(&self) -> u64 {
        self.payload_forwarded
    }

    /// Whether everything forwarded so far ends at a frame boundary: a control frame of the
    /// relay's own (a pong, a close) may be written to the same side now, and not before
    /// (it would land inside a frame's payload).
    pub fn between_frames(&self) -> bool {
        self.payload.is_none()
    }

    /// Says what to do with the bytes at the front of `input` (bytes read from the sender,
    /// starting where the last step's [`consumed`](Self::consumed) bytes ended). Forwarded
    /// bytes of a client's frames are re-masked in place. Bytes of frames before a bad frame
    /// are forwarded first; the error comes on the next call.
    pub fn step(&mut self, input: &mut [u8]) -> Result<Step, FrameError> {
        self.consumed = 0;
        let step = self.step_inner(input)?;
        self.consumed = match &step {
            Step::NeedMore => 0,
            Step::Forward(n) | Step::Discard(n) => *n,
            Step::Control { len, .. } => *len,
        };
        Ok(step)
    }

    fn step_inner(&mut self, input: &mut [u8]) -> Result<Step, FrameError> {
        let mut at = 0;
        loop {
            if let Some(payload) = self.payload.as_mut() {
                let available = (input.len() - at) as u64;
                let take = payload.remaining.min(available) as usize;
                if !payload.forward {
                    if at > 0 {
                        return Ok(Step::Forward(at));
                    }
                    if take == 0 {
                        return Ok(Step::NeedMore);
                    }
                    payload.remaining -= take as u64;
                    if payload.remaining == 0 {
                        self.payload = None;
                    }
                    return Ok(Step::Discard(take));
                }
                if let Some(delta) = payload.remask {
                    xor_with_key(&mut input[at..at + take], delta, payload.offset);
                }
                payload.offset = (payload.offset + take) % 4;
                payload.remaining -= take as u64;
                self.payload_forwarded += take as u64;
                at += take;
                if payload.remaining > 0 {
                    return Ok(if at > 0 {
                        Step::Forward(at)
                    } else {
                        Step::NeedMore
                    });
                }
                self.payload = None;
            }
            // At a frame header.
            let more = if at > 0 {
                Step::Forward(at)
            } else {
                Step::NeedMore
            };
            if at == input.len() {
                return Ok(more);
            }
            let mut cursor = Cursor::new(&input[at..]);
            let parsed = match FrameHeader::parse(&mut cursor) {
                Ok(parsed) => parsed,
                Err(_) if at > 0 => return Ok(more),
                // Parsing from memory fails only on an opcode RFC 6455 reserves.
                Err(_) => return Err(FrameError::ReservedOpcode(input[0] & 0x0f)),
            };
            let Some((header, length)) = parsed else {
                return Ok(more);
            };
            let header_len = cursor.position() as usize;
            if let Err(e) = self.check(&header, length) {
                return if at > 0 { Ok(more) } else { Err(e) };
            }
            let kind = match header.opcode {
                OpCode::Control(code) => {
                    if at > 0 {
                        return Ok(more);
                    }
                    let total = header_len + length as usize;
                    if input.len() < total {
                        return Ok(Step::NeedMore);
                    }
                    let mut data = input[header_len..total].to_vec();
                    if let Some(key) = header.mask {
                        xor_with_key(&mut data, key, 0);
                    }
                    let control = match code {
                        ControlCode::Ping => Control::Ping(data),
                        ControlCode::Pong => Control::Pong(data),
                        _ => Control::Close(close_reason(&data)?),
                    };
                    return Ok(Step::Control {
                        len: total,
                        control,
                    });
                }
                OpCode::Data(Data::Continue) => match self.message {
                    Some((kind, _)) => kind,
                    None => {
                        return if at > 0 {
                            Ok(more)
                        } else {
                            Err(FrameError::UnexpectedContinuation)
                        };
                    }
                },
                OpCode::Data(opcode) => {
                    if self.message.is_some() {
                        return if at > 0 {
                            Ok(more)
                        } else {
                            Err(FrameError::UnfinishedMessage)
                        };
                    }
                    if opcode == Data::Binary {
                        MessageKind::Binary
                    } else {
                        MessageKind::Text
                    }
                }
            };
            let so_far = self
                .message
                .map_or(0, |(_, len)| len)
                .saturating_add(length);
            if so_far > self.max_message {
                return if at > 0 {
                    Ok(more)
                } else {
                    Err(FrameError::TooLarge {
                        limit: self.max_message,
                    })
                };
            }
            if kind == MessageKind::Text && at > 0 {
                return Ok(more);
            }
            // From here on the frame is taken: the state moves past its header.
            self.message = (!header.is_final).then_some((kind, so_far));
            let mut in_flight = PayloadInFlight {
                remaining: length,
                forward: kind == MessageKind::Binary,
                remask: None,
                offset: 0,
            };
            if kind == MessageKind::Text {
                self.payload = (length > 0).then_some(in_flight);
                return Ok(Step::Discard(header_len));
            }
            if let (Some(theirs), Sender::Client(new_mask)) = (header.mask, &mut self.sender) {
                let ours = new_mask();
                input[at + header_len - 4..at + header_len].copy_from_slice(&ours);
                let delta = std::array::from_fn(|i| theirs[i] ^ ours[i]);
                in_flight.remask = (delta != [0; 4]).then_some(delta);
            }
            at += header_len;
            self.payload = (length > 0).then_some(in_flight);
        }
    }

    /// Whether a frame header is one this side may send.
    fn check(&self, header: &FrameHeader, length: u64) -> Result<(), FrameError> {
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(FrameError::ReservedBits);
        }
        match (&self.sender, header.mask.is_some()) {
            (Sender::Client(_), false) => return Err(FrameError::Unmasked),
            (Sender::Server, true) => return Err(FrameError::Masked),
            _ => {}
        }
        if matches!(header.opcode, OpCode::Control(_))
            && (!header.is_final || length > MAX_CONTROL_PAYLOAD as u64)
        {
            return Err(FrameError::BadControl);
        }
        Ok(())
    }
}

/// A close frame's payload: nothing, or a code that may be sent and a UTF-8 reason.
fn close_reason(data: &[u8]) -> Result<Option<CloseReason>, FrameError> {
    match data {
        [] => Ok(None),
        [_] => Err(FrameError::BadClose),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !CloseCode::from(code).is_allowed() {
                return Err(FrameError::BadClose);
            }
            let reason = std::str::from_utf8(reason).map_err(|_| FrameError::BadClose)?;
            Ok(Some(CloseReason {
                code,
                reason: reason.to_owned(),
            }))
        }
    }
}

/// XORs `data` with `key`, the first byte with `key[offset]`. Whole 32-byte blocks first,
/// against the key repeated to that width (a fixed-size loop the compiler turns into vector
/// instructions), then the rest byte by byte.
fn xor_with_key(data: &mut [u8], key: [u8; 4], offset: usize) {
    const BLOCK: usize = 32;
    let key: [u8; BLOCK] = std::array::from_fn(|i| key[(offset + i) % 4]);
    let mut blocks = data.chunks_exact_mut(BLOCK);
    for block in &mut blocks {
        for (byte, k) in block.iter_mut().zip(key) {
            *byte ^= k;
        }
    }
    for (byte, k) in blocks.into_remainder().iter_mut().zip(key) {
        *byte ^= k;
    }
}

/// A control frame as bytes on the wire: masked with `mask` when it goes to a server, not
/// masked (`None`) when it goes to a client. A close reason is cut to fit 125 bytes at a
/// character boundary.
pub fn encode(control: &Control, mask: Option<[u8; 4]>) -> Vec<u8> {
    let fit = |data: &[u8]| data[..data.len().min(MAX_CONTROL_PAYLOAD)].to_vec();
    let mut frame = match control {
        Control::Ping(data) => Frame::ping(fit(data)),
        Control::Pong(data) => Frame::pong(fit(data)),
        Control::Close(reason) => Frame::close(reason.as_ref().map(|r| {
            let mut end = r.reason.len().min(MAX_CONTROL_PAYLOAD - 2);
            while !r.reason.is_char_boundary(end) {
                end -= 1;
            }
            CloseFrame {
                code: CloseCode::from(r.code),
                reason: r.reason[..end].to_owned().into(),
            }
        })),
    };
    frame.header_mut().mask = mask;
    let mut out = Vec::with_capacity(frame.len());
    frame
        .format(&mut out)
        .expect("writing into a Vec cannot fail");
    out
}

/// Entry points for the fuzz targets and their corpus-replay tests. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use super::{FrameError, Passthrough, Step};

    /// Arbitrary bytes from a client and from a server, each cut into reads at bytes chosen by
    /// the input: no panic, every step covers bytes it was given and makes progress, and the
    /// bytes forwarded (client frames with the mask undone) and the controls seen do not
    /// depend on how the input was cut.
    pub fn passthrough(data: &[u8]) {
        let Some((&cut, data)) = data.split_first() else {
            return;
        };
        for from_client in [true, false] {
            let whole = run(data, from_client, data.len().max(1));
            let pieces = run(data, from_client, usize::from(cut % 17) + 1);
            assert_eq!(
                whole, pieces,
                "the result depends on how the bytes were cut"
            );
        }
    }

    type Outcome = (Vec<u8>, Vec<String>, Option<FrameError>);

    fn run(data: &[u8], from_client: bool, read_size: usize) -> Outcome {
        let mut pass = if from_client {
            // A fixed key, so that the forwarded bytes can be compared across runs.
            Passthrough::from_client(1 << 16, Box::new(|| [0x5a, 0xa5, 0x0f, 0xf0]))
        } else {
            Passthrough::from_server(1 << 16)
        };
        let (mut forwarded, mut seen) = (Vec::new(), Vec::new());
        let mut buffer = Vec::new();
        for read in data.chunks(read_size) {
            buffer.extend_from_slice(read);
            let mut start = 0;
            loop {
                let before = buffer.len() - start;
                match pass.step(&mut buffer[start..]) {
                    Ok(Step::NeedMore) => {
                        assert_eq!(pass.consumed(), 0);
                        break;
                    }
                    Ok(Step::Forward(n)) => forwarded.extend_from_slice(&buffer[start..start + n]),
                    Ok(Step::Discard(_)) => {}
                    Ok(Step::Control { control, .. }) => seen.push(format!("{control:?}")),
                    Err(e) => return (forwarded, seen, Some(e)),
                }
                let n = pass.consumed();
                assert!(n > 0 && n <= before, "a step covers 1..=input bytes");
                start += n;
            }
            // Only the start of a header or of a control frame is ever kept back.
            assert!(buffer.len() - start < super::MAX_HEADER + super::MAX_CONTROL_PAYLOAD);
            buffer.drain(..start);
        }
        (forwarded, seen, None)
    }
}
