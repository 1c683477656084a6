//! rrmt-server: the RRMT management server.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rrmt::registry::Registry;
use rrmt::server::{Server, ServerConfig, admin_secrets};

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
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Registry, certificate and key live here.
    #[arg(long, env = "RRMT_DATA_DIR", default_value = "rrmt-data")]
    data_dir: PathBuf,
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
        return add_admin(&cli.data_dir, name);
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

fn add_admin(data_dir: &std::path::Path, name: &str) -> ExitCode {
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
    let result = std::fs::create_dir_all(data_dir)
        .map_err(|e| e.to_string())
        .and_then(|()| Registry::open(&data_dir.join("registry.sqlite")).map_err(|e| e.to_string()))
        .and_then(|r| {
            r.set_admin(name, &admin_secrets(name, &password))
                .map_err(|e| e.to_string())
        })
        .and_then(|()| rrmt::make_private(data_dir).map_err(|e| e.to_string()));
    match result {
        Ok(()) => {
            println!("administrator {name} saved in {}", data_dir.display());
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
    println!(
        "certificate SHA-256: {}",
        oobkit_io::format_fingerprint(&server.fingerprint)
    );
    oobkit_io::shutdown_signal().await;
    tracing::info!("stopping ({} agents connected)", server.online_agents());
    ExitCode::SUCCESS
}
