//! Agent and server sessions paired in memory with a virtual clock.

use std::time::{Duration, Instant};

use oobkit_rrmt::codec::Frame;
use oobkit_rrmt::session::{
    AgentEvent, AgentSession, CloseReason, ServerEvent, ServerSession, ServerSessionConfig,
};

const TOKEN: [u8; 16] = [
    0xA1, 0xB6, 0x85, 0x8E, 0x25, 0xCC, 0x43, 0x54, 0xA0, 0xFF, 0x06, 0xFC, 0xA3, 0x0B, 0x11, 0x09,
];
const HOST: [u8; 16] = [7; 16];

struct Pair {
    agent: AgentSession,
    server: ServerSession,
    now: Instant,
    agent_events: Vec<AgentEvent>,
    server_events: Vec<ServerEvent>,
    /// The registry's answer to a token.
    valid_token: [u8; 16],
    agent_to_server: bool,
    server_to_agent: bool,
}

impl Pair {
    fn new(token: [u8; 16]) -> Self {
        let now = Instant::now();
        let mut pair = Self {
            agent: AgentSession::new("host-1", token, now),
            server: ServerSession::new(ServerSessionConfig::new("rrmt-server"), now),
            now,
            agent_events: Vec::new(),
            server_events: Vec::new(),
            valid_token: TOKEN,
            agent_to_server: true,
            server_to_agent: true,
        };
        pair.progress();
        pair
    }

    fn progress(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(bytes) = self.agent.poll_transmit() {
                moved = true;
                if self.agent_to_server {
                    self.server.handle_input(self.now, &bytes);
                }
            }
            while let Some(bytes) = self.server.poll_transmit() {
                moved = true;
                if self.server_to_agent {
                    self.agent.handle_input(self.now, &bytes);
                }
            }
            while let Some(e) = self.server.poll_event() {
                moved = true;
                if let ServerEvent::AuthorizeRequested { token, .. } = &e {
                    if *token == self.valid_token {
                        self.server.accept(HOST);
                    } else {
                        self.server.reject("unknown token");
                    }
                }
                self.server_events.push(e);
            }
            while let Some(e) = self.agent.poll_event() {
                moved = true;
                self.agent_events.push(e);
            }
            if !moved {
                return;
            }
        }
        panic!("no quiescence");
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(at) = [self.agent.poll_timeout(), self.server.poll_timeout()]
            .into_iter()
            .flatten()
            .filter(|t| *t <= end)
            .min()
        {
            self.now = at.max(self.now);
            // Each side keeps the run-loop contract: afterwards its next deadline is later.
            oobkit_runloop::check_timeout(&mut self.agent, self.now);
            oobkit_runloop::check_timeout(&mut self.server, self.now);
            self.progress();
        }
        self.now = end;
        self.progress();
    }

    fn agent_closed(&self) -> Option<&CloseReason> {
        self.agent_events.iter().find_map(|e| match e {
            AgentEvent::Closed(r) => Some(r),
            _ => None,
        })
    }

    fn server_closed(&self) -> Option<&CloseReason> {
        self.server_events.iter().find_map(|e| match e {
            ServerEvent::Closed(r) => Some(r),
            _ => None,
        })
    }

    fn server_data(&self, channel: u32) -> usize {
        self.server_events
            .iter()
            .map(|e| match e {
                ServerEvent::ChannelData { channel: c, data } if *c == channel => data.len(),
                _ => 0,
            })
            .sum()
    }
}

#[test]
fn authorize_then_exec_pairs_output_with_its_request() {
    let mut p = Pair::new(TOKEN);
    assert!(p.agent_events.contains(&AgentEvent::Provisioned {
        host_id: HOST,
        max_channels: 8
    }));
    let first = p
        .server
        .execute(&[b"/bin/echo", b"hi"], 5000, 1 << 20)
        .unwrap();
    let second = p.server.execute(&[b"false"], 0, 0).unwrap();
    assert_ne!(first, second);
    p.progress();
    let requests: Vec<u32> = p
        .agent_events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Execute { request, .. } => Some(*request),
            _ => None,
        })
        .collect();
    assert_eq!(requests, [first, second]);
    // Answered out of order: the ids pair them.
    p.agent.result(second, 1, 0);
    p.agent.output(first, 1, b"hi\n");
    p.agent.result(first, 0, 0);
    p.progress();
    assert!(p.server_events.contains(&ServerEvent::Output {
        request: first,
        stream: 1,
        data: b"hi\n".to_vec()
    }));
    assert!(p.server_events.contains(&ServerEvent::Result {
        request: first,
        exit: 0,
        flags: 0
    }));
    assert!(p.server_events.contains(&ServerEvent::Result {
        request: second,
        exit: 1,
        flags: 0
    }));
    assert_eq!(p.server.pending_requests(), 0);
    // A result for a request never made is a protocol error.
    p.agent.result(999, 0, 0);
    p.progress();
    assert!(matches!(p.server_closed(), Some(CloseReason::Protocol(_))));
}

