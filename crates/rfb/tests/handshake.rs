//! The server handshake against every client version, refusals, hostile bytes and splits.

use std::time::{Duration, Instant};

use oobkit_rfb::{
    ClientMessage, HandshakeEvent, Machine, Output, RfbVersion, Security, ServerHandshake,
    ServerInit, decode_client,
};
use proptest::prelude::*;

/// Feeds `input` in pieces of `split` bytes; returns what the server sent and its events.
fn run(security: Security, input: &[u8], split: usize) -> (Vec<u8>, Vec<HandshakeEvent>) {
    let now = Instant::now();
    let mut server = ServerHandshake::new(security, ServerInit::new(640, 480, "sim"), now);
    let (mut sent, mut events) = (Vec::new(), Vec::new());
    let mut drain = |server: &mut ServerHandshake| loop {
        match server.poll_output() {
            Output::Transmit(bytes) => sent.extend_from_slice(&bytes),
            Output::Event(event) => events.push(event),
            Output::Timeout(_) => break,
        }
    };
    drain(&mut server);
    for piece in input.chunks(split.max(1)) {
        server.handle_input(now, piece);
        drain(&mut server);
    }
    (sent, events)
}

const SERVER_INIT: &[u8] = b"\x02\x80\x01\xe0\x20\x18\x00\x01\x00\xff\x00\xff\x00\xff\x10\x08\x00\x00\x00\x00\x00\x00\x00\x03sim";

#[test]
fn every_version_reaches_server_init() {
    for (client, security_bytes, version) in [
        (
            &b"RFB 003.003\n\x01"[..],
            &b"\x00\x00\x00\x01"[..],
            RfbVersion::V3_3,
        ),
        (b"RFB 003.007\n\x01\x00", b"\x01\x01", RfbVersion::V3_7),
        (
            b"RFB 003.008\n\x01\x00",
            b"\x01\x01\x00\x00\x00\x00",
            RfbVersion::V3_8,
        ),
        // Apple's 3.889 counts as 3.3.
        (b"RFB 003.889\n\x01", b"\x00\x00\x00\x01", RfbVersion::V3_3),
    ] {
        let (sent, events) = run(Security::None, client, 1);
        let expected = [b"RFB 003.008\n", security_bytes, SERVER_INIT].concat();
        assert_eq!(sent, expected, "{version:?}");
        assert_eq!(
            events,
            [HandshakeEvent::Ready {
                version,
                shared: version == RfbVersion::V3_3,
                leftover: Vec::new()
            }]
        );
    }
}

#[test]
fn a_refusal_carries_its_reason_in_every_version() {
    let (sent, events) = run(Security::Refuse("busy".into()), b"RFB 003.008\n", 100);
    assert_eq!(sent, b"RFB 003.008\n\x00\x00\x00\x00\x04busy");
    assert_eq!(events, [HandshakeEvent::Refused]);
    let (sent, _) = run(Security::Refuse("busy".into()), b"RFB 003.003\n", 100);
    assert_eq!(sent, b"RFB 003.008\n\x00\x00\x00\x00\x00\x00\x00\x04busy");
}

#[test]
fn garbage_a_wrong_choice_and_silence_fail() {
    let (_, events) = run(Security::None, b"GET / HTTP/1.1\r\n", 3);
    assert_eq!(events, [HandshakeEvent::Failed("not an RFB 3 client")]);
    let (_, events) = run(Security::None, b"RFB 003.008\n\x02", 3);
    assert_eq!(
        events,
        [HandshakeEvent::Failed("security type not offered")]
    );
    let now = Instant::now();
    let mut server = ServerHandshake::new(Security::None, ServerInit::new(8, 8, ""), now);
    let end = oobkit_runloop::check_run_down(&mut server, now, 4);
    assert!(end >= now + Duration::from_secs(30));
    assert_eq!(server.poll_timeout(), None);
}

proptest! {
    #[test]
    fn any_split_gives_the_same_result(split in 1usize..40) {
        let client = b"RFB 003.008\n\x01\x01\x03\x00\x00\x00\x00\x00\x10\x00\x10";
        let whole = run(Security::None, client, client.len());
        prop_assert_eq!(run(Security::None, client, split).0, whole.0);
    }

    #[test]
    fn client_messages_never_panic_and_stay_bounded(data in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut rest = data.as_slice();
        while let Ok(Some((message, used))) = decode_client(rest) {
            prop_assert!(used > 0 && used <= rest.len());
            if let ClientMessage::SetEncodings(list) = &message {
                prop_assert!(list.len() <= oobkit_rfb::MAX_ENCODINGS);
            }
            rest = &rest[used..];
        }
    }
}

#[test]
fn oversized_declarations_are_refused_before_buffering() {
    assert!(decode_client(b"\x06\x00\x00\x00\xff\xff\xff\xff").is_err());
    assert!(decode_client(b"\x02\x00\xff\xff").is_err());
    assert_eq!(decode_client(b"\x02\x00\x00\x02\x00\x00"), Ok(None));
}
