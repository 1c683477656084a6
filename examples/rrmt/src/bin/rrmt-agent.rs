//! rrmt-agent: keeps this host reachable through an RRMT server.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rrmt::Token;
use rrmt::agent::{AgentConfig, AgentExit, run};

/// Connects out to an RRMT server over wss and keeps the connection (reconnecting with
/// exponential backoff and jitter), so administrators can run commands and shells on this
/// host without any inbound port.
///
/// The server's certificate is verified (system roots plus --ca), or pinned with
/// --fingerprint (what rrmt-server prints at start); --insecure only if you mean it.
///
/// Exit status: 2 the token was refused, 3 the token was revoked, 64 bad arguments.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The server's agents' endpoint, e.g. wss://rrmt.example.com:7700. Repeat it with every
    /// server of a cluster: after a lost connection the agent tries the next one.
    #[arg(long, env = "RRMT_SERVER", value_delimiter = ',', required = true)]
    server: Vec<String>,
    /// File holding the token (rewritten if the server rotates it).
    #[arg(long, env = "RRMT_TOKEN_FILE", conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// The token itself (prefer --token-file: command lines are visible to other users).
    #[arg(long, env = "RRMT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(flatten)]
    tls: rrmt::TlsFlags,
    /// The name this agent gives the server (default: the host name).
    #[arg(long)]
    name: Option<String>,
    /// Shell for interactive sessions (default: $SHELL, else /bin/sh).
    #[arg(long)]
    shell: Option<String>,
    /// Longest wait between reconnection attempts, in seconds.
    #[arg(long, default_value_t = 60)]
    max_backoff: u64,
}

fn usage(message: &str) -> ExitCode {
    eprintln!("rrmt-agent: {message}");
    ExitCode::from(64)
}

#[tokio::main]
async fn main() -> ExitCode {
    oobkit_io::init_logging("info");
    let cli = Cli::parse();
    let token_text = match (&cli.token_file, &cli.token) {
        (Some(path), _) => match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => return usage(&format!("cannot read {}: {e}", path.display())),
        },
        (None, Some(token)) => token.clone(),
        (None, None) => return usage("give the token with --token-file (or RRMT_TOKEN)"),
    };
    let Some(token) = Token::parse(&token_text) else {
        return usage("the token is not a UUID (as `rrmt token create` prints it)");
    };
    let tls = match cli.tls.policy() {
        Ok(tls) => tls,
        Err(e) => return usage(&e),
    };
    let mut endpoints = Vec::new();
    for url in &cli.server {
        match rrmt::endpoint_from_url(url, tls.clone()) {
            Ok((endpoint, true)) => endpoints.push(endpoint),
            Ok((_, false)) => {
                return usage(&format!(
                    "{url}: agents only connect with TLS: use a wss:// address"
                ));
            }
            Err(e) => return usage(&e),
        }
    }
    let endpoint = endpoints.remove(0);
    let name = cli.name.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "agent".into())
    });
    let mut config = AgentConfig::new(endpoint, token, name);
    config.token_file = cli.token_file;
    config.failover = endpoints;
    if let Some(shell) = cli.shell {
        config.shell = shell;
    }
    config.max_backoff = std::time::Duration::from_secs(cli.max_backoff.max(1));
    let exit = run(config).await;
    eprintln!("rrmt-agent: {exit}");
    ExitCode::from(match exit {
        AgentExit::Revoked => 3,
        _ => 2,
    })
}