#[test]
fn a_bad_token_is_refused_and_nothing_else_is_accepted_before_authorization() {
    let p = Pair::new([0; 16]);
    assert!(
        matches!(p.agent_closed(), Some(CloseReason::NotAuthorized(_))),
        "{:?}",
        p.agent_events
    );
    // Before authorization, a channel frame ends the session.
    let now = Instant::now();
    let mut server = ServerSession::new(ServerSessionConfig::new("s"), now);
    server.handle_input(
        now,
        &Frame::Hello {
            min: 2,
            max: 2,
            name: "a",
        }
        .to_vec(),
    );
    server.handle_input(
        now,
        &Frame::ChannelData {
            channel: 1,
            data: b"x",
        }
        .to_vec(),
    );
    let events: Vec<ServerEvent> = std::iter::from_fn(|| server.poll_event()).collect();
    assert!(
        matches!(
            events.last(),
            Some(ServerEvent::Closed(CloseReason::Protocol(_)))
        ),
        "{events:?}"
    );
    assert_eq!(
        server.execute(&[b"ls"], 0, 0),
        Err(oobkit_rrmt::session::RequestError::NotActive)
    );
}

#[test]
fn version_mismatch() {
    let now = Instant::now();
    let mut server = ServerSession::new(ServerSessionConfig::new("s"), now);
    server.handle_input(
        now,
        &Frame::Hello {
            min: 3,
            max: 5,
            name: "future",
        }
        .to_vec(),
    );
    let reply = server.poll_transmit().unwrap();
    assert_eq!(reply[0], 0x0A, "an Error frame");
    assert_eq!(
        server.poll_event(),
        Some(ServerEvent::Closed(CloseReason::Version { min: 3, max: 5 }))
    );
}

#[test]
fn shell_with_flow_control_against_a_flood() {
    let mut p = Pair::new(TOKEN);
    let channel = p.server.open_shell(80, 24, "xterm").unwrap();
    p.progress();
    assert!(p.agent_events.contains(&AgentEvent::ShellOpen {
        channel,
        cols: 80,
        rows: 24,
        term: "xterm".into()
    }));
    p.agent.shell_opened(channel);
    p.progress();
    assert!(
        p.server_events
            .contains(&ServerEvent::ShellOpened { channel })
    );
    // A shell producing 1 MiB at once: only the 256 KiB window goes out.
    let flood = vec![b'y'; 1 << 20];
    let sent = p.agent.send_channel_data(channel, &flood);
    assert_eq!(sent, 256 * 1024);
    assert_eq!(p.agent.send_channel_data(channel, &flood[sent..]), 0);
    p.progress();
    assert_eq!(p.server_data(channel), 256 * 1024);
    // The server consumed some and grants more: exactly that much more can flow.
    p.server.grant(channel, 64 * 1024);
    p.progress();
    assert_eq!(p.agent.send_window(channel), 64 * 1024);
    assert_eq!(
        p.agent.send_channel_data(channel, &flood[sent..]),
        64 * 1024
    );
    p.progress();
    assert_eq!(p.server_data(channel), 320 * 1024);
    // Input and resize the other way; then the shell exits.
    assert_eq!(p.server.send_channel_data(channel, b"exit\r"), 5);
    p.server.resize(channel, 120, 40);
    p.progress();
    assert!(p.agent_events.contains(&AgentEvent::ChannelData {
        channel,
        data: b"exit\r".to_vec()
    }));
    assert!(p.agent_events.contains(&AgentEvent::Resize {
        channel,
        cols: 120,
        rows: 40
    }));
    p.agent.close_channel(channel, 0);
    p.progress();
    assert!(
        p.server_events
            .contains(&ServerEvent::ChannelClosed { channel, exit: 0 })
    );
}

