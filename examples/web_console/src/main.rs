//! `web_console`: SSH in the browser.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use oobkit_io::Endpoint;
use oobkit_io::redirection::RedirTarget;
use oobkit_redir::Transport;
use oobkit_term::{OneTimeConfig, TermConfig};
use web_console::{
    AmtTarget, ConsoleConfig, GatewayAuth, HostKeyPolicy, Limits, RrmtConfig, SshConfig,
    TargetList, VncTarget,
};

/// One browser console for SSH and AMT: terminals (xterm.js) for SSH shells and AMT serial
/// consoles, the AMT's screen in noVNC, power and user consent, all served from this binary.
/// With nothing configured it offers a simulated AMT started in this process.
///
/// A web app (or a person, through the login page at /) posts a target and a credential to
/// POST /sessions with the console's own credential (a bearer token, or HTTP Digest with
/// --digest-user) and gets a one-time link /term#ID, valid for --attach-window seconds; the
/// page behind it logs in with the posted credential, which is wiped once used or expired.
///
/// Without --token-file or --digest-user, a random login token is made at start-up and the
/// URL carrying it is printed (as Jupyter does): nothing is reachable without it.
///
/// Host keys are checked against the console's own known_hosts: unknown keys are refused
/// (--host-key-policy reject, the default) or recorded on first use (accept-new); a changed
/// key is always refused, with both fingerprints in the page and the log.
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  web_console                                            # loopback, prints a login URL\n  web_console --allow-target '*.lab.example:22' --host-key-policy accept-new\n  web_console --listen 0.0.0.0:8022 --token-file /etc/web_console/token --known-hosts /var/lib/web_console/known_hosts\n\nCreating a session from a script:\n  curl -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\\n       -d '{\"host\":\"127.0.0.1\",\"port\":22,\"user\":\"me\",\"password\":\"...\"}' http://127.0.0.1:8022/sessions\n  -> {\"url\":\"/term#...\",\"expires_in\":30,...}: open http://127.0.0.1:8022/term#... in a browser"
)]
struct Cli {
    /// Address to listen on. Loopback by default: put a TLS-terminating proxy in front to
    /// serve others.
    #[arg(long, default_value = "127.0.0.1:8022")]
    listen: SocketAddr,
    /// Targets that may be reached, HOST:PORT (HOST may be * or *.domain, PORT may be *);
    /// repeatable. Default: this machine's SSH server only.
    #[arg(long = "allow-target", value_name = "PATTERN", default_values_t = vec!["127.0.0.1:22".parse::<web_console::TargetPattern>().expect("valid"), "localhost:22".parse().expect("valid")])]
    allow_targets: Vec<web_console::TargetPattern>,
    /// The console's own known_hosts file (created 0600 when accept-new records a key).
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// What to do with a host key not in --known-hosts.
    #[arg(long, value_enum, default_value_t = HostKeyPolicy::Reject)]
    host_key_policy: HostKeyPolicy,
    /// A private key file the console may log in with for callers that pass
    /// {"gateway_key": N} (the Nth of these, from 0); repeatable.
    #[arg(long = "gateway-key", value_name = "FILE")]
    gateway_keys: Vec<PathBuf>,
    /// File holding the bearer token for POST /sessions (trailing newline stripped).
    #[arg(long, value_name = "FILE", conflicts_with = "digest_user")]
    token_file: Option<PathBuf>,
    /// Whom the bearer token stands for, in logs and audit entries (an RRMT server's audit
    /// log names this person for shells opened here).
    #[arg(long, default_value_t = default_user())]
    token_user: String,
    /// Use HTTP Digest for POST /sessions with this user; the password from
    /// WEB_CONSOLE_DIGEST_PASSWORD.
    #[arg(long, value_name = "USER")]
    digest_user: Option<String>,
    /// Origins allowed besides the console's own (repeatable).
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// Seconds a session link stays valid.
    #[arg(long, default_value_t = 30)]
    attach_window: u64,
    /// Terminal sessions at once.
    #[arg(long, default_value_t = 64)]
    max_sessions: usize,
    /// Terminal sessions at once from one address.
    #[arg(long, default_value_t = 8)]
    max_sessions_per_address: usize,
    /// Minutes without input or output before a session is closed (0: never).
    #[arg(long, default_value_t = 30)]
    idle_minutes: u64,
    /// Seconds to connect to a target and log in.
    #[arg(long, default_value_t = 15)]
    connect_timeout: u64,
    /// An AMT to offer (serial console, screen, power, consent): NAME=HOST (web port 16992,
    /// redirection port 16994); repeatable. The password from AMT_PASSWORD.
    #[arg(long = "amt", value_name = "NAME=HOST")]
    amts: Vec<String>,
    /// The AMT user for --amt.
    #[arg(long, default_value = "admin")]
    amt_user: String,
    /// How redirection sessions reach the --amt devices: the redirection port (tcp, 16994 or
    /// 16995 with TLS) or /ws-redirection on the web port (ws, 16992 or 16993 with TLS).
    #[arg(long, value_enum, default_value_t = AmtTransport::Tcp)]
    amt_transport: AmtTransport,
    /// Talk to the --amt devices over TLS (certificates verified unless --amt-fingerprint).
    #[arg(long)]
    amt_tls: bool,
    /// Trust exactly the AMT certificate with this SHA-256 fingerprint (with --amt-tls).
    #[arg(long, requires = "amt_tls")]
    amt_fingerprint: Option<String>,
    /// Also trust the CAs in this PEM file for the AMTs (with --amt-tls).
    #[arg(long, requires = "amt_tls")]
    amt_ca: Option<PathBuf>,
    /// Offer no simulated AMT (started in this process when no --amt is given).
    #[arg(long)]
    no_simulator: bool,
    /// An RRMT server whose hosts' shells to offer: its admin endpoint, wss://HOST:PORT. The
    /// administrator's password from RRMT_PASSWORD.
    #[arg(long, value_name = "URL")]
    rrmt: Option<String>,
    /// The RRMT administrator the console logs in as.
    #[arg(long, default_value = "admin", env = "RRMT_USER")]
    rrmt_user: String,
    /// The RRMT server certificate's SHA-256 fingerprint (as rrmt-server prints it).
    #[arg(long, env = "RRMT_FINGERPRINT")]
    rrmt_fingerprint: Option<String>,
    /// A CA file to verify the RRMT server's certificate with.
    #[arg(long)]
    rrmt_ca: Option<PathBuf>,
    /// A VNC server to offer (its screen in noVNC; its password, if any, is asked in the
    /// page): NAME=HOST:PORT; repeatable.
    #[arg(long = "vnc", value_name = "NAME=HOST:PORT")]
    vnc: Vec<String>,
}

