//! Client and device state machines paired in memory with a virtual clock.

use std::time::{Duration, Instant};

use oobkit_redir::codec::{AuthType, IderCommand, SessionKind, StartStatus};
use oobkit_redir::{
    ClientSession, ClientSessionConfig, CloseReason, DeviceSession, DeviceSessionConfig, Event,
    Transport,
};

const REALM: &str = "Digest:A3829B3827DE4D33D4449B366831FD01";

struct Pair {
    client: ClientSession,
    device: DeviceSession,
    now: Instant,
    client_events: Vec<Event>,
    device_events: Vec<Event>,
    /// What the device model answers to a start request.
    start_answer: StartStatus,
    /// Whether bytes flow device -> client (false: the device went silent).
    device_link: bool,
    /// Whether bytes flow client -> device.
    client_link: bool,
}

impl Pair {
    fn new(
        kind: SessionKind,
        password: &str,
        device: DeviceSessionConfig,
        transport: Transport,
    ) -> Self {
        let now = Instant::now();
        let mut config =
            ClientSessionConfig::new(kind, "admin", password, "0123456789abcdef0123456789abcdef");
        config.transport = transport;
        let mut pair = Self {
            client: ClientSession::new(config, now),
            device: DeviceSession::new(device, now, "QYePBLMVAAAAAAAAjfXveceOM5bNfu/K"),
            now,
            client_events: Vec::new(),
            device_events: Vec::new(),
            start_answer: StartStatus::Success,
            device_link: true,
            client_link: true,
        };
        pair.progress();
        pair
    }

    fn amt(kind: SessionKind) -> Self {
        Self::new(
            kind,
            "P@ssw0rd",
            DeviceSessionConfig::new([16, 1], REALM, "admin", "P@ssw0rd"),
            Transport::Tcp,
        )
    }

    /// Moves bytes and events until nothing changes.
    fn progress(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(bytes) = self.client.poll_transmit() {
                moved = true;
                if self.client_link {
                    self.device.handle_input(self.now, &bytes);
                }
            }
            while let Some(bytes) = self.device.poll_transmit() {
                moved = true;
                if self.device_link {
                    self.client.handle_input(self.now, &bytes);
                }
            }
            while let Some(event) = self.device.poll_event() {
                moved = true;
                if let Event::StartRequested(_) = event {
                    self.device.answer_start(self.now, self.start_answer);
                }
                self.device_events.push(event);
            }
            while let Some(event) = self.client.poll_event() {
                moved = true;
                self.client_events.push(event);
            }
            if !moved {
                return;
            }
        }
        panic!("no quiescence");
    }

    /// Advances the virtual clock by `d`, firing timers as they fall due.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = [self.client.poll_timeout(), self.device.poll_timeout()]
                .into_iter()
                .flatten()
                .filter(|t| *t <= end)
                .min();
            let Some(at) = next else { break };
            self.now = at.max(self.now);
            // Each side keeps the run-loop contract: afterwards its next deadline is later.
            oobkit_runloop::check_timeout(&mut self.client, self.now);
            oobkit_runloop::check_timeout(&mut self.device, self.now);
            self.progress();
        }
        self.now = end;
        self.progress();
    }

    fn client_closed(&self) -> Option<&CloseReason> {
        closed(&self.client_events)
    }

    fn device_closed(&self) -> Option<&CloseReason> {
        closed(&self.device_events)
    }

    fn client_sol_data(&self) -> Vec<u8> {
        sol_data(&self.client_events)
    }

    fn device_sol_data(&self) -> Vec<u8> {
        sol_data(&self.device_events)
    }
}

/// The reason of the Closed event, if any.
fn closed(events: &[Event]) -> Option<&CloseReason> {
    events.iter().find_map(|e| match e {
        Event::Closed(r) => Some(r),
        _ => None,
    })
}

