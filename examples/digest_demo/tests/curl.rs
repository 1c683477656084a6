//! Interop: curl (a Digest client nobody here wrote) against the oobkit-digest server.
//!
//! curl comes from Debian's `curl` package, which `.ci/run` installs. If it is missing these
//! tests fail; they never skip.

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use digest_demo::{DemoServer, Settings, now_secs};
use oobkit_digest::Algorithm;

fn curl(args: &[&str]) -> Output {
    match Command::new("curl").args(args).output() {
        Ok(out) => out,
        Err(e) => panic!(
            "curl is required for this interop test (Debian package `curl`, installed by .ci/run): {e}"
        ),
    }
}

fn start(settings: Settings) -> SocketAddr {
    DemoServer::bind("127.0.0.1:0", settings)
        .expect("bind loopback")
        .spawn()
        .expect("spawn server")
}

/// Runs `curl --digest` and returns (HTTP status of the last response, body, verbose log).
fn fetch(addr: SocketAddr, userpass: &str, extra: &[&str]) -> (String, String, String) {
    let url = format!("http://{addr}/protected");
    let mut args = vec![
        "--silent",
        "--show-error",
        "--verbose",
        "--max-time",
        "20",
        "--digest",
        "--user",
        userpass,
        "--write-out",
        "\n%{http_code}",
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    let out = curl(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = stdout.rsplit_once('\n').expect("write-out line");
    (
        status.to_owned(),
        body.to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn right_password_gets_200() {
    let addr = start(Settings::new("admin", "P@ssw0rd"));
    let (status, body, log) = fetch(addr, "admin:P@ssw0rd", &[]);
    assert_eq!(status, "200", "{log}");
    assert_eq!(body, "Hello, admin!\n");
    // curl answered the strongest challenge offered.
    assert!(log.contains("algorithm=SHA-256"), "{log}");
}

#[test]
fn wrong_password_gets_401() {
    let addr = start(Settings::new("admin", "P@ssw0rd"));
    let (status, body, log) = fetch(addr, "admin:not-it", &[]);
    assert_eq!(status, "401", "{log}");
    assert_eq!(body, "Authentication required.\n");
    let (status, _, log) = fetch(addr, "someone:P@ssw0rd", &[]);
    assert_eq!(status, "401", "{log}");
}

#[test]
fn md5_only_like_an_amt() {
    let mut settings = Settings::new("admin", "P@ssw0rd");
    settings.algorithms = vec![Algorithm::Md5];
    let addr = start(settings);
    let (status, _, log) = fetch(addr, "admin:P@ssw0rd", &[]);
    assert_eq!(status, "200", "{log}");
    assert!(log.contains("algorithm=MD5"), "{log}");
}

#[test]
fn stale_nonce_is_renewed_without_failing() {
    // The server's clock jumps past the nonce lifetime between curl's first request (which
    // draws the challenge) and its answer, so the answer's nonce is stale. curl must take the
    // `stale=true` challenge and answer again, and get through.
    let reads = Arc::new(AtomicU64::new(0));
    let base = now_secs();
    let mut settings = Settings::new("admin", "P@ssw0rd");
    settings.nonce_lifetime = 30;
    settings.clock = {
        let reads = Arc::clone(&reads);
        Arc::new(move || {
            let n = reads.fetch_add(1, Ordering::SeqCst);
            if n == 0 { base } else { base + 60 }
        })
    };
    let addr = start(settings);
    let (status, body, log) = fetch(addr, "admin:P@ssw0rd", &[]);
    assert_eq!(status, "200", "{log}");
    assert_eq!(body, "Hello, admin!\n");
    assert!(
        log.contains("stale=true"),
        "no stale challenge seen:\n{log}"
    );
    let answers: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("> Authorization: Digest"))
        .collect();
    assert_eq!(answers.len(), 2, "{log}");
    let nonce = |l: &str| {
        l.split("nonce=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .map(str::to_owned)
    };
    assert_ne!(nonce(answers[0]), nonce(answers[1]), "{log}");
    assert_eq!(reads.load(Ordering::SeqCst), 3);
}
