//! Every byte vector of `amt-redirection.md` section 3 (3.1 session setup, 3.2 digest on the
//! wire, 3.3 SOL, 3.4 IDE-R, the KVM part of 3.5), decoded and re-encoded.

use oobkit_redir::codec::{
    AuthType, IderCommand, IderMessage, Message, SessionKind, SolSettings, StartStatus, decode,
    fields,
};

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// Decodes `bytes` as exactly one message, checks it equals `expected`, and that encoding it
/// gives `bytes` back.
fn check(bytes: &[u8], kind: Option<SessionKind>, expected: Message<'_>) {
    let (message, used) = decode(bytes, kind).unwrap().expect("complete");
    assert_eq!(used, bytes.len(), "{message:?}");
    assert_eq!(message, expected);
    assert_eq!(message.to_vec(), bytes, "{message:?}");
    // Every proper prefix is incomplete, never an error.
    for cut in 0..bytes.len() {
        assert_eq!(decode(&bytes[..cut], kind).unwrap(), None, "prefix {cut}");
    }
}

#[test]
fn session_setup_3_1() {
    check(
        &hex("10 00 00 00 53 4F 4C 20"),
        None,
        Message::StartSession(SessionKind::Sol),
    );
    check(
        &hex("10 01 00 00 4B 56 4D 52"),
        None,
        Message::StartSession(SessionKind::Kvm),
    );
    check(
        &hex("10 00 00 00 49 44 45 52"),
        None,
        Message::StartSession(SessionKind::Ider),
    );
    for (bytes, fw) in [
        ("11 00 00 00 01 00 0B 08 57 01 00 00 00", [11, 8]),
        ("11 00 00 00 01 00 0C 00 57 01 00 00 00", [12, 0]),
        ("11 00 00 00 01 00 0F 00 57 01 00 00 00", [15, 0]),
    ] {
        check(
            &hex(bytes),
            None,
            Message::StartSessionReply {
                status: StartStatus::Success,
                protocol: [1, 0],
                firmware: fw,
                iana: 343,
                oem: &[],
            },
        );
    }
    check(
        &hex("13 00 00 00 00 00 00 00 00"),
        None,
        Message::Authenticate {
            auth_type: AuthType::Query,
            data: &[],
        },
    );
    check(
        &hex("14 00 00 00 00 01 00 00 00 04"),
        None,
        Message::AuthenticateReply {
            status: 0,
            auth_type: AuthType::Query,
            data: &[4],
        },
    );
    check(
        &hex("13 00 00 00 02 00 00 00 00"),
        None,
        Message::Authenticate {
            auth_type: AuthType::Kerberos,
            data: &[],
        },
    );
    check(
        &hex("14 00 00 00 02 00 00 00 00"),
        None,
        Message::AuthenticateReply {
            status: 0,
            auth_type: AuthType::Kerberos,
            data: &[],
        },
    );
    check(
        &hex("14 02 00 00 01 00 00 00 00"),
        None,
        Message::AuthenticateReply {
            status: 2,
            auth_type: AuthType::UserPassword,
            data: &[],
        },
    );
    let init = hex(
        "13 00 00 00 04 20 00 00 00 05 61 64 6D 69 6E 00 00 13 2F 52 65 64 69 72 65 63 74 69 6F 6E 53 65 72 76 69 63 65 00 00 00 00",
    );
    let (
        Message::Authenticate {
            auth_type: AuthType::Digest,
            data,
        },
        _,
    ) = decode(&init, None).unwrap().unwrap()
    else {
        panic!()
    };
    let f = fields::split(data).unwrap();
    assert_eq!(
        f,
        [
            &b"admin"[..],
            b"",
            b"",
            b"/RedirectionService",
            b"",
            b"",
            b"",
            b""
        ]
    );
    check(
        &hex("14 00 00 00 04 00 00 00 00"),
        None,
        Message::AuthenticateReply {
            status: 0,
            auth_type: AuthType::Digest,
            data: &[],
        },
    );
    // KVM direct, with the RFB version in the same read.
    let kvm = hex("41 00 00 00 00 00 00 00 52 46 42 20 30 30 34 2E 30 30 30 0A");
    assert_eq!(
        decode(&kvm, Some(SessionKind::Kvm)).unwrap(),
        Some((Message::KvmStartReply, 8))
    );
    check(
        &hex("40 00 00 00 00 00 00 00"),
        Some(SessionKind::Kvm),
        Message::KvmStart,
    );
    check(&hex("12 00 00 00"), None, Message::EndSession);
}

