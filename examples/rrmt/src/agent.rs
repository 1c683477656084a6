//! The RRMT agent: one outbound wss connection to the server, kept up with exponential backoff
//! and jitter, running commands (timeout, output cap, exit status) and shells on
//! pseudo-terminals for the server.
//!
//! Shell output is read from the terminal only as fast as the server's window allows: a
//! bounded queue between the terminal reader and the session, drained while the window is
//! open, so a shell printing without end waits instead of filling the agent's memory.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use oobkit_io::{Endpoint, IoError};
use oobkit_rrmt::codec::result_flags;
use oobkit_rrmt::session::{AgentEvent, AgentSession, CloseReason};
use tokio::io::AsyncReadExt;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;

use crate::Token;
use crate::admin::AGENT_PATH;
use crate::pty::Pty;

/// Agent settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AgentConfig {
    /// The server's agent endpoint (TLS policy included).
    pub endpoint: Endpoint,
    /// Other servers of the same cluster, tried in turn after `endpoint` when a connection is
    /// lost or cannot be made.
    pub failover: Vec<Endpoint>,
    /// The token to authorize with.
    pub token: Token,
    /// Where the token lives, rewritten when the server rotates it.
    pub token_file: Option<PathBuf>,
    /// The name sent in Hello (the host name by default).
    pub name: String,
    /// The shell run for interactive sessions.
    pub shell: String,
    /// First reconnection delay.
    pub min_backoff: Duration,
    /// Longest reconnection delay.
    pub max_backoff: Duration,
}

