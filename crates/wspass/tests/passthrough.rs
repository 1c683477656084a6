//! The passthrough against RFC 6455's own frames, against tungstenite as the peer on both
//! ends, and under any cutting of the input.

use std::io::Cursor;

use oobkit_wspass::{CloseReason, Control, FrameError, Passthrough, Step, encode};
use proptest::prelude::*;
use tungstenite::Message;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::{Frame, FrameHeader};
use tungstenite::protocol::{Role, WebSocket};

const RELAY_KEY: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

/// Everything a run produced: forwarded bytes, controls, and the error that ended it.
#[derive(Debug, Default, PartialEq)]
struct Run {
    forwarded: Vec<u8>,
    discarded: usize,
    controls: Vec<Control>,
    error: Option<FrameError>,
}

/// Feeds `wire` in reads of `cut` bytes, as a program would.
fn relay(mut pass: Passthrough, wire: &[u8], cut: usize) -> Run {
    relay_with(&mut pass, wire, cut)
}

fn relay_with(pass: &mut Passthrough, wire: &[u8], cut: usize) -> Run {
    let mut run = Run::default();
    let mut buffer = Vec::new();
    for read in wire.chunks(cut.max(1)) {
        buffer.extend_from_slice(read);
        let mut start = 0;
        loop {
            match pass.step(&mut buffer[start..]) {
                Ok(Step::NeedMore) => break,
                Ok(Step::Forward(n)) => run.forwarded.extend_from_slice(&buffer[start..start + n]),
                Ok(Step::Discard(n)) => run.discarded += n,
                Ok(Step::Control { control, .. }) => run.controls.push(control),
                Err(e) => {
                    run.error = Some(e);
                    return run;
                }
            }
            start += pass.consumed();
        }
        buffer.drain(..start);
    }
    run
}

fn from_client() -> Passthrough {
    Passthrough::from_client(1 << 20, Box::new(|| RELAY_KEY))
}

fn from_server() -> Passthrough {
    Passthrough::from_server(1 << 20)
}

/// Frames as tungstenite writes them.
fn frame_bytes(opcode: OpCode, payload: &[u8], is_final: bool, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut frame = Frame::message(payload.to_vec(), opcode, is_final);
    frame.header_mut().mask = mask;
    let mut out = Vec::new();
    frame.format(&mut out).unwrap();
    out
}

/// The messages a strict tungstenite endpoint in `role` reads from `wire`.
fn read_messages(wire: Vec<u8>, role: Role) -> Vec<Message> {
    let mut socket = WebSocket::from_raw_socket(Cursor::new(wire), role, None);
    let mut messages = Vec::new();
    loop {
        match socket.read() {
            Ok(message) => messages.push(message),
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => break,
            Err(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            )) => break,
            Err(e) => panic!("tungstenite refused the relayed frames: {e}"),
        }
    }
    messages
}

