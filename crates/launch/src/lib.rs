//! What the console launchers (`sol_telnet`, `kvm_vnc`) share: the flags that name an AMT,
//! listening on a local port and only then starting the user's client program, and serving
//! local clients one at a time. The in-process simulator used when no AMT is named is handed
//! in by the program ([`resolve`]), so a launcher can be built without it.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use oobkit_io::redirection::RedirTarget;
use oobkit_io::{Endpoint, TlsPolicy};
use oobkit_redir::Transport;

/// How to reach the redirection service.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum TransportArg {
    /// The redirection port (16994/16995) with in-band digest.
    Tcp,
    /// `/ws-redirection` on the web port (16992/16993), behind HTTP Digest.
    Ws,
}

/// The flags that name an AMT.
#[derive(Clone, Debug, clap::Args)]
pub struct AmtArgs {
    /// AMT host. Without it, a simulated AMT runs in this process.
    #[arg(long, short = 'H', env = "AMT_HOST")]
    pub host: Option<String>,
    /// AMT port (default: 16994, or 16995 with --tls; 16992/16993 with --transport ws).
    #[arg(long, short = 'p')]
    pub port: Option<u16>,
    /// tcp: the redirection port with in-band digest; ws: /ws-redirection on the web port.
    #[arg(long, value_enum, default_value = "tcp")]
    pub transport: TransportArg,
    /// Use TLS (certificates verified unless --fingerprint or --insecure).
    #[arg(long)]
    pub tls: bool,
    /// Trust exactly the certificate with this SHA-256 fingerprint.
    #[arg(long, requires = "tls", conflicts_with = "insecure")]
    pub fingerprint: Option<String>,
    /// Also trust the CAs in this PEM file.
    #[arg(long, requires = "tls", conflicts_with_all = ["insecure", "fingerprint"])]
    pub ca: Option<PathBuf>,
    /// Accept any certificate (prefer --fingerprint).
    #[arg(long, requires = "tls")]
    pub insecure: bool,
    /// AMT user; the password comes from AMT_PASSWORD or a prompt.
    #[arg(long, short = 'u', default_value = "admin")]
    pub user: String,
}

/// The flag that bounds a stalled local client, shared by the launchers: they serve one
/// client at a time, so one that stops reading would otherwise keep everyone else out.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct StallArgs {
    /// Seconds the local client (or the AMT) may take no bytes before the session is ended.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub stall_timeout: u64,
}

impl StallArgs {
    /// The limit (at least a second).
    pub fn limit(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.stall_timeout.max(1))
    }
}

/// Prints a line for the user. A closed stdout must not stop a bridge (println! would panic).
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Where the launcher connects. Without `--host`, `start_simulator` starts an AMT in this
/// process for the transport asked for and returns its target and a handle to keep alive as
/// long as the target is used.
pub async fn resolve<S>(
    args: &AmtArgs,
    start_simulator: impl AsyncFnOnce(Transport) -> Result<(RedirTarget, S), String>,
) -> Result<(RedirTarget, Option<S>), String> {
    let transport = match args.transport {
        TransportArg::Tcp => Transport::Tcp,
        TransportArg::Ws => Transport::AmtWebSocket,
    };
    let Some(host) = &args.host else {
        let (target, simulator) = start_simulator(transport).await?;
        return Ok((target, Some(simulator)));
    };
    let tls = if args.tls {
        Some(TlsPolicy::from_flags(
            args.fingerprint.as_deref(),
            args.ca.as_deref(),
            args.insecure,
        )?)
    } else {
        None
    };
    let port = args.port.unwrap_or(match (args.transport, args.tls) {
        (TransportArg::Tcp, false) => 16994,
        (TransportArg::Tcp, true) => 16995,
        (TransportArg::Ws, false) => 16992,
        (TransportArg::Ws, true) => 16993,
    });
    let mut endpoint = Endpoint::plain(host.clone(), port);
    endpoint.tls = tls;
    let password = match std::env::var("AMT_PASSWORD") {
        Ok(p) => p,
        Err(_) => rpassword::prompt_password(format!("AMT password for {}@{host}: ", args.user))
            .map_err(|e| format!("no password: set AMT_PASSWORD or run on a terminal ({e})"))?,
    };
    Ok((
        RedirTarget {
            endpoint,
            transport,
            user: args.user.clone(),
            password,
        },
        None,
    ))
}

fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// `template` with `{host}` and `{port}` filled in from `addr`.
fn fill(template: &str, addr: SocketAddr) -> String {
    template
        .replace("{host}", &addr.ip().to_string())
        .replace("{port}", &addr.port().to_string())
}

/// The client command for `choice`: `none`, a name from `known` (name, program, template), or
/// a template with `{host}` and `{port}`; without a choice, the first installed known client.
fn client_command(
    choice: Option<&str>,
    known: &[(&str, &str, &str)],
    addr: SocketAddr,
) -> Option<String> {
    let template = match choice {
        Some("none") => return None,
        Some(name) => known
            .iter()
            .find(|(n, ..)| *n == name)
            .map_or(name, |(_, _, t)| t),
        None => known
            .iter()
            .find(|(_, program, _)| installed(program))
            .map(|(_, _, t)| *t)?,
    };
    Some(fill(template, addr))
}

/// The local side of a launcher: what it serves and which clients it can start.
#[derive(Debug, Clone, Copy)]
pub struct LocalPort<'a> {
    /// URL scheme in the "listening on" line (`telnet`, `vnc`).
    pub scheme: &'a str,
    /// What is served, for that line (`SOL of 10.0.0.5:16994`).
    pub what: &'a str,
    /// Clients it knows: (name, program, command template with `{host}` and `{port}`).
    pub known: &'a [(&'a str, &'a str, &'a str)],
    /// What to tell the user when no client is started (a template as above).
    pub manual: &'a str,
}

/// Binds the local port, says where it listens, and only then starts the client `choice`
/// (see [`LocalPort::known`]); without one, says how to connect.
pub async fn listen_and_launch(
    listen: SocketAddr,
    port: LocalPort<'_>,
    choice: Option<&str>,
) -> Result<(tokio::net::TcpListener, Option<tokio::process::Child>), String> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    say(&format!(
        "listening on {}://{addr} ({})",
        port.scheme, port.what
    ));
    let child = match client_command(choice, port.known, addr) {
        Some(command) => {
            say(&format!("starting: {command}"));
            let mut parts = command.split_whitespace();
            let program = parts.next().ok_or("empty client command")?;
            let child = tokio::process::Command::new(program)
                .args(parts)
                .spawn()
                .map_err(|e| format!("cannot start `{command}`: {e}"))?;
            Some(child)
        }
        None => {
            say(&fill(port.manual, addr));
            None
        }
    };
    Ok((listener, child))
}

/// Waits for the launched client to exit (forever if there is none).
pub async fn client_exit(child: &mut Option<tokio::process::Child>) {
    match child {
        Some(c) => {
            let status = c.wait().await;
            tracing::info!("client exited ({status:?})");
        }
        None => std::future::pending().await,
    }
}

/// A boxed future of a connection handler.
pub type Handler = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Serves local clients one at a time, as AMT allows one session of a type: `serve` gets the
/// accepted connection; a client arriving while another is served goes to `refuse` (which
/// tells it why). Returns when the launched client exits or on SIGINT, SIGTERM or SIGHUP.
pub async fn serve_one_at_a_time(
    listener: tokio::net::TcpListener,
    mut child: Option<tokio::process::Child>,
    serve: impl Fn(tokio::net::TcpStream, SocketAddr) -> Handler,
    refuse: impl Fn(tokio::net::TcpStream) -> Handler,
) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let busy = Arc::new(AtomicBool::new(false));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = oobkit_io::accept(&listener) => accepted,
            () = client_exit(&mut child) => return,
            () = oobkit_io::shutdown_signal() => return,
        };
        if busy.swap(true, Ordering::AcqRel) {
            tokio::spawn(refuse(stream));
            continue;
        }
        let handler = serve(stream, peer);
        let busy = Arc::clone(&busy);
        tokio::spawn(async move {
            tracing::info!("{peer}: client connected");
            handler.await;
            busy.store(false, Ordering::Release);
        });
    }
}
