//! rrmt-load: how much one server holds.
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use oobkit_io::{Endpoint, TlsPolicy};
use rrmt::admin::{AdminClient, AdminReply, AdminRequest, Incoming};
use rrmt::registry::Database;
use rrmt::server::admin_secrets;
use tokio::io::AsyncBufReadExt;

/// Starts an rrmt-server on loopback, holds N authorized idle agents against it, and reports
/// the server's resident memory per agent, then exec round trips per second through the admin
/// endpoint (the agents answer at once, so this measures the server's path, not process
/// start-up).
#[derive(Debug, Parser)]
struct Cli {
    /// Agents to hold.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Exec round trips to time.
    #[arg(long, default_value_t = 2000)]
    execs: usize,
    /// Administrator connections running execs at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// The server program (default: rrmt-server beside this one).
    #[arg(long)]
    server: Option<PathBuf>,
}

const PASSWORD: &str = "load-test-password";

/// Set before the server is stopped: the agents' errors after it are expected.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rrmt-load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn resident_kib(pid: u32) -> Result<u64, String> {
    oobkit_testkit::resident_kib(Some(pid))
}

async fn run(cli: Cli) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("rrmt-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut tokens = Vec::with_capacity(cli.agents);
    {
        let registry = rrmt::registry::open(&Database::Sqlite(dir.join("registry.sqlite")))
            .await
            .map_err(|e| e.to_string())?;
        registry
            .set_admin("load", &admin_secrets("load", PASSWORD))
            .await
            .map_err(|e| e.to_string())?;
        for i in 0..cli.agents {
            let token = rrmt::Token::random();
            registry
                .create_host(
                    &format!("load-{i}"),
                    &token.bytes(),
                    &rrmt::Token::random().to_string(),
                    "load",
                    rrmt::now_secs(),
                )
                .await
                .map_err(|e| e.to_string())?;
            tokens.push(token);
        }
    }
    let program = match cli.server {
        Some(p) => p,
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("rrmt-server"),
    };
    let mut server = tokio::process::Command::new(&program)
        .arg("--data-dir")
        .arg(&dir)
        .args([
            "--agent-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(["--max-agents", &(cli.agents + 100).to_string()])
        // Every agent here connects from 127.0.0.1 at once: by the server's default rules that
        // is a handshake flood from one address. The load is about holding agents, so the
        // handshake budget is raised to let the whole fleet in.
        .args([
            "--max-handshakes-per-address",
            &(cli.agents + 100).to_string(),
        ])
        .args(["--max-handshakes", &(cli.agents + 100).to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let pid = server.id().ok_or("the server ended")?;
    let mut lines = tokio::io::BufReader::new(server.stdout.take().ok_or("no stdout")?).lines();
    let (mut agent_addr, mut admin_addr, mut fingerprint) = (None, None, None);
    while let Ok(Some(line)) = lines.next_line().await {
        let rest = |prefix: &str| {
            line.strip_prefix(prefix).map(|r| {
                r.trim_end_matches("/agent")
                    .trim_end_matches("/admin")
                    .to_owned()
            })
        };
        agent_addr = agent_addr.or_else(|| rest("agents: wss://"));
        admin_addr = admin_addr.or_else(|| rest("administrators: wss://"));
        fingerprint = fingerprint.or_else(|| rest("certificate SHA-256: "));
        if fingerprint.is_some() {
            break;
        }
    }
    let (Some(agent_addr), Some(admin_addr), Some(fingerprint)) =
        (agent_addr, admin_addr, fingerprint)
    else {
        return Err("the server did not print its addresses".into());
    };
    let pin = TlsPolicy::Pin(oobkit_io::parse_fingerprint(&fingerprint).ok_or("bad fingerprint")?);
    let endpoint = |addr: &str| -> Result<Endpoint, String> {
        let (host, port) = addr.rsplit_once(':').ok_or("bad address")?;
        let mut e = Endpoint::plain(host, port.parse::<u16>().map_err(|e| e.to_string())?);
        e.tls = Some(pin.clone());
        e.connect_timeout = Duration::from_secs(60);
        Ok(e)
    };
    let (agent_endpoint, admin_endpoint) = (endpoint(&agent_addr)?, endpoint(&admin_addr)?);

    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = resident_kib(pid)?;
    let authorized = Arc::new(AtomicUsize::new(0));
    let connecting = Arc::new(tokio::sync::Semaphore::new(128));
    let started = Instant::now();
    for token in tokens {
        let (endpoint, authorized, connecting) = (
            agent_endpoint.clone(),
            Arc::clone(&authorized),
            Arc::clone(&connecting),
        );
        tokio::spawn(async move {
            let permit = connecting.acquire_owned().await;
            if let Err(e) = rrmt::agent::answering_agent(&endpoint, token, "load", || {
                authorized.fetch_add(1, Ordering::Relaxed);
                drop(permit);
            })
            .await
                && !STOPPING.load(Ordering::Relaxed)
            {
                eprintln!("rrmt-load: an agent failed: {e}");
            }
        });
    }
    while authorized.load(Ordering::Relaxed) < cli.agents {
        if started.elapsed() > Duration::from_secs(300) {
            return Err(format!(
                "only {} of {} agents authorized after 300 s",
                authorized.load(Ordering::Relaxed),
                cli.agents
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connect_time = started.elapsed();
    // Let allocations settle (TLS buffers after the handshakes, first keepalives).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = resident_kib(pid)?;
    let per_agent = (after.saturating_sub(before)) as f64 * 1024.0 / cli.agents as f64;
    println!(
        "agents: {} authorized in {:.1} s; server resident memory {} KiB before, {} KiB with them: {:.0} bytes ({:.1} KiB) per agent",
        cli.agents,
        connect_time.as_secs_f64(),
        before,
        after,
        per_agent,
        per_agent / 1024.0
    );
    println!(
        "FIGURE rrmt_agents={} rrmt_connect_s={:.1} rrmt_bytes_per_agent={per_agent:.0}",
        cli.agents,
        connect_time.as_secs_f64()
    );

    let per_client = cli.execs.div_ceil(cli.concurrency.max(1));
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..cli.concurrency.max(1) {
        let endpoint = admin_endpoint.clone();
        let agents = cli.agents;
        workers.push(tokio::spawn(async move {
            let mut client = AdminClient::connect(&endpoint, "load", PASSWORD)
                .await
                .map_err(|e| e.to_string())?;
            let mut latencies = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let host = format!("load-{}", (worker * per_client + i) % agents);
                let t = Instant::now();
                client
                    .send(&AdminRequest::Exec {
                        host,
                        argv: vec!["true".into()],
                        timeout_ms: 0,
                        output_cap: 0,
                    })
                    .await?;
                loop {
                    match client.next().await? {
                        Incoming::Reply(AdminReply::Exited { exit: 0, .. }) => break,
                        Incoming::Data(_) => {}
                        other => return Err(format!("unexpected: {other:?}")),
                    }
                }
                latencies.push(t.elapsed());
            }
            client.close().await;
            Ok::<_, String>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.map_err(|e| e.to_string())??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "exec: {} round trips over {} admin connections in {:.2} s: {:.0} per second; latency p50 {:?}, p99 {:?}",
        latencies.len(),
        cli.concurrency,
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        at(0.5),
        at(0.99)
    );
    println!(
        "FIGURE rrmt_exec_per_s={:.0} rrmt_exec_p50_us={} rrmt_exec_p99_us={}",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        at(0.5).as_micros(),
        at(0.99).as_micros()
    );
    STOPPING.store(true, Ordering::Relaxed);
    let _ = server.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