fn rrmt_config(cli: &Cli) -> Result<Option<RrmtConfig>, String> {
    let Some(url) = &cli.rrmt else {
        return Ok(None);
    };
    let password = std::env::var("RRMT_PASSWORD")
        .map_err(|_| "--rrmt needs the administrator's password in RRMT_PASSWORD".to_owned())?;
    let tls = oobkit_io::TlsPolicy::from_flags(
        cli.rrmt_fingerprint.as_deref(),
        cli.rrmt_ca.as_deref(),
        false,
    )?;
    let (endpoint, _tls) = rrmt::endpoint_from_url(url, tls)?;
    Ok(Some(RrmtConfig {
        endpoint,
        user: cli.rrmt_user.clone(),
        password,
    }))
}

/// The AMTs to offer, and the simulator when one was started (kept alive here).
async fn amts(cli: &Cli) -> Result<(Vec<AmtTarget>, Option<amt_sim::Simulator>), String> {
    if cli.amts.is_empty() {
        if cli.no_simulator {
            return Ok((Vec::new(), None));
        }
        let password = oobkit_io::random_hex16();
        let mut config = amt_sim::SimConfig::loopback(&password);
        config.redir_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        let sim = amt_sim::Simulator::start(config)
            .await
            .map_err(|e| format!("cannot start the simulated AMT: {e}"))?;
        let redir_port = sim.redir_addr.map_or(0, |a| a.port());
        println!(
            "simulated AMT on 127.0.0.1 (web {}, redirection {redir_port}); its consent codes appear here",
            sim.http_addr.port()
        );
        let target = AmtTarget {
            name: "simulated-amt".into(),
            wsman: Endpoint::plain("127.0.0.1", sim.http_addr.port()),
            redirection: RedirTarget {
                endpoint: Endpoint::plain("127.0.0.1", redir_port),
                transport: Transport::Tcp,
                user: "admin".into(),
                password,
            },
        };
        return Ok((vec![target], Some(sim)));
    }
    let password = std::env::var("AMT_PASSWORD")
        .map_err(|_| "--amt needs the AMT's password in AMT_PASSWORD".to_owned())?;
    let tls = if cli.amt_tls {
        Some(oobkit_io::TlsPolicy::from_flags(
            cli.amt_fingerprint.as_deref(),
            cli.amt_ca.as_deref(),
            false,
        )?)
    } else {
        None
    };
    let (web_port, redirection_port, transport) = match (cli.amt_transport, cli.amt_tls) {
        (AmtTransport::Tcp, false) => (16992, 16994, Transport::Tcp),
        (AmtTransport::Tcp, true) => (16993, 16995, Transport::Tcp),
        (AmtTransport::Ws, false) => (16992, 16992, Transport::AmtWebSocket),
        (AmtTransport::Ws, true) => (16993, 16993, Transport::AmtWebSocket),
    };
    let mut targets = Vec::new();
    for spec in &cli.amts {
        let (name, host) = spec
            .split_once('=')
            .filter(|(n, h)| !n.is_empty() && !h.is_empty())
            .ok_or_else(|| format!("--amt {spec}: want NAME=HOST"))?;
        let endpoint = |port| {
            let mut endpoint = Endpoint::plain(host, port);
            endpoint.tls.clone_from(&tls);
            endpoint
        };
        targets.push(AmtTarget {
            name: name.to_owned(),
            wsman: endpoint(web_port),
            redirection: RedirTarget {
                endpoint: endpoint(redirection_port),
                transport,
                user: cli.amt_user.clone(),
                password: password.clone(),
            },
        });
    }
    Ok((targets, None))
}

