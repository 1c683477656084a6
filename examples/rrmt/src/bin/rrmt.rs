//! rrmt: the RRMT administrator's command line.
use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rrmt::admin::{AdminClient, AdminReply, AdminRequest, Incoming, STDERR};

/// Runs commands and shells on hosts behind firewalls through an RRMT server, and manages
/// their tokens.
///
/// The password comes from RRMT_PASSWORD or a prompt. The server's certificate is verified,
/// or pinned with --fingerprint (rrmt-server prints it at start).
///
/// Exit status: `exec` and `shell` pass the remote status through (124 timed out, 127 could
/// not start); 255 when rrmt itself failed (connection, authentication, unknown host).
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The server's administrators' endpoint.
    #[arg(long, env = "RRMT_SERVER", default_value = "wss://127.0.0.1:7701")]
    server: String,
    /// Administrator name.
    #[arg(long, short = 'u', env = "RRMT_USER", default_value = "admin")]
    user: String,
    #[command(flatten)]
    tls: rrmt::TlsFlags,
    /// Print replies as JSON.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Lists hosts: online or not, last seen, address, and the server each agent is connected
    /// to (in a cluster).
    Hosts,
    /// Runs a command on a host; its stdout, stderr and exit status are passed through.
    Exec {
        /// Kill the command after this many seconds (default: the server's, 60).
        #[arg(long)]
        timeout: Option<u32>,
        /// Keep at most this many bytes of output (default: the server's, 16 MiB).
        #[arg(long)]
        output_cap: Option<u32>,
        /// The host.
        host: String,
        /// The program and its arguments (after --).
        #[arg(last = true, required = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// Opens an interactive shell on a host (raw terminal; the window size follows yours).
    Shell {
        /// The host.
        host: String,
    },
    /// Creates, lists or revokes agent tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Shows the audit log (who ran what where, when, and how it ended).
    Audit {
        /// How many of the latest entries.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Registers a host and prints its agent token (shown once).
    Create {
        /// The host's name (letters, digits, '-', '_', '.').
        name: String,
    },
    /// Lists hosts' tokens (created, by whom, revoked).
    List,
    /// Revokes a host's token; its agent is disconnected at once and cannot return.
    Revoke {
        /// The host's name.
        name: String,
    },
}

/// rrmt's own failure (as opposed to a remote status).
const FAILED: u8 = 255;

fn fail(message: &str) -> ExitCode {
    eprintln!("rrmt: {message}");
    ExitCode::from(FAILED)
}

fn main() -> ExitCode {
    oobkit_io::init_logging("warn");
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    let code = runtime.block_on(run(cli));
    // Leave at once: a blocked read of standard input must not hold the process.
    std::process::exit(code.into());
}

async fn run(cli: Cli) -> u8 {
    let tls = match cli.tls.policy() {
        Ok(tls) => tls,
        Err(e) => return report(&e),
    };
    let endpoint = match rrmt::endpoint_from_url(&cli.server, tls) {
        Ok((endpoint, _)) => endpoint,
        Err(e) => return report(&e),
    };
    let password = match std::env::var("RRMT_PASSWORD") {
        Ok(p) => p,
        Err(_) => match rpassword::prompt_password(format!("{}'s password: ", cli.user)) {
            Ok(p) => p,
            Err(e) => return report(&format!("cannot read a password ({e}); set RRMT_PASSWORD")),
        },
    };
    let mut client = match AdminClient::connect(&endpoint, &cli.user, &password).await {
        Ok(c) => c,
        Err(e) => return report(&e.to_string()),
    };
    let code = match cli.command {
        Command::Exec {
            timeout,
            output_cap,
            host,
            command,
        } => {
            let argv: Result<Vec<String>, _> = command
                .into_iter()
                .map(std::ffi::OsString::into_string)
                .collect();
            match argv {
                Ok(argv) => exec(&mut client, host, argv, timeout, output_cap, cli.json).await,
                Err(_) => report("the command line must be UTF-8"),
            }
        }
        Command::Shell { host } => shell(&mut client, host).await,
        Command::Hosts => {
            simple(
                &mut client,
                AdminRequest::Hosts,
                cli.json,
                false,
                &endpoint.host,
            )
            .await
        }
        Command::Token { action } => {
            let (request, tokens) = match action {
                TokenAction::Create { name } => (AdminRequest::TokenCreate { name }, false),
                TokenAction::List => (AdminRequest::Hosts, true),
                TokenAction::Revoke { name } => (AdminRequest::TokenRevoke { name }, false),
            };
            simple(&mut client, request, cli.json, tokens, &endpoint.host).await
        }
        Command::Audit { limit } => {
            simple(
                &mut client,
                AdminRequest::Audit { limit },
                cli.json,
                false,
                &endpoint.host,
            )
            .await
        }
    };
    client.close().await;
    code
}

fn report(message: &str) -> u8 {
    eprintln!("rrmt: {message}");
    FAILED
}

fn time(at: Option<i64>) -> String {
    let Some(at) = at else {
        return "-".into();
    };
    let ago = rrmt::now_secs().saturating_sub(at);
    match ago {
        ..=0 => "now".into(),
        1..120 => format!("{ago}s ago"),
        120..7200 => format!("{}m ago", ago / 60),
        7200..172_800 => format!("{}h ago", ago / 3600),
        _ => format!("{}d ago", ago / 86_400),
    }
}

/// Requests with one reply. `server_host` is the host the administrator reached (agents reach
/// the server under the same name).
/// UNIX seconds as local time in RFC 3339 (`2026-11-26T11:20:05+01:00`), for people; `--json`
/// keeps the numbers.
fn local_time(unix: i64) -> String {
    match jiff::Timestamp::from_second(unix) {
        Ok(at) => at
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        Err(_) => unix.to_string(),
    }
}

async fn simple(
    client: &mut AdminClient,
    request: AdminRequest,
    json: bool,
    tokens: bool,
    server_host: &str,
) -> u8 {
    let reply = match client.call(&request).await {
        Ok(reply) => reply,
        Err(e) => return report(&e),
    };
    if json {
        println!("{}", reply.to_json());
        return if matches!(reply, AdminReply::Error { .. }) {
            FAILED
        } else {
            0
        };
    }
    match reply {
        AdminReply::Error { message } => return report(&message),
        AdminReply::Hosts { hosts } if tokens => {
            println!(
                "{:<20} {:<10} {:<12} {:<12} HOST ID",
                "NAME", "STATE", "CREATED", "BY"
            );
            for h in hosts {
                let state = if h.record.revoked.is_some() {
                    "revoked"
                } else {
                    "valid"
                };
                println!(
                    "{:<20} {:<10} {:<12} {:<12} {}",
                    h.record.name,
                    state,
                    time(Some(h.record.created)),
                    h.record.created_by,
                    h.record.host_id
                );
            }
        }
        AdminReply::Hosts { hosts } => {
            println!(
                "{:<20} {:<8} {:<12} {:<24} {:<20} SERVER",
                "NAME", "STATE", "LAST SEEN", "ADDRESS", "AGENT"
            );
            for h in hosts {
                let state = match (h.online, h.record.revoked) {
                    (_, Some(_)) => "revoked",
                    (true, None) => "online",
                    (false, None) => "offline",
                };
                println!(
                    "{:<20} {:<8} {:<12} {:<24} {:<20} {}",
                    h.record.name,
                    state,
                    if h.online {
                        "now".into()
                    } else {
                        time(h.record.last_seen)
                    },
                    h.record.last_address.as_deref().unwrap_or("-"),
                    h.record.agent_name.as_deref().unwrap_or("-"),
                    h.server.as_deref().unwrap_or("-"),
                );
            }
        }
        AdminReply::TokenCreated {
            name,
            token,
            host_id,
            agent_port,
            fingerprint,
        } => {
            // An IPv6 literal needs brackets in a URL.
            let host = if server_host.contains(':') {
                format!("[{server_host}]")
            } else {
                server_host.to_owned()
            };
            println!("host {name} (id {host_id}): token {token}");
            println!(
                "on {name}, store the token where only the agent can read it and start the agent:"
            );
            println!("  (umask 077; mkdir -p /etc/rrmt && echo '{token}' > /etc/rrmt/token)");
            println!(
                "  rrmt-agent --server wss://{host}:{agent_port} --token-file /etc/rrmt/token --fingerprint {fingerprint}"
            );
        }
        AdminReply::Revoked { name, disconnected } => {
            println!(
                "host {name}: token revoked{}",
                if disconnected {
                    "; its agent was disconnected"
                } else {
                    ""
                }
            );
        }
        AdminReply::Audit { entries } => {
            for e in entries {
                let end = match (e.ended, e.exit, e.outcome.as_deref()) {
                    (None, _, _) if matches!(e.action.as_str(), "exec" | "shell") => {
                        "running".to_owned()
                    }
                    (_, Some(code), None) => format!("exit {code}"),
                    (_, Some(code), Some(note)) => format!("exit {code} ({note})"),
                    (_, None, Some(note)) => note.to_owned(),
                    _ => String::new(),
                };
                println!(
                    "{:>5} {} {}@{} {} {} {} {}",
                    e.id,
                    local_time(e.at),
                    e.who,
                    e.address,
                    e.action,
                    e.host,
                    e.detail,
                    end
                );
            }
        }
        other => return report(&format!("unexpected reply: {other:?}")),
    }
    0
}

async fn exec(
    client: &mut AdminClient,
    host: String,
    argv: Vec<String>,
    timeout: Option<u32>,
    output_cap: Option<u32>,
    json: bool,
) -> u8 {
    let request = AdminRequest::Exec {
        host,
        argv,
        timeout_ms: timeout.map_or(0, |s| s.saturating_mul(1000).max(1)),
        output_cap: output_cap.unwrap_or(0),
    };
    if let Err(e) = client.send(&request).await {
        return report(&e);
    }
    let (mut stdout, mut stderr) = (std::io::stdout().lock(), std::io::stderr().lock());
    loop {
        match client.next().await {
            Ok(Incoming::Data(data)) => {
                let Some((&stream, bytes)) = data.split_first() else {
                    continue;
                };
                // A closed stdout (`| head`) ends the copy, not the program.
                let _ = if stream == STDERR {
                    stderr.write_all(bytes).and_then(|()| stderr.flush())
                } else {
                    stdout.write_all(bytes).and_then(|()| stdout.flush())
                };
            }
            Ok(Incoming::Reply(AdminReply::Exited {
                exit,
                timed_out,
                truncated,
                not_started,
            })) => {
                if json {
                    let _ = writeln!(
                        stderr,
                        "{}",
                        AdminReply::Exited {
                            exit,
                            timed_out,
                            truncated,
                            not_started
                        }
                        .to_json()
                    );
                }
                if truncated {
                    let _ = writeln!(stderr, "rrmt: output truncated at the cap");
                }
                return if timed_out {
                    let _ = writeln!(stderr, "rrmt: the command timed out and was killed");
                    124
                } else if not_started {
                    127
                } else {
                    u8::try_from(exit).unwrap_or(FAILED.saturating_sub(1))
                };
            }
            Ok(Incoming::Reply(AdminReply::Error { message })) => return report(&message),
            Ok(Incoming::Reply(other)) => return report(&format!("unexpected reply: {other:?}")),
            Ok(Incoming::Closed) => return report("the server closed the connection"),
            Err(e) => return report(&e),
        }
    }
}

async fn shell(client: &mut AdminClient, host: String) -> u8 {
    use tokio::io::AsyncReadExt;
    let (cols, rows) = rrmt::pty::terminal_size().unwrap_or((80, 24));
    let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".into());
    if let Err(e) = client
        .send(&AdminRequest::Shell {
            host,
            cols,
            rows,
            term,
            for_user: None,
        })
        .await
    {
        return report(&e);
    }
    match client.next().await {
        Ok(Incoming::Reply(AdminReply::ShellOpened)) => {}
        Ok(Incoming::Reply(AdminReply::Error { message })) => return report(&message),
        Ok(other) => return report(&format!("unexpected reply: {other:?}")),
        Err(e) => return report(&e),
    }
    let raw = match rrmt::pty::RawMode::enable() {
        Ok(raw) => raw,
        Err(e) => return report(&format!("cannot put the terminal in raw mode: {e}")),
    };
    let mut resized =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
    let mut stdin = tokio::io::stdin();
    let mut stdin_open = true;
    let mut buf = vec![0u8; 4096];
    let mut stdout = std::io::stdout().lock();
    let outcome = loop {
        tokio::select! {
            incoming = client.next() => match incoming {
                Ok(Incoming::Data(data)) => {
                    let _ = stdout.write_all(&data).and_then(|()| stdout.flush());
                }
                Ok(Incoming::Reply(AdminReply::ShellClosed { exit })) => break Ok(exit),
                Ok(Incoming::Reply(AdminReply::Error { message })) => break Err(message),
                Ok(Incoming::Reply(_)) => {}
                Ok(Incoming::Closed) => break Err("the server closed the connection".into()),
                Err(e) => break Err(e),
            },
            read = stdin.read(&mut buf), if stdin_open => match read {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    if let Err(e) = client.send_data(&buf[..n]).await {
                        break Err(e);
                    }
                }
            },
            Some(()) = async {
                match resized.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some((cols, rows)) = rrmt::pty::terminal_size()
                    && let Err(e) = client.send(&AdminRequest::Resize { cols, rows }).await
                {
                    break Err(e);
                }
            }
        }
    };
    drop(raw);
    match outcome {
        Ok(exit) => u8::try_from(exit).unwrap_or(FAILED.saturating_sub(1)),
        Err(message) => report(&message),
    }
}
