//! The simulator's redirection port with real clients: `amtterm` (Debian package, installed by
//! `.ci/run`; missing means failure, never a skip) and the oobkit-redir client over TCP.

use std::process::Stdio;
use std::time::{Duration, Instant};

use amt_sim::{SimConfig, Simulator};
use oobkit_redir::codec::SessionKind;
use oobkit_redir::{Client, ClientConfig, CloseReason, Event};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PASSWORD: &str = "Sim-P@ss1";

async fn start() -> Simulator {
    let mut config = SimConfig::loopback(PASSWORD);
    config.redir_listen = Some("127.0.0.1:0".parse().unwrap());
    Simulator::start(config).await.expect("simulator starts")
}

/// Runs amtterm against the simulator, types `input` once SOL is up, and returns everything
/// it printed once `until` has appeared `times` times (or after 15 s).
async fn amtterm(
    sim: &Simulator,
    password: &str,
    input: &str,
    until: &str,
    times: usize,
) -> String {
    let port = sim.redir_addr.unwrap().port().to_string();
    let mut child = match tokio::process::Command::new("amtterm")
        .args(["-u", "admin", "-p", password, "127.0.0.1", &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!(
            "amtterm is required for this interop test (Debian package `amtterm`, installed by .ci/run): {e}"
        ),
    };
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut typed = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut buf = [0u8; 4096];
    let mut ebuf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&out).into_owned() + &String::from_utf8_lossy(&err);
        if !typed && text.contains("serial-over-lan redirection ok") {
            // Give the shell a moment to print its prompt, then type.
            tokio::time::sleep(Duration::from_millis(300)).await;
            stdin.write_all(input.as_bytes()).await.unwrap();
            typed = true;
        }
        if typed && text.matches(until).count() >= times
            || text.contains("failed")
            || text.contains("ERROR")
        {
            return text;
        }
        tokio::select! {
            n = stdout.read(&mut buf) => match n { Ok(0) | Err(_) => return text, Ok(n) => out.extend_from_slice(&buf[..n]) },
            n = stderr.read(&mut ebuf) => match n { Ok(0) | Err(_) => {}, Ok(n) => err.extend_from_slice(&ebuf[..n]) },
            () = tokio::time::sleep_until(deadline) => return text,
        }
    }
}

#[tokio::test]
async fn amtterm_runs_a_command_in_the_sol_shell() {
    let sim = start().await;
    // The echoed command line and the output both contain the marker, so `until` is seen
    // twice once the shell has answered; the arithmetic proves a shell ran it.
    let text = amtterm(&sim, PASSWORD, "echo marker-$((6*7))\n", "marker-", 2).await;
    assert!(text.contains("serial-over-lan redirection ok"), "{text}");
    assert!(text.contains("marker-42"), "{text}");
}

#[tokio::test]
async fn amtterm_line_longer_than_its_max_tx_buffer() {
    let sim = start().await;
    // amtterm asks for MaxTxBuffer 1000: a 3000-character line arrives in pieces.
    let long = "x".repeat(3000);
    let text = amtterm(&sim, PASSWORD, &format!("echo {long} | wc -c\n"), "3001", 1).await;
    assert!(
        text.contains("3001"),
        "{}",
        &text[text.len().saturating_sub(400)..]
    );
}

#[tokio::test]
async fn amtterm_refused_when_sol_disabled_or_password_wrong() {
    let sim = start().await;
    let text = amtterm(&sim, "wrong", "", "never", 1).await;
    assert!(
        text.contains("AUTH -> ERROR") || text.contains("failed"),
        "{text}"
    );
    assert!(!text.contains("serial-over-lan redirection ok"), "{text}");

    {
        let mut device = sim.device();
        let request = oobkit_wsman::ops::redirection_request_state_change(
            oobkit_wsman::ops::redirection_state::IDER,
        );
        let reply = device.handle(
            &request.to_xml(oobkit_wsman::Style::Intel).unwrap(),
            oobkit_device::Context {
                now_unix: 0,
                random: 0,
            },
        );
        assert_eq!(reply.status, 200);
    }
    let text = amtterm(&sim, PASSWORD, "", "never", 1).await;
    assert!(
        text.contains("redirection session start failed") || text.contains("ERROR"),
        "{text}"
    );
}

/// Drives an oobkit-redir client over a TCP stream until `stop` says so; returns its events.
async fn drive(
    stream: &mut TcpStream,
    client: &mut Client,
    mut stop: impl FnMut(&mut Client, &[Event]) -> bool,
) -> Vec<Event> {
    let mut events = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        while let Some(bytes) = client.poll_transmit() {
            stream.write_all(&bytes).await.unwrap();
        }
        while let Some(e) = client.poll_event() {
            events.push(e);
        }
        if stop(client, &events) || client.is_closed() {
            while let Some(bytes) = client.poll_transmit() {
                stream.write_all(&bytes).await.unwrap();
            }
            return events;
        }
        let timer = client.poll_timeout();
        tokio::select! {
            n = stream.read(&mut buf) => match n.unwrap() {
                0 => client.handle_eof(),
                n => client.handle_input(Instant::now(), &buf[..n]),
            },
            () = async { match timer { Some(t) => tokio::time::sleep_until(t.into()).await, None => std::future::pending().await } } => client.handle_timeout(Instant::now()),
            () = tokio::time::sleep_until(deadline) => return events,
        }
    }
}

fn sol_text(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Event::SolData(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn oobkit_client_digest_sol_and_busy() {
    let sim = start().await;
    let addr = sim.redir_addr.unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut client = Client::new(
        ClientConfig::new(
            SessionKind::Sol,
            "admin",
            PASSWORD,
            &oobkit_io::random_hex16(),
        ),
        Instant::now(),
    );
    let mut sent = false;
    let events = drive(&mut stream, &mut client, |c, events| {
        if !sent && events.contains(&Event::SolReady) {
            c.send_sol(b"echo digest-$((40+2))\n");
            sent = true;
        }
        sol_text(events).contains("digest-42")
    })
    .await;
    assert!(
        events.contains(&Event::Authenticated {
            auth_type: oobkit_redir::codec::auth_type::DIGEST
        }),
        "{events:?}"
    );
    assert!(sol_text(&events).contains("digest-42"), "{events:?}");

    // While that session is open, a second SOL session is refused as busy.
    let mut second = TcpStream::connect(addr).await.unwrap();
    let mut other = Client::new(
        ClientConfig::new(SessionKind::Sol, "admin", PASSWORD, "c"),
        Instant::now(),
    );
    let events = drive(&mut second, &mut other, |_, _| false).await;
    assert!(
        events.contains(&Event::Closed(CloseReason::Busy)),
        "{events:?}"
    );

    // Orderly end, then the type is free again.
    let events = drive(&mut stream, &mut client, |c, events| {
        c.end();
        events.iter().any(|e| matches!(e, Event::Closed(_)))
    })
    .await;
    drop(events);
    drop(stream);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    let mut again = Client::new(
        ClientConfig::new(SessionKind::Sol, "admin", PASSWORD, "c"),
        Instant::now(),
    );
    let events = drive(&mut third, &mut again, |_, events| {
        events.contains(&Event::SolReady)
    })
    .await;
    assert!(events.contains(&Event::SolReady), "{events:?}");
}
