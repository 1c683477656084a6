//! The simulator's redirection port with real clients: `amtterm` (Debian package, installed by
//! `.ci/run`; missing means failure, never a skip) and the oobkit-redir client over TCP.

use std::process::Stdio;
use std::time::{Duration, Instant};

use amt_sim::{SimConfig, Simulator};
use oobkit_redir::codec::SessionKind;
use oobkit_redir::{ClientSession, ClientSessionConfig, CloseReason, Event};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;
use common::{PASSWORD, connect_from, drive, once_free, open_session, sol_client};

/// A simulator whose SOL console is a real shell, so that commands with arithmetic show that
/// bytes reached a program and came back.
async fn start() -> Simulator {
    let mut config = SimConfig::loopback(PASSWORD);
    config.redir_listen = Some("127.0.0.1:0".parse().unwrap());
    config.sol = amt_sim::SolBackend::Command("/bin/sh -i".into());
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
            n = stdout.read(&mut buf) => match n {
                Ok(0) | Err(_) => {
                    // amtterm reports its states on stderr: read it to the end before judging.
                    let _ = tokio::time::timeout(Duration::from_secs(5), stderr.read_to_end(&mut err)).await;
                    return String::from_utf8_lossy(&out).into_owned() + &String::from_utf8_lossy(&err);
                }
                Ok(n) => out.extend_from_slice(&buf[..n]),
            },
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
            oobkit_sim::Context {
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
    let mut client = sol_client();
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
            auth_type: oobkit_redir::codec::AuthType::Digest
        }),
        "{events:?}"
    );
    assert!(sol_text(&events).contains("digest-42"), "{events:?}");

    // While that session is open, a second SOL session is refused as busy.
    let mut second = TcpStream::connect(addr).await.unwrap();
    let mut other = ClientSession::new(
        ClientSessionConfig::new(SessionKind::Sol, "admin", PASSWORD, "c"),
        Instant::now(),
    );
    let events = drive(&mut second, &mut other, |_, _| false).await;
    assert!(
        events.contains(&Event::Closed(CloseReason::Busy)),
        "{events:?}"
    );

    // Orderly end, then the type is free again.
    let events = drive(&mut stream, &mut client, |c, events| {
        c.end(Instant::now());
        events.iter().any(|e| matches!(e, Event::Closed(_)))
    })
    .await;
    drop(events);
    drop(stream);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    let mut again = ClientSession::new(
        ClientSessionConfig::new(SessionKind::Sol, "admin", PASSWORD, "c"),
        Instant::now(),
    );
    let events = drive(&mut third, &mut again, |_, events| {
        events.contains(&Event::SolReady)
    })
    .await;
    assert!(events.contains(&Event::SolReady), "{events:?}");
}

/// Reads exactly `n` bytes: first from what the session already read, then the socket.
async fn take(prefix: &mut Vec<u8>, stream: &mut TcpStream, n: usize) -> std::io::Result<Vec<u8>> {
    while prefix.len() < n {
        let mut buf = [0u8; 65536];
        let got = stream.read(&mut buf).await?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        prefix.extend_from_slice(&buf[..got]);
    }
    Ok(prefix.drain(..n).collect())
}