#[test]
fn a_peer_writing_past_its_window_is_cut_off() {
    let mut p = Pair::new(TOKEN);
    let channel = p.server.open_shell(80, 24, "xterm").unwrap();
    p.progress();
    p.agent.shell_opened(channel);
    p.progress();
    // A hostile agent ignores the window: 300 KiB of raw frames against 256 KiB granted.
    let chunk = vec![0u8; 60_000];
    for _ in 0..5 {
        p.server.handle_input(
            p.now,
            &Frame::ChannelData {
                channel,
                data: &chunk,
            }
            .to_vec(),
        );
    }
    p.progress();
    assert_eq!(p.server_closed(), Some(&CloseReason::FlowControl(channel)));
    assert!(
        p.server_data(channel) <= 256 * 1024,
        "nothing past the window was delivered"
    );
}

#[test]
fn channel_limit() {
    let mut p = Pair::new(TOKEN);
    for _ in 0..8 {
        p.server.open_shell(80, 24, "vt100").unwrap();
    }
    assert_eq!(
        p.server.open_shell(80, 24, "vt100"),
        Err(oobkit_rrmt::session::RequestError::TooManyChannels)
    );
}

#[test]
fn revoke_mid_shell() {
    let mut p = Pair::new(TOKEN);
    let channel = p.server.open_shell(80, 24, "xterm").unwrap();
    p.progress();
    p.agent.shell_opened(channel);
    p.server.revoke();
    p.progress();
    assert_eq!(p.agent_closed(), Some(&CloseReason::Revoked));
    assert_eq!(p.server_closed(), Some(&CloseReason::Revoked));
    // Nothing more is accepted after that.
    assert_eq!(p.agent.send_channel_data(channel, b"late"), 0);
    assert_eq!(
        p.server.execute(&[b"ls"], 0, 0),
        Err(oobkit_rrmt::session::RequestError::NotActive)
    );
}

#[test]
fn reauthorize_rotates_the_token() {
    let mut p = Pair::new(TOKEN);
    let new = [9; 16];
    p.server.reauthorize(new);
    p.progress();
    assert!(
        p.agent_events
            .contains(&AgentEvent::Reauthorize { token: new })
    );
    p.agent.token_stored(new);
    p.progress();
    assert!(p.server_events.contains(&ServerEvent::TokenRotated));
}

#[test]
fn keepalive_and_a_lost_peer() {
    let mut p = Pair::new(TOKEN);
    // Ten minutes idle: pings keep both sides up.
    p.advance(Duration::from_secs(600));
    assert_eq!((p.agent_closed(), p.server_closed()), (None, None));
    // The agent's packets stop arriving: the server gives up after three heartbeats (90 s).
    p.agent_to_server = false;
    p.advance(Duration::from_secs(85));
    assert_eq!(p.server_closed(), None);
    p.advance(Duration::from_secs(10));
    assert_eq!(p.server_closed(), Some(&CloseReason::PeerDead));
}

#[test]
fn handshake_timeout() {
    let mut p = Pair::new(TOKEN);
    let now = p.now;
    p.server = ServerSession::new(ServerSessionConfig::new("s"), now);
    p.server_events.clear();
    p.advance(Duration::from_secs(31));
    assert_eq!(p.server_closed(), Some(&CloseReason::HandshakeTimeout));
}

#[test]
fn oversized_names_and_reasons_do_not_panic() {
    let now = Instant::now();
    let long = "é".repeat(300); // 600 bytes, multi-byte characters
    let mut agent = AgentSession::new(&long, TOKEN, now);
    let hello = agent.poll_transmit().unwrap();
    let (Frame::Hello { name, .. }, _) = oobkit_rrmt::codec::decode(&hello).unwrap().unwrap()
    else {
        panic!()
    };
    assert!(name.len() <= 255 && long.starts_with(name));
    let mut server = ServerSession::new(ServerSessionConfig::new(&long), now);
    server.handle_input(now, &hello);
    server.handle_input(now, &Frame::Authorize { token: TOKEN }.to_vec());
    while server.poll_event().is_some() {}
    server.reject(&"x".repeat(100_000));
    let out = server.poll_transmit().unwrap();
    assert!(out.len() < 70_000);
}
