//! Three rrmt-servers sharing one PostgreSQL registry (a throwaway cluster on loopback), three
//! rrmt-agents spread over them: exec and shell from every server to every agent, a revocation
//! on one server cutting the agent off on another, a server killed with SIGKILL (its agents
//! reconnect elsewhere, its running exec's audit entry is closed by the others), and a
//! partition (one token connected to two servers at once) resolved to one connection.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use oobkit_io::TlsPolicy;
use oobkit_testkit::free_port;
use rrmt::admin::{AdminClient, AdminReply, AdminRequest, Incoming};
use tokio::process::{Child, Command};

mod common;

use common::SERVER;
const AGENT: &str = env!("CARGO_BIN_EXE_rrmt-agent");
const CLI: &str = env!("CARGO_BIN_EXE_rrmt");
const PASSWORD: &str = "cluster admin password";
/// Short leases, so that a killed server's agents and entries are released within seconds.
const LEASE_SECS: &str = "3";

struct Node {
    id: String,
    child: Child,
    agent_port: u16,
    admin_port: u16,
}

struct Cluster {
    dir: PathBuf,
    url: String,
    fingerprint: String,
    nodes: Vec<Node>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Cluster {
    async fn start(name: &str, pg: &oobkit_testkit::postgres::Postgres, ids: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("rrmt-cluster-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        rrmt::write_private_file(
            &dir.join("cluster-secret"),
            b"the servers of this test cluster share this",
        )
        .unwrap();
        let url = pg.database("cluster");
        let status = Command::new(SERVER)
            .arg("--data-dir")
            .arg(dir.join(ids[0]))
            .args(["--database", &url, "add-admin", "alice"])
            .env("RRMT_ADMIN_PASSWORD", PASSWORD)
            .stdout(Stdio::null())
            .status()
            .await
            .unwrap();
        assert!(status.success());
        let mut cluster = Self {
            dir,
            url,
            fingerprint: String::new(),
            nodes: Vec::new(),
        };
        for id in ids {
            let node = cluster.node(id).await;
            cluster.nodes.push(node);
        }
        cluster
    }

    /// Starts server `id`: the first one generates the certificate the others share (agents
    /// pin one fingerprint for the whole cluster).
    async fn node(&mut self, id: &str) -> Node {
        let data = self.dir.join(id);
        std::fs::create_dir_all(&data).unwrap();
        if let Some(first) = self.nodes.first() {
            for file in ["server.crt", "server.key"] {
                std::fs::copy(self.dir.join(&first.id).join(file), data.join(file)).unwrap();
            }
        }
        let (agent_port, admin_port) = (free_port(), free_port());
        let (agent, admin) = (
            format!("127.0.0.1:{agent_port}"),
            format!("127.0.0.1:{admin_port}"),
        );
        let secret = self.dir.join("cluster-secret");
        let args: Vec<&std::ffi::OsStr> = [
            "--data-dir".as_ref(),
            data.as_os_str(),
            "--database".as_ref(),
            self.url.as_ref(),
            "--server-id".as_ref(),
            id.as_ref(),
            "--cluster-secret-file".as_ref(),
            secret.as_os_str(),
            "--lease".as_ref(),
            LEASE_SECS.as_ref(),
            "--agent-listen".as_ref(),
            agent.as_ref(),
            "--admin-listen".as_ref(),
            admin.as_ref(),
        ]
        .into();
        let (child, fingerprint) = common::start_server(&args).await;
        assert!(self.fingerprint.is_empty() || self.fingerprint == fingerprint);
        self.fingerprint = fingerprint;
        Node {
            id: id.to_owned(),
            child,
            agent_port,
            admin_port,
        }
    }

    /// Servers s1 and s2, and host `host`'s agent connected to s2 only.
    async fn two_servers_agent_on_s2(
        name: &str,
        pg: &oobkit_testkit::postgres::Postgres,
        host: &str,
    ) -> (Self, Child) {
        let cluster = Self::start(name, pg, &["s1", "s2"]).await;
        let token = cluster.token(host).await;
        let agent = cluster.agent(&token, host, &["s2"]);
        cluster
            .wait_until_on(host, "s2", Duration::from_secs(20))
            .await;
        (cluster, agent)
    }

    fn node_of(&self, id: &str) -> &Node {
        self.nodes.iter().find(|n| n.id == id).unwrap()
    }

    fn pinned(&self) -> TlsPolicy {
        TlsPolicy::from_flags(Some(&self.fingerprint), None, false).unwrap()
    }

    async fn run(&self, server: &str, args: &[&str]) -> (i32, String, String) {
        let mut command = Command::new(CLI);
        command
            .env(
                "RRMT_SERVER",
                format!("wss://127.0.0.1:{}", self.node_of(server).admin_port),
            )
            .env("RRMT_USER", "alice")
            .env("RRMT_PASSWORD", PASSWORD)
            .env("RRMT_FINGERPRINT", &self.fingerprint)
            .args(args);
        common::run_cli(command).await
    }

    /// Server `server`'s administrators' endpoint, pinned.
    fn admin_endpoint(&self, server: &str) -> oobkit_io::Endpoint {
        let url = format!("wss://127.0.0.1:{}", self.node_of(server).admin_port);
        rrmt::endpoint_from_url(&url, self.pinned()).unwrap().0
    }

    async fn admin(&self, server: &str) -> AdminClient {
        AdminClient::connect(&self.admin_endpoint(server), "alice", PASSWORD)
            .await
            .unwrap()
    }

    /// A host and its token (written to a file).
    async fn token(&self, host: &str) -> PathBuf {
        let (code, out, err) = self
            .run(&self.nodes[0].id, &["token", "create", host])
            .await;
        assert_eq!(code, 0, "{err}");
        let token = out
            .split_whitespace()
            .skip_while(|w| *w != "token")
            .nth(1)
            .expect("a token in the output");
        let path = self.dir.join(format!("{host}.token"));
        std::fs::write(&path, token).unwrap();
        path
    }

    /// An agent given every server, its home first.
    fn agent(&self, token: &Path, name: &str, servers: &[&str]) -> Child {
        let urls: Vec<String> = servers
            .iter()
            .map(|s| format!("wss://127.0.0.1:{}", self.node_of(s).agent_port))
            .collect();
        Command::new(AGENT)
            .args(["--server", &urls.join(",")])
            .arg("--token-file")
            .arg(token)
            .args(["--fingerprint", &self.fingerprint, "--name", name])
            .args(["--shell", "/bin/sh", "--max-backoff", "1"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    /// Where `server` says `host`'s agent is (None: offline).
    async fn whereabouts(&self, server: &str, host: &str) -> Option<String> {
        let mut admin = self.admin(server).await;
        let AdminReply::Hosts { hosts } = admin.call(&AdminRequest::Hosts).await.unwrap() else {
            panic!("hosts");
        };
        admin.close().await;
        hosts
            .into_iter()
            .find(|h| h.record.name == host)
            .and_then(|h| h.online.then_some(h.server).flatten())
    }

    /// Waits until every live server says `host`'s agent is on `on`.
    async fn wait_until_on(&self, host: &str, on: &str, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let mut agree = true;
            for node in &self.nodes {
                agree &= self.whereabouts(&node.id, host).await.as_deref() == Some(on);
            }
            if agree {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "{host} not seen on {on} by every server within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A shell on `host`, 80x24, TERM=dumb.
fn shell_request(host: &str) -> AdminRequest {
    AdminRequest::Shell {
        host: host.into(),
        cols: 80,
        rows: 24,
        term: "dumb".into(),
        for_user: None,
    }
}

/// A shell through `server` on `host`: a command, then exit 4.
async fn shell_round(cluster: &Cluster, server: &str, host: &str) {
    let mut admin = cluster.admin(server).await;
    admin.send(&shell_request(host)).await.unwrap();
    let mut output = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sent = false;
    loop {
        let incoming = tokio::time::timeout_at(deadline.into(), admin.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "shell {server} -> {host}: {}",
                    String::from_utf8_lossy(&output)
                )
            })
            .unwrap();
        match incoming {
            Incoming::Reply(AdminReply::ShellOpened) if !sent => {
                admin
                    .send_data(format!("echo {host}-$((6*7))\nexit 4\n").as_bytes())
                    .await
                    .unwrap();
                sent = true;
            }
            Incoming::Data(data) => output.extend_from_slice(&data),
            Incoming::Reply(AdminReply::ShellClosed { exit }) => {
                assert_eq!(exit, 4);
                break;
            }
            other => panic!("shell {server} -> {host}: {other:?}"),
        }
    }
    let text = String::from_utf8_lossy(&output);
    assert!(
        text.contains(&format!("{host}-42")),
        "{server} -> {host}: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_serve_every_agent_survive_a_kill_and_resolve_a_partition() {
    let pg = oobkit_testkit::postgres::Postgres::start();
    let mut cluster = Cluster::start("three", &pg, &["s1", "s2", "s3"]).await;
    let homes = [("a1", "s1"), ("a2", "s2"), ("a3", "s3")];
    let order = |home: &str| -> Vec<&str> {
        let i = ["s1", "s2", "s3"].iter().position(|s| *s == home).unwrap();
        (0..3).map(|k| ["s1", "s2", "s3"][(i + k) % 3]).collect()
    };
    let mut tokens = Vec::new();
    let mut agents = Vec::new();
    for (host, home) in homes {
        let token = cluster.token(host).await;
        agents.push(cluster.agent(&token, host, &order(home)));
        tokens.push(token);
    }
    for (host, home) in homes {
        cluster
            .wait_until_on(host, home, Duration::from_secs(20))
            .await;
    }

    // Exec and shell from every server to every agent.
    for node in ["s1", "s2", "s3"] {
        for (host, _) in homes {
            let word = format!("{node}-to-{host}");
            let (code, out, err) = cluster
                .run(node, &["exec", host, "--", "echo", &word])
                .await;
            assert_eq!((code, out.trim()), (0, word.as_str()), "{err}");
            shell_round(&cluster, node, host).await;
        }
    }
    let mut admin = cluster.admin("s1").await;
    let AdminReply::Audit { entries } = admin
        .call(&AdminRequest::Audit { limit: 100 })
        .await
        .unwrap()
    else {
        panic!("audit");
    };
    let runs: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "exec" || e.action == "shell")
        .collect();
    assert_eq!(runs.len(), 18);
    for entry in &runs {
        let home = homes.iter().find(|(h, _)| *h == entry.host).unwrap().1;
        // Written by the server holding the agent, naming the administrator and, when the
        // request came through another server, that one.
        assert_eq!(entry.server.as_deref(), Some(home), "{entry:?}");
        assert_eq!(entry.who, "alice");
        assert!(entry.ended.is_some() && entry.exit.is_some(), "{entry:?}");
        let via = entry
            .detail
            .rsplit_once("(via server ")
            .map(|(_, s)| &s[..2]);
        assert!(via.is_none_or(|v| v != home), "{entry:?}");
        assert_eq!(entry.exit, Some(if entry.action == "exec" { 0 } else { 4 }));
    }
    assert_eq!(
        runs.iter()
            .filter(|e| e.detail.contains("(via server"))
            .count(),
        12
    );

    // A revocation on s1 cuts a3 off on s3 within a second.
    let (code, _, err) = cluster.run("s1", &["token", "revoke", "a3"]).await;
    assert_eq!(code, 0, "{err}");
    let revoked = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(5), agents[2].wait())
        .await
        .expect("the revoked agent stops")
        .unwrap();
    let cut_after = revoked.elapsed();
    eprintln!(
        "FIGURE rrmt_cluster_revoke_cut_ms={}",
        cut_after.as_millis()
    );
    assert_eq!(
        status.code(),
        Some(3),
        "the agent says its token was revoked"
    );
    assert!(
        cut_after < Duration::from_secs(1),
        "cut off after {cut_after:?}"
    );

    // s2 is killed during an exec on a2 that came through s1.
    admin
        .send(&AdminRequest::Exec {
            host: "a2".into(),
            argv: vec!["sleep".into(), "30".into()],
            timeout_ms: 0,
            output_cap: 0,
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s2 = cluster.nodes.iter_mut().find(|n| n.id == "s2").unwrap();
    s2.child.start_kill().unwrap();
    let killed = Instant::now();
    let _ = s2.child.wait().await;
    cluster.nodes.retain(|n| n.id != "s2");
    let Incoming::Reply(AdminReply::Error { message }) =
        tokio::time::timeout(Duration::from_secs(10), admin.next())
            .await
            .unwrap()
            .unwrap()
    else {
        panic!("the administrator hears that s2 went away");
    };
    assert!(message.contains("server s2"), "{message}");
    // a2 comes back on s3 (next in its list) and runs commands again within its backoff.
    loop {
        let (code, out, _) = cluster
            .run("s1", &["exec", "a2", "--", "echo", "back"])
            .await;
        if code == 0 && out.trim() == "back" {
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(10), "a2 is not back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back_after = killed.elapsed();
    eprintln!(
        "FIGURE rrmt_cluster_failover_exec_ms={}",
        back_after.as_millis()
    );
    assert!(
        back_after < Duration::from_secs(5),
        "back after {back_after:?}"
    );
    cluster
        .wait_until_on("a2", "s3", Duration::from_secs(5))
        .await;
    // The exec s2 was running is closed by a living server once s2's lease ran out.
    let deadline = Instant::now() + Duration::from_secs(15);
    let interrupted = loop {
        let AdminReply::Audit { entries } = admin
            .call(&AdminRequest::Audit { limit: 100 })
            .await
            .unwrap()
        else {
            panic!("audit");
        };
        let sleep = entries
            .iter()
            .find(|e| e.detail.starts_with("sleep 30"))
            .cloned()
            .expect("the interrupted exec has its entry");
        if sleep.ended.is_some() {
            // Nothing open, nothing lost: every run has its end.
            assert!(
                entries
                    .iter()
                    .all(|e| e.ended.is_some() || e.action.starts_with("token"))
            );
            break sleep;
        }
        assert!(Instant::now() < deadline, "the entry stays open: {sleep:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(interrupted.outcome.as_deref(), Some("server s2 stopped"));
    assert_eq!(interrupted.server.as_deref(), Some("s2"));

    // A partition: a1's token connects to s3 while a1's agent holds s1. The newest connection
    // wins at once; then the real agent (whose next try is s2, dead, then s3) takes it back,
    // and one connection remains, on which every server agrees.
    let token = rrmt::Token::parse(&std::fs::read_to_string(&tokens[0]).unwrap()).unwrap();
    let url = format!("wss://127.0.0.1:{}", cluster.node_of("s3").agent_port);
    let (endpoint, _) = rrmt::endpoint_from_url(&url, cluster.pinned()).unwrap();
    let (authorized_tx, authorized) = tokio::sync::oneshot::channel();
    let twin = tokio::spawn(async move {
        rrmt::agent::answering_agent(&endpoint, token, "twin", move || {
            let _ = authorized_tx.send(());
        })
        .await
    });
    authorized.await.expect("the twin is authorized");
    cluster
        .wait_until_on("a1", "s3", Duration::from_secs(2))
        .await;
    let ended = tokio::time::timeout(Duration::from_secs(15), twin)
        .await
        .expect("the twin's connection is closed when the agent returns")
        .unwrap();
    assert!(ended.is_err());
    cluster
        .wait_until_on("a1", "s3", Duration::from_secs(5))
        .await;
    // The agent, not the twin (which answers "ok"), runs the command.
    let (code, out, err) = cluster
        .run("s1", &["exec", "a1", "--", "echo", "real"])
        .await;
    assert_eq!((code, out.trim()), (0, "real"), "{err}");
    let (code, hosts, _) = cluster.run("s1", &["hosts"]).await;
    assert_eq!(code, 0);
    assert!(
        hosts
            .lines()
            .any(|l| l.starts_with("a1 ") && l.trim_end().ends_with(" s3")),
        "{hosts}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_shell_through_two_servers_waits_for_a_slow_administrator() {
    let pg = oobkit_testkit::postgres::Postgres::start();
    let (cluster, _agent) = Cluster::two_servers_agent_on_s2("flood", &pg, "flood").await;
    // Through s1, a shell on the agent held by s2 prints without end.
    let mut admin = cluster.admin("s1").await;
    admin.send(&shell_request("flood")).await.unwrap();
    assert_eq!(
        admin.next().await.unwrap(),
        Incoming::Reply(AdminReply::ShellOpened)
    );
    admin
        .send_data(b"stty -echo; yes 0123456789abcdefghijklmnopqrstuvwxyz\n")
        .await
        .unwrap();
    let mut seen = 0usize;
    while seen < 1 << 20 {
        if let Incoming::Data(data) = admin.next().await.unwrap() {
            seen += data.len();
        }
    }
    // The administrator stops reading for three seconds: every buffer on the way fills, and
    // then the shell waits. Neither server's memory grows with what `yes` could have printed
    // (gigabytes in that time).
    let pids: Vec<u32> = cluster
        .nodes
        .iter()
        .map(|n| n.child.id().unwrap())
        .collect();
    let memory = || {
        pids.iter()
            .map(|pid| oobkit_testkit::resident_kib(Some(*pid)).unwrap())
            .collect::<Vec<_>>()
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = memory();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = memory();
    for (b, a) in before.iter().zip(&after) {
        assert!(
            a.saturating_sub(*b) < 8 * 1024,
            "a server grew from {b} KiB to {a} KiB while the administrator did not read"
        );
    }
    eprintln!(
        "FIGURE rrmt_cluster_stalled_shell_growth_kib={:?}",
        after
            .iter()
            .zip(&before)
            .map(|(a, b)| a.saturating_sub(*b))
            .collect::<Vec<_>>()
    );
    // Reading again, the output flows again.
    let resumed = Instant::now();
    let mut more = 0usize;
    while more < 4 << 20 {
        if let Incoming::Data(data) = admin.next().await.unwrap() {
            more += data.len();
        }
    }
    eprintln!(
        "FIGURE rrmt_cluster_shell_mib_per_s={:.1}",
        4.0 / resumed.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_servers_with_the_secret_forward_and_only_forwarded_requests() {
    let pg = oobkit_testkit::postgres::Postgres::start();
    let (cluster, _agent) = Cluster::two_servers_agent_on_s2("links", &pg, "web1").await;
    let endpoint = cluster.admin_endpoint("s1");
    let exec = AdminRequest::Exec {
        host: "web1".into(),
        argv: vec!["true".into()],
        timeout_ms: 0,
        output_cap: 0,
    };
    let forward = AdminRequest::Forward {
        user: "mallory".into(),
        address: "192.0.2.1".into(),
        via: "s9".into(),
        request: Box::new(exec.clone()),
    };
    // A wrong secret is a failed login like any other.
    assert!(
        AdminClient::connect(&endpoint, rrmt::peer::PEER_USER, "not the secret")
            .await
            .is_err()
    );
    // An administrator cannot pose as a server relaying someone else's request.
    let mut alice = cluster.admin("s1").await;
    let AdminReply::Error { message } = alice.call(&forward).await.unwrap() else {
        panic!("a forwarded request from an administrator is refused");
    };
    assert!(message.contains("only the servers"), "{message}");
    // A server's link carries forwarded exec and shell only; one for an agent this server does
    // not hold is answered "not here" (the sender asks the registry), never forwarded again.
    let secret = std::fs::read_to_string(cluster.dir.join("cluster-secret")).unwrap();
    let mut link = AdminClient::connect(&endpoint, rrmt::peer::PEER_USER, &secret)
        .await
        .unwrap();
    let AdminReply::Error { message } = link.call(&AdminRequest::Hosts).await.unwrap() else {
        panic!("a link asking for hosts is refused");
    };
    assert!(message.contains("forwarded requests only"), "{message}");
    assert!(matches!(
        link.call(&forward).await.unwrap(),
        AdminReply::NotHere { .. }
    ));
    // Nothing ran, so nothing was audited for mallory.
    let AdminReply::Audit { entries } = alice
        .call(&AdminRequest::Audit { limit: 100 })
        .await
        .unwrap()
    else {
        panic!("audit");
    };
    assert!(entries.iter().all(|e| e.who != "mallory"), "{entries:?}");
}