impl AgentConfig {
    /// Backoff from 1 s to 60 s, `$SHELL` or `/bin/sh`.
    pub fn new(endpoint: Endpoint, token: Token, name: impl Into<String>) -> Self {
        Self {
            endpoint,
            failover: Vec::new(),
            token,
            token_file: None,
            name: name.into(),
            shell: std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into()),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Why the agent stopped for good (anything else is retried).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentExit {
    /// The server revoked this agent's token.
    #[error("the server revoked this agent's token; a new one is needed (rrmt token create)")]
    Revoked,
    /// The server refused the token.
    #[error("the server refused the token: {0}")]
    Refused(String),
}

/// How one connection ended.
enum Ended {
    Final(AgentExit),
    /// Lost; whether it had been authorized (then the backoff starts over).
    Lost {
        authorized: bool,
        reason: String,
    },
}

/// Connects, serves, and reconnects until the token is revoked or refused. After a lost
/// connection the next server of the list is tried (any server of a cluster serves any agent),
/// and the backoff grows only when connections keep failing.
pub async fn run(mut config: AgentConfig) -> AgentExit {
    let mut backoff = config.min_backoff;
    let servers: Vec<Endpoint> = std::iter::once(config.endpoint.clone())
        .chain(config.failover.iter().cloned())
        .collect();
    let mut next = 0;
    loop {
        let server = &servers[next % servers.len()];
        next += 1;
        let ended = match connect_and_serve(&mut config, server).await {
            Ok(ended) => ended,
            Err(e) => Ended::Lost {
                authorized: false,
                reason: e.to_string(),
            },
        };
        match ended {
            Ended::Final(exit) => return exit,
            Ended::Lost { authorized, reason } => {
                if authorized {
                    backoff = config.min_backoff;
                }
                // Equal jitter: between half the backoff and all of it, so that agents cut
                // off together by a server restart do not come back in one burst.
                let random = u64::from_le_bytes(oobkit_io::random_bytes());
                let half = backoff / 2;
                let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX).max(1);
                let delay = half + Duration::from_millis(random % jitter_ms);
                let then = servers[next % servers.len()].authority();
                tracing::warn!(
                    "connection to {} lost: {reason}; trying {then} in {delay:.1?}",
                    server.authority()
                );
                tokio::time::sleep(delay).await;
                backoff = (backoff * 2).min(config.max_backoff);
            }
        }
    }
}

/// What the agent's own tasks report to the session loop.
#[derive(Debug)]
enum Local {
    Output {
        request: u32,
        stream: u8,
        data: Vec<u8>,
    },
    Result {
        request: u32,
        exit: i32,
        flags: u8,
    },
    /// Shell input written to the terminal: the server may send this much more.
    Consumed {
        channel: u32,
        bytes: u32,
    },
}

/// From a shell's terminal, in order.
#[derive(Debug)]
enum ShellOut {
    Data(Vec<u8>),
    Exited(i32),
}

/// To a shell's task.
#[derive(Debug)]
enum ShellIn {
    Data(Vec<u8>),
    Resize(u16, u16),
}

struct Shell {
    input: mpsc::UnboundedSender<ShellIn>,
    output: mpsc::Receiver<ShellOut>,
    /// Output taken from the queue that the window did not admit yet.
    pending: Vec<u8>,
    exited: Option<i32>,
}

async fn connect_and_serve(config: &mut AgentConfig, server: &Endpoint) -> Result<Ended, IoError> {
    let mut ws = oobkit_io::websocket_connect(server, AGENT_PATH, None, 1 << 20).await?;
    tracing::debug!("connected to {}", server.authority());
    let mut session = AgentSession::new(&config.name, config.token.bytes(), Instant::now());
    let (local_tx, mut local_rx) = mpsc::unbounded_channel::<Local>();
    let wake = Arc::new(Notify::new());
    let mut shells: HashMap<u32, Shell> = HashMap::new();
    let mut authorized = false;
    loop {
        let mut closed = None;
        while let Some(event) = session.poll_event() {
            match event {
                AgentEvent::Provisioned { host_id, .. } => {
                    authorized = true;
                    tracing::info!(
                        "authorized by {} as host {}",
                        server.authority(),
                        Token::from_bytes(host_id)
                    );
                }
                AgentEvent::Execute {
                    request,
                    timeout_ms,
                    output_cap,
                    argv,
                } => {
                    tokio::spawn(execute(
                        request,
                        argv,
                        timeout_ms,
                        output_cap,
                        local_tx.clone(),
                    ));
                }
                AgentEvent::ShellOpen {
                    channel,
                    cols,
                    rows,
                    term,
                } => match Pty::spawn::<&str>(&config.shell, &[], &term, cols, rows) {
                    Ok((pty, child)) => {
                        tracing::info!(
                            "shell {channel} started ({} on {term}, {cols}x{rows})",
                            config.shell
                        );
                        let (input, input_rx) = mpsc::unbounded_channel();
                        let (output_tx, output) = mpsc::channel(4);
                        tokio::spawn(run_shell(
                            channel,
                            pty,
                            child,
                            input_rx,
                            output_tx,
                            local_tx.clone(),
                            Arc::clone(&wake),
                        ));
                        shells.insert(
                            channel,
                            Shell {
                                input,
                                output,
                                pending: Vec::new(),
                                exited: None,
                            },
                        );
                        session.shell_opened(channel);
                    }
                    Err(e) => {
                        tracing::error!("cannot start {} on a pseudo-terminal: {e}", config.shell);
                        session.close_channel(channel, -1);
                    }
                },
                AgentEvent::ChannelData { channel, data } => {
                    if let Some(shell) = shells.get(&channel) {
                        let _ = shell.input.send(ShellIn::Data(data));
                    }
                }
                AgentEvent::Resize {
                    channel,
                    cols,
                    rows,
                } => {
                    if let Some(shell) = shells.get(&channel) {
                        let _ = shell.input.send(ShellIn::Resize(cols, rows));
                    }
                }
                AgentEvent::ChannelClosed { channel } => {
                    // Dropping the shell's queues ends its task, which kills the shell.
                    shells.remove(&channel);
                    tracing::info!("shell {channel} closed by the server");
                }
                AgentEvent::Reauthorize { token } => {
                    let token = Token::from_bytes(token);
                    match store_token(config.token_file.as_deref(), token) {
                        Ok(()) => {
                            config.token = token;
                            session.token_stored(token.bytes());
                            tracing::info!("the server rotated this agent's token");
                        }
                        Err(e) => tracing::error!("cannot store the rotated token: {e}"),
                    }
                }
                AgentEvent::Closed(reason) => closed = Some(reason),
                _ => {}
            }
        }
        pump_shells(&mut session, &mut shells);
        let send_failed = !crate::send_pending(&mut ws, || session.poll_transmit()).await;
        if let Some(reason) = closed {
            let _ = ws.close(None).await;
            return Ok(match reason {
                CloseReason::Revoked => Ended::Final(AgentExit::Revoked),
                CloseReason::NotAuthorized(why) => Ended::Final(AgentExit::Refused(why)),
                other => Ended::Lost {
                    authorized,
                    reason: other.to_string(),
                },
            });
        }
        if send_failed {
            session.handle_eof();
            continue;
        }
        let deadline = session.poll_timeout();
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(Message::Binary(data))) => session.handle_input(Instant::now(), &data),
                Some(Ok(Message::Close(_)) | Err(_)) | None => session.handle_eof(),
                Some(Ok(_)) => {}
            },
            Some(local) = local_rx.recv() => match local {
                Local::Output { request, stream, data } => session.output(request, stream, &data),
                Local::Result { request, exit, flags } => session.result(request, exit, flags),
                Local::Consumed { channel, bytes } => session.grant(channel, bytes),
            },
            () = wake.notified() => {}
            () = oobkit_io::sleep_until(deadline) => session.handle_timeout(Instant::now()),
        }
    }
}

