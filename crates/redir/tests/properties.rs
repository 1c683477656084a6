//! Properties: encode/decode round trip; any split of a stream decodes to the same messages;
//! no input panics the decoder or either state machine.

use oobkit_redir::codec::{
    AuthType, IderCommand, IderMessage, Message, SessionKind, SolSettings, StartStatus, decode,
};
use proptest::prelude::*;

/// An owned description of a message, built into a borrowed `Message` for encoding.
#[derive(Debug, Clone)]
enum Spec {
    Start(u8),
    StartReply(u8, [u8; 4], u32, Vec<u8>),
    Auth(u8, Vec<u8>),
    AuthReply(u8, u8, Vec<u8>),
    Sol(SolSettings),
    ToHost(u32, Vec<u8>),
    FromHost(u32, Vec<u8>),
    Controls(u32, u8, u8),
    Heartbeat(u32),
    End(u32),
    Session,
}

fn spec() -> impl Strategy<Value = Spec> {
    let data = || prop::collection::vec(any::<u8>(), 0..300);
    prop_oneof![
        (0u8..3).prop_map(Spec::Start),
        (
            any::<u8>(),
            any::<[u8; 4]>(),
            any::<u32>(),
            prop::collection::vec(any::<u8>(), 0..20)
        )
            .prop_map(|(s, v, i, o)| Spec::StartReply(s, v, i, o)),
        (0u8..5, data()).prop_map(|(t, d)| Spec::Auth(t, d)),
        (0u8..3, 0u8..5, data()).prop_map(|(s, t, d)| Spec::AuthReply(s, t, d)),
        any::<(u32, u16, u16, u16, u16, u16, u16)>().prop_map(|(seq, a, b, c, d, e, f)| Spec::Sol(
            SolSettings {
                seq,
                max_tx_buffer: a,
                tx_buffer_timeout: b,
                tx_overflow_timeout: c,
                host_session_rx_timeout: d,
                host_fifo_rx_flush_timeout: e,
                heartbeat_interval: f
            }
        )),
        (any::<u32>(), data()).prop_map(|(s, d)| Spec::ToHost(s, d)),
        (any::<u32>(), data()).prop_map(|(s, d)| Spec::FromHost(s, d)),
        any::<(u32, u8, u8)>().prop_map(|(s, c, st)| Spec::Controls(s, c, st)),
        any::<u32>().prop_map(Spec::Heartbeat),
        any::<u32>().prop_map(Spec::End),
        Just(Spec::Session),
    ]
}

fn build(spec: &Spec) -> Message<'_> {
    match spec {
        Spec::Start(k) => Message::StartSession(
            [SessionKind::Sol, SessionKind::Kvm, SessionKind::Ider][usize::from(*k)],
        ),
        Spec::StartReply(status, v, iana, oem) => Message::StartSessionReply {
            status: StartStatus::from_byte(*status),
            protocol: [v[0], v[1]],
            firmware: [v[2], v[3]],
            iana: *iana,
            oem,
        },
        Spec::Auth(t, d) => Message::Authenticate {
            auth_type: AuthType::from_byte(*t),
            data: d,
        },
        Spec::AuthReply(s, t, d) => Message::AuthenticateReply {
            status: *s,
            auth_type: AuthType::from_byte(*t),
            data: d,
        },
        Spec::Sol(s) => Message::SolStart(*s),
        Spec::ToHost(seq, d) => Message::SolDataToHost { seq: *seq, data: d },
        Spec::FromHost(seq, d) => Message::SolDataFromHost { seq: *seq, data: d },
        Spec::Controls(seq, c, s) => Message::SolControls {
            seq: *seq,
            control: *c,
            status: *s,
        },
        Spec::Heartbeat(seq) => Message::SolHeartbeat { seq: *seq },
        Spec::End(seq) => Message::SolEnd { seq: *seq },
        Spec::Session => Message::EndSession,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn round_trip(spec in spec()) {
        let message = build(&spec);
        let bytes = message.to_vec();
        prop_assert_eq!(decode(&bytes, Some(SessionKind::Sol)).unwrap(), Some((message, bytes.len())));
    }

    #[test]
    fn any_split_decodes_the_same(specs in prop::collection::vec(spec(), 1..12), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10)) {
        let mut stream = Vec::new();
        for s in &specs {
            build(s).encode(&mut stream);
        }
        // Feed the stream to an accumulating reader in pieces cut at arbitrary points.
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        points.extend([0, stream.len()]);
        points.sort_unstable();
        let mut buffer = Vec::new();
        let mut decoded = Vec::new();
        for pair in points.windows(2) {
            buffer.extend_from_slice(&stream[pair[0]..pair[1]]);
            while let Some((message, used)) = decode(&buffer, Some(SessionKind::Sol)).unwrap() {
                decoded.push(message.to_vec());
                buffer.drain(..used);
            }
        }
        prop_assert!(buffer.is_empty());
        let expected: Vec<Vec<u8>> = specs.iter().map(|s| build(s).to_vec()).collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn ider_round_trip(cmd in prop::sample::select(vec![0x42u8, 0x43, 0x44, 0x45, 0x47, 0x4B, 0x46, 0x49, 0x4A, 0x50, 0x51, 0x52]), attributes in any::<u8>(), seq in any::<u32>(), fill in any::<u8>()) {
        let size = match cmd { 0x46 => 1, 0x49 => 5, 0x4A => 3, 0x50 => 20, 0x51 | 0x52 => 23, _ => 0 };
        let body = vec![fill; size];
        let message = Message::Ider(IderMessage { command: IderCommand::from_byte(cmd).unwrap(), attributes, seq, body: &body });
        let bytes = message.to_vec();
        prop_assert_eq!(decode(&bytes, Some(SessionKind::Ider)).unwrap(), Some((message, bytes.len())));
    }

    #[test]
    fn nothing_panics(data in prop::collection::vec(any::<u8>(), 0..400)) {
        oobkit_redir::fuzzing::decoder(&data);
        oobkit_redir::fuzzing::client(&data);
        oobkit_redir::fuzzing::device(&data);
    }

    #[test]
    fn nothing_panics_on_plausible_streams(specs in prop::collection::vec(spec(), 0..8), noise in any::<u8>()) {
        let mut stream = vec![noise % 8];
        for s in &specs {
            build(s).encode(&mut stream);
        }
        oobkit_redir::fuzzing::client(&stream);
        oobkit_redir::fuzzing::device(&stream);
    }
}
