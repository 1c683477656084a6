//! End to end on loopback: the real rrmt-server, rrmt-agent and rrmt binaries.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use oobkit_testkit::free_port;
use rrmt::pty::Pty;

use tokio::process::{Child, Command};

mod common;

use common::SERVER;
const AGENT: &str = env!("CARGO_BIN_EXE_rrmt-agent");
const CLI: &str = env!("CARGO_BIN_EXE_rrmt");
const PASSWORD: &str = "correct horse";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rrmt-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct TestServer {
    child: Child,
    dir: PathBuf,
    agent_port: u16,
    admin_port: u16,
    fingerprint: String,
}

impl TestServer {
    /// A new data directory with administrator alice.
    async fn create(name: &str, extra: &[&str]) -> Self {
        let dir = scratch(name);
        let status = Command::new(SERVER)
            .args([
                "--data-dir".as_ref(),
                dir.as_os_str(),
                "add-admin".as_ref(),
                "alice".as_ref(),
            ])
            .env("RRMT_ADMIN_PASSWORD", PASSWORD)
            .stdout(Stdio::null())
            .status()
            .await
            .unwrap();
        assert!(status.success());
        Self::start(&dir, free_port(), free_port(), extra).await
    }

    async fn start(dir: &Path, agent_port: u16, admin_port: u16, extra: &[&str]) -> Self {
        let (agent, admin) = (
            format!("127.0.0.1:{agent_port}"),
            format!("127.0.0.1:{admin_port}"),
        );
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "--data-dir".as_ref(),
            dir.as_os_str(),
            "--agent-listen".as_ref(),
            agent.as_ref(),
            "--admin-listen".as_ref(),
            admin.as_ref(),
        ];
        args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
        let (child, fingerprint) = common::start_server(&args).await;
        Self {
            child,
            dir: dir.to_owned(),
            agent_port,
            admin_port,
            fingerprint,
        }
    }

    async fn restart(mut self, extra: &[&str]) -> Self {
        // Killed, not stopped politely: nothing may depend on an orderly shutdown.
        self.child.kill().await.unwrap();
        // The new server owns the directory now; the old one's Drop must not remove it (it
        // did, and the restart test passed only because the files were still open).
        let dir = std::mem::take(&mut self.dir);
        Self::start(&dir, self.agent_port, self.admin_port, extra).await
    }

    fn cli(&self) -> Command {
        let mut command = Command::new(CLI);
        command
            .env(
                "RRMT_SERVER",
                format!("wss://127.0.0.1:{}", self.admin_port),
            )
            .env("RRMT_USER", "alice")
            .env("RRMT_PASSWORD", PASSWORD)
            .env("RRMT_FINGERPRINT", &self.fingerprint)
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut command = self.cli();
        command.args(args);
        common::run_cli(command).await
    }

    /// `token create`: the token, written to a file.
    async fn token(&self, host: &str) -> PathBuf {
        let (code, out, err) = self.run(&["token", "create", host]).await;
        assert_eq!(code, 0, "{err}");
        let token = out
            .split_whitespace()
            .skip_while(|w| *w != "token")
            .nth(1)
            .expect("a token in the output");
        // The agent's command line is printed ready to paste: this server's port and
        // certificate, no placeholders.
        let command = format!(
            "rrmt-agent --server wss://127.0.0.1:{} --token-file /etc/rrmt/token --fingerprint {}",
            self.agent_port, self.fingerprint
        );
        assert!(out.contains(&command), "{out}");
        assert!(
            out.contains(&format!("echo '{token}' > /etc/rrmt/token")),
            "{out}"
        );
        let path = self.dir.join(format!("{host}.token"));
        std::fs::write(&path, token).unwrap();
        path
    }

    fn agent(&self, token: &Path, name: &str) -> Child {
        Command::new(AGENT)
            .args(["--server", &format!("wss://127.0.0.1:{}", self.agent_port)])
            .arg("--token-file")
            .arg(token)
            .args([
                "--fingerprint",
                &self.fingerprint,
                "--name",
                name,
                "--shell",
                "/bin/sh",
            ])
            .args(["--max-backoff", "1"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    /// Waits until `host` shows `state` in `rrmt hosts`.
    async fn wait_for(&self, host: &str, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, out, _) = self.run(&["hosts"]).await;
            if out
                .lines()
                .any(|l| l.split_whitespace().take(2).eq([host, state]))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{host} never became {state}: {out}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[tokio::test]
async fn exec_passes_output_streams_and_exit_status_through() {
    let server = TestServer::create("exec", &[]).await;
    let token = server.token("web1").await;
    let _agent = server.agent(&token, "web1.example");
    server.wait_for("web1", "online").await;

    let (code, out, err) = server
        .run(&[
            "exec",
            "web1",
            "--",
            "sh",
            "-c",
            "echo to-out; echo to-err >&2; exit 7",
        ])
        .await;
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (7, "to-out\n", "to-err\n")
    );

    // Arguments arrive as they were given, not re-split by a shell.
    let (code, out, _) = server
        .run(&["exec", "web1", "--", "printf", "[%s]", "a b", "", "c'd"])
        .await;
    assert_eq!((code, out.as_str()), (0, "[a b][][c'd]"));

    let (code, _, err) = server
        .run(&["exec", "web1", "--", "/no/such/program"])
        .await;
    assert_eq!(code, 127, "{err}");
    assert!(err.contains("cannot run /no/such/program"), "{err}");

    let started = Instant::now();
    let (code, _, err) = server
        .run(&["exec", "--timeout", "1", "web1", "--", "sleep", "30"])
        .await;
    assert_eq!(code, 124, "{err}");
    assert!(started.elapsed() < Duration::from_secs(15));

    let (code, out, err) = server
        .run(&[
            "exec",
            "--output-cap",
            "1000",
            "web1",
            "--",
            "head",
            "-c",
            "300000",
            "/dev/zero",
        ])
        .await;
    assert_eq!((code, out.len()), (0, 1000));
    assert!(err.contains("truncated"), "{err}");

    // Large output arrives whole (many frames, many websocket messages).
    let (code, out, _) = server
        .run(&["exec", "web1", "--", "head", "-c", "4000000", "/dev/zero"])
        .await;
    assert_eq!((code, out.len()), (0, 4_000_000));

    let (code, _, err) = server.run(&["exec", "nowhere", "--", "true"]).await;
    assert_eq!(code, 255);
    assert!(err.contains("no host named"), "{err}");

    let wrong = server
        .cli()
        .env("RRMT_PASSWORD", "wrong password")
        .arg("hosts")
        .output()
        .await
        .unwrap();
    let (code, err) = (
        wrong.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&wrong.stderr).into_owned(),
    );
    assert_eq!(code, 255);
    assert!(err.contains("refused the user name or password"), "{err}");

    // The audit log has who ran what where and how it ended.
    let (code, out, _) = server.run(&["audit"]).await;
    assert_eq!(code, 0);
    // Times in local RFC 3339 with the offset (2026-11-26T11:20:05+00:00), not UNIX seconds.
    let first = out.lines().next().expect("an audit line");
    let at = first.split_whitespace().nth(1).expect("a time");
    assert!(
        at.len() == 25 && at.as_bytes()[10] == b'T' && matches!(at.as_bytes()[19], b'+' | b'-'),
        "{first}"
    );
    assert!(
        out.contains(
            "alice@127.0.0.1 exec web1 sh -c 'echo to-out; echo to-err >&2; exit 7' exit 7"
        ),
        "{out}"
    );
    assert!(
        out.contains("exec web1 sleep 30 exit -1 (timed out)"),
        "{out}"
    );
    assert!(out.contains("(did not start)"), "{out}");
    let (_, out, _) = server.run(&["hosts"]).await;
    assert!(out.contains("web1.example"), "{out}");
}

/// Reads the pty until `needle` appears (30 s at most: a 2 MB flood on a loaded machine);
/// fails with the end of what was read.
async fn read_until(pty: &mut Pty, seen: &mut Vec<u8>, needle: &str) {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(30), async {
        while !String::from_utf8_lossy(seen).contains(needle) {
            let n = pty.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "the terminal closed before {needle:?}: {}",
                String::from_utf8_lossy(seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| {
        let tail = &seen[seen.len().saturating_sub(400)..];
        panic!(
            "no {needle:?} after {} bytes, ending {:?}",
            seen.len(),
            String::from_utf8_lossy(tail)
        )
    });
}

#[tokio::test]
async fn interactive_shell_on_a_pty_runs_a_command_follows_resizes_and_exits() {
    let server = TestServer::create("shell", &[]).await;
    let token = server.token("web1").await;
    let _agent = server.agent(&token, "web1");
    server.wait_for("web1", "online").await;

    // The CLI itself runs on a pseudo-terminal, as an administrator's terminal.
    let env = [
        format!("RRMT_SERVER=wss://127.0.0.1:{}", server.admin_port),
        "RRMT_USER=alice".into(),
        format!("RRMT_PASSWORD={PASSWORD}"),
        format!("RRMT_FINGERPRINT={}", server.fingerprint),
        CLI.to_owned(),
    ];
    let mut args: Vec<&str> = env.iter().map(String::as_str).collect();
    args.extend(["shell", "web1"]);
    let (mut pty, mut cli) = Pty::spawn("env", &args, "dumb", 100, 30).unwrap();
    let mut seen = Vec::new();
    pty.write_all(b"stty size; echo $((6 * 7))x\r")
        .await
        .unwrap();
    read_until(&mut pty, &mut seen, "30 100").await;
    read_until(&mut pty, &mut seen, "42x").await;

    // The administrator's window grows: the remote shell follows.
    pty.resize(132, 43).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    pty.write_all(b"stty size\r").await.unwrap();
    read_until(&mut pty, &mut seen, "43 132").await;

    // 2 MB of output through the 256 KiB window: credit flows back as the terminal reads.
    pty.write_all(b"yes flood | head -c 2000000; echo END-$((1 + 1))\r")
        .await
        .unwrap();
    read_until(&mut pty, &mut seen, "END-2").await;
    let floods = String::from_utf8_lossy(&seen).matches("flood").count();
    assert!(floods > 300_000, "{floods} lines of flood");

    pty.write_all(b"exit 3\r").await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), cli.wait())
        .await
        .expect("rrmt shell ends with the shell")
        .unwrap();
    assert_eq!(status.code(), Some(3), "{}", String::from_utf8_lossy(&seen));

    let (_, out, _) = server.run(&["audit"]).await;
    assert!(out.contains("shell web1 dumb 100x30 exit 3"), "{out}");
}

#[tokio::test]
async fn agents_come_back_after_a_server_restart_with_the_registry_intact() {
    let server = TestServer::create("restart", &[]).await;
    let token = server.token("db1").await;
    let mut agent = server.agent(&token, "db1");
    server.wait_for("db1", "online").await;
    let (code, out, _) = server.run(&["exec", "db1", "--", "echo", "before"]).await;
    assert_eq!((code, out.as_str()), (0, "before\n"));

    let server = server.restart(&[]).await;
    server.wait_for("db1", "online").await;
    let (code, out, _) = server.run(&["exec", "db1", "--", "echo", "after"]).await;
    assert_eq!((code, out.as_str()), (0, "after\n"));
    let (_, out, _) = server.run(&["audit"]).await;
    assert!(out.contains("exec db1 echo before exit 0"), "{out}");
    assert!(out.contains("exec db1 echo after exit 0"), "{out}");
    assert!(
        agent.try_wait().unwrap().is_none(),
        "the agent kept running"
    );
}

#[tokio::test]
async fn a_revoked_agent_is_cut_off_at_once_and_cannot_return() {
    let server = TestServer::create("revoke", &[]).await;
    let token = server.token("old1").await;
    let mut agent = server.agent(&token, "old1");
    server.wait_for("old1", "online").await;

    let (code, out, _) = server.run(&["token", "revoke", "old1"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("its agent was disconnected"), "{out}");
    let status = tokio::time::timeout(Duration::from_secs(10), agent.wait())
        .await
        .expect("the agent stops")
        .unwrap();
    assert_eq!(status.code(), Some(3));

    let mut again = server.agent(&token, "old1");
    let status = tokio::time::timeout(Duration::from_secs(10), again.wait())
        .await
        .expect("the agent is refused")
        .unwrap();
    assert_eq!(status.code(), Some(2));
    let (code, _, err) = server.run(&["exec", "old1", "--", "true"]).await;
    assert_eq!(code, 255);
    assert!(err.contains("revoked"), "{err}");
    let (_, out, _) = server.run(&["token", "list"]).await;
    assert!(
        out.lines()
            .any(|l| l.starts_with("old1") && l.contains("revoked")),
        "{out}"
    );
}

#[tokio::test]
async fn repeated_failed_authorizations_shut_an_address_out() {
    let server = TestServer::create("limits", &["--max-failed-auths", "3"]).await;
    let bogus = server.dir.join("bogus.token");
    std::fs::write(&bogus, "00000000-0000-4000-8000-000000000000").unwrap();
    for _ in 0..3 {
        let status =
            tokio::time::timeout(Duration::from_secs(10), server.agent(&bogus, "x").wait())
                .await
                .expect("refused")
                .unwrap();
        assert_eq!(status.code(), Some(2));
    }
    // Now even the right password from this address is not heard.
    let (code, _, err) = server.run(&["hosts"]).await;
    assert_eq!(code, 255);
    assert!(!err.contains("refused the user name"), "{err}");
}

/// The data directory holds the administrators' HA1 and the TLS key: 0700 and 0600, narrowed at
/// start when something made them wider, and another local user cannot read the registry.
#[tokio::test]
async fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let server = TestServer::create("modes", &[]).await;
    let registry = server.dir.join("registry.sqlite");
    assert_eq!(mode(&server.dir), 0o700);
    for entry in std::fs::read_dir(&server.dir).unwrap() {
        let path = entry.unwrap().path();
        // SQLite may remove a journal file between the listing and the look.
        if let Ok(meta) = std::fs::metadata(&path) {
            assert_eq!(
                meta.permissions().mode() & 0o777,
                0o600,
                "{}",
                path.display()
            );
        }
    }
    // Widened behind its back: the next start narrows it again.
    std::fs::set_permissions(&server.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&registry, std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = server.restart(&[]).await;
    assert_eq!((mode(&server.dir), mode(&registry)), (0o700, 0o600));
    // As another user (util-linux setpriv; CI runs as root, which can switch users).
    if rustix::process::geteuid().is_root() {
        let output = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
            .arg(&registry)
            .output()
            .expect("setpriv (util-linux) runs");
        assert!(!output.status.success(), "nobody read the registry");
        assert!(String::from_utf8_lossy(&output.stderr).contains("Permission denied"));
    }
}

/// Handshakes that never finish hold neither the administrators' slots nor, beyond a small
/// per-address budget, anyone else's chance to connect: 40 silent connections from 127.0.0.2
/// (never a TLS ClientHello) and an administrator from 127.0.0.1 is still served, with
/// --max-admins 4.
#[tokio::test]
async fn a_handshake_flood_does_not_keep_an_administrator_out() {
    let server = TestServer::create("flood", &["--max-admins", "4"]).await;
    let pid = server.child.id();
    let resident = || oobkit_testkit::resident_kib(pid).unwrap();
    let before = resident();
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], server.admin_port));
    let mut flood = Vec::new();
    for from in ["127.0.0.2:0", "127.0.0.3:0"] {
        for _ in 0..40 {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(from.parse().unwrap()).unwrap();
            if let Ok(mut stream) = socket.connect(admin).await {
                // Half of them start a TLS record announcing 16 KiB and never send it.
                if flood.len() % 2 == 0 {
                    use tokio::io::AsyncWriteExt;
                    let _ = stream
                        .write_all(&[0x16, 0x03, 0x01, 0x40, 0x00, 0x01])
                        .await;
                }
                flood.push(stream);
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = resident();
    let (code, out, err) = server.run(&["hosts"]).await;
    assert_eq!(code, 0, "{out}{err}");
    drop(flood);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = resident();
    println!("server resident memory: {before} KiB before, {during} KiB during, {after} KiB after");
    assert!(
        during.saturating_sub(before) < 32 * 1024,
        "{before} KiB before, {during} KiB during"
    );
    let (code, out, err) = server.run(&["hosts"]).await;
    assert_eq!(code, 0, "after the flood: {out}{err}");
}

/// rrmt-load holds a fleet that connects all at once from one address; the server's handshake
/// budget must not refuse it (it did once the budget came in, unnoticed without this test).
#[tokio::test]
async fn rrmt_load_connects_its_whole_fleet() {
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_rrmt-load"))
            .args(["--agents", "60", "--execs", "30"])
            .output(),
    )
    .await
    .expect("rrmt-load ends within 120 s")
    .expect("rrmt-load runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("FIGURE rrmt_agents=60"), "{stdout}");
}