/// Opens a KVM session, does the RFB handshake as `version`, asks for the whole screen in
/// `pixel_format` (None: the server's), and returns (width, height, bytes per pixel, pixels).
async fn kvm_capture(
    sim: &Simulator,
    version: &[u8; 12],
    pixel_format: Option<[u8; 16]>,
) -> std::io::Result<(u16, u16, usize, Vec<u8>)> {
    // The previous capture's session may not have ended on the device yet (it sees our
    // close asynchronously): "busy" is retried briefly, anything else is a failure.
    let (mut stream, events) = {
        let mut attempt = 0;
        loop {
            let mut stream = TcpStream::connect(sim.redir_addr.unwrap()).await?;
            let mut client = ClientSession::new(
                ClientSessionConfig::new(SessionKind::Kvm, "admin", PASSWORD, "c"),
                Instant::now(),
            );
            let events = drive(&mut stream, &mut client, |_, events| {
                events.contains(&Event::RfbHandoff)
            })
            .await;
            if events.contains(&Event::Closed(CloseReason::Busy)) && attempt < 20 {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            break (stream, events);
        }
    };
    assert!(events.contains(&Event::RfbHandoff), "{events:?}");
    let mut prefix: Vec<u8> = events
        .iter()
        .filter_map(|e| match e {
            Event::Rfb(b) => Some(b.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(take(&mut prefix, &mut stream, 12).await?, b"RFB 003.008\n");
    stream.write_all(version).await?;
    if version == b"RFB 003.003\n" {
        assert_eq!(take(&mut prefix, &mut stream, 4).await?, [0, 0, 0, 1]);
    } else {
        assert_eq!(take(&mut prefix, &mut stream, 2).await?, [1, 1]);
        stream.write_all(&[1]).await?;
        if version == b"RFB 003.008\n" {
            assert_eq!(take(&mut prefix, &mut stream, 4).await?, [0, 0, 0, 0]);
        }
    }
    stream.write_all(&[1]).await?; // ClientInit, shared
    let init = take(&mut prefix, &mut stream, 24).await?;
    let (width, height) = (
        u16::from_be_bytes([init[0], init[1]]),
        u16::from_be_bytes([init[2], init[3]]),
    );
    let name_len = u32::from_be_bytes(init[20..24].try_into().unwrap()) as usize;
    take(&mut prefix, &mut stream, name_len).await?;
    let mut bpp = usize::from(init[4] / 8);
    if let Some(pf) = pixel_format {
        let mut m = vec![0, 0, 0, 0];
        m.extend_from_slice(&pf);
        stream.write_all(&m).await?;
        bpp = usize::from(pf[0] / 8);
    }
    // SetEncodings: Raw, DesktopSize.
    stream
        .write_all(&[2, 0, 0, 2, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x21])
        .await?;
    let mut request = vec![3, 0, 0, 0, 0, 0];
    request.extend_from_slice(&width.to_be_bytes());
    request.extend_from_slice(&height.to_be_bytes());
    stream.write_all(&request).await?;
    let header = take(&mut prefix, &mut stream, 4).await?;
    let rects = u16::from_be_bytes([header[2], header[3]]);
    let mut pixels = vec![0u8; usize::from(width) * usize::from(height) * bpp];
    for _ in 0..rects {
        let r = take(&mut prefix, &mut stream, 12).await?;
        let [x, y, w, h] = [0, 2, 4, 6].map(|i| usize::from(u16::from_be_bytes([r[i], r[i + 1]])));
        let encoding = i32::from_be_bytes(r[8..12].try_into().unwrap());
        if encoding == -223 {
            continue;
        }
        assert_eq!(encoding, 0, "Raw only");
        assert!(w <= 64 && h <= 64, "tiles of at most 64x64");
        let data = take(&mut prefix, &mut stream, w * h * bpp).await?;
        for row in 0..h {
            let at = ((y + row) * usize::from(width) + x) * bpp;
            pixels[at..at + w * bpp].copy_from_slice(&data[row * w * bpp..(row + 1) * w * bpp]);
        }
    }
    Ok((width, height, bpp, pixels))
}

#[tokio::test]
async fn kvm_shows_the_test_pattern_to_rfb_33_37_38_clients() {
    let sim = start().await;
    for version in [b"RFB 003.003\n", b"RFB 003.007\n", b"RFB 003.008\n"] {
        let (width, height, bpp, pixels) = kvm_capture(&sim, version, None).await.unwrap();
        assert_eq!((width, height, bpp), (1024, 768, 4));
        for x in (0..width).step_by(37) {
            let at = (usize::from(height / 2) * usize::from(width) + usize::from(x)) * 4;
            // Little-endian 32 bpp: B, G, R, pad.
            let [r, g, b] = amt_sim::rfb::pattern(x, width);
            assert_eq!(&pixels[at..at + 3], &[b, g, r], "x={x} {version:?}");
        }
    }
    // RGB565, big-endian: the server converts.
    let rgb565 = [16, 16, 1, 1, 0, 31, 0, 63, 0, 31, 11, 5, 0, 0, 0, 0];
    let (width, _, bpp, pixels) = kvm_capture(&sim, b"RFB 003.008\n", Some(rgb565))
        .await
        .unwrap();
    assert_eq!(bpp, 2);
    let yellow_x = width / 8 + 3; // second bar
    let at = usize::from(yellow_x) * 2;
    assert_eq!(
        u16::from_be_bytes([pixels[at], pixels[at + 1]]),
        (31 << 11) | (63 << 5),
        "yellow: red 31, green 63, blue 0"
    );
}

#[tokio::test]
async fn kvm_closes_silently_over_the_display_buffer_limit() {
    let mut config = SimConfig::loopback(PASSWORD);
    config.redir_listen = Some("127.0.0.1:0".parse().unwrap());
    config.kvm = amt_sim::KvmBackend::Pattern {
        width: 2560,
        height: 1600,
    };
    let sim = Simulator::start(config).await.unwrap();
    // 2560 x 1600 x 4 bytes = 16,384,000 > 9,216,000: closed without a word.
    assert!(kvm_capture(&sim, b"RFB 003.008\n", None).await.is_err());
    // In RGB332 (8 bpp) it fits: 4,096,000 bytes.
    let rgb332 = [8, 8, 0, 1, 0, 7, 0, 7, 0, 3, 5, 2, 0, 0, 0, 0];
    let (_, _, bpp, _) = kvm_capture(&sim, b"RFB 003.008\n", Some(rgb332))
        .await
        .unwrap();
    assert_eq!(bpp, 1);
}

#[tokio::test]
async fn sol_over_the_ws_redirection_websocket() {
    let sim = start().await;
    let endpoint = oobkit_io::Endpoint::plain("127.0.0.1", sim.http_addr.port());
    let mut stream = oobkit_io::redirection_websocket(&endpoint, "admin", PASSWORD)
        .await
        .expect("websocket opens");
    let mut config = ClientSessionConfig::new(SessionKind::Sol, "admin", PASSWORD, "c");
    config.transport = oobkit_redir::Transport::AmtWebSocket;
    let mut client = ClientSession::new(config, Instant::now());
    let mut sent = false;
    let events = drive(&mut stream, &mut client, |c, events| {
        if !sent && events.contains(&Event::SolReady) {
            c.send_sol(b"echo ws-$((40+2))\n");
            sent = true;
        }
        sol_text(events).contains("ws-42")
    })
    .await;
    assert!(
        events.contains(&Event::Authenticated {
            auth_type: oobkit_redir::codec::AuthType::Kerberos
        }),
        "{events:?}"
    );
    assert!(sol_text(&events).contains("ws-42"), "{events:?}");

    let refused = oobkit_io::redirection_websocket(&endpoint, "admin", "wrong").await;
    assert!(
        matches!(refused, Err(oobkit_io::IoError::AuthRejected)),
        "{:?}",
        refused.err()
    );
}

#[tokio::test]
async fn sol_over_the_tls_redirection_port_with_a_pinned_certificate() {
    let mut config = SimConfig::loopback(PASSWORD);
    config.redir_tls_listen = Some("127.0.0.1:0".parse().unwrap());
    config.sol = amt_sim::SolBackend::Echo;
    let sim = Simulator::start(config).await.unwrap();
    let mut endpoint = oobkit_io::Endpoint::plain("127.0.0.1", sim.redir_tls_addr.unwrap().port());
    endpoint.tls = Some(oobkit_io::TlsPolicy::Pin(sim.tls_fingerprint.unwrap()));
    let mut stream = oobkit_io::connect(&endpoint)
        .await
        .expect("TLS with the pinned certificate");
    let mut client = ClientSession::new(
        ClientSessionConfig::new(SessionKind::Sol, "admin", PASSWORD, "c"),
        Instant::now(),
    );
    let mut sent = false;
    let events = drive(&mut stream, &mut client, |c, events| {
        if !sent && events.contains(&Event::SolReady) {
            c.send_sol(b"\xff\x00echo");
            sent = true;
        }
        sol_text(events).contains("echo")
    })
    .await;
    let echoed: Vec<u8> = events
        .iter()
        .filter_map(|e| match e {
            Event::SolData(b) => Some(b.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(echoed, b"\xff\x00echo");
    // The default policy refuses the self-signed certificate.
    endpoint.tls = Some(oobkit_io::TlsPolicy::Verify { ca_file: None });
    assert!(matches!(
        oobkit_io::connect(&endpoint).await,
        Err(oobkit_io::IoError::Tls {
            fingerprint: Some(_),
            ..
        })
    ));
}

/// Clients that ask for SOL and never authenticate hold no slot, and take no place of the
/// authenticated: 100 such connections from one address get 8 answers (the per-address budget
/// for unauthenticated connections), the rest are closed, and the owner still gets SOL (one
/// unauthenticated StartRedirectionSession used to reserve SOL for 30 s, and 64 filled the port).
#[tokio::test]
async fn half_open_sessions_do_not_take_the_slot() {
    let sim = start().await;
    let addr = sim.redir_addr.unwrap();
    let mut stalled = Vec::new();
    let mut answered = 0;
    for _ in 0..100 {
        let mut stream = connect_from([127, 0, 0, 2], addr).await.unwrap();
        let _ = stream.write_all(b"\x10\x00\x00\x00SOL ").await;
        let mut reply = [0u8; 13];
        if stream.read_exact(&mut reply).await.is_ok() {
            assert_eq!(
                reply[..2],
                [0x11, 0x00],
                "told success, nothing is reserved"
            );
            answered += 1;
        }
        stalled.push(stream);
    }
    assert_eq!(
        answered, 8,
        "the per-address budget of unauthenticated connections"
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut client = sol_client();
    let events = drive(&mut stream, &mut client, |_, events| {
        events.contains(&Event::SolReady)
    })
    .await;
    assert!(events.contains(&Event::SolReady), "{events:?}");
    drop(stalled);
}

/// Wrong passwords are limited per address, as real AMT slows down after failures: after the
/// limit the address is refused on every port, the right password included, for the window.
#[tokio::test]
async fn wrong_passwords_lock_the_address_out() {
    let mut config = SimConfig::loopback(PASSWORD);
    config.redir_listen = Some("127.0.0.1:0".parse().unwrap());
    config.max_failed_logins = 5;
    let sim = Simulator::start(config).await.unwrap();
    let endpoint = oobkit_io::Endpoint::plain("127.0.0.1", sim.http_addr.port());
    for attempt in 0..5 {
        let mut client = oobkit_io::WsmanClient::new(endpoint.clone(), "admin", "wrong");
        let result = client.call(oobkit_wsman::ops::get_power_state()).await;
        assert!(
            matches!(result, Err(oobkit_io::IoError::AuthRejected)),
            "attempt {attempt}: {result:?}"
        );
    }
    let mut right = oobkit_io::WsmanClient::new(endpoint, "admin", PASSWORD);
    let result = right.call(oobkit_wsman::ops::get_power_state()).await;
    assert!(
        !matches!(result, Ok(_) | Err(oobkit_io::IoError::AuthRejected)),
        "refused at the connection: {result:?}"
    );
    // The redirection port refuses the address too.
    let mut stream = TcpStream::connect(sim.redir_addr.unwrap()).await.unwrap();
    let _ = stream.write_all(b"\x10\x00\x00\x00SOL ").await;
    let mut reply = [0u8; 13];
    assert!(
        stream.read_exact(&mut reply).await.is_err(),
        "closed without a reply"
    );
}

/// The shell's answer to `echo pid=$$.`: the first `pid=` followed by digits (the terminal's
/// echo of the command line shows `pid=$$.` first).
fn shell_pid(text: &str) -> Option<u32> {
    text.split("pid=").skip(1).find_map(|rest| {
        let digits = rest.split('.').next()?;
        (rest.contains('.') && !digits.is_empty()).then(|| digits.parse().ok())?
    })
}

/// SIGTERM to the simulator during a SOL session ends the console's program too (it used to
/// leave `script` and its shell running).
#[tokio::test]
async fn sigterm_leaves_no_console_program_behind() {
    use tokio::io::AsyncBufReadExt;
    let mut sim = tokio::process::Command::new(env!("CARGO_BIN_EXE_amt_sim"))
        .args(["--listen", "127.0.0.1:0", "--redir-listen", "127.0.0.1:0"])
        .args(["--sol-command", "/bin/sh -i"])
        .env("AMT_SIM_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(sim.stdout.take().unwrap()).lines();
    let redir: std::net::SocketAddr = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the simulator starts")
            .unwrap()
            .expect("a listening line");
        if let Some(rest) = line.strip_prefix("listening on ")
            && rest.ends_with("(redirection: SOL, KVM, IDE-R)")
        {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    let mut stream = TcpStream::connect(redir).await.unwrap();
    let mut client = sol_client();
    let mut sent = false;
    let events = drive(&mut stream, &mut client, |c, events| {
        if !sent && events.contains(&Event::SolReady) {
            c.send_sol(b"echo pid=$$.\n");
            sent = true;
        }
        shell_pid(&sol_text(events)).is_some()
    })
    .await;
    let text = sol_text(&events);
    let shell = shell_pid(&text).unwrap_or_else(|| panic!("no shell pid in {text:?}"));
    assert!(std::path::Path::new(&format!("/proc/{shell}")).exists());
    let status = std::process::Command::new("kill")
        .args(["-TERM", &sim.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(10), sim.wait())
        .await
        .expect("the simulator stops on SIGTERM")
        .unwrap();
    let gone = async {
        while std::path::Path::new(&format!("/proc/{shell}")).exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(5), gone)
            .await
            .is_ok(),
        "the console's shell {shell} outlived the simulator"
    );
}

/// Slow senders cannot hold the simulator: a request head has a deadline from its first byte
/// (trickled bytes do not move it), a full web pool answers 503, and the redirection port has a
/// pool of its own, so SOL works while the web port is flooded.
#[tokio::test]
async fn slow_senders_are_cut_off_and_do_not_shut_other_ports() {
    let mut config = SimConfig::loopback(PASSWORD);
    config.redir_listen = Some("127.0.0.1:0".parse().unwrap());
    config.max_connections = 8;
    config.head_timeout = Duration::from_secs(2);
    let sim = Simulator::start(config).await.unwrap();
    let web = sim.http_addr;
    // Eight clients trickle a request head, a byte every 300 ms.
    let trickle = (0..8).map(|_| {
        tokio::spawn(async move {
            let mut stream = TcpStream::connect(web).await.unwrap();
            let started = tokio::time::Instant::now();
            for byte in b"POST /wsman HTTP/1.1\r\nHost: x\r\n".iter().cycle() {
                if stream.write_all(&[*byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                if started.elapsed() > Duration::from_secs(10) {
                    panic!("a trickling client was served for 10 s");
                }
            }
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest).await;
            (
                started.elapsed(),
                String::from_utf8_lossy(&rest).into_owned(),
            )
        })
    });
    let trickle: Vec<_> = trickle.collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The web pool is full: a ninth connection is told so.
    let mut ninth = TcpStream::connect(web).await.unwrap();
    let mut answer = Vec::new();
    ninth.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 503 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // The redirection port is not affected.
    let mut stream = TcpStream::connect(sim.redir_addr.unwrap()).await.unwrap();
    let mut client = sol_client();
    let events = drive(&mut stream, &mut client, |_, events| {
        events.contains(&Event::SolReady)
    })
    .await;
    assert!(events.contains(&Event::SolReady), "{events:?}");
    // The trickling clients are cut off at the head deadline, with a 408.
    for handle in trickle {
        let (held, said) = handle.await.unwrap();
        assert!(held < Duration::from_secs(4), "held {held:?}");
        assert!(said.starts_with("HTTP/1.1 408 "), "{said}");
    }
    // And the web port serves again.
    let endpoint = oobkit_io::Endpoint::plain("127.0.0.1", web.port());
    let mut right = oobkit_io::WsmanClient::new(endpoint, "admin", PASSWORD);
    right
        .call(oobkit_wsman::ops::get_power_state())
        .await
        .unwrap();
}

/// A SOL client that stops reading while the console floods is dropped after the write
/// deadline and the slot is free again (it used to block the device side forever, and every
/// later client heard BUSY).
#[tokio::test]
async fn a_client_that_stops_reading_loses_the_session() {
    let mut config = SimConfig::loopback(PASSWORD);
    config.redir_listen = Some("127.0.0.1:0".parse().unwrap());
    config.sol = amt_sim::SolBackend::Command("yes flood".into());
    config.write_timeout = Duration::from_secs(1);
    let sim = Simulator::start(config).await.unwrap();
    let addr = sim.redir_addr.unwrap();
    let (stalled, events) = open_session(addr, SessionKind::Sol).await;
    assert!(events.contains(&Event::SolReady), "{events:?}");
    // `stalled` is never read again; the console keeps writing.
    let second = once_free(
        addr,
        SessionKind::Sol,
        "the non-reading client still holds SOL",
    )
    .await;
    drop((stalled, second));
}

/// A KVM viewer that asks for screens and stops reading loses the session after the write
/// deadline, and KVM is free again (its writes were unbounded).
#[tokio::test]
async fn a_kvm_viewer_that_stops_reading_loses_the_session() {
    let mut config = SimConfig::loopback(PASSWORD);
    config.redir_listen = Some("127.0.0.1:0".parse().unwrap());
    config.write_timeout = Duration::from_secs(1);
    let sim = Simulator::start(config).await.unwrap();
    let addr = sim.redir_addr.unwrap();
    let (mut stalled, events) = open_session(addr, SessionKind::Kvm).await;
    assert!(events.contains(&Event::RfbHandoff), "{events:?}");
    // Version, security None, ClientInit, then full screens asked for and never read.
    stalled.write_all(b"RFB 003.008\n\x01\x01").await.unwrap();
    for _ in 0..20 {
        if stalled
            .write_all(b"\x03\x00\x00\x00\x00\x00\x04\x00\x03\x00")
            .await
            .is_err()
        {
            break;
        }
    }
    let second = once_free(
        addr,
        SessionKind::Kvm,
        "the non-reading viewer still holds KVM",
    )
    .await;
    drop(second);
    drop(stalled);
}

/// 1 MiB of SOL input sent at once, without pacing, comes back intact from the echo console
/// over each transport: the raw port, the TLS port and `/ws-redirection` (which used to stall
/// after a few hundred KB: its pump waited on the session's reads while the session waited on
/// its writes), and the slot is free afterwards.
#[tokio::test]
async fn one_mebibyte_unpaced_both_ways_over_every_transport() {
    use oobkit_io::redirection::{RedirTarget, SolEvent, open_session};
    use oobkit_redir::Transport;
    let mut config = SimConfig::loopback(PASSWORD);
    config.redir_listen = Some("127.0.0.1:0".parse().unwrap());
    config.redir_tls_listen = Some("127.0.0.1:0".parse().unwrap());
    config.sol = amt_sim::SolBackend::Echo;
    let sim = Simulator::start(config).await.unwrap();
    let input: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut tls = oobkit_io::Endpoint::plain("127.0.0.1", sim.redir_tls_addr.unwrap().port());
    tls.tls = Some(oobkit_io::TlsPolicy::Pin(sim.tls_fingerprint.unwrap()));
    let targets = [
        (
            "raw",
            oobkit_io::Endpoint::plain("127.0.0.1", sim.redir_addr.unwrap().port()),
            Transport::Tcp,
        ),
        ("tls", tls, Transport::Tcp),
        (
            "websocket",
            oobkit_io::Endpoint::plain("127.0.0.1", sim.http_addr.port()),
            Transport::AmtWebSocket,
        ),
    ];
    for (name, endpoint, transport) in targets {
        let target = RedirTarget {
            endpoint,
            transport,
            user: "admin".into(),
            password: PASSWORD.into(),
        };
        // Twice each: the second session shows that the first freed the slot.
        for round in 0..2 {
            let mut session = open_session(&target, SessionKind::Sol)
                .await
                .unwrap_or_else(|e| panic!("{name} round {round}: {e}"));
            session.send(&input);
            let mut echoed = Vec::with_capacity(input.len());
            let received = tokio::time::timeout(Duration::from_secs(30), async {
                while echoed.len() < input.len() {
                    match session.wait().await.unwrap() {
                        Some(SolEvent::Data(bytes)) => echoed.extend_from_slice(&bytes),
                        Some(SolEvent::Closed(reason)) => panic!("{name}: closed: {reason}"),
                        None => {}
                    }
                }
            })
            .await;
            assert!(
                received.is_ok(),
                "{name} round {round}: stalled after {} of {} bytes",
                echoed.len(),
                input.len()
            );
            assert!(echoed == input, "{name} round {round}: the bytes differ");
            session.end().await;
        }
    }
}

/// Port 5900 as AMT serves it: closed until `Is5900PortEnabled` and an `RFBPassword` are set
/// over WS-Management; then vncdotool with the password captures the screen, a wrong password
/// is refused, and the password never shows in a Get.
#[tokio::test]
async fn port_5900_with_the_rfb_password_and_a_wrong_one() {
    let mut config = SimConfig::loopback(PASSWORD);
    config.rfb_listen = Some("127.0.0.1:0".parse().unwrap());
    let sim = Simulator::start(config).await.unwrap();
    let server = format!("127.0.0.1::{}", sim.rfb_addr.unwrap().port());
    let vncdo = |password: &str, out: &std::path::Path| {
        let mut command = tokio::process::Command::new(oobkit_testkit::vncdo());
        command
            .args(["-s", &server, "-p", password, "capture"])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        async move {
            tokio::time::timeout(Duration::from_secs(30), command.status())
                .await
                .expect("vncdo finishes")
                .expect("vncdo runs")
        }
    };
    let out = std::env::temp_dir().join(format!("amt-sim-5900-{}.png", std::process::id()));
    // Closed: no password set yet.
    assert!(!vncdo("Vnc-P4ss", &out).await.success());

    let endpoint = oobkit_io::Endpoint::plain("127.0.0.1", sim.http_addr.port());
    let mut wsman = oobkit_io::WsmanClient::new(endpoint, "admin", PASSWORD);
    let settings = oobkit_wsman::Instance::new("IPS_KVMRedirectionSettingData")
        .with("Is5900PortEnabled", "true")
        .with("RFBPassword", "Vnc-P4ss");
    wsman
        .call(oobkit_wsman::Request::put(settings))
        .await
        .unwrap();
    let shown = wsman
        .call(oobkit_wsman::Request::get("IPS_KVMRedirectionSettingData"))
        .await
        .unwrap();
    let oobkit_wsman::ResponseBody::Instance(shown) = shown.body else {
        panic!("{shown:?}")
    };
    assert_eq!(shown.text("Is5900PortEnabled"), Some("true"));
    assert_eq!(shown.text("RFBPassword"), Some(""), "write-only, as on AMT");

    assert!(
        !vncdo("wrong-pw", &out).await.success(),
        "a wrong password is refused"
    );
    let status = vncdo("Vnc-P4ss", &out).await;
    assert!(status.success(), "vncdo with the password: {status}");
    let png = std::fs::read(&out).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a captured screen");
    std::fs::remove_file(out).ok();
}

/// A KVM viewer that finishes the RFB handshake and then sends nothing is dropped after the
/// idle limit, and KVM is free again (it read without a deadline, so a silent viewer held the
/// device's one KVM session forever).
#[tokio::test]
async fn a_silent_kvm_viewer_loses_the_session() {
    let mut config = SimConfig::loopback(PASSWORD);
    config.redir_listen = Some("127.0.0.1:0".parse().unwrap());
    config.idle_timeout = Duration::from_secs(1);
    let sim = Simulator::start(config).await.unwrap();
    let addr = sim.redir_addr.unwrap();
    let (mut silent, events) = open_session(addr, SessionKind::Kvm).await;
    assert!(events.contains(&Event::RfbHandoff), "{events:?}");
    // Version, security None, ClientInit; then silence, reading what comes.
    silent.write_all(b"RFB 003.008\n\x01\x01").await.unwrap();
    let second = once_free(addr, SessionKind::Kvm, "the silent viewer still holds KVM").await;
    drop((silent, second));
}
