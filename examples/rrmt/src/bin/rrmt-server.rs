//! rrmt-server: the RRMT management server.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rrmt::registry::Database;
use rrmt::server::{Server, ServerConfig};

/// The RRMT server: hosts behind firewalls keep a wss connection to it (agents' endpoint),
/// and administrators use the `rrmt` CLI on a separate endpoint behind HTTP Digest.
///
/// Everything it must remember (hosts and their token hashes, administrators, the audit log of
/// every exec, shell and token change) is in DATA_DIR/registry.sqlite; without --cert/--key a
/// self-signed certificate is generated once into DATA_DIR, and its SHA-256 fingerprint is
/// printed at start: give it to agents and the CLI with --fingerprint.
///
/// First run: `rrmt-server add-admin alice` (password from RRMT_ADMIN_PASSWORD or a prompt),
/// then `rrmt-server`, then `rrmt token create web1` and start `rrmt-agent` on web1.
///
/// Several servers (a cluster) share one PostgreSQL registry: give each the same --database
/// and --cluster-secret-file, and an --advertise address the others can reach. Each records
/// the agents connected to it with leases it renews (a killed server's agents count as gone
/// after --lease), revocations reach the agent wherever it is connected, and an administrator
/// on any server runs exec and shell on any agent: the server links to the one holding the
/// agent. Give agents every server's address (--server, repeated) to fail over.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Registry (unless --database), server id, certificate and key live here.
    #[arg(long, env = "RRMT_DATA_DIR", default_value = "rrmt-data")]
    data_dir: PathBuf,
    /// A PostgreSQL registry shared by the servers of a cluster, as a URL:
    /// postgres://USER@HOST:PORT/DATABASE (a password, if any, from RRMT_DATABASE rather than the
    /// command line, which other users can read). Loopback or a Unix socket unless the URL says
    /// sslmode=disable: TLS to the database is not built in. Default: SQLite in DATA_DIR.
    #[arg(long, env = "RRMT_DATABASE", hide_env_values = true)]
    database: Option<String>,
    /// This server's id in the cluster (default: a random one kept in DATA_DIR/server-id).
    #[arg(long)]
    server_id: Option<String>,
    /// The wss:// address other servers of the cluster reach this one's administrators'
    /// endpoint at (default: wss:// and --admin-listen's bound address).
    #[arg(long)]
    advertise: Option<String>,
    /// A file holding the secret the servers of a cluster prove to each other when one links to
    /// another (at least 16 characters; keep it 0600). Without it this server neither links to
    /// others nor accepts their links.
    #[arg(long)]
    cluster_secret_file: Option<PathBuf>,
    /// Seconds an agent's presence lasts unless renewed (renewed every third of it): how long
    /// a killed server's agents still look connected to the others.
    #[arg(long, default_value_t = 30)]
    lease: u64,
    /// Agents' endpoint (wss, path /agent). Use 0.0.0.0:7700 to accept agents from the network.
    #[arg(long, default_value = "127.0.0.1:7700")]
    agent_listen: SocketAddr,
    /// Administrators' endpoint (wss, path /admin, HTTP Digest).
    #[arg(long, default_value = "127.0.0.1:7701")]
    admin_listen: SocketAddr,
    /// Certificate chain (PEM) instead of the generated one.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Private key (PEM) for --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Names (DNS or IP) for the generated certificate; repeat for several.
    #[arg(long = "cert-name", default_values = ["localhost", "127.0.0.1"])]
    cert_names: Vec<String>,
    /// Most agent connections at once.
    #[arg(long, default_value_t = 20_000)]
    max_agents: usize,
    /// Most administrator connections at once.
    #[arg(long, default_value_t = 64)]
    max_admins: usize,
    /// TLS and websocket handshakes in progress at once from one address, per port. They do
    /// not count against --max-agents or --max-admins until they complete.
    #[arg(long, default_value_t = 16)]
    max_handshakes_per_address: u32,
    /// TLS and websocket handshakes in progress at once from all addresses, per port.
    #[arg(long, default_value_t = 512)]
    max_handshakes: u32,
    /// Most shells open on one agent.
    #[arg(long, default_value_t = 8)]
    max_channels: u16,
    /// Largest websocket message accepted, in bytes (at least 65536, what peers send at most).
    #[arg(long, default_value_t = 1 << 20)]
    max_message: usize,
    /// Failed authorizations (agent tokens or admin passwords) from one address within 10
    /// minutes before that address is refused for the rest of them.
    #[arg(long, default_value_t = 10)]
    max_failed_auths: u32,
    /// Keepalive period for agents, in seconds (a silent agent is dropped after three).
    #[arg(long, default_value_t = 30)]
    heartbeat: u16,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Adds (or resets the password of) an administrator; the password comes from
    /// RRMT_ADMIN_PASSWORD or a prompt. Takes effect at the next start.
    AddAdmin {
        /// The administrator's user name.
        name: String,
    },
}

