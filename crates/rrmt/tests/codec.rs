//! The RRMT codec: the seed's vector, every type, hostile frames, round trip and chunking.

use oobkit_rrmt::DecodeError;
use oobkit_rrmt::codec::{Frame, decode};
use proptest::prelude::*;

const SEED: [u8; 19] = [
    0x02, 0x00, 0x10, 0xA1, 0xB6, 0x85, 0x8E, 0x25, 0xCC, 0x43, 0x54, 0xA0, 0xFF, 0x06, 0xFC, 0xA3,
    0x0B, 0x11, 0x09,
];

#[test]
fn the_seed_vector() {
    let (frame, used) = decode(&SEED).unwrap().unwrap();
    assert_eq!(used, 19);
    assert_eq!(
        frame,
        Frame::Authorize {
            token: SEED[3..].try_into().unwrap()
        }
    );
    assert_eq!(frame.to_vec(), SEED);
}

fn every_frame() -> Vec<Frame<'static>> {
    vec![
        Frame::Ack { request: 7 },
        Frame::Authorize { token: [1; 16] },
        Frame::Revoke,
        Frame::Provision {
            host_id: [2; 16],
            heartbeat_secs: 30,
            max_channels: 8,
            window: 1 << 20,
        },
        Frame::Ping { nonce: u64::MAX },
        Frame::Pong { nonce: 1 },
        Frame::Execute {
            request: 9,
            timeout_ms: 5000,
            output_cap: 1 << 20,
            argv: vec![b"/bin/sh", b"-c", b"echo \xff"],
        },
        Frame::Result {
            request: 9,
            exit: -1,
            flags: 3,
        },
        Frame::Reauthorize { token: [3; 16] },
        Frame::Error {
            code: oobkit_rrmt::codec::ErrorCode::NotAuthorized,
            message: "token revoked",
        },
        Frame::Hello {
            min: 2,
            max: 2,
            name: "agent-1",
        },
        Frame::ShellOpen {
            channel: 4,
            cols: 80,
            rows: 24,
            window: 65536,
            term: "xterm-256color",
        },
        Frame::ShellOpened {
            channel: 4,
            window: 65536,
        },
        Frame::ChannelData {
            channel: 4,
            data: b"ls\r",
        },
        Frame::WindowAdjust {
            channel: 4,
            credit: 4096,
        },
        Frame::Resize {
            channel: 4,
            cols: 120,
            rows: 40,
        },
        Frame::ChannelClose {
            channel: 4,
            exit: 0,
        },
        Frame::Output {
            request: 9,
            stream: 2,
            data: b"",
        },
    ]
}

#[test]
fn every_type_round_trips_and_every_prefix_is_incomplete() {
    let frames = every_frame();
    assert_eq!(frames.len(), 18);
    for frame in frames {
        let bytes = frame.to_vec();
        assert_eq!(decode(&bytes).unwrap(), Some((frame.clone(), bytes.len())));
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), Ok(None), "{frame:?} cut at {cut}");
        }
    }
}

#[test]
fn hostile_frames_are_typed_errors() {
    // Unknown type: refused from the header, before waiting for its data.
    assert_eq!(
        decode(&[0x42, 0xFF, 0xFF]),
        Err(DecodeError::UnknownType(0x42))
    );
    // A length beyond the layout: Authorize with 17 bytes.
    let mut long = SEED.to_vec();
    long[2] = 0x11;
    long.push(0);
    assert_eq!(decode(&long), Err(DecodeError::BadPayload(0x02)));
    // Shorter than the layout: Provision with 3 bytes.
    assert_eq!(
        decode(&[0x04, 0x00, 0x03, 1, 2, 3]),
        Err(DecodeError::BadPayload(0x04))
    );
    // Execute claiming 65 535 arguments in a 14-byte payload: refused before allocating.
    let mut exec = vec![0x07, 0x00, 0x0E];
    exec.extend_from_slice(&[0; 12]);
    exec.extend_from_slice(&[0xFF, 0xFF]);
    assert_eq!(decode(&exec), Err(DecodeError::BadPayload(0x07)));
    // An argument running past the end.
    let mut arg = vec![0x07, 0x00, 0x10];
    arg.extend_from_slice(&[0; 12]);
    arg.extend_from_slice(&[0, 1, 0, 9]);
    assert_eq!(decode(&arg), Err(DecodeError::BadPayload(0x07)));
    // Bad UTF-8 in an error message.
    assert_eq!(
        decode(&[0x0A, 0x00, 0x02, 1, 0xFF]),
        Err(DecodeError::BadPayload(0x0A))
    );
    // Oversize on the way out is refused, and nothing is written.
    let big = vec![0u8; 70_000];
    let mut out = vec![9];
    assert_eq!(
        Frame::ChannelData {
            channel: 1,
            data: &big
        }
        .encode(&mut out),
        Err(oobkit_rrmt::EncodeError::TooLong)
    );
    assert_eq!(out, [9]);
}

proptest! {
    #[test]
    fn arbitrary_data_frames_round_trip(channel in any::<u32>(), data in prop::collection::vec(any::<u8>(), 0..2000), args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..6)) {
        let argv: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        for frame in [Frame::ChannelData { channel, data: &data }, Frame::Output { request: channel, stream: 1, data: &data }, Frame::Execute { request: channel, timeout_ms: 1, output_cap: 2, argv }] {
            let bytes = frame.to_vec();
            prop_assert_eq!(decode(&bytes).unwrap(), Some((frame, bytes.len())));
        }
    }

    #[test]
    fn any_split_decodes_the_same(picks in prop::collection::vec(0usize..18, 1..20), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let frames = every_frame();
        let mut stream = Vec::new();
        for &i in &picks {
            frames[i].encode(&mut stream).unwrap();
        }
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        points.extend([0, stream.len()]);
        points.sort_unstable();
        let mut buffer = Vec::new();
        let mut got = Vec::new();
        for pair in points.windows(2) {
            buffer.extend_from_slice(&stream[pair[0]..pair[1]]);
            while let Some((frame, used)) = decode(&buffer).unwrap() {
                got.push(frame.to_vec());
                buffer.drain(..used);
            }
        }
        let expected: Vec<Vec<u8>> = picks.iter().map(|&i| frames[i].to_vec()).collect();
        prop_assert_eq!(got, expected);
        prop_assert!(buffer.is_empty());
    }

    #[test]
    fn no_input_panics(data in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut rest = &data[..];
        while let Ok(Some((frame, used))) = decode(rest) {
            let again = frame.to_vec();
            prop_assert_eq!(decode(&again).unwrap(), Some((frame, again.len())));
            rest = &rest[used..];
        }
    }
}