#[test]
fn rfc_6455_section_5_7_unmasked_frames_from_a_server_pass_unchanged() {
    // A single-frame unmasked message ("Hello"), as binary; then 256 bytes and 64 KiB binary
    // messages in one frame (the 16-bit and 64-bit length forms).
    let mut wire = vec![0x82, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    wire.extend([0x82, 0x7e, 0x01, 0x00]);
    wire.extend([0xab; 256]);
    wire.extend([0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
    wire.extend(vec![0xcd; 65536]);
    for cut in [1, 2, 3, 7, 100, wire.len()] {
        let run = relay(from_server(), &wire, cut);
        assert_eq!(run.forwarded, wire, "cut {cut}");
        assert_eq!(run.error, None);
    }
}

#[test]
fn rfc_6455_section_5_7_masked_frame_from_a_client_is_masked_again_with_the_relays_key() {
    // "Hello" masked with 37 fa 21 3d, sent as binary.
    let wire = [
        0x82, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let run = relay(from_client(), &wire, 1);
    let expected: Vec<u8> = b"Hello"
        .iter()
        .zip(RELAY_KEY.iter().cycle())
        .map(|(b, k)| b ^ k)
        .collect();
    assert_eq!(run.forwarded[..6], [0x82, 0x85, 0x11, 0x22, 0x33, 0x44]);
    assert_eq!(run.forwarded[6..], expected);
}

#[test]
fn rfc_6455_section_5_7_text_messages_are_dropped_and_pings_handed_over() {
    // Fragmented unmasked text "Hel" + "lo", an unmasked ping "Hello" between.
    let wire = [
        &[0x01, 0x03, 0x48, 0x65, 0x6c][..],
        &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f],
        &[0x80, 0x02, 0x6c, 0x6f],
        &[0x82, 0x01, 0x21],
    ]
    .concat();
    for cut in 1..wire.len() {
        let run = relay(from_server(), &wire, cut);
        assert_eq!(run.forwarded, [0x82, 0x01, 0x21], "cut {cut}");
        assert_eq!(run.discarded, 9);
        assert_eq!(run.controls, [Control::Ping(b"Hello".to_vec())]);
    }
}

#[test]
fn control_frames_are_written_as_rfc_6455_shows_them() {
    // Section 5.7: an unmasked pong "Hello" would be 0x8a 0x05 ...; a masked ping with the
    // example key.
    assert_eq!(
        encode(&Control::Pong(b"Hello".to_vec()), None),
        [0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
    );
    assert_eq!(
        encode(
            &Control::Ping(b"Hello".to_vec()),
            Some([0x37, 0xfa, 0x21, 0x3d])
        ),
        [
            0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
        ]
    );
    let close = encode(
        &Control::Close(Some(CloseReason {
            code: 4001,
            reason: "é".repeat(100),
        })),
        None,
    );
    // Cut to 125 bytes at a character boundary: a code and 61 two-byte characters.
    assert_eq!(close.len(), 2 + 2 + 122);
    let run = relay(from_server(), &close, 1);
    match &run.controls[..] {
        [Control::Close(Some(CloseReason { code: 4001, reason }))] => {
            assert_eq!(reason.chars().count(), 61)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn frames_rfc_6455_forbids_are_typed_errors_after_the_frames_before_them() {
    let good = frame_bytes(OpCode::Data(Data::Binary), b"ok", true, None);
    let cases: Vec<(Vec<u8>, bool, FrameError)> = vec![
        (vec![0x83, 0x00], false, FrameError::ReservedOpcode(3)),
        (vec![0x8b, 0x00], false, FrameError::ReservedOpcode(0xb)),
        (vec![0xc2, 0x00], false, FrameError::ReservedBits),
        (vec![0x82, 0x00], true, FrameError::Unmasked),
        (vec![0x82, 0x80, 1, 2, 3, 4], false, FrameError::Masked),
        (vec![0x09, 0x00], false, FrameError::BadControl),
        (
            [&[0x89, 0x7e, 0, 126][..], &[0; 126]].concat(),
            false,
            FrameError::BadControl,
        ),
        (vec![0x80, 0x00], false, FrameError::UnexpectedContinuation),
        (
            vec![0x02, 0x00, 0x82, 0x00],
            false,
            FrameError::UnfinishedMessage,
        ),
        (vec![0x88, 0x01, 0x03], false, FrameError::BadClose),
        (vec![0x88, 0x02, 0x03, 0xed], false, FrameError::BadClose),
        (
            vec![0x88, 0x03, 0x03, 0xe8, 0xff],
            false,
            FrameError::BadClose,
        ),
        (
            vec![0x82, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            false,
            FrameError::TooLarge { limit: 1 << 20 },
        ),
    ];
    for (bad, client, error) in cases {
        let (pass, good) = if client {
            (
                from_client(),
                frame_bytes(OpCode::Data(Data::Binary), b"ok", true, Some([1, 2, 3, 4])),
            )
        } else {
            (from_server(), good.clone())
        };
        let wire = [&good[..], &bad].concat();
        let run = relay(pass, &wire, wire.len());
        assert_eq!(run.error, Some(error.clone()), "{bad:02x?}");
        // The good frame went first (and the unfinished message's first fragment, valid in
        // itself, after it).
        let valid_start = if error == FrameError::UnfinishedMessage {
            2
        } else {
            0
        };
        assert_eq!(run.forwarded.len(), good.len() + valid_start, "{bad:02x?}");
        let expected_code = if matches!(error, FrameError::TooLarge { .. }) {
            1009
        } else {
            1002
        };
        assert_eq!(error.close_code(), expected_code);
    }
}

#[test]
fn a_message_over_the_limit_is_refused_across_its_fragments() {
    let wire = [
        frame_bytes(OpCode::Data(Data::Binary), &[1; 600], false, None),
        frame_bytes(OpCode::Data(Data::Continue), &[2; 600], true, None),
    ]
    .concat();
    let run = relay(Passthrough::from_server(1000), &wire, 64);
    assert_eq!(run.error, Some(FrameError::TooLarge { limit: 1000 }));
    assert_eq!(
        run.forwarded.len(),
        604,
        "the first fragment, within the limit, went on"
    );
}

/// One message of a generated conversation.
#[derive(Debug, Clone)]
enum Item {
    Binary(Vec<u8>, usize),
    Text(String, usize),
    Ping(Vec<u8>),
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        4 => (proptest::collection::vec(any::<u8>(), 0..3000), 1usize..4)
            .prop_map(|(data, parts)| Item::Binary(data, parts)),
        1 => ("[a-z]{0,40}", 1usize..3).prop_map(|(text, parts)| Item::Text(text, parts)),
        1 => proptest::collection::vec(any::<u8>(), 0..125).prop_map(Item::Ping),
    ]
}

/// The frames of `items`, each message cut into its number of fragments, masked when a client
/// sends them (a different key for every frame).
fn wire_of(items: &[Item], masked: bool) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut key = 0u32;
    let mut next_mask = || {
        key = key.wrapping_mul(2_654_435_761).wrapping_add(12345);
        masked.then_some(key.to_be_bytes())
    };
    for item in items {
        let (data, parts, opcode) = match item {
            Item::Binary(data, parts) => (data.clone(), *parts, Data::Binary),
            Item::Text(text, parts) => (text.clone().into_bytes(), *parts, Data::Text),
            Item::Ping(data) => {
                let mut frame = Frame::ping(data.clone());
                frame.header_mut().mask = next_mask();
                frame.format(&mut wire).unwrap();
                continue;
            }
        };
        let size = data.len().div_ceil(parts).max(1);
        let chunks: Vec<&[u8]> = if data.is_empty() {
            vec![&[]]
        } else {
            data.chunks(size).collect()
        };
        for (i, chunk) in chunks.iter().enumerate() {
            let code = if i == 0 {
                OpCode::Data(opcode)
            } else {
                OpCode::Data(Data::Continue)
            };
            wire.extend(frame_bytes(code, chunk, i + 1 == chunks.len(), next_mask()));
        }
    }
    wire
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the messages and however the reads cut them: tungstenite, as the server,
    /// reads exactly the binary messages the client sent from the relayed bytes (so they are
    /// masked as RFC 6455 requires), every relayed header carries the relay's key, and the
    /// pings come out as controls.
    #[test]
    fn a_strict_server_reads_what_the_client_sent(
        items in proptest::collection::vec(item(), 0..12),
        cut in 1usize..5000,
    ) {
        let wire = wire_of(&items, true);
        let run = relay(from_client(), &wire, cut);
        prop_assert_eq!(&run.error, &None);
        let binaries: Vec<Vec<u8>> = items.iter().filter_map(|i| match i {
            Item::Binary(data, _) => Some(data.clone()),
            _ => None,
        }).collect();
        let pings: Vec<Control> = items.iter().filter_map(|i| match i {
            Item::Ping(data) => Some(Control::Ping(data.clone())),
            _ => None,
        }).collect();
        prop_assert_eq!(&run.controls, &pings);
        // Every relayed frame is masked with the relay's key.
        let mut cursor = Cursor::new(&run.forwarded[..]);
        while let Some((header, length)) = FrameHeader::parse(&mut cursor).unwrap() {
            prop_assert_eq!(header.mask, Some(RELAY_KEY));
            cursor.set_position(cursor.position() + length);
        }
        let read: Vec<Vec<u8>> = read_messages(run.forwarded, Role::Server)
            .into_iter()
            .map(|m| match m {
                Message::Binary(data) => data.to_vec(),
                other => panic!("{other:?}"),
            })
            .collect();
        prop_assert_eq!(read, binaries);
    }

    /// From a server, the binary frames reach the client byte for byte as sent, and a strict
    /// client reads them.
    #[test]
    fn a_servers_binary_frames_pass_byte_for_byte(
        items in proptest::collection::vec(item(), 0..12),
        cut in 1usize..5000,
    ) {
        let binary_only: Vec<Item> =
            items.iter().filter(|i| matches!(i, Item::Binary(..))).cloned().collect();
        let mut pass = from_server();
        let run = relay_with(&mut pass, &wire_of(&items, false), cut);
        prop_assert_eq!(&run.error, &None);
        let payload: usize = binary_only.iter().map(|i| match i {
            Item::Binary(data, _) => data.len(),
            _ => 0,
        }).sum();
        prop_assert_eq!(pass.payload_forwarded(), payload as u64);
        prop_assert_eq!(&run.forwarded, &wire_of(&binary_only, false));
        let read = read_messages(run.forwarded, Role::Client);
        prop_assert_eq!(read.len(), binary_only.len());
    }

    /// Any byte changed in a conversation either still relays or is a typed error; the result
    /// never depends on the cutting.
    #[test]
    fn tampered_bytes_give_the_same_outcome_however_cut(
        items in proptest::collection::vec(item(), 1..6),
        position in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in 1usize..300,
    ) {
        let mut wire = wire_of(&items, true);
        let at = position.index(wire.len().max(1)).min(wire.len().saturating_sub(1));
        if let Some(b) = wire.get_mut(at) {
            *b = byte;
        }
        let whole = relay(from_client(), &wire, wire.len());
        let cut_up = relay(from_client(), &wire, cut);
        prop_assert_eq!(whole, cut_up);
    }
}

#[test]
fn an_empty_final_binary_frame_and_an_empty_close_are_relayed() {
    let wire = [&[0x82, 0x00][..], &[0x88, 0x00]].concat();
    let run = relay(from_server(), &wire, 1);
    assert_eq!(run.forwarded, [0x82, 0x00]);
    assert_eq!(run.controls, [Control::Close(None)]);
}
