//! What the end-to-end tests share: starting the real rrmt-server.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The server program.
pub(crate) const SERVER: &str = env!("CARGO_BIN_EXE_rrmt-server");

/// Runs the `rrmt` CLI `command` (30 s at most): exit status, standard output and error.
pub(crate) async fn run_cli(mut command: Command) -> (i32, String, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        command.stdin(Stdio::null()).kill_on_drop(true).output(),
    )
    .await
    .expect("rrmt finishes")
    .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Starts rrmt-server with `args` (quiet, killed on drop) and waits until it prints its
/// certificate's fingerprint, which it does once both endpoints listen; returns it.
pub(crate) async fn start_server(args: &[&std::ffi::OsStr]) -> (Child, String) {
    let mut child = Command::new(SERVER)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let fingerprint = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(fp) = line.strip_prefix("certificate SHA-256: ") {
                return fp.to_owned();
            }
        }
        panic!("the server ended without printing its fingerprint");
    })
    .await
    .expect("the server starts");
    // Kept reading, so that the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, fingerprint)
}