#[test]
fn digest_on_the_wire_3_2() {
    // (b): the 87-byte challenge and the 9 + 0xB3 response header.
    let realm = b"Digest:A3829B3827DE4D33D4449B366831FD01";
    let nonce = b"QYePBLMVAAAAAAAAjfXveceOM5bNfu/K";
    let mut challenge = hex("14 01 00 00 04 4E 00 00 00");
    for f in [&realm[..], nonce, b"auth"] {
        fields::push(&mut challenge, f).unwrap();
    }
    assert_eq!(challenge.len(), 87);
    let (
        Message::AuthenticateReply {
            status: 1,
            auth_type: AuthType::Digest,
            data,
        },
        87,
    ) = decode(&challenge, None).unwrap().unwrap()
    else {
        panic!()
    };
    assert_eq!(fields::split(data).unwrap(), [&realm[..], nonce, b"auth"]);
    let mut data = Vec::new();
    for f in [
        &b"admin"[..],
        realm,
        nonce,
        b"/RedirectionService",
        b"0123456789abcdef0123456789abcdef",
        b"00000002",
        b"4af4ea18084dc3527876314f9c7edf30",
        b"auth",
    ] {
        fields::push(&mut data, f).unwrap();
    }
    let response = Message::Authenticate {
        auth_type: AuthType::Digest,
        data: &data,
    }
    .to_vec();
    assert_eq!(&response[..9], &hex("13 00 00 00 04 B3 00 00 00")[..]);
    assert_eq!(response.len(), 9 + 0xB3);
}

#[test]
fn sol_3_3() {
    check(
        &hex("20 00 00 00 01 00 00 00 10 27 64 00 00 00 10 27 64 00 00 00 00 00 00 00"),
        None,
        Message::SolStart(SolSettings::MESHCOMMANDER),
    );
    check(
        &hex("20 00 00 00 00 00 00 00 E8 03 64 00 00 00 10 27 00 00 88 13 00 00 00 00"),
        None,
        Message::SolStart(SolSettings::AMTTERM),
    );
    check(
        &hex("20 00 00 00 00 00 00 00 98 3A 64 00 00 00 60 EA 00 00 88 13 00 00 00 00"),
        None,
        Message::SolStart(SolSettings {
            seq: 0,
            max_tx_buffer: 15000,
            tx_buffer_timeout: 100,
            tx_overflow_timeout: 0,
            host_session_rx_timeout: 60000,
            host_fifo_rx_flush_timeout: 0,
            heartbeat_interval: 5000,
        }),
    );
    check(
        &hex("27 00 00 00 02 00 00 00 00 00 1B 00 00 00"),
        None,
        Message::SolSettingsExtra {
            seq: 2,
            tail: [0, 0, 0x1B, 0, 0, 0],
        },
    );
    check(
        &hex("28 00 00 00 03 00 00 00 03 00 6C 73 0D"),
        None,
        Message::SolDataToHost {
            seq: 3,
            data: b"ls\r",
        },
    );
    check(
        &hex("2A 00 00 00 00 00 00 00 05 00 68 65 6C 6C 6F"),
        None,
        Message::SolDataFromHost {
            seq: 0,
            data: b"hello",
        },
    );
    check(
        &hex("2B 00 00 00 04 00 00 00"),
        None,
        Message::SolHeartbeat { seq: 4 },
    );
    check(
        &hex("22 00 00 00 00 00 00 00"),
        None,
        Message::SolEnd { seq: 0 },
    );
    // 0x21: 23 bytes, status at byte 1, 0x01 at byte 4 (what every client accepts).
    let reply = Message::SolStartReply {
        status: 0,
        echo: [0x10, 0x27, 0x64, 0, 0, 0, 0x10, 0x27, 0x64, 0, 0, 0],
    }
    .to_vec();
    assert_eq!(reply.len(), 23);
    assert_eq!((reply[1], reply[4]), (0, 1));
    check(&reply, None, decode(&reply, None).unwrap().unwrap().0);
}

