//! `amt_sim`: a simulated Intel AMT device, for testing AMT clients without hardware.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use amt_sim::{SimConfig, Simulator};
use clap::Parser;

/// A simulated Intel AMT device on loopback.
///
/// Serves WS-Management at /wsman behind HTTP Digest as real firmware does (realm
/// Digest:<32 hex>, qop "auth-int, auth"), from a device model whose state is coherent: power
/// changes show in the next Get, boot settings persist, redirection and KVM settings gate
/// redirection sessions, and user consent codes are printed here, on "the managed screen".
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// HTTP address (AMT: port 16992).
    #[arg(long, default_value = "127.0.0.1:16992")]
    listen: SocketAddr,
    /// HTTPS address (AMT: port 16993); off unless given.
    #[arg(long)]
    tls_listen: Option<SocketAddr>,
    /// Certificate (PEM) for HTTPS; a self-signed one is generated if absent.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Admin user name.
    #[arg(long, short = 'u', default_value = "admin")]
    user: String,
    /// Admin password; better from AMT_SIM_PASSWORD than the command line.
    #[arg(
        long,
        env = "AMT_SIM_PASSWORD",
        default_value = "P@ssw0rd",
        hide_env_values = true,
        hide_default_value = true
    )]
    password: String,
    /// Firmware version to report (software identity, Server header).
    #[arg(long, default_value = "16.1.25")]
    firmware: String,
    /// Most authenticated connections served at once on each port.
    #[arg(long, default_value_t = 64)]
    max_connections: usize,
    /// Connections not yet authenticated (TLS handshakes, requests without credentials,
    /// redirection sessions before their login) from one address at once, on each port. They
    /// never take the places of --max-connections.
    #[arg(long, default_value_t = 8)]
    max_unauthenticated_per_address: u32,
    /// Connections not yet authenticated from all addresses at once, on each port.
    #[arg(long, default_value_t = 32)]
    max_unauthenticated: u32,
    /// Failed logins an address may make per minute before its connections are refused for
    /// the rest of that minute (web and redirection ports alike).
    #[arg(long, default_value_t = 20)]
    max_failed_logins: u32,
    /// Raw redirection port (SOL, KVM, IDE-R; AMT: 16994).
    #[arg(long, default_value = "127.0.0.1:16994")]
    redir_listen: SocketAddr,
    /// TLS redirection port (AMT: 16995); off unless given.
    #[arg(long)]
    redir_tls_listen: Option<SocketAddr>,
    /// Standard RFB port with VNC password authentication (AMT: 5900). It answers while
    /// IPS_KVMRedirectionSettingData has Is5900PortEnabled true and an RFBPassword set (both
    /// with a WS-Management Put), as on AMT; off unless given.
    #[arg(long)]
    rfb_listen: Option<SocketAddr>,
    /// In-band authentication offered on the redirection ports. Real AMT offers digest only;
    /// `both` also offers user/password, which older clients (Debian's amtterm 1.4) need.
    #[arg(long, value_enum, default_value = "both")]
    redir_auth: RedirAuth,
    /// Run this command on the SOL console, on a pseudo-terminal (for example "/bin/sh -i"),
    /// instead of the built-in simulated serial console. Whoever can reach the redirection
    /// port with the password gets this program.
    #[arg(long, conflicts_with = "sol_echo")]
    sol_command: Option<String>,
    /// Echo SOL input back instead of running a shell.
    #[arg(long)]
    sol_echo: bool,
    /// KVM screen size of the built-in test pattern, WIDTHxHEIGHT.
    #[arg(long, default_value = "1024x768", value_parser = parse_size)]
    kvm_size: (u16, u16),
    /// Forward KVM sessions to this VNC server (HOST:PORT) instead of the test pattern.
    #[arg(long)]
    vnc: Option<String>,
    /// When a console redirects its drives over IDE-R, the simulated BIOS boots from them
    /// (El Torito CD, else the floppy's boot sector) and then reads SAMPLES blocks spread
    /// over the medium, or `all` of it in order; it logs what it booted with the SHA-256 of
    /// every region read.
    #[arg(long, default_value = "8", value_name = "SAMPLES|all", value_parser = parse_ider_read)]
    ider_read: oobkit_sim::bios::ReadScope,
}

