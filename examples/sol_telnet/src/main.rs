//! `sol_telnet`: the Serial-over-LAN console of an Intel AMT on a local telnet port.

mod telnet;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, ValueEnum};
use oobkit_io::redirection::{RedirTarget, RedirTransport, SolEvent, open_session};
use oobkit_io::{Endpoint, TlsPolicy, parse_fingerprint};
use oobkit_redir::codec::SessionKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The Serial-over-LAN console of an Intel AMT on a local telnet port.
///
/// Listens on a local port, then (if configured) starts a terminal client on it; each telnet
/// connection opens a SOL session to the AMT and bridges the two, one client at a time, until
/// either side ends. Without --host, a simulated AMT is started in this process, so the whole
/// chain can be tried on any machine.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// AMT host. Without it, a simulated AMT runs in-process.
    #[arg(long, short = 'H', env = "AMT_HOST")]
    host: Option<String>,
    /// AMT port (default: 16994, or 16995 with --tls; 16992/16993 with --transport ws).
    #[arg(long, short = 'p')]
    port: Option<u16>,
    /// tcp: the redirection port with in-band digest; ws: /ws-redirection on the web port.
    #[arg(long, value_enum, default_value = "tcp")]
    transport: TransportArg,
    /// Use TLS (certificates verified unless --fingerprint or --insecure).
    #[arg(long)]
    tls: bool,
    /// Trust exactly the certificate with this SHA-256 fingerprint.
    #[arg(long, requires = "tls", conflicts_with = "insecure")]
    fingerprint: Option<String>,
    /// Also trust the CAs in this PEM file.
    #[arg(long, requires = "tls", conflicts_with_all = ["insecure", "fingerprint"])]
    ca: Option<PathBuf>,
    /// Accept any certificate (prefer --fingerprint).
    #[arg(long, requires = "tls")]
    insecure: bool,
    /// AMT user; the password comes from AMT_PASSWORD or a prompt.
    #[arg(long, short = 'u', default_value = "admin")]
    user: String,
    /// Local address for the telnet port (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Terminal client to start once listening: putty, telnet, none, or a command template
    /// with {host} and {port}. Default: PuTTY if installed, else telnet, else none.
    #[arg(long)]
    client: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum TransportArg {
    Tcp,
    Ws,
}

/// Prints a line for the user; a closed stdout must not stop the bridge (println! would panic).
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// The client command line for `choice` (None: the default), or None for no client.
fn client_command(choice: Option<&str>, addr: SocketAddr) -> Option<String> {
    let template = match choice {
        Some("none") => return None,
        Some("putty") => "putty -telnet {host} -P {port}",
        Some("telnet") => "telnet {host} {port}",
        Some(template) => template,
        None if installed("putty") => "putty -telnet {host} -P {port}",
        None if installed("telnet") => "telnet {host} {port}",
        None => return None,
    };
    Some(
        template
            .replace("{host}", &addr.ip().to_string())
            .replace("{port}", &addr.port().to_string()),
    )
}