fn main() -> ExitCode {
    oobkit_io::init_logging("info");
    let cli = Cli::parse();
    if let Some(Command::AddAdmin { name }) = &cli.command {
        return add_admin(&cli.data_dir, cli.database.as_deref(), name);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rrmt-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(cli))
}

fn add_admin(data_dir: &std::path::Path, database: Option<&str>, name: &str) -> ExitCode {
    if name.starts_with('@') || name.is_empty() || name.len() > 64 {
        eprintln!(
            "rrmt-server: an administrator's name is 1 to 64 characters, not starting with '@'"
        );
        return ExitCode::FAILURE;
    }
    let password = match std::env::var("RRMT_ADMIN_PASSWORD") {
        Ok(p) => p,
        Err(_) => match rpassword::prompt_password(format!("password for {name}: ")) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("rrmt-server: cannot read a password ({e}); set RRMT_ADMIN_PASSWORD");
                return ExitCode::FAILURE;
            }
        },
    };
    if password.len() < 8 {
        eprintln!("rrmt-server: the password must have at least 8 characters");
        return ExitCode::FAILURE;
    }
    let mut config = ServerConfig::new(data_dir);
    config.database = database.map(str::to_owned);
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| {
            runtime
                .block_on(config.add_admin(name, &password))
                .map_err(|e| e.to_string())
        });
    match result {
        Ok(()) => {
            let place = match config.registry() {
                Database::Sqlite(_) => data_dir.display().to_string(),
                Database::Postgres(_) => "the PostgreSQL registry".to_owned(),
            };
            println!("administrator {name} saved in {place}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rrmt-server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cli: Cli) -> ExitCode {
    let mut config = ServerConfig::new(&cli.data_dir);
    if let Some(path) = &cli.cluster_secret_file {
        match std::fs::read_to_string(path) {
            Ok(secret) if secret.trim().len() >= 16 => {
                config.cluster_secret = Some(secret.trim().to_owned());
            }
            Ok(_) => {
                eprintln!(
                    "rrmt-server: {}: the cluster secret needs at least 16 characters",
                    path.display()
                );
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("rrmt-server: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    config.database = cli.database;
    config.server_id = cli.server_id;
    config.advertise = cli.advertise;
    config.lease = std::time::Duration::from_secs(cli.lease.max(1));
    config.agent_listen = cli.agent_listen;
    config.admin_listen = cli.admin_listen;
    config.identity = cli.cert.zip(cli.key);
    config.names = cli.cert_names;
    config.max_agents = cli.max_agents;
    config.max_admins = cli.max_admins;
    config.max_handshakes_per_address = cli.max_handshakes_per_address;
    config.max_handshakes = cli.max_handshakes;
    config.max_channels = cli.max_channels;
    config.max_message = cli.max_message;
    config.max_failed_auths = cli.max_failed_auths;
    config.heartbeat_secs = cli.heartbeat;
    let server = match Server::start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rrmt-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Machine-readable lines: tests and scripts look for them.
    println!("agents: wss://{}/agent", server.agent_addr);
    println!("administrators: wss://{}/admin", server.admin_addr);
    println!("server id: {}", server.id());
    println!(
        "certificate SHA-256: {}",
        oobkit_io::format_fingerprint(&server.fingerprint)
    );
    oobkit_io::shutdown_signal().await;
    tracing::info!("stopping ({} agents connected)", server.online_agents());
    ExitCode::SUCCESS
}