/// How redirection sessions reach an AMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AmtTransport {
    /// The redirection port, with the protocol's in-band Digest.
    Tcp,
    /// `/ws-redirection` on the web port, behind HTTP Digest (AMT 16 and later).
    Ws,
}

fn default_user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "console-user".into())
}

fn default_known_hosts() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("oobkit/web_console/known_hosts")
}

fn read_token(path: &PathBuf) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let token = text.trim_end_matches(['\n', '\r']).to_owned();
    if token.len() < 16 {
        return Err(format!(
            "{}: a token of at least 16 characters",
            path.display()
        ));
    }
    Ok(token)
}

async fn run(cli: Cli) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cli.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let (auth, login_url) = match (&cli.token_file, &cli.digest_user) {
        (Some(path), _) => (
            GatewayAuth::Bearer {
                token: read_token(path)?,
                user: cli.token_user.clone(),
            },
            None,
        ),
        (None, Some(user)) => {
            let password = std::env::var("WEB_CONSOLE_DIGEST_PASSWORD")
                .map_err(|_| "--digest-user needs WEB_CONSOLE_DIGEST_PASSWORD".to_owned())?;
            (
                GatewayAuth::Digest {
                    user: user.clone(),
                    password,
                },
                None,
            )
        }
        (None, None) => {
            let token = oobkit_io::random_hex16() + &oobkit_io::random_hex16();
            let url = format!("http://{local}/#token={token}");
            (
                GatewayAuth::Bearer {
                    token,
                    user: cli.token_user.clone(),
                },
                Some(url),
            )
        }
    };
    let known_hosts = cli.known_hosts.clone().unwrap_or_else(default_known_hosts);
    let (amts, _simulator) = amts(&cli).await?;
    let idle = (cli.idle_minutes > 0).then(|| Duration::from_secs(cli.idle_minutes * 60));
    let config = ConsoleConfig {
        ssh: SshConfig {
            known_hosts: known_hosts.clone(),
            policy: cli.host_key_policy,
            gateway_keys: cli.gateway_keys.clone(),
            connect_timeout: Duration::from_secs(cli.connect_timeout.max(1)),
            keepalive: Duration::from_secs(30),
        },
        targets: TargetList(cli.allow_targets.clone()),
        auth,
        allowed_origins: cli.allowed_origins.clone(),
        limits: Limits {
            max_sessions: cli.max_sessions,
            max_sessions_per_address: cli.max_sessions_per_address,
            ..Limits::default()
        },
        term: TermConfig {
            idle,
            ..TermConfig::default()
        },
        links: OneTimeConfig {
            attach_window: Duration::from_secs(cli.attach_window.max(1)),
            ..OneTimeConfig::default()
        },
        amts,
        rrmt: rrmt_config(&cli)?,
        vnc: cli
            .vnc
            .iter()
            .map(|spec| {
                spec.split_once('=')
                    .filter(|(n, a)| !n.is_empty() && a.contains(':'))
                    .map(|(name, addr)| VncTarget {
                        name: name.to_owned(),
                        addr: addr.to_owned(),
                    })
                    .ok_or_else(|| format!("--vnc {spec}: want NAME=HOST:PORT"))
            })
            .collect::<Result<_, _>>()?,
    };
    let targets: Vec<String> = cli.allow_targets.iter().map(ToString::to_string).collect();
    tracing::info!(
        "targets allowed: {}; host keys: {} ({:?})",
        targets.join(", "),
        known_hosts.display(),
        cli.host_key_policy
    );
    println!("listening on http://{local}");
    if let Some(url) = login_url {
        // The token is the console's password for this run: printed for the person who started
        // it, never logged.
        println!("open: {url}");
    }
    web_console::serve(listener, config).await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    oobkit_io::init_logging("info");
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("web_console: {e}");
            ExitCode::FAILURE
        }
    }
}