async fn serve_client(mut local: TcpStream, target: &RedirTarget) -> std::io::Result<String> {
    local.set_nodelay(true).ok();
    local.write_all(&telnet::GREETING).await?;
    let mut session = match open_session(target, SessionKind::Sol).await {
        Ok(s) => s,
        Err(e) => {
            local
                .write_all(
                    format!("\r\nsol_telnet: cannot open the SOL session: {e}\r\n").as_bytes(),
                )
                .await?;
            return Ok(format!("SOL session refused: {e}"));
        }
    };
    let mut decoder = telnet::Decoder::default();
    let mut buf = vec![0u8; 16 * 1024];
    let (mut data, mut replies, mut out) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        if let Err(e) = session.flush().await {
            return Ok(format!("AMT connection failed: {e}"));
        }
        tokio::select! {
            n = local.read(&mut buf) => {
                let n = n?;
                if n == 0 {
                    session.end().await;
                    return Ok("telnet client disconnected".into());
                }
                data.clear();
                replies.clear();
                decoder.decode(&buf[..n], &mut data, &mut replies);
                if !replies.is_empty() {
                    local.write_all(&replies).await?;
                }
                session.send(&data);
            }
            event = session.wait() => match event {
                Ok(Some(SolEvent::Data(bytes))) => {
                    out.clear();
                    telnet::escape(&bytes, &mut out);
                    local.write_all(&out).await?;
                }
                Ok(Some(SolEvent::Closed(reason))) => {
                    local.write_all(format!("\r\n[SOL session ended: {reason}]\r\n").as_bytes()).await?;
                    return Ok(reason.to_string());
                }
                Ok(None) => {}
                Err(e) => {
                    local.write_all(format!("\r\n[AMT connection failed: {e}]\r\n").as_bytes()).await?;
                    return Ok(e.to_string());
                }
            },
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    // The target: a real AMT, or the simulator in this process.
    let mut _simulator = None;
    let target = match &cli.host {
        Some(host) => {
            let tls = cli.tls.then(|| match (&cli.fingerprint, cli.insecure) {
                (Some(fp), _) => parse_fingerprint(fp)
                    .map(TlsPolicy::Pin)
                    .ok_or_else(|| format!("--fingerprint `{fp}` is not a SHA-256 fingerprint")),
                (None, true) => Ok(TlsPolicy::Insecure),
                (None, false) => Ok(TlsPolicy::Verify {
                    ca_file: cli.ca.clone(),
                }),
            });
            let tls = tls.transpose()?;
            let port = cli.port.unwrap_or(match (cli.transport, cli.tls) {
                (TransportArg::Tcp, false) => 16994,
                (TransportArg::Tcp, true) => 16995,
                (TransportArg::Ws, false) => 16992,
                (TransportArg::Ws, true) => 16993,
            });
            let mut endpoint = Endpoint::plain(host.clone(), port);
            endpoint.tls = tls;
            let password = match std::env::var("AMT_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    rpassword::prompt_password(format!("AMT password for {}@{host}: ", cli.user))
                        .map_err(|e| {
                            format!("no password: set AMT_PASSWORD or run on a terminal ({e})")
                        })?
                }
            };
            RedirTarget {
                endpoint,
                transport: match cli.transport {
                    TransportArg::Tcp => RedirTransport::Tcp,
                    TransportArg::Ws => RedirTransport::WebSocket,
                },
                user: cli.user.clone(),
                password,
            }
        }
        None => {
            let password = oobkit_io::random_hex16();
            let mut config = amt_sim::SimConfig::loopback(&password);
            config.redir_listen = Some("127.0.0.1:0".parse().expect("literal address"));
            let sim = amt_sim::Simulator::start(config)
                .await
                .map_err(|e| format!("cannot start the simulated AMT: {e}"))?;
            let port = match cli.transport {
                TransportArg::Tcp => sim.redir_addr.expect("redirection port requested").port(),
                TransportArg::Ws => sim.http_addr.port(),
            };
            say(&format!(
                "simulated AMT on 127.0.0.1 (web {}, redirection {})",
                sim.http_addr.port(),
                sim.redir_addr.map_or(0, |a| a.port())
            ));
            _simulator = Some(sim);
            RedirTarget {
                endpoint: Endpoint::plain("127.0.0.1", port),
                transport: match cli.transport {
                    TransportArg::Tcp => RedirTransport::Tcp,
                    TransportArg::Ws => RedirTransport::WebSocket,
                },
                user: "admin".into(),
                password,
            }
        }
    };
    let target = Arc::new(target);
    let listener = TcpListener::bind(cli.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cli.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    say(&format!(
        "listening on telnet://{addr} (SOL of {})",
        target.endpoint.authority()
    ));
    // Only once listening, the client.
    let mut child = match client_command(cli.client.as_deref(), addr) {
        Some(command) => {
            say(&format!("starting: {command}"));
            let mut parts = command.split_whitespace();
            let program = parts.next().ok_or("empty --client command")?;
            Some(
                tokio::process::Command::new(program)
                    .args(parts)
                    .spawn()
                    .map_err(|e| format!("cannot start `{command}`: {e}"))?,
            )
        }
        None => {
            say(&format!(
                "connect with: telnet {} {}",
                addr.ip(),
                addr.port()
            ));
            None
        }
    };
    let busy = Arc::new(AtomicBool::new(false));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            status = async { match &mut child { Some(c) => c.wait().await, None => std::future::pending().await } } => {
                tracing::info!("terminal client exited ({status:?})");
                return Ok(());
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let (mut stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                continue;
            }
        };
        // AMT allows one SOL session: a second client is told so, not queued.
        if busy.swap(true, Ordering::AcqRel) {
            let _ = stream
                .write_all(b"sol_telnet: another client is using the console\r\n")
                .await;
            continue;
        }
        let target = Arc::clone(&target);
        let busy = Arc::clone(&busy);
        tokio::spawn(async move {
            tracing::info!("{peer}: telnet client connected");
            match serve_client(stream, &target).await {
                Ok(why) => tracing::info!("{peer}: {why}"),
                Err(e) => tracing::info!("{peer}: {e}"),
            }
            busy.store(false, Ordering::Release);
        });
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    oobkit_io::init_logging("info");
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sol_telnet: {e}");
            ExitCode::FAILURE
        }
    }
}
