//! Properties of the terminal protocol: frames round-trip, any chunking of the output keeps the
//! bytes and the credit, flow control holds whatever the page acknowledges, one-time links are
//! one-time.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use oobkit_term::{
    CloseCode, CreateError, Frame, OneTimeConfig, OneTimeSessions, SessionId, TermConfig,
    TermEvent, TermServer,
};
use proptest::prelude::*;

fn frame() -> impl Strategy<Value = (u8, Vec<u8>, u16, u16, u64)> {
    (
        0u8..7,
        proptest::collection::vec(any::<u8>(), 0..300),
        1u16..=4096,
        1u16..=4096,
        any::<u64>(),
    )
}

fn build(kind: u8, bytes: &[u8], a: u16, b: u16, stamp: u64) -> Frame<'_> {
    match kind {
        0 => Frame::Output(bytes),
        1 => Frame::Input(bytes),
        2 => Frame::Resize { cols: a, rows: b },
        3 => Frame::Ack(stamp as u32),
        4 => Frame::Ping(stamp),
        5 => Frame::Pong(stamp),
        _ => Frame::Close {
            code: CloseCode::from_code(a),
            reason: std::str::from_utf8(bytes).unwrap_or("reason"),
        },
    }
}

fn started(now: Instant) -> TermServer {
    let mut term = TermServer::new(now, TermConfig::default());
    term.handle_input(now, &Frame::Resize { cols: 80, rows: 24 }.encode());
    assert_eq!(
        term.poll_event(),
        Some(TermEvent::Started { cols: 80, rows: 24 })
    );
    term
}

proptest! {
    #[test]
    fn frames_round_trip((kind, bytes, a, b, stamp) in frame()) {
        let frame = build(kind, &bytes, a, b, stamp);
        let encoded = frame.encode();
        prop_assert_eq!(Frame::decode(&encoded), Ok(frame));
    }

    #[test]
    fn any_message_decodes_or_is_a_typed_error(message in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(frame) = Frame::decode(&message) {
            prop_assert_eq!(frame.encode(), message);
        }
    }

    /// Output cut anywhere arrives whole, in order, and costs exactly its length in credit;
    /// acknowledgements cut anywhere give it all back.
    #[test]
    fn chunking_keeps_bytes_and_credit(
        output in proptest::collection::vec(any::<u8>(), 1..4000),
        cuts in proptest::collection::vec(1usize..500, 1..20),
        ack_cuts in proptest::collection::vec(1u32..700, 1..20),
    ) {
        let now = Instant::now();
        let mut term = started(now);
        let mut rest = output.as_slice();
        for cut in cuts.iter().cycle() {
            if rest.is_empty() { break; }
            let (head, tail) = rest.split_at((*cut).min(rest.len()));
            term.send_output(now, head);
            rest = tail;
        }
        let mut received = Vec::new();
        while let Some(message) = term.poll_transmit() {
            match Frame::decode(&message) {
                Ok(Frame::Output(bytes)) => received.extend_from_slice(bytes),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        prop_assert_eq!(&received, &output);
        prop_assert_eq!(term.unacknowledged(), output.len() as u64);
        let mut left = output.len() as u32;
        for cut in ack_cuts.iter().cycle() {
            if left == 0 { break; }
            let n = (*cut).min(left);
            term.handle_input(now, &Frame::Ack(n).encode());
            left -= n;
        }
        prop_assert_eq!(term.unacknowledged(), 0);
        prop_assert!(term.may_read_backend());
        prop_assert_eq!(term.poll_event(), None);
    }

    /// A driver that reads only while allowed never has more than the high mark plus one read
    /// in flight, whatever the page acknowledges and when.
    #[test]
    fn credit_bounds_what_is_in_flight(
        steps in proptest::collection::vec((1usize..40_000, 0u32..100_000), 1..200),
    ) {
        let now = Instant::now();
        let mut term = started(now);
        let config = TermConfig::default();
        for (read, ack) in steps {
            if term.may_read_backend() {
                term.send_output(now, &vec![b'y'; read]);
            }
            prop_assert!(term.unacknowledged() < config.high_water + read as u64);
            let ack = ack.min(term.unacknowledged() as u32);
            term.handle_input(now, &Frame::Ack(ack).encode());
            if term.unacknowledged() <= config.low_water {
                prop_assert!(term.may_read_backend());
            }
            while term.poll_transmit().is_some() {}
            prop_assert_eq!(term.poll_event(), None);
        }
    }

    /// Any sequence of page messages and time keeps the run-loop contract, and a session always
    /// ends once time runs on.
    #[test]
    fn run_loop_contract(
        messages in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..12), 0u64..40), 0..30),
    ) {
        let mut now = Instant::now();
        let mut term = TermServer::new(now, TermConfig::default());
        for (message, wait) in messages {
            term.handle_input(now, &message);
            now += Duration::from_secs(wait);
            oobkit_runloop::check_timeout(&mut term, now);
            while term.poll_transmit().is_some() {}
            while term.poll_event().is_some() {}
        }
        let _ = oobkit_runloop::check_run_down(&mut term, now, 100);
        prop_assert!(term.is_ended());
        prop_assert_eq!(oobkit_runloop::Machine::poll_timeout(&term), None);
    }

    /// Any id but the one created is refused, and the one created works once.
    #[test]
    fn one_time_links_are_one_time(id in any::<[u8; 16]>(), flip in 0usize..128) {
        let now = Instant::now();
        let mut table = OneTimeSessions::new(OneTimeConfig::default());
        let owner = IpAddr::V4(Ipv4Addr::LOCALHOST);
        table.create(now, SessionId::from_random(id), owner, "secret").unwrap();
        let mut other = id;
        other[flip / 8] ^= 1 << (flip % 8);
        prop_assert_eq!(table.consume(now, &SessionId::from_random(other)), None);
        let text = SessionId::from_random(id).to_text();
        let parsed = SessionId::parse(&text).unwrap();
        prop_assert_eq!(table.consume(now, &parsed), Some("secret"));
        prop_assert_eq!(table.consume(now, &parsed), None);
    }
}

