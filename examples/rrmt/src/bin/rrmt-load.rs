//! rrmt-load: how much one server, or a cluster of them, holds.
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use oobkit_io::{Endpoint, TlsPolicy};
use rrmt::admin::{AdminClient, AdminReply, AdminRequest, Incoming};
use rrmt::registry::{Database, Store};
use tokio::io::AsyncBufReadExt;

/// Starts rrmt-servers on loopback (one with SQLite, or several sharing a PostgreSQL registry
/// with --database), holds N authorized idle agents spread over them, and reports each
/// server's resident memory per agent, the database's processor time, then exec round trips
/// per second to random agents through the administrators' endpoint: to agents on the server
/// the administrator is connected to, and (with several servers) to agents on another one. The
/// agents answer at once, so this measures the servers' path, not process start-up.
///
/// Agents are held by this process, or with --holders by that many child processes (a
/// process may hold only so many descriptors), each connecting from its own range of
/// loopback addresses (127.H.x.y) so that ports do not run out.
#[derive(Debug, Parser)]
struct Cli {
    /// Agents to hold.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Exec round trips to time (each kind).
    #[arg(long, default_value_t = 2000)]
    execs: usize,
    /// Administrator connections running execs at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// A PostgreSQL registry (an empty database) the servers share; default: SQLite.
    #[arg(long)]
    database: Option<String>,
    /// Starts a throwaway PostgreSQL cluster (initdb and pg_ctl on a loopback port, removed
    /// at the end) and uses it as --database.
    #[arg(long, conflicts_with = "database")]
    postgres: bool,
    /// Servers to start (more than one needs --database).
    #[arg(long, default_value_t = 1)]
    servers: usize,
    /// Child processes holding the agents (0: this process).
    #[arg(long, default_value_t = 0)]
    holders: usize,
    /// Seconds to watch the servers' processor time with every agent connected and idle
    /// (keepalives, lease renewals).
    #[arg(long, default_value_t = 10)]
    idle_secs: u64,
    /// The server program (default: rrmt-server beside this one).
    #[arg(long)]
    server: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// (Run by rrmt-load itself.) Holds the agents whose tokens are in FILE, one line each:
    /// the server's agents' URL, then the token.
    Hold {
        /// The tokens and servers.
        file: PathBuf,
        /// The servers' certificate fingerprint.
        #[arg(long)]
        fingerprint: String,
        /// The second byte of the loopback addresses to connect from (127.N.x.y).
        #[arg(long)]
        net: u8,
    },
}

const PASSWORD: &str = "load-test-password";