#[test]
fn ider_3_4() {
    let ider = Some(SessionKind::Ider);
    let open = hex("40 00 00 00 00 00 00 00 30 75 00 00 20 4E 01 00 00 00");
    let (Message::Ider(m), 18) = decode(&open, ider).unwrap().unwrap() else {
        panic!()
    };
    assert_eq!((m.command, m.seq), (IderCommand::Open, 0));
    assert_eq!(u16::from_le_bytes([m.body[0], m.body[1]]), 30000);
    assert_eq!(Message::Ider(m).to_vec(), open);
    for (bytes, value) in [
        ("48 00 00 00 01 00 00 00 03 09 00 00 00", 9u32),
        ("48 00 00 00 01 00 00 00 03 19 00 00 00", 0x19),
    ] {
        let bytes = hex(bytes);
        let (
            Message::Ider(IderMessage {
                command: IderCommand::DisableEnableFeatures,
                seq: 1,
                body,
                ..
            }),
            13,
        ) = decode(&bytes, ider).unwrap().unwrap()
        else {
            panic!()
        };
        assert_eq!(body[0], 3);
        assert_eq!(u32::from_le_bytes(body[1..5].try_into().unwrap()), value);
    }
    // Type 1 of 0x48 is 9 bytes; 0x53 and 0x54 carry a u16 length at offset 9.
    assert_eq!(
        decode(&hex("48 00 00 00 02 00 00 00 01"), ider)
            .unwrap()
            .unwrap()
            .1,
        9
    );
    let mut data_to_host = hex("54 00 00 02 05 00 00 00 00 04 00");
    data_to_host.resize(34, 0);
    data_to_host.extend_from_slice(b"abcd");
    assert_eq!(decode(&data_to_host, ider).unwrap().unwrap().1, 38);
    // 0x41 OPEN reply: 30 + OEM length.
    let mut reply = vec![0x41, 0, 0, 0, 0, 0, 0, 0, 1, 0, 16, 1];
    reply.resize(29, 0);
    reply.push(2);
    reply.extend_from_slice(b"ok");
    assert_eq!(decode(&reply, ider).unwrap().unwrap().1, 32);
}

#[test]
fn hostile_input_is_typed() {
    use oobkit_redir::DecodeError;
    assert_eq!(
        decode(&[0x99], None),
        Err(DecodeError::UnknownCommand(0x99))
    );
    assert_eq!(
        decode(&hex("10 00 00 00 41 42 43 44"), None),
        Err(DecodeError::UnknownSessionType(0x4443_4241))
    );
    assert_eq!(
        decode(&[0x40, 0, 0, 0], Some(SessionKind::Sol)),
        Err(DecodeError::UnexpectedCommand(0x40))
    );
    // A huge auth length is refused from its 9-byte header, before anything is buffered.
    assert!(matches!(
        decode(&hex("13 00 00 00 04 FF FF FF 7F"), None),
        Err(DecodeError::TooLong { .. })
    ));
    assert_eq!(fields::split(&[5, b'a']), Err(DecodeError::TruncatedField));
    assert_eq!(decode(&[], None), Ok(None));
}
