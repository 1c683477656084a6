//! RRMT exec beside OpenSSH, on this machine: the same command (`true`) run through an
//! rrmt-agent (a persistent connection to rrmt-server; the administrator's connection kept
//! open) and through Debian's sshd with the ssh client, once with a new connection per command
//! (as scripts do) and once multiplexed over one connection (ControlMaster: the like-for-like
//! comparison). Then memory per idle connection: sshd's per session (proportional set size of
//! its processes) beside rrmt-server's per agent (from rrmt-load).
//!
//! `cargo bench -p rrmt --bench vs_ssh` (`-- --test`: a smoke run). Needs root and the SSH test
//! account `./test.sh --setup-only` makes, as web_console's tests do.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use oobkit_testkit::TempDir;
use oobkit_testkit::sshd::{Sshd, USER};
use rrmt::admin::{AdminClient, AdminReply, AdminRequest, Incoming};

const PASSWORD: &str = "bench admin password";

fn ssh(sshd: &Sshd, extra: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new("ssh");
    command
        .arg("-i")
        .arg(sshd.client_key())
        .args(["-p", &sshd.port.to_string()])
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
        ])
        .args(extra)
        .arg(format!("{USER}@127.0.0.1"))
        .stdin(Stdio::null());
    command
}

/// `n` runs of `true` through ssh; the median and p99 latency, and runs per second.
fn ssh_runs(sshd: &Sshd, extra: &[&str], n: usize) -> (f64, Duration, Duration) {
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let status = ssh(sshd, extra).arg("true").status().expect("ssh runs");
        assert!(status.success(), "ssh true failed");
        latencies.push(t.elapsed());
    }
    summary(latencies, started.elapsed())
}

fn summary(mut latencies: Vec<Duration>, total: Duration) -> (f64, Duration, Duration) {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    (
        latencies.len() as f64 / total.as_secs_f64(),
        at(0.5),
        at(0.99),
    )
}

/// Proportional set size of `pid` and every process below it, in KiB.
fn tree_pss_kib(pid: u32) -> u64 {
    std::iter::once(pid)
        .chain(oobkit_testkit::descendants(pid))
        .filter_map(|p| {
            let rollup = std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")).ok()?;
            let line = rollup.lines().find(|l| l.starts_with("Pss:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let (n, sessions) = if smoke { (5, 3) } else { (200, 20) };

    // RRMT: a server and one real agent on loopback, an administrator's connection kept open.
    let dir = TempDir::new("rrmt-vs-ssh");
    let config = rrmt::server::ServerConfig::ephemeral(&dir.0);
    config.add_admin("bench", PASSWORD).await.unwrap();
    let registry = rrmt::registry::open(&config.registry()).await.unwrap();
    let token = rrmt::Token::random();
    registry
        .create_host(
            "here",
            &token.bytes(),
            &rrmt::Token::random().to_string(),
            "bench",
            0,
        )
        .await
        .unwrap();
    drop(registry);
    let server = rrmt::server::Server::start(config).await.unwrap();
    let (agents, admin) = server.endpoints();
    let mut agent_config = rrmt::agent::AgentConfig::new(agents, token, "here");
    agent_config.shell = "/bin/sh".into();
    tokio::spawn(rrmt::agent::run(agent_config));
    let mut client = AdminClient::connect(&admin, "bench", PASSWORD)
        .await
        .unwrap();
    let exec = AdminRequest::Exec {
        host: "here".into(),
        argv: vec!["true".into()],
        timeout_ms: 0,
        output_cap: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        client.send(&exec).await.unwrap();
        let ran = loop {
            match client.next().await.unwrap() {
                Incoming::Reply(AdminReply::Exited { exit, .. }) => break exit == 0,
                Incoming::Reply(_) => break false,
                _ => {}
            }
        };
        if ran {
            break;
        }
        assert!(Instant::now() < deadline, "the agent did not connect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        client.send(&exec).await.unwrap();
        loop {
            match client.next().await.unwrap() {
                Incoming::Reply(AdminReply::Exited { exit: 0, .. }) => break,
                Incoming::Data(_) => {}
                other => panic!("unexpected: {other:?}"),
            }
        }
        latencies.push(t.elapsed());
    }
    let (rrmt_rate, rrmt_p50, rrmt_p99) = summary(latencies, started.elapsed());

    // OpenSSH: sshd on loopback, key authentication.
    let sshd = Sshd::start();
    let (ssh_rate, ssh_p50, ssh_p99) = tokio::task::block_in_place(|| ssh_runs(&sshd, &[], n));
    let control = dir.0.join("control-%C");
    let control = control.to_str().unwrap();
    let multiplexed = [
        "-o",
        "ControlMaster=auto",
        "-o",
        &format!("ControlPath={control}"),
        "-o",
        "ControlPersist=120",
    ];
    let (mux_rate, mux_p50, mux_p99) = tokio::task::block_in_place(|| {
        // The first run opens the master connection; it is not timed.
        ssh_runs(&sshd, &multiplexed, 1);
        ssh_runs(&sshd, &multiplexed, n)
    });
    let _ = ssh(&sshd, &multiplexed).args(["-O", "exit"]).output();

    // Memory per idle session: sshd forks a process (two, with privilege separation) for each.
    let base = tree_pss_kib(sshd.pid());
    let mut idle: Vec<std::process::Child> = (0..sessions)
        .map(|_| {
            ssh(&sshd, &[])
                .args(["sleep", "600"])
                .stdout(Stdio::null())
                .spawn()
                .expect("ssh runs")
        })
        .collect();
    let settle = Instant::now() + Duration::from_secs(30);
    while sshd_sessions(&sshd) < sessions && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let with = tree_pss_kib(sshd.pid());
    let per_session = with.saturating_sub(base) as f64 * 1024.0 / sessions as f64;
    for child in &mut idle {
        let _ = child.kill();
        let _ = child.wait();
    }

    println!(
        "exec `true`, {n} in a row: RRMT (agent connected, administrator's connection open) \
         {rrmt_rate:.0}/s (p50 {rrmt_p50:?}, p99 {rrmt_p99:?}); ssh with a new connection each \
         {ssh_rate:.1}/s (p50 {ssh_p50:?}, p99 {ssh_p99:?}); ssh multiplexed (ControlMaster) \
         {mux_rate:.0}/s (p50 {mux_p50:?}, p99 {mux_p99:?})"
    );
    println!(
        "sshd: {per_session:.0} bytes of proportional set size per idle session ({sessions} \
         sessions)"
    );
    println!(
        "FIGURE vs_ssh_rrmt_exec_per_s={rrmt_rate:.0} vs_ssh_rrmt_p50_us={} \
         vs_ssh_ssh_exec_per_s={ssh_rate:.1} vs_ssh_ssh_p50_us={} \
         vs_ssh_mux_exec_per_s={mux_rate:.0} vs_ssh_mux_p50_us={} \
         vs_ssh_sshd_bytes_per_session={per_session:.0}",
        rrmt_p50.as_micros(),
        ssh_p50.as_micros(),
        mux_p50.as_micros()
    );
    assert!(Path::new(&dir.0).exists());
}

/// Sessions sshd serves now (its per-connection processes: its direct children).
fn sshd_sessions(sshd: &Sshd) -> usize {
    oobkit_testkit::descendants(sshd.pid())
        .into_iter()
        .filter(|p| oobkit_testkit::parent(*p) == Some(sshd.pid()))
        .count()
}
