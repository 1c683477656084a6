//! web_console against Debian's OpenSSH server started on loopback: every login method,
//! host-key policies, one-time links, Origin, limits, flow control, resize and UTF-8, with a
//! terminal client that speaks the protocol as the page does. (The page itself, in Chromium, is
//! in browser.rs.)

mod common;

use std::time::{Duration, Instant};

use common::{Console, TOKEN, http, link_id, parse_response};
use oobkit_term::{CloseCode, Frame};
use oobkit_testkit::sshd::{self, Sshd};
use web_console::HostKeyPolicy;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_login_runs_commands_and_reports_the_exit_status() {
    let sshd = Sshd::start();
    let console = Console::start(&sshd.known_hosts_line(), HostKeyPolicy::Reject).await;
    let id = console.password_session(&sshd).await;
    let mut term = console.open(&id, None).await.unwrap();
    term.start(100, 30).await;
    term.input("echo $((6*7))-$(whoami)\r").await;
    term.until("42-oobkit-ssh-test", WAIT).await;
    // The PTY has the page's size, and follows its resizes.
    term.input("stty size\r").await;
    term.until("30 100", WAIT).await;
    term.send(Frame::Resize {
        cols: 132,
        rows: 43,
    })
    .await;
    term.input("stty size\r").await;
    term.until("43 132", WAIT).await;
    // UTF-8 both ways, whatever the frame boundaries: typed, echoed by the shell, printed.
    term.input("echo 'héllo wörld 你好' | od -c | head -1; echo 'héllo wörld 你好'\r")
        .await;
    term.until("\nhéllo wörld 你好", WAIT).await;
    term.input("exit 3\r").await;
    let (code, reason) = term.until_closed(WAIT).await;
    assert_eq!(code, CloseCode::Exited);
    assert_eq!(reason, "the shell exited with status 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pasted_private_key_logs_in() {
    let sshd = Sshd::start();
    let console = Console::start(&sshd.known_hosts_line(), HostKeyPolicy::Reject).await;
    let pem = std::fs::read_to_string(sshd.client_key()).unwrap();
    let (status, answer) = console
        .create(&serde_json::json!({
            "host": "127.0.0.1", "port": sshd.port, "user": sshd::USER, "private_key": pem,
        }))
        .await;
    assert_eq!(status, 201, "{answer}");
    let mut term = console.open(&link_id(&answer), None).await.unwrap();
    term.start(80, 24).await;
    term.input("echo key-$((1+1))\r").await;
    term.until("key-2", WAIT).await;
    assert!(
        sshd.log()
            .contains("Accepted publickey for oobkit-ssh-test")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_interactive_answers_pam_with_the_password() {
    let sshd = Sshd::start_keyboard_interactive_only();
    let console = Console::start(&sshd.known_hosts_line(), HostKeyPolicy::Reject).await;
    let id = console.password_session(&sshd).await;
    let mut term = console.open(&id, None).await.unwrap();
    term.start(80, 24).await;
    term.input("echo ki-$((2+2))\r").await;
    term.until("ki-4", WAIT).await;
    assert!(
        sshd.log()
            .contains("Accepted keyboard-interactive/pam for oobkit-ssh-test"),
        "{}",
        sshd.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_said_in_the_close_reason() {
    let sshd = Sshd::start();
    let console = Console::start(&sshd.known_hosts_line(), HostKeyPolicy::Reject).await;
    let (status, answer) = console
        .create(&serde_json::json!({
            "host": "127.0.0.1", "port": sshd.port, "user": sshd::USER, "password": "not-it",
        }))
        .await;
    assert_eq!(status, 201);
    let mut term = console.open(&link_id(&answer), None).await.unwrap();
    term.start(80, 24).await;
    let (code, reason) = term.until_closed(WAIT).await;
    assert_eq!(code, CloseCode::TargetFailed);
    assert!(reason.contains("authentication failed"), "{reason}");
    assert!(!reason.contains("not-it"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_keys_are_refused_or_recorded_and_changed_keys_always_refused() {
    let sshd = Sshd::start();
    let offered = {
        let out = std::process::Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f", "/dev/stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(sshd.host_public_key().as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned()
    };
    // Reject: unknown refused, with the fingerprint OpenSSH's own tool prints.
    let console = Console::start("", HostKeyPolicy::Reject).await;
    let mut term = console
        .open(&console.password_session(&sshd).await, None)
        .await
        .unwrap();
    term.start(80, 24).await;
    let (code, reason) = term.until_closed(WAIT).await;
    assert_eq!(code, CloseCode::TargetFailed);
    assert!(
        reason.contains("unknown") && reason.contains(&offered),
        "{reason}"
    );
    assert!(!console.known_hosts.exists());

    // Accept-new: recorded (0600), then known.
    let console = Console::start("", HostKeyPolicy::AcceptNew).await;
    for _ in 0..2 {
        let mut term = console
            .open(&console.password_session(&sshd).await, None)
            .await
            .unwrap();
        term.start(80, 24).await;
        term.input("echo in\r").await;
        term.until("in\r\n", WAIT).await;
    }
    let recorded = std::fs::read_to_string(&console.known_hosts).unwrap();
    assert_eq!(
        recorded.lines().filter(|l| !l.is_empty()).count(),
        1,
        "{recorded}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&console.known_hosts)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Changed: refused under either policy, both fingerprints shown, and no login attempted.
    let logins = sshd.log().matches("Accepted password").count();
    for policy in [HostKeyPolicy::Reject, HostKeyPolicy::AcceptNew] {
        let console = Console::start(&sshd.other_known_hosts_line(), policy).await;
        let mut term = console
            .open(&console.password_session(&sshd).await, None)
            .await
            .unwrap();
        term.start(80, 24).await;
        let (code, reason) = term.until_closed(WAIT).await;
        assert_eq!(code, CloseCode::TargetFailed);
        assert!(
            reason.contains("CHANGED") && reason.contains(&offered),
            "{reason}"
        );
        assert_eq!(reason.matches("SHA256:").count(), 2, "{reason}");
        assert_eq!(sshd.log().matches("Accepted password").count(), logins);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_are_one_time_and_origins_are_checked_before_the_upgrade() {
    let sshd = Sshd::start();
    let console = Console::start(&sshd.known_hosts_line(), HostKeyPolicy::Reject).await;
    // A page elsewhere cannot use a link, and trying does not use it up.
    let id = console.password_session(&sshd).await;
    assert_eq!(
        console.open(&id, Some("http://evil.example")).await.err(),
        Some(403)
    );
    let own = format!("http://{}", console.addr);
    let mut term = console.open(&id, Some(&own)).await.unwrap();
    term.start(80, 24).await;
    term.input("echo once\r").await;
    term.until("once\r\n", WAIT).await;
    // Used: refused before any upgrade.
    assert_eq!(console.open(&id, None).await.err(), Some(403));
    // Never issued, or malformed.
    assert_eq!(
        console.open("AAAAAAAAAAAAAAAAAAAAAA", None).await.err(),
        Some(403)
    );
    assert_eq!(console.open("short", None).await.err(), Some(400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_expire_after_the_attach_window() {
    let sshd = Sshd::start();
    let console = Console::start_with(&sshd.known_hosts_line(), |c| {
        c.links.attach_window = Duration::from_millis(500);
    })
    .await;
    let id = console.password_session(&sshd).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(console.open(&id, None).await.err(), Some(403));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sessions_api_checks_everything_before_it_creates_a_link() {
    let console = Console::start("", HostKeyPolicy::Reject).await;
    let addr = console.addr;
    let post = |headers: &str, body: &str| {
        format!(
            "POST /sessions HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let json = r#"{"host":"127.0.0.1","port":22,"user":"u","password":"p"}"#;
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let cases = [
        (
            post("Content-Type: application/json\r\n", json),
            401,
            "unauthorized",
        ),
        (
            post(
                &format!(
                    "Authorization: Bearer wrong-{TOKEN}\r\nContent-Type: application/json\r\n"
                ),
                json,
            ),
            401,
            "unauthorized",
        ),
        (
            post(
                &format!("{auth}Content-Type: application/x-www-form-urlencoded\r\n"),
                "host=x",
            ),
            415,
            "content_type",
        ),
        (
            post(&format!("{auth}\r\n"), json).replacen("\r\n\r\n", "\r\n", 1),
            415,
            "content_type",
        ),
        (
            post(&format!("{auth}Content-Type: application/json\r\n"), "{"),
            400,
            "bad_request",
        ),
        (
            post(
                &format!("{auth}Content-Type: application/json\r\n"),
                r#"{"host":"127.0.0.1","user":"u","password":"p","private_key":"k"}"#,
            ),
            400,
            "bad_request",
        ),
        (
            post(
                &format!("{auth}Content-Type: application/json\r\n"),
                r#"{"host":"10.0.0.1","port":22,"user":"u","password":"p"}"#,
            ),
            403,
            "target_not_allowed",
        ),
        (
            post(
                &format!("{auth}Origin: http://evil.example\r\nContent-Type: application/json\r\n"),
                json,
            ),
            403,
            "origin",
        ),
    ];
    for (request, want_status, want_error) in cases {
        let (status, answer) = parse_response(&http(addr, request.as_bytes()).await);
        assert_eq!(
            (status, answer["error"].as_str()),
            (want_status, Some(want_error)),
            "{request}"
        );
    }
    // curl, as a script would call it: created, and the answer is never cached.
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-i",
            "-H",
            &format!("Authorization: Bearer {TOKEN}"),
            "-H",
            "Content-Type: application/json",
            "-d",
            json,
        ])
        .arg(format!("http://{addr}/sessions"))
        .output()
        .expect("curl runs (./test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");
    assert!(
        text.contains("Cache-Control: no-store") && text.contains("Referrer-Policy: no-referrer")
    );
    assert!(text.contains(r#""url":"/term#"#), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_limited_per_address() {
    let console = Console::start("", HostKeyPolicy::Reject).await;
    let request = format!(
        "POST /sessions HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer nope\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}",
        console.addr
    );
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(parse_response(&http(console.addr, request.as_bytes()).await).0);
    }
    assert_eq!(&statuses[..10], &[401; 10]);
    assert_eq!(&statuses[10..], &[429; 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yes_then_ctrl_c_stops_within_a_second_and_credit_bounds_what_is_in_flight() {
    let sshd = Sshd::start();
    let console = Console::start(&sshd.known_hosts_line(), HostKeyPolicy::Reject).await;
    let id = console.password_session(&sshd).await;
    let mut term = console.open(&id, None).await.unwrap();
    term.start(80, 24).await;
    // A page that stops rendering: output stops at the high mark, not at the socket buffers.
    term.acknowledge = false;
    term.input("yes\r").await;
    let mut last = 0;
    let settled = Instant::now();
    while settled.elapsed() < Duration::from_secs(2) {
        term.step(Duration::from_millis(100)).await;
        if term.output.len() != last {
            last = term.output.len();
        }
    }
    let high = oobkit_term::TermConfig::default().high_water as usize;
    assert!(
        term.output.len() >= high && term.output.len() < high + 64 * 1024,
        "{} bytes arrived unacknowledged",
        term.output.len()
    );
    // Rendering again: output flows; Ctrl-C stops it within a second (the terminal echoes
    // ^C once the target took it, after what was in flight), and the shell answers.
    term.acknowledge = true;
    term.send(Frame::Ack(term.output.len() as u32)).await;
    let flowing = term.output.len();
    while term.output.len() < flowing + 4 * high {
        term.step(Duration::from_millis(200)).await;
    }
    term.input("\x03").await;
    let pressed = Instant::now();
    term.until("^C", Duration::from_secs(5)).await;
    let took = pressed.elapsed();
    term.input("echo stopped-$((3*3))\r").await;
    term.until("stopped-9", Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(1), "Ctrl-C took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_silent_targets_are_explained() {
    let console = Console::start("", HostKeyPolicy::Reject).await;
    // Nothing listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_, answer) = console
        .create(
            &serde_json::json!({"host": "127.0.0.1", "port": port, "user": "u", "password": "p"}),
        )
        .await;
    let mut term = console.open(&link_id(&answer), None).await.unwrap();
    term.start(80, 24).await;
    let (code, reason) = term.until_closed(WAIT).await;
    assert_eq!(code, CloseCode::TargetFailed);
    assert!(reason.contains("cannot reach"), "{reason}");

    // A target that accepts and never speaks: bounded by the connect timeout.
    let console = Console::start_with("", |c| c.ssh.connect_timeout = Duration::from_secs(1)).await;
    let silent = oobkit_testkit::SilentDevice::start().await;
    let (_, answer) = console
        .create(&serde_json::json!({"host": "127.0.0.1", "port": silent.addr.port(), "user": "u", "password": "p"}))
        .await;
    let mut term = console.open(&link_id(&answer), None).await.unwrap();
    term.start(80, 24).await;
    let started = Instant::now();
    let (code, reason) = term.until_closed(WAIT).await;
    assert_eq!(code, CloseCode::TargetFailed);
    assert!(reason.contains("within"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_console_holds_logs_in_without_the_caller_seeing_it() {
    let sshd = Sshd::start();
    let key = sshd.client_key();
    let console = Console::start_with(&sshd.known_hosts_line(), |c| {
        c.ssh.gateway_keys = vec![key];
    })
    .await;
    let (status, answer) = console
        .create(&serde_json::json!({
            "host": "127.0.0.1", "port": sshd.port, "user": sshd::USER, "gateway_key": 0,
        }))
        .await;
    assert_eq!(status, 201, "{answer}");
    let mut term = console.open(&link_id(&answer), None).await.unwrap();
    term.start(80, 24).await;
    term.input("echo held-$((7*6))\r").await;
    term.until("held-42", WAIT).await;
    // A key it does not hold is refused before any link exists.
    let (status, answer) = console
        .create(&serde_json::json!({
            "host": "127.0.0.1", "port": sshd.port, "user": sshd::USER, "gateway_key": 1,
        }))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("bad_request"))
    );
}