/// Moves shell output into the session as far as each window allows, and closes channels
/// whose shell ended once their output is all sent.
fn pump_shells(session: &mut AgentSession, shells: &mut HashMap<u32, Shell>) {
    let mut finished = Vec::new();
    for (&channel, shell) in shells.iter_mut() {
        loop {
            if !shell.pending.is_empty() {
                let taken = session.send_channel_data(channel, &shell.pending);
                shell.pending.drain(..taken);
                if !shell.pending.is_empty() {
                    break;
                }
            }
            if shell.exited.is_some() {
                break;
            }
            match shell.output.try_recv() {
                Ok(ShellOut::Data(data)) => shell.pending = data,
                Ok(ShellOut::Exited(code)) => shell.exited = Some(code),
                Err(_) => break,
            }
        }
        if let (Some(code), true) = (shell.exited, shell.pending.is_empty()) {
            finished.push((channel, code));
        }
    }
    for (channel, code) in finished {
        shells.remove(&channel);
        session.close_channel(channel, code);
        tracing::info!("shell {channel} exited with status {code}");
    }
}

/// The exit status as shells report it: the code, or 128 + the signal.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

async fn run_shell(
    channel: u32,
    mut pty: Pty,
    mut child: tokio::process::Child,
    mut input: mpsc::UnboundedReceiver<ShellIn>,
    output: mpsc::Sender<ShellOut>,
    local: mpsc::UnboundedSender<Local>,
    wake: Arc<Notify>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = pty.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if output.send(ShellOut::Data(buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                    wake.notify_one();
                }
            },
            message = input.recv() => match message {
                Some(ShellIn::Data(data)) => {
                    if pty.write_all(&data).await.is_err() {
                        break;
                    }
                    let bytes = u32::try_from(data.len()).unwrap_or(u32::MAX);
                    let _ = local.send(Local::Consumed { channel, bytes });
                }
                Some(ShellIn::Resize(cols, rows)) => {
                    let _ = pty.resize(cols, rows);
                }
                // The channel was closed or the connection lost: the shell goes too.
                None => {
                    let _ = child.kill().await;
                    return;
                }
            },
        }
    }
    let code = match child.wait().await {
        Ok(status) => exit_code(status),
        Err(_) => -1,
    };
    if output.send(ShellOut::Exited(code)).await.is_ok() {
        wake.notify_one();
    }
}

/// Runs one command and reports its result, after all of its output.
async fn execute(
    request: u32,
    argv: Vec<Vec<u8>>,
    timeout_ms: u32,
    output_cap: u32,
    local: mpsc::UnboundedSender<Local>,
) {
    let (exit, flags) = run_command(request, &argv, timeout_ms, output_cap, &local).await;
    tracing::info!("exec {request} finished: status {exit}, flags {flags:#04x}");
    let _ = local.send(Local::Result {
        request,
        exit,
        flags,
    });
}