/// Set before the servers are stopped: the agents' errors after it are expected.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::Hold {
            file,
            fingerprint,
            net,
        }) => hold(file, fingerprint, *net).await,
        None => run(cli).await,
    };
    match result {
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

/// A started server.
struct Node {
    child: tokio::process::Child,
    pid: u32,
    agents: Endpoint,
    admin: Endpoint,
    fingerprint: String,
}

/// Loopback source address number `i` in 127.`net`.x.y (y from 1 to 250).
fn source(net: u8, i: usize) -> IpAddr {
    let (x, y) = (i / 250, i % 250 + 1);
    IpAddr::V4(Ipv4Addr::new(127, net, (x % 256) as u8, y as u8))
}

fn endpoint(addr: &str, fingerprint: &str) -> Result<Endpoint, String> {
    let pin = TlsPolicy::Pin(oobkit_io::parse_fingerprint(fingerprint).ok_or("bad fingerprint")?);
    let (host, port) = addr.rsplit_once(':').ok_or("bad address")?;
    let mut e = Endpoint::plain(host, port.parse::<u16>().map_err(|e| e.to_string())?);
    e.tls = Some(pin);
    e.connect_timeout = Duration::from_secs(120);
    Ok(e)
}

async fn start_server(
    program: &Path,
    dir: &Path,
    id: &str,
    database: Option<&str>,
    per_server: usize,
) -> Result<Node, String> {
    let mut command = tokio::process::Command::new(program);
    command
        .arg("--data-dir")
        .arg(dir.join(id))
        .args(["--server-id", id])
        .args([
            "--agent-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(["--max-agents", &(per_server + 100).to_string()])
        // Every agent connects at once, from few addresses: by the server's default rules that
        // is a handshake flood. The load is about holding agents, so the handshake budget is
        // raised to let the whole fleet in.
        .args([
            "--max-handshakes-per-address",
            &(per_server + 100).to_string(),
        ])
        .args(["--max-handshakes", &(per_server + 100).to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    if let Some(url) = database {
        command
            .args(["--database", url, "--cluster-secret-file"])
            .arg(dir.join("cluster-secret"));
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let pid = child.id().ok_or("the server ended")?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
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
        return Err(format!("server {id} did not print its addresses"));
    };
    Ok(Node {
        child,
        pid,
        agents: endpoint(&agent_addr, &fingerprint)?,
        admin: endpoint(&admin_addr, &fingerprint)?,
        fingerprint,
    })
}

/// Processor time of every PostgreSQL process on this machine (the cluster the load uses).
fn postgres_cpu() -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .filter_map(|pid| oobkit_testkit::cpu_time(pid).ok())
        .sum()
}

async fn run(mut cli: Cli) -> Result<(), String> {
    // Stopped and removed when this returns.
    let _cluster = if cli.postgres {
        let cluster = tokio::task::spawn_blocking(oobkit_testkit::postgres::Postgres::start)
            .await
            .map_err(|e| format!("PostgreSQL did not start: {e}"))?;
        cli.database = Some(cluster.database("rrmt_load"));
        Some(cluster)
    } else {
        None
    };
    if cli.servers > 1 && cli.database.is_none() {
        return Err("several servers share a PostgreSQL registry: give --database".into());
    }
    let servers = cli.servers.max(1);
    let dir = std::env::temp_dir().join(format!("rrmt-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The first server's registry (the only one, or the cluster's shared database).
    let mut first = rrmt::server::ServerConfig::new(dir.join("s1"));
    first.database = cli.database.clone();
    first
        .add_admin("load", PASSWORD)
        .await
        .map_err(|e| e.to_string())?;
    rrmt::write_private_file(&dir.join("cluster-secret"), b"rrmt-load's cluster secret")
        .map_err(|e| e.to_string())?;
    let database = first.registry();
    let tokens = {
        let registry = rrmt::registry::open(&database)
            .await
            .map_err(|e| e.to_string())?;
        create_hosts(&*registry, cli.agents).await?
    };
    let program = match &cli.server {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("rrmt-server"),
    };
    let per_server = cli.agents.div_ceil(servers);
    let mut nodes = Vec::new();
    for i in 0..servers {
        let id = format!("s{}", i + 1);
        std::fs::create_dir_all(dir.join(&id)).map_err(|e| e.to_string())?;
        // One certificate for the cluster: the first server's.
        if i > 0 {
            for file in ["server.crt", "server.key"] {
                std::fs::copy(dir.join("s1").join(file), dir.join(&id).join(file))
                    .map_err(|e| e.to_string())?;
            }
        }
        nodes.push(start_server(&program, &dir, &id, cli.database.as_deref(), per_server).await?);
    }
    // Agent i connects to server i % servers.
    let home = |i: usize| i % servers;

    tokio::time::sleep(Duration::from_millis(500)).await;
    let before: Vec<u64> = nodes
        .iter()
        .map(|n| resident_kib(n.pid))
        .collect::<Result<_, _>>()?;
    let pg_before = postgres_cpu();
    let cpu = |nodes: &[Node]| -> Result<Vec<Duration>, String> {
        nodes
            .iter()
            .map(|n| oobkit_testkit::cpu_time(n.pid))
            .collect()
    };
    let cpu_before = cpu(&nodes)?;
    let authorized = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut holders = Vec::new();
    if cli.holders == 0 {
        let connecting = Arc::new(tokio::sync::Semaphore::new(128));
        for (i, token) in tokens.iter().enumerate() {
            let endpoint = nodes[home(i)].agents.clone();
            spawn_agent(endpoint, *token, &authorized, &connecting);
        }
    } else {
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        let share = cli.agents.div_ceil(cli.holders);
        for h in 0..cli.holders {
            let lines: String = (h * share..((h + 1) * share).min(cli.agents))
                .map(|i| {
                    let e = &nodes[home(i)].agents;
                    format!("{}:{} {}\n", e.host, e.port, tokens[i])
                })
                .collect();
            let file = dir.join(format!("holder-{h}"));
            rrmt::write_private_file(&file, lines.as_bytes()).map_err(|e| e.to_string())?;
            let mut child = tokio::process::Command::new(&me)
                .arg("hold")
                .arg(&file)
                .args(["--fingerprint", &nodes[0].fingerprint])
                .args(["--net", &(h + 1).to_string()])
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot start a holder: {e}"))?;
            let mut out =
                tokio::io::BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
            let authorized = Arc::clone(&authorized);
            tokio::spawn(async move {
                // Each line: agents of this holder authorized so far (a running count).
                let mut mine = 0;
                while let Ok(Some(line)) = out.next_line().await {
                    if let Ok(now) = line.trim().parse::<usize>() {
                        authorized.fetch_add(now - mine, Ordering::Relaxed);
                        mine = now;
                    }
                }
            });
            holders.push(child);
        }
    }
    while authorized.load(Ordering::Relaxed) < cli.agents {
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!(
                "only {} of {} agents authorized after 600 s",
                authorized.load(Ordering::Relaxed),
                cli.agents
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connect_time = started.elapsed();
    let pg_connect = postgres_cpu().saturating_sub(pg_before);
    let cpu_connected = cpu(&nodes)?;
    // Let allocations settle (TLS buffers after the handshakes, first keepalives).
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!(
        "agents: {} authorized over {servers} server(s) in {:.1} s ({})",
        cli.agents,
        connect_time.as_secs_f64(),
        match &database {
            Database::Sqlite(_) => "SQLite",
            Database::Postgres(_) => "PostgreSQL",
        }
    );
    let mut figures = format!(
        "FIGURE rrmt_agents={} rrmt_servers={servers} rrmt_connect_s={:.1}",
        cli.agents,
        connect_time.as_secs_f64()
    );
    let mut worst = 0f64;
    for (i, node) in nodes.iter().enumerate() {
        let after = resident_kib(node.pid)?;
        let held = (0..cli.agents).filter(|a| home(*a) == i).count().max(1);
        let per_agent = after.saturating_sub(before[i]) as f64 * 1024.0 / held as f64;
        worst = worst.max(per_agent);
        println!(
            "server s{}: {held} agents; resident memory {} KiB before, {after} KiB with them: \
             {per_agent:.0} bytes ({:.1} KiB) per agent",
            i + 1,
            before[i],
            per_agent / 1024.0
        );
    }
    figures += &format!(" rrmt_bytes_per_agent={worst:.0}");
    // Processor time: the connection storm, then the fleet idle.
    let idle_from = cpu(&nodes)?;
    let (pg_idle_from, idle_started) = (postgres_cpu(), Instant::now());
    tokio::time::sleep(Duration::from_secs(cli.idle_secs)).await;
    let idle_to = cpu(&nodes)?;
    let idle_seconds = idle_started.elapsed().as_secs_f64();
    let mut connect_cpu_us = 0f64;
    let mut idle_percent = 0f64;
    for i in 0..nodes.len() {
        let held = (0..cli.agents).filter(|a| home(*a) == i).count().max(1) as f64;
        let storm = cpu_connected[i].saturating_sub(cpu_before[i]).as_secs_f64();
        let idle = idle_to[i].saturating_sub(idle_from[i]).as_secs_f64() * 100.0 / idle_seconds;
        println!(
            "server s{}: {storm:.1} s of processor time to take its agents ({:.0} µs each); idle \
             with them: {idle:.1}% of one processor",
            i + 1,
            storm * 1e6 / held
        );
        connect_cpu_us = connect_cpu_us.max(storm * 1e6 / held);
        idle_percent = idle_percent.max(idle);
    }
    figures += &format!(
        " rrmt_connect_cpu_us_per_agent={connect_cpu_us:.0} rrmt_idle_cpu_percent={idle_percent:.1}"
    );
    if matches!(database, Database::Postgres(_)) {
        let pg = postgres_cpu().saturating_sub(pg_idle_from).as_secs_f64() * 100.0 / idle_seconds;
        println!("PostgreSQL idle with the fleet: {pg:.1}% of one processor");
        figures += &format!(" rrmt_pg_idle_cpu_percent={pg:.1}");
    }
    if matches!(database, Database::Postgres(_)) {
        println!(
            "PostgreSQL: {:.1} s of processor time while the agents connected ({:.0} µs per agent)",
            pg_connect.as_secs_f64(),
            pg_connect.as_secs_f64() * 1e6 / cli.agents as f64
        );
        figures += &format!(" rrmt_pg_connect_cpu_s={:.1}", pg_connect.as_secs_f64());
    }

    // Exec round trips through server s1: to agents it holds, then (several servers) to agents
    // another server holds, which s1 reaches over a link.
    let local: Vec<usize> = (0..cli.agents).filter(|a| home(*a) == 0).collect();
    let remote: Vec<usize> = (0..cli.agents).filter(|a| home(*a) != 0).collect();
    let pg_idle = postgres_cpu();
    let idle_started = Instant::now();
    // In rounds, same-server and cross-server alternating, each kind's median round kept: a
    // busy moment of this shared machine then lands in one round of one kind, not in the ratio.
    const ROUNDS: usize = 5;
    let per_round = cli.execs.div_ceil(ROUNDS);
    let (mut same_rounds, mut cross_rounds) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        same_rounds.push(execs(&nodes[0].admin, &local, per_round, cli.concurrency).await?);
        if !remote.is_empty() {
            cross_rounds.push(execs(&nodes[0].admin, &remote, per_round, cli.concurrency).await?);
        }
    }
    let same = median(same_rounds);
    report("same-server", &same, cli.concurrency);
    figures += &format!(
        " rrmt_exec_per_s={:.0} rrmt_exec_p50_us={} rrmt_exec_p99_us={}",
        same.rate, same.p50_us, same.p99_us
    );
    if !cross_rounds.is_empty() {
        let cross = median(cross_rounds);
        report("cross-server", &cross, cli.concurrency);
        figures += &format!(
            " rrmt_cross_exec_per_s={:.0} rrmt_cross_exec_p50_us={} rrmt_same_over_cross={:.2}",
            cross.rate,
            cross.p50_us,
            same.rate / cross.rate
        );
    }
    if matches!(database, Database::Postgres(_)) {
        let cpu = postgres_cpu().saturating_sub(pg_idle);
        println!(
            "PostgreSQL: {:.0}% of one processor while the execs ran (lease renewals, audit entries)",
            cpu.as_secs_f64() * 100.0 / idle_started.elapsed().as_secs_f64()
        );
    }
    println!("{figures}");
    STOPPING.store(true, Ordering::Relaxed);
    for mut holder in holders {
        let _ = holder.kill().await;
    }
    for mut node in nodes {
        let _ = node.child.kill().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Registers `count` hosts (load-0, load-1, ...), 64 at a time; their tokens.
async fn create_hosts(registry: &dyn Store, count: usize) -> Result<Vec<rrmt::Token>, String> {
    let tokens: Vec<rrmt::Token> = (0..count).map(|_| rrmt::Token::random()).collect();
    let ids: Vec<String> = (0..count)
        .map(|_| rrmt::Token::random().to_string())
        .collect();
    let names: Vec<String> = (0..count).map(|i| format!("load-{i}")).collect();
    let bytes: Vec<[u8; 16]> = tokens.iter().map(rrmt::Token::bytes).collect();
    let now = rrmt::now_secs();
    for chunk in (0..count).collect::<Vec<_>>().chunks(64) {
        let created = futures_util::future::join_all(
            chunk
                .iter()
                .map(|&i| registry.create_host(&names[i], &bytes[i], &ids[i], "load", now)),
        )
        .await;
        for result in created {
            result.map_err(|e| e.to_string())?;
        }
    }
    Ok(tokens)
}

/// The round of median rate.
fn median(mut rounds: Vec<Timings>) -> Timings {
    rounds.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    rounds.swap_remove(rounds.len() / 2)
}

struct Timings {
    rate: f64,
    count: usize,
    seconds: f64,
    p50_us: u128,
    p99_us: u128,
}

fn report(kind: &str, t: &Timings, concurrency: usize) {
    println!(
        "exec ({kind}, the median of 5 rounds): {} round trips over {concurrency} admin \
         connections in {:.2} s: {:.0} per second; latency p50 {} µs, p99 {} µs",
        t.count, t.seconds, t.rate, t.p50_us, t.p99_us
    );
}

/// `count` execs of `true` on random hosts of `hosts`, over `concurrency` connections.
async fn execs(
    admin: &Endpoint,
    hosts: &[usize],
    count: usize,
    concurrency: usize,
) -> Result<Timings, String> {
    let concurrency = concurrency.max(1);
    let per_client = count.div_ceil(concurrency);
    let hosts = Arc::new(hosts.to_vec());
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let (endpoint, hosts) = (admin.clone(), Arc::clone(&hosts));
        workers.push(tokio::spawn(async move {
            let mut client = AdminClient::connect(&endpoint, "load", PASSWORD)
                .await
                .map_err(|e| e.to_string())?;
            let mut latencies = Vec::with_capacity(per_client);
            // A fixed-seed walk over the hosts: random-looking, the same every run.
            let mut pick = (worker as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            for _ in 0..per_client {
                pick ^= pick << 13;
                pick ^= pick >> 7;
                pick ^= pick << 17;
                let host = format!("load-{}", hosts[(pick % hosts.len() as u64) as usize]);
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
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_micros();
    Ok(Timings {
        rate: latencies.len() as f64 / seconds,
        count: latencies.len(),
        seconds,
        p50_us: at(0.5),
        p99_us: at(0.99),
    })
}

/// Starts an agent that answers every exec at once; counted in `authorized` once the server
/// accepts it. `connecting` bounds the handshakes in flight (a permit is held until then).
fn spawn_agent(
    endpoint: Endpoint,
    token: rrmt::Token,
    authorized: &Arc<AtomicUsize>,
    connecting: &Arc<tokio::sync::Semaphore>,
) {
    let (authorized, connecting) = (Arc::clone(authorized), Arc::clone(connecting));
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

/// The `hold` subcommand: this process's share of the fleet, each connection from its own
/// loopback address; prints the running count of authorized agents.
async fn hold(file: &Path, fingerprint: &str, net: u8) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let authorized = Arc::new(AtomicUsize::new(0));
    let connecting = Arc::new(tokio::sync::Semaphore::new(64));
    for (i, line) in text.lines().enumerate() {
        let (addr, token) = line.split_once(' ').ok_or("a line: ADDRESS TOKEN")?;
        let token = rrmt::Token::parse(token).ok_or("a bad token")?;
        let mut endpoint = endpoint(addr, fingerprint)?;
        endpoint.source = Some(source(net, i));
        spawn_agent(endpoint, token, &authorized, &connecting);
    }
    let mut reported = usize::MAX;
    loop {
        let now = authorized.load(Ordering::Relaxed);
        if now != reported {
            println!("{now}");
            reported = now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
