//! Hostile clients on loopback must not keep a person out: a flood of connections that never
//! send a request, a page that stops reading (and answering pings) while its shell floods, and
//! callers of the sessions API with Digest done right and wrong.

mod common;

use std::time::{Duration, Instant};

use common::Console;
use oobkit_term::CloseCode;
use oobkit_testkit::sshd::{self, Sshd};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use web_console::GatewayAuth;

async fn connect_from(local: [u8; 4], to: std::net::SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((local, 0).into()).unwrap();
    socket.connect(to).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_flood_from_one_address_does_not_keep_a_person_out() {
    let sshd = Sshd::start();
    let console = Console::start_with(&sshd.known_hosts_line(), |c| {
        c.limits.handshake = Duration::from_secs(3);
    })
    .await;
    // 100 connections from 127.0.0.2 that never send a byte: 16 are held until the handshake
    // limit, the others are answered 503 at once.
    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(connect_from([127, 0, 0, 2], console.addr).await);
    }
    let mut refused = 0;
    for stream in &mut silent {
        let mut buf = [0u8; 64];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await
            && n > 0
            && buf.starts_with(b"HTTP/1.1 503")
        {
            refused += 1;
        }
    }
    assert_eq!(
        refused,
        100 - 16,
        "all but the address's budget refused at once"
    );
    // Meanwhile a person logs in and works.
    let started = Instant::now();
    let id = console.password_session(&sshd).await;
    let mut term = console.open(&id, None).await.unwrap();
    term.start(80, 24).await;
    term.input("echo through-$((2*21))\r").await;
    term.until("through-42", Duration::from_secs(20)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    // The held ones are closed at the handshake limit.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut closed = 0;
    for stream in &mut silent {
        let mut rest = Vec::new();
        if tokio::time::timeout(Duration::from_millis(200), stream.read_to_end(&mut rest))
            .await
            .is_ok()
        {
            closed += 1;
        }
    }
    assert_eq!(closed, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_stops_reading_is_cut_and_holds_no_more_than_its_credit() {
    let sshd = Sshd::start();
    let console = Console::start_with(&sshd.known_hosts_line(), |c| {
        c.term.ping_interval = Duration::from_secs(1);
        c.term.pong_timeout = Duration::from_secs(2);
    })
    .await;
    let id = console.password_session(&sshd).await;
    let mut stalled = console.open(&id, None).await.unwrap();
    stalled.start(80, 24).await;
    stalled.input("yes\r").await;
    // It reads nothing more, and when it finally reads, it answers nothing.
    stalled.mute = true;
    let before = oobkit_testkit::resident_kib(None).unwrap();
    let other_id = console.password_session(&sshd).await;
    let mut other = console.open(&other_id, None).await.unwrap();
    other.start(80, 24).await;
    other.input("echo fine-$((3*3))\r").await;
    other.until("fine-9", Duration::from_secs(20)).await;
    // Within ping interval + pong timeout (and some slack), the stalled page is closed; the
    // other, answering its pings, keeps working.
    let wait = Instant::now();
    while wait.elapsed() < Duration::from_secs(5) {
        other.step(Duration::from_millis(100)).await;
    }
    let after = oobkit_testkit::resident_kib(None).unwrap();
    assert!(
        after < before + 16 * 1024,
        "resident memory grew from {before} to {after} KiB"
    );
    let (code, reason) = stalled.until_closed(Duration::from_secs(5)).await;
    assert_eq!(code, CloseCode::Unresponsive, "{reason}");
    // What it was sent is bounded by the credit (and what sat in socket buffers).
    assert!(stalled.output.len() < 2 << 20, "{}", stalled.output.len());
    other.input("echo still-$((4*4))\r").await;
    other.until("still-16", Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_callers_create_sessions_and_wrong_passwords_do_not() {
    let sshd = Sshd::start();
    let console = Console::start_with(&sshd.known_hosts_line(), |c| {
        c.auth = GatewayAuth::Digest {
            user: "ops".into(),
            password: "digest-pass-123".into(),
        };
    })
    .await;
    let body = serde_json::json!({
        "host": "127.0.0.1", "port": sshd.port, "user": sshd::USER, "password": sshd::password(),
    })
    .to_string();
    let curl = |user: &str| {
        std::process::Command::new("curl")
            .args([
                "-sS",
                "-i",
                "--digest",
                "-u",
                user,
                "-H",
                "Content-Type: application/json",
                "-d",
                &body,
            ])
            .arg(format!("http://{}/sessions", console.addr))
            .output()
            .expect("curl runs")
    };
    let wrong = String::from_utf8_lossy(&curl("ops:not-it").stdout).into_owned();
    assert!(wrong.contains("HTTP/1.1 401"), "{wrong}");
    assert!(!wrong.contains("HTTP/1.1 201"), "{wrong}");
    let right = String::from_utf8_lossy(&curl("ops:digest-pass-123").stdout).into_owned();
    assert!(right.contains("HTTP/1.1 201"), "{right}");
    let answer: serde_json::Value =
        serde_json::from_str(right.rsplit("\r\n\r\n").next().unwrap()).unwrap();
    let mut term = console.open(&common::link_id(&answer), None).await.unwrap();
    term.start(80, 24).await;
    term.input("echo digest-$((5*5))\r").await;
    term.until("digest-25", Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_sessions_are_capped_per_address() {
    let sshd = Sshd::start();
    let console = Console::start_with(&sshd.known_hosts_line(), |c| {
        c.limits.max_sessions_per_address = 2;
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let id = console.password_session(&sshd).await;
        let mut term = console.open(&id, None).await.unwrap();
        term.start(80, 24).await;
        open.push(term);
    }
    let id = console.password_session(&sshd).await;
    assert_eq!(console.open(&id, None).await.err(), Some(503));
    drop(open);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let id = console.password_session(&sshd).await;
    assert!(console.open(&id, None).await.is_ok());
}