/// Output streamed (up to the cap), killed at the timeout: the exit status and flags.
async fn run_command(
    request: u32,
    argv: &[Vec<u8>],
    timeout_ms: u32,
    output_cap: u32,
    local: &mpsc::UnboundedSender<Local>,
) -> (i32, u8) {
    use std::os::unix::ffi::OsStrExt;
    let Some((program, args)) = argv.split_first() else {
        return (-1, result_flags::NOT_STARTED);
    };
    let program = std::ffi::OsStr::from_bytes(program);
    tracing::info!("exec {request}: {}", program.to_string_lossy());
    let spawned = tokio::process::Command::new(program)
        .args(args.iter().map(|a| std::ffi::OsStr::from_bytes(a)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let message = format!("cannot run {}: {e}\n", program.to_string_lossy());
            let _ = local.send(Local::Output {
                request,
                stream: 2,
                data: message.into_bytes(),
            });
            return (-1, result_flags::NOT_STARTED);
        }
    };
    let output = OutputBudget {
        request,
        left: AtomicU64::new(u64::from(output_cap)),
        truncated: AtomicBool::new(false),
        local,
    };
    let work = async {
        tokio::join!(
            output.forward(child.stdout.take(), 1),
            output.forward(child.stderr.take(), 2)
        );
        child.wait().await
    };
    let limit = if timeout_ms == 0 {
        Duration::MAX
    } else {
        Duration::from_millis(u64::from(timeout_ms))
    };
    let (exit, mut flags) = match tokio::time::timeout(limit, work).await {
        Ok(Ok(status)) => (exit_code(status), 0),
        Ok(Err(_)) => (-1, 0),
        Err(_) => {
            let _ = child.kill().await;
            (-1, result_flags::TIMED_OUT)
        }
    };
    if output.truncated.load(Ordering::Relaxed) {
        flags |= result_flags::TRUNCATED;
    }
    (exit, flags)
}

/// The output cap one command's two streams share (both read in the same task; atomics only
/// because a spawned future must be `Send`).
struct OutputBudget<'a> {
    request: u32,
    left: AtomicU64,
    truncated: AtomicBool,
    local: &'a mpsc::UnboundedSender<Local>,
}

impl OutputBudget<'_> {
    /// Reports a pipe's output until its end. Past the cap the output is read and dropped, so
    /// the command is not blocked on a full pipe.
    async fn forward(&self, pipe: Option<impl tokio::io::AsyncRead + Unpin>, stream: u8) {
        let Some(mut pipe) = pipe else { return };
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let left = self.left.load(Ordering::Relaxed);
            let keep = n.min(usize::try_from(left).unwrap_or(usize::MAX));
            if keep < n {
                self.truncated.store(true, Ordering::Relaxed);
            }
            if keep > 0 {
                self.left.store(left - keep as u64, Ordering::Relaxed);
                let _ = self.local.send(Local::Output {
                    request: self.request,
                    stream,
                    data: buf[..keep].to_vec(),
                });
            }
        }
    }
}

/// Writes the rotated token where it was read from.
fn store_token(path: Option<&std::path::Path>, token: Token) -> std::io::Result<()> {
    let Some(path) = path else {
        tracing::warn!(
            "the token was rotated but came from the command line or the environment; it is kept in memory only"
        );
        return Ok(());
    };
    crate::write_private_file(path, format!("{token}\n").as_bytes())
}

/// An agent that authorizes, then answers every Execute at once with "ok" and status 0.
///
/// For load runs and tests (a whole fleet in one process, or a second connection with the
/// same token): `authorized` is called once, when the server accepts the token. Returns why
/// the connection ended.
pub async fn answering_agent(
    endpoint: &Endpoint,
    token: Token,
    name: &str,
    authorized: impl FnOnce(),
) -> Result<(), String> {
    let mut authorized = Some(authorized);
    let mut ws = oobkit_io::websocket_connect(endpoint, AGENT_PATH, None, 1 << 20)
        .await
        .map_err(|e| e.to_string())?;
    let mut session = AgentSession::new(name, token.bytes(), Instant::now());
    loop {
        while let Some(event) = session.poll_event() {
            match event {
                AgentEvent::Provisioned { .. } => {
                    if let Some(authorized) = authorized.take() {
                        authorized();
                    }
                }
                AgentEvent::Execute { request, .. } => {
                    session.output(request, 1, b"ok\n");
                    session.result(request, 0, 0);
                }
                AgentEvent::Closed(reason) => return Err(reason.to_string()),
                _ => {}
            }
        }
        if !crate::send_pending(&mut ws, || session.poll_transmit()).await {
            return Err("the connection failed".into());
        }
        let deadline = session.poll_timeout();
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(Message::Binary(data))) => session.handle_input(Instant::now(), &data),
                Some(Ok(_)) => {}
                _ => session.handle_eof(),
            },
            () = oobkit_io::sleep_until(deadline) => session.handle_timeout(Instant::now()),
        }
    }
}