fn parse_ider_read(s: &str) -> Result<oobkit_sim::bios::ReadScope, String> {
    use oobkit_sim::bios::ReadScope;
    if s == "all" {
        return Ok(ReadScope::Everything);
    }
    let samples = s
        .parse()
        .map_err(|_| "expected a number of sample blocks or `all`")?;
    Ok(ReadScope::Boot { samples })
}

fn parse_size(s: &str) -> Result<(u16, u16), String> {
    let (w, h) = s.split_once('x').ok_or("expected WIDTHxHEIGHT")?;
    let w: u16 = w.parse().map_err(|_| "bad width")?;
    let h: u16 = h.parse().map_err(|_| "bad height")?;
    if w == 0 || h == 0 {
        return Err("the screen cannot be empty".into());
    }
    Ok((w, h))
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RedirAuth {
    Digest,
    Userpass,
    Both,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    oobkit_io::init_logging("info");
    let cli = Cli::parse();
    let mut config = SimConfig::loopback(&cli.password);
    config.listen = cli.listen;
    config.tls_listen = cli.tls_listen;
    config.tls_identity = cli.tls_cert.zip(cli.tls_key);
    config.user = cli.user;
    config.firmware = cli.firmware;
    config.max_connections = cli.max_connections;
    config.max_unauthenticated_per_address = cli.max_unauthenticated_per_address;
    config.max_unauthenticated = cli.max_unauthenticated;
    config.max_failed_logins = cli.max_failed_logins;
    config.redir_listen = Some(cli.redir_listen);
    config.redir_tls_listen = cli.redir_tls_listen;
    config.rfb_listen = cli.rfb_listen;
    config.ider_read = cli.ider_read;
    {
        use oobkit_redir::codec::AuthType;
        config.redir_auth = match cli.redir_auth {
            RedirAuth::Digest => vec![AuthType::Digest],
            RedirAuth::Userpass => vec![AuthType::UserPassword],
            RedirAuth::Both => vec![AuthType::Digest, AuthType::UserPassword],
        };
    }
    config.kvm = match cli.vnc {
        Some(target) => amt_sim::KvmBackend::Forward(target),
        None => amt_sim::KvmBackend::Pattern {
            width: cli.kvm_size.0,
            height: cli.kvm_size.1,
        },
    };
    config.sol = match (cli.sol_command, cli.sol_echo) {
        (Some(command), _) => amt_sim::SolBackend::Command(command),
        (None, true) => amt_sim::SolBackend::Echo,
        (None, false) => amt_sim::SolBackend::Simulated,
    };
    let sim = match Simulator::start(config).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("amt_sim: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on http://{}/wsman", sim.http_addr);
    if let (Some(addr), Some(fp)) = (sim.https_addr, sim.tls_fingerprint) {
        println!(
            "listening on https://{addr}/wsman (certificate SHA-256 {})",
            oobkit_io::format_fingerprint(&fp)
        );
    }
    if let Some(addr) = sim.redir_addr {
        println!("listening on {addr} (redirection: SOL, KVM, IDE-R)");
    }
    if let Some(addr) = sim.redir_tls_addr {
        println!("listening on {addr} (redirection over TLS)");
    }
    if let Some(addr) = sim.rfb_addr {
        println!(
            "listening on {addr} (standard RFB once Is5900PortEnabled and an RFBPassword are set)"
        );
    }
    // On SIGINT, SIGTERM or SIGHUP: return, so the runtime drops every session and with them
    // the SOL console programs (kill_on_drop); the default SIGTERM left them running.
    oobkit_io::shutdown_signal().await;
    ExitCode::SUCCESS
}