/// All SOL data delivered, in order.
fn sol_data(events: &[Event]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::SolData(b) => Some(b.to_vec()),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn sol_setup_data_both_ways_and_orderly_close() {
    let mut p = Pair::amt(SessionKind::Sol);
    assert!(
        p.client_events
            .contains(&Event::SessionStarted { firmware: [16, 1] })
    );
    assert!(p.client_events.contains(&Event::Authenticated {
        auth_type: AuthType::Digest
    }));
    assert!(
        p.client_events.contains(&Event::SolReady) && p.device_events.contains(&Event::SolReady)
    );
    // Longer than MaxTxBuffer (10000): split, and reassembled with nothing lost.
    let big: Vec<u8> = (0..25_000u32).map(|i| (i * 7 % 256) as u8).collect();
    p.client.send_sol(&big);
    p.progress();
    assert_eq!(p.device_sol_data(), big);
    let chunks = p
        .device_events
        .iter()
        .filter(|e| matches!(e, Event::SolData(_)))
        .count();
    assert_eq!(chunks, 3);
    p.device.send_sol(b"login: \xff\x00bytes");
    p.progress();
    assert_eq!(p.client_sol_data(), b"login: \xff\x00bytes");
    p.client.end(p.now);
    p.progress();
    assert_eq!(p.client_closed(), Some(&CloseReason::Ended));
    assert_eq!(p.device_closed(), Some(&CloseReason::Ended));
}

#[test]
fn data_queued_before_sol_is_active_is_sent_after() {
    let now = Instant::now();
    let mut client = ClientSession::new(
        ClientSessionConfig::new(SessionKind::Sol, "admin", "x", "c"),
        now,
    );
    client.send_sol(b"early");
    let mut p = Pair::amt(SessionKind::Sol);
    p.client = client;
    p.device = DeviceSession::new(
        DeviceSessionConfig::new([16, 1], REALM, "admin", "x"),
        now,
        "n",
    );
    p.progress();
    assert_eq!(p.device_sol_data(), b"early");
}

#[test]
fn keepalive_keeps_the_session_and_silence_kills_it() {
    let mut p = Pair::amt(SessionKind::Sol);
    // 60 s of idle time: 2 s keepalives satisfy the device's 10 s receive timeout, device
    // heartbeats (5 s) satisfy the client's 20 s dead-peer limit.
    p.advance(Duration::from_secs(60));
    assert_eq!(p.client_closed(), None);
    assert_eq!(p.device_closed(), None);
    // The device goes silent: the client gives up after 4 heartbeat intervals.
    p.device_link = false;
    p.advance(Duration::from_secs(19));
    assert_eq!(p.client_closed(), None);
    p.advance(Duration::from_secs(2));
    assert_eq!(p.client_closed(), Some(&CloseReason::PeerDead));
}

#[test]
fn ending_sol_with_a_silent_device_closes_without_spinning() {
    let mut p = Pair::amt(SessionKind::Sol);
    p.device_link = false;
    p.client.end(p.now);
    p.progress();
    assert_eq!(
        p.client_closed(),
        None,
        "waits for the device's reply first"
    );
    // `advance` asserts after every timer that the next deadline lies ahead (the bug: the
    // keepalive deadline stayed in the past while nothing handled it, and drivers spun).
    p.advance(Duration::from_secs(4));
    assert_eq!(p.client_closed(), None);
    p.advance(Duration::from_secs(2));
    assert_eq!(p.client_closed(), Some(&CloseReason::Ended));
    assert_eq!(p.client.poll_timeout(), None);
}

#[test]
fn device_drops_a_silent_client() {
    let mut p = Pair::amt(SessionKind::Sol);
    p.client_link = false;
    p.advance(Duration::from_secs(11));
    assert_eq!(p.device_closed(), Some(&CloseReason::PeerDead));
}

#[test]
fn busy_and_disabled_devices() {
    for (answer, reason) in [
        (StartStatus::Busy, CloseReason::Busy),
        (StartStatus::Unsupported, CloseReason::Unsupported),
    ] {
        let now = Instant::now();
        let mut p = Pair::amt(SessionKind::Kvm);
        p.client = ClientSession::new(
            ClientSessionConfig::new(SessionKind::Kvm, "admin", "P@ssw0rd", "c"),
            now,
        );
        p.device = DeviceSession::new(
            DeviceSessionConfig::new([16, 1], REALM, "admin", "P@ssw0rd"),
            now,
            "n",
        );
        p.client_events.clear();
        p.start_answer = answer;
        p.progress();
        assert_eq!(p.client_closed(), Some(&reason));
        assert!(reason.to_string().contains(if answer == StartStatus::Busy {
            "busy"
        } else {
            "disabled"
        }));
    }
}

#[test]
fn wrong_password() {
    let mut p = Pair::new(
        SessionKind::Sol,
        "wrong",
        DeviceSessionConfig::new([16, 1], REALM, "admin", "P@ssw0rd"),
        Transport::Tcp,
    );
    assert_eq!(p.client_closed(), Some(&CloseReason::AuthRejected));
    assert_eq!(p.device_closed(), Some(&CloseReason::ClientAuthFailed));
    p.advance(Duration::from_secs(60));
    assert!(!p.client_events.contains(&Event::SolReady));
}

#[test]
fn other_auth_methods() {
    for (offered, used) in [
        (vec![AuthType::UserPassword], AuthType::UserPassword),
        (
            vec![AuthType::Digest2069, AuthType::UserPassword],
            AuthType::Digest2069,
        ),
        (
            vec![
                AuthType::UserPassword,
                AuthType::Digest2069,
                AuthType::Digest,
            ],
            AuthType::Digest,
        ),
    ] {
        let mut device = DeviceSessionConfig::new([12, 0], REALM, "admin", "P@ssw0rd");
        device.auth_types = offered;
        let p = Pair::new(SessionKind::Sol, "P@ssw0rd", device, Transport::Tcp);
        assert!(
            p.client_events
                .contains(&Event::Authenticated { auth_type: used }),
            "{:?}",
            p.client_events
        );
        assert!(p.client_events.contains(&Event::SolReady));
    }
    // Nothing in common.
    let mut device = DeviceSessionConfig::new([12, 0], REALM, "admin", "P@ssw0rd");
    device.auth_types = vec![AuthType::Kerberos];
    let p = Pair::new(SessionKind::Sol, "P@ssw0rd", device, Transport::Tcp);
    assert_eq!(
        p.client_closed(),
        Some(&CloseReason::NoUsableAuth(vec![AuthType::Kerberos]))
    );
    // The websocket transport: empty Kerberos.
    let mut device = DeviceSessionConfig::new([16, 1], REALM, "admin", "P@ssw0rd");
    device.accept_empty_kerberos = true;
    let p = Pair::new(SessionKind::Sol, "", device, Transport::AmtWebSocket);
    assert!(p.client_events.contains(&Event::Authenticated {
        auth_type: AuthType::Kerberos
    }));
}

#[test]
fn garbage_mid_session_ends_it_with_a_reason() {
    let mut p = Pair::amt(SessionKind::Sol);
    p.device.send_sol(b"before");
    p.progress();
    p.client.handle_input(
        p.now,
        &[
            0x2A, 0, 0, 0, 0, 0, 0, 0, 3, 0, b'a', b'b', b'c', 0x99, 1, 2,
        ],
    );
    p.progress();
    // What came before the garbage, even in the same read, is delivered.
    assert_eq!(p.client_sol_data(), b"beforeabc");
    assert_eq!(
        p.client_closed(),
        Some(&CloseReason::Protocol(
            oobkit_redir::DecodeError::UnknownCommand(0x99)
        ))
    );
}

#[test]
fn kvm_hands_off_to_rfb() {
    let mut p = Pair::amt(SessionKind::Kvm);
    assert!(p.client_events.contains(&Event::RfbHandoff));
    assert!(p.device_events.contains(&Event::RfbHandoff));
    // After the handoff, bytes are RFB, passed through untouched.
    p.client.handle_input(p.now, b"RFB 003.008\n");
    p.progress();
    assert!(
        p.client_events
            .contains(&Event::Rfb(bytes::Bytes::from_static(b"RFB 003.008\n")))
    );
    assert_eq!(p.client.poll_timeout(), None, "no timers after handoff");
}

#[test]
fn ider_open_features_close() {
    let mut p = Pair::amt(SessionKind::Ider);
    assert!(
        p.client_events
            .iter()
            .any(|e| matches!(e, Event::IderOpened { .. })),
        "{:?}",
        p.client_events
    );
    // The client enabled the drives by itself once OPEN was answered (0x48 type 3, "now").
    let reply = p.client_events.iter().find_map(|e| match e {
        Event::Ider {
            command: IderCommand::FeaturesReply,
            seq,
            body,
            ..
        } => Some((*seq, body.clone())),
        _ => None,
    });
    let (seq, body) = reply.expect("features reply");
    assert_eq!(
        seq, 1,
        "the device numbers its messages from 0: OPEN reply 0, this 1"
    );
    assert_eq!(
        (body[0], u32::from_le_bytes(body[1..5].try_into().unwrap())),
        (3, 1)
    );
    p.client.end(p.now);
    p.progress();
    assert_eq!(p.client_closed(), Some(&CloseReason::Ended));
    assert_eq!(p.device_closed(), Some(&CloseReason::Ended));
}

#[test]
fn ider_sequence_gap_is_fatal() {
    let mut p = Pair::amt(SessionKind::Ider);
    p.client.handle_input(p.now, &[0x4B, 0, 0, 0, 9, 0, 0, 0]);
    p.progress();
    assert_eq!(
        p.client_closed(),
        Some(&CloseReason::IderSequence {
            // 0: OPEN reply, 1: the reply to the client's enable.
            expected: 2,
            got: 9
        })
    );
}

#[test]
fn handshake_timeout() {
    let mut p = Pair::amt(SessionKind::Sol);
    let now = p.now;
    p.client = ClientSession::new(
        ClientSessionConfig::new(SessionKind::Sol, "admin", "P@ssw0rd", "c"),
        now,
    );
    p.client_events.clear();
    // A device that accepted the TCP connection and never answers.
    p.client_link = false;
    p.device_link = false;
    p.advance(Duration::from_secs(29));
    assert_eq!(p.client_closed(), None);
    p.advance(Duration::from_secs(2));
    assert_eq!(p.client_closed(), Some(&CloseReason::HandshakeTimeout));
}

/// The device writes drive commands; the client answers through a MediaServer: an unknown
/// opcode gets CHECK CONDITION with "invalid command" sense (never silence), a read arrives in
/// read-buffer chunks with the last one completing it, each direction numbered without gaps.
#[test]
fn ider_drive_commands_are_answered_over_the_wire() {
    use oobkit_redir::storage::{
        CommandWritten, Drive, MediaServer, Sense, command_end_sense, data_to_host_payload,
    };
    let mut p = Pair::amt(SessionKind::Ider);
    assert!(
        p.device_events
            .iter()
            .any(|e| matches!(e, Event::IderEnabled { register: 0x19 })),
        "{:?}",
        p.device_events
    );
    let image: Vec<u8> = (0..20 * 2048).map(|i| (i % 253) as u8).collect();
    let mut server = MediaServer::new(Some(image.len() as u64), None).unwrap();
    let mut ask = |p: &mut Pair, cdb: [u8; 12]| {
        let command = CommandWritten::packet(Drive::Cdrom, cdb);
        p.device
            .send_ider(IderCommand::CommandWritten, 0, &command.body());
        p.client_events.clear();
        p.device_events.clear();
        p.progress();
        for event in std::mem::take(&mut p.client_events) {
            if let Event::Ider {
                command: IderCommand::CommandWritten,
                body,
                ..
            } = event
            {
                let written = CommandWritten::parse(&body).unwrap();
                let answer = server.answer(&written);
                if let Some(plan) = p.client.ider_answer(&written, answer) {
                    let range = plan.offset as usize..(plan.offset + plan.len) as usize;
                    p.client.ider_data(&written, &image[range], true);
                }
            }
        }
        p.progress();
        std::mem::take(&mut p.device_events)
    };
    let first = ask(&mut p, [0; 12]);
    let Some(Event::Ider { command, body, .. }) = first.first() else {
        panic!("{first:?}")
    };
    assert_eq!(*command, IderCommand::CommandEndResponse);
    assert_eq!(command_end_sense(body), Ok(Some(Sense::MEDIUM_CHANGED)));
    let unknown = ask(&mut p, [0xBB, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let Some(Event::Ider { body, .. }) = unknown.first() else {
        panic!("{unknown:?}")
    };
    assert_eq!(command_end_sense(body), Ok(Some(Sense::INVALID_COMMAND)));
    // READ(10) of 5 blocks (10240 bytes): two messages, 8192 + 2048, the second completing.
    let read = ask(&mut p, [0x28, 0, 0, 0, 0, 3, 0, 0, 5, 0, 0, 0]);
    let chunks: Vec<(u8, Vec<u8>)> = read
        .iter()
        .filter_map(|e| match e {
            Event::Ider {
                command: IderCommand::DataToHost,
                attributes,
                body,
                ..
            } => Some((*attributes, data_to_host_payload(body).unwrap().to_vec())),
            _ => None,
        })
        .collect();
    assert_eq!(
        chunks
            .iter()
            .map(|(a, d)| (*a, d.len()))
            .collect::<Vec<_>>(),
        [(0, 8192), (2, 2048)]
    );
    let data: Vec<u8> = chunks.into_iter().flat_map(|(_, d)| d).collect();
    assert_eq!(data, &image[3 * 2048..8 * 2048]);
    assert!(p.client_closed().is_none() && p.device_closed().is_none());
}

/// An IDE-R client that goes silent is dropped after the rx timeout it asked for in OPEN (30 s
/// from ours), so it cannot hold the device's one IDE-R session; our client's heartbeats keep
/// an idle but live session open.
#[test]
fn a_silent_ider_client_is_dropped_and_a_live_one_is_kept() {
    let mut p = Pair::amt(SessionKind::Ider);
    // Live: two minutes of heartbeats and nothing else.
    for _ in 0..12 {
        p.now += Duration::from_secs(10);
        p.client.handle_timeout(p.now);
        p.device.handle_timeout(p.now);
        p.progress();
    }
    assert_eq!(p.device_closed(), None, "heartbeats keep the session");
    // Silent: the client's bytes stop reaching the device.
    p.client_link = false;
    p.now += Duration::from_secs(29);
    oobkit_runloop::check_timeout(&mut p.device, p.now);
    p.progress();
    assert_eq!(p.device_closed(), None, "not before the 30 s asked for");
    p.now += Duration::from_secs(2);
    oobkit_runloop::check_timeout(&mut p.device, p.now);
    p.progress();
    assert_eq!(p.device_closed(), Some(&CloseReason::PeerDead));
}