#[test]
fn the_page_must_start_with_its_size() {
    let now = Instant::now();
    let mut term = TermServer::new(now, TermConfig::default());
    term.handle_input(now, &Frame::Input(b"ls\r").encode());
    assert!(matches!(
        term.poll_event(),
        Some(TermEvent::Ended { code: CloseCode::ProtocolError, reason }) if reason.contains("size")
    ));
    assert!(matches!(
        Frame::decode(&term.poll_transmit().unwrap()),
        Ok(Frame::Close {
            code: CloseCode::ProtocolError,
            ..
        })
    ));

    // And within the start window.
    let mut term = TermServer::new(now, TermConfig::default());
    term.handle_timeout(now + Duration::from_secs(10));
    assert!(matches!(
        term.poll_event(),
        Some(TermEvent::Ended {
            code: CloseCode::ProtocolError,
            ..
        })
    ));
}

#[test]
fn acknowledging_more_than_was_sent_is_a_protocol_error() {
    let now = Instant::now();
    let mut term = started(now);
    term.send_output(now, b"12345");
    term.handle_input(now, &Frame::Ack(6).encode());
    assert!(matches!(
        term.poll_event(),
        Some(TermEvent::Ended {
            code: CloseCode::ProtocolError,
            ..
        })
    ));
}

#[test]
fn pings_keep_an_idle_session_and_answered_pings_keep_it_alive() {
    let start = Instant::now();
    let mut term = started(start);
    let mut now = start;
    // Ten minutes, the page answering every ping a little later.
    while now < start + Duration::from_secs(600) {
        now = term.poll_timeout().unwrap();
        term.handle_timeout(now);
        while let Some(message) = term.poll_transmit() {
            if let Ok(Frame::Ping(stamp)) = Frame::decode(&message) {
                term.handle_input(now + Duration::from_secs(1), &Frame::Pong(stamp).encode());
            }
        }
        assert_eq!(term.poll_event(), None, "alive at {:?}", now - start);
    }
    // The idle limit still applies: nothing typed or printed for 30 minutes ends it.
    let ended = loop {
        let at = term.poll_timeout().unwrap();
        term.handle_timeout(at);
        while let Some(message) = term.poll_transmit() {
            if let Ok(Frame::Ping(stamp)) = Frame::decode(&message) {
                term.handle_input(at, &Frame::Pong(stamp).encode());
            }
        }
        if let Some(event) = term.poll_event() {
            break (event, at);
        }
    };
    assert!(matches!(
        ended.0,
        TermEvent::Ended {
            code: CloseCode::Idle,
            ..
        }
    ));
    assert_eq!(ended.1 - start, Duration::from_secs(1800));
}

#[test]
fn one_time_caps_and_attach_window() {
    let now = Instant::now();
    let config = OneTimeConfig {
        max_pending: 3,
        max_per_address: 2,
        attach_window: Duration::from_secs(30),
    };
    let mut table = OneTimeSessions::new(config);
    let (a, b) = (
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
    );
    let id = |n: u8| SessionId::from_random([n; 16]);
    table.create(now, id(1), a, 1).unwrap();
    table.create(now, id(2), a, 2).unwrap();
    assert_eq!(
        table.create(now, id(3), a, 3),
        Err(CreateError::TooManyForAddress(2))
    );
    assert_eq!(
        table.create(now, id(1), b, 9),
        Err(CreateError::DuplicateId)
    );
    table.create(now, id(4), b, 4).unwrap();
    assert_eq!(table.create(now, id(5), b, 5), Err(CreateError::Full(3)));
    // Past the window: refused, dropped, and no longer counted.
    let later = now + Duration::from_secs(30);
    assert_eq!(table.poll_timeout(), Some(later));
    assert_eq!(table.consume(later, &id(1)), None);
    table.handle_timeout(later);
    assert!(table.is_empty());
    table.create(later, id(6), a, 6).unwrap();
    assert_eq!(table.consume(later, &id(6)), Some(6));
    assert_eq!(SessionId::parse("short"), None);
    assert_eq!(format!("{:?}", id(7)), "SessionId(..)");
}
