//! End to end with Debian's `telnet` (installed by `./test.sh`), driven on a pseudo-terminal
//! (util-linux `script`), through `sol_telnet` to the simulated AMT's SOL console: the
//! default simulated serial console, and a real shell asked for with `--sol-command`.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Starts `sol_telnet` against its in-process simulator with a shell on the console; returns
/// it and its telnet port.
async fn start_bridge() -> (Child, u16) {
    start_bridge_with(&["--sol-command", "/bin/sh -i"]).await
}

async fn start_bridge_with(extra: &[&str]) -> (Child, u16) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sol_telnet"));
    command
        .args(["--client", "none", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env_remove("AMT_HOST");
    oobkit_testkit::spawn_listening(&mut command, "telnet").await
}

/// A telnet client on a pseudo-terminal.
struct Telnet {
    _child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    seen: Vec<u8>,
}

impl Telnet {
    async fn connect(port: u16) -> Self {
        let mut child = match Command::new("script")
            .args([
                "-q",
                "-f",
                "-c",
                &format!("telnet 127.0.0.1 {port}"),
                "/dev/null",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => panic!("`script` (bsdutils) is required to give telnet a terminal: {e}"),
        };
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut telnet = Self {
            _child: child,
            stdin,
            stdout,
            seen: Vec::new(),
        };
        telnet.expect(b"Escape character", 1).await;
        telnet
    }

    async fn type_bytes(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).await.unwrap();
    }

    /// Waits until `needle` has been seen `times` times in the output.
    async fn expect(&mut self, needle: &[u8], times: usize) {
        let count = |seen: &[u8]| seen.windows(needle.len()).filter(|w| *w == needle).count();
        let mut buf = [0u8; 8192];
        let waited = tokio::time::timeout(Duration::from_secs(20), async {
            while count(&self.seen) < times {
                let n = self.stdout.read(&mut buf).await.unwrap();
                if n == 0 {
                    return false;
                }
                self.seen.extend_from_slice(&buf[..n]);
            }
            true
        })
        .await;
        assert!(
            waited == Ok(true),
            "waited for {:?} x{times}; telnet showed: {}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(&self.seen[self.seen.len().saturating_sub(600)..])
        );
    }
}

#[tokio::test]
async fn the_default_console_is_simulated_and_hands_out_no_shell() {
    let (_bridge, port) = start_bridge_with(&[]).await;
    let mut telnet = Telnet::connect(port).await;
    telnet.expect(b"oobkit-sim login: ", 1).await;
    telnet.type_bytes(b"alice\r").await;
    telnet.expect(b"Password: ", 1).await;
    telnet.type_bytes(b"anything\r").await;
    telnet.expect(b"alice@oobkit-sim:~$ ", 1).await;
    // A shell would print 42; the simulated console prints the text as it is.
    telnet.type_bytes(b"echo tel-$((6*7))\r").await;
    telnet.expect(b"tel-$((6*7))\r\n", 2).await;
    telnet.type_bytes(b"ls /\r").await;
    telnet.expect(b"ls: command not found", 1).await;
}

#[tokio::test]
async fn telnet_runs_a_command_in_the_sol_shell() {
    let (_bridge, port) = start_bridge().await;
    let mut telnet = Telnet::connect(port).await;
    telnet.expect(b"# ", 1).await;
    telnet.type_bytes(b"echo tel-$((6*7))\r").await;
    telnet.expect(b"tel-42", 1).await;
}

#[tokio::test]
async fn a_line_longer_than_max_tx_buffer_and_0xff_bytes() {
    let (_bridge, port) = start_bridge().await;
    let mut telnet = Telnet::connect(port).await;
    telnet.expect(b"# ", 1).await;
    // Non-canonical mode on the console, so the line is not cut at the tty's 4096-byte line
    // limit; 12 000 bytes is more than the 10 000-byte MaxTxBuffer of the SOL session.
    telnet
        .type_bytes(b"stty -icanon; head -c 12000 | wc -c\r")
        .await;
    telnet.expect(b"wc -c", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    telnet.type_bytes(&[b'x'; 12000]).await;
    telnet.expect(b"12000", 1).await;
    // The next prompt first: typed ahead, the echo of the next command would interleave with
    // the shell's output and the expected text would never appear whole.
    telnet.expect(b"# ", 2).await;
    // 0xFF goes as IAC IAC on the telnet side and arrives as one byte on the console.
    telnet
        .type_bytes(b"stty -icanon -echo; head -c 4 | od -An -tx1; stty echo\r")
        .await;
    telnet.expect(b"stty echo", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    telnet.type_bytes(&[0xFF, 0xFE, 0x41, 0xFF]).await;
    telnet.expect(b"ff fe 41 ff", 1).await;
}

#[tokio::test]
async fn clients_one_after_another_and_a_second_one_is_told_why() {
    let (_bridge, port) = start_bridge().await;
    let mut first = Telnet::connect(port).await;
    first.expect(b"# ", 1).await;
    // While the first is connected, a second is turned away with a reason.
    let mut second = Telnet::connect(port).await;
    second
        .expect(b"another client is using the console", 1)
        .await;
    drop(second);
    first.type_bytes(b"echo first-$((1+1))\r").await;
    first.expect(b"first-2", 1).await;
    drop(first);
    // The bridge keeps running: the next client gets a fresh SOL session.
    let mut third = Telnet::connect(port).await;
    for _ in 0..50 {
        if third.seen.windows(2).any(|w| w == b"# ") {
            break;
        }
        if third.seen.windows(7).any(|w| w == b"another") {
            // The first session was still being torn down; try again.
            tokio::time::sleep(Duration::from_millis(200)).await;
            third = Telnet::connect(port).await;
            continue;
        }
        third.expect(b"# ", 1).await;
    }
    third.type_bytes(b"echo third-$((1+2))\r").await;
    third.expect(b"third-3", 1).await;
}

/// A device that accepts TCP and never answers must not keep the bridge busy after the telnet
/// client has left (it did for the whole 30 s handshake deadline).
#[tokio::test]
async fn a_client_leaving_a_silent_device_frees_the_bridge() {
    let device = oobkit_testkit::SilentDevice::start().await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_sol_telnet"));
    command
        .args(["--client", "none", "--listen", "127.0.0.1:0"])
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &device.addr.port().to_string(),
        ])
        .env("AMT_PASSWORD", "irrelevant");
    let (_bridge, port) = oobkit_testkit::spawn_listening(&mut command, "telnet").await;
    let heard = oobkit_testkit::leave_then_return(port, b"").await;
    assert!(
        !heard.contains("another client"),
        "the bridge stayed busy: {heard}"
    );
}

/// A telnet client that stops reading while the console floods is dropped after
/// --stall-timeout, and the next client gets the console (the bridge's unbounded write to it
/// used to hold the bridge, which serves one client at a time, forever).
#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_the_next_is_served() {
    let (mut bridge, port) =
        start_bridge_with(&["--sol-command", "yes flood", "--stall-timeout", "1"]).await;
    let stalled = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    // Never read: the console's flood fills the socket buffers, then the bridge's writes stall.
    let started = std::time::Instant::now();
    let served = loop {
        let mut telnet = Telnet::connect(port).await;
        let mut buf = [0u8; 8192];
        let mut seen = Vec::new();
        let served = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let n = telnet.stdout.read(&mut buf).await.unwrap();
                if n == 0 {
                    return false;
                }
                seen.extend_from_slice(&buf[..n]);
                if seen.windows(5).any(|w| w == b"flood") {
                    return true;
                }
                if seen.windows(7).any(|w| w == b"another") {
                    return false;
                }
            }
        })
        .await;
        if served == Ok(true) {
            break telnet;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the stalled client still holds the bridge"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    drop(stalled);
    // Killed outright (no chance to clean up), the bridge takes its console program with it:
    // a `yes` left behind ran on for good and took a processor from every later test.
    let below = oobkit_testkit::descendants(bridge.id().unwrap());
    assert!(
        !below.is_empty(),
        "the console program runs below the bridge"
    );
    bridge.start_kill().unwrap();
    bridge.wait().await.unwrap();
    drop(served);
    let gone = |pid: &u32| {
        // Gone, or ended and waiting to be reaped (state Z) by whoever adopted it.
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !below.iter().all(gone) {
        assert!(
            std::time::Instant::now() < deadline,
            "left running after the bridge was killed: {:?}",
            below.iter().filter(|p| !gone(p)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
