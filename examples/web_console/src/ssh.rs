//! The SSH side of a session, with russh: connect within a bound, check the host key against
//! the gateway's own known_hosts under a policy, authenticate (password, public key,
//! keyboard-interactive), and open a shell on a PTY of the page's size.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use oobkit_term::CloseCode;
use russh::client::{self, AuthResult, Handle, KeyboardInteractiveAuthResponse};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};

use crate::backend::{InputOverflow, MAX_WAITING_INPUT, OUTPUT_BATCH, Step, TermBackend};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// What to do with a host key the gateway's known_hosts does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HostKeyPolicy {
    /// Refuse it (the default): an operator records keys first (`ssh-keyscan`, or a first
    /// connection under `accept-new`).
    Reject,
    /// Trust it the first time and record it; a changed key is still refused.
    AcceptNew,
}

/// How to log in.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub enum Credential {
    /// A password (also answered to keyboard-interactive prompts).
    Password(String),
    /// A private key in OpenSSH or PEM form, with its passphrase if it has one.
    PrivateKey {
        /// The key's text.
        pem: String,
        /// Its passphrase.
        passphrase: Option<String>,
    },
    /// One of the gateway's own key files, by its index in the configuration.
    GatewayKey(usize),
}

/// Never printed.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Password(_) => "Password(..)",
            Self::PrivateKey { .. } => "PrivateKey(..)",
            Self::GatewayKey(_) => "GatewayKey(..)",
        })
    }
}

/// Where and as whom.
#[derive(Debug, Clone)]
pub struct Login {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// How to log in (wiped when dropped).
    pub credential: Credential,
}

/// How the gateway reaches targets.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// The gateway's own known_hosts (OpenSSH format, plain or hashed host fields).
    pub known_hosts: PathBuf,
    /// What to do with a host not in it.
    pub policy: HostKeyPolicy,
    /// Private keys the gateway may log in with ([`Credential::GatewayKey`]).
    pub gateway_keys: Vec<PathBuf>,
    /// Time to connect and log in.
    pub connect_timeout: Duration,
    /// SSH keepalives this often; three unanswered end the connection.
    pub keepalive: Duration,
}

impl SshConfig {
    /// Host keys checked against `known_hosts`, unknown ones refused; no gateway keys; 15 s to
    /// connect and log in; keepalives every 30 s.
    pub fn new(known_hosts: impl Into<PathBuf>) -> Self {
        Self {
            known_hosts: known_hosts.into(),
            policy: HostKeyPolicy::Reject,
            gateway_keys: Vec::new(),
            connect_timeout: Duration::from_secs(15),
            keepalive: Duration::from_secs(30),
        }
    }
}

/// Why a login failed. The texts are for the page and the log: never a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SshError {
    /// No TCP connection.
    #[error("cannot reach {target}: {reason}")]
    Unreachable {
        /// host:port.
        target: String,
        /// Why.
        reason: String,
    },
    /// Connecting and logging in took longer than allowed.
    #[error("{target} did not complete the login within {limit:?}")]
    TimedOut {
        /// host:port.
        target: String,
        /// The bound.
        limit: Duration,
    },
    /// The host key is not in the gateway's known_hosts and the policy refuses unknown keys.
    #[error(
        "the host key of {target} is unknown ({fingerprint}); record it in the gateway's known_hosts or use --host-key-policy accept-new"
    )]
    UnknownHostKey {
        /// host:port.
        target: String,
        /// The key offered.
        fingerprint: String,
    },
    /// The host offered a key other than the one recorded: possibly a man in the middle.
    #[error(
        "the host key of {target} CHANGED: recorded {recorded} (known_hosts line {line}), offered {offered}; refused. If the host was really re-keyed, remove that line"
    )]
    HostKeyChanged {
        /// host:port.
        target: String,
        /// The recorded key's fingerprint.
        recorded: String,
        /// The offered key's fingerprint.
        offered: String,
        /// Its line in known_hosts.
        line: usize,
    },
    /// The known_hosts file cannot be read or written: refused rather than trusting blindly.
    #[error("the gateway's known_hosts {path}: {reason}")]
    KnownHosts {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The server refused the credential.
    #[error("{user}@{target}: authentication failed ({methods})")]
    AuthFailed {
        /// The user.
        user: String,
        /// host:port.
        target: String,
        /// What was tried and what the server would take.
        methods: String,
    },
    /// The key given cannot be read.
    #[error("the private key cannot be read: {0}")]
    BadKey(String),
    /// The SSH connection failed.
    #[error("SSH: {0}")]
    Protocol(String),
}

/// The outcome of the host-key check, kept by the handler for the error.
#[derive(Debug, Default)]
struct HostKeyVerdict(Option<SshError>);

/// The connection's handler: it checks the host key under the policy.
pub struct Checker {
    host: String,
    port: u16,
    config: Arc<SshConfig>,
    verdict: Arc<std::sync::Mutex<HostKeyVerdict>>,
}

fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

impl Checker {
    fn target(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn check(&self, key: &PublicKey) -> Result<(), SshError> {
        let path = &self.config.known_hosts;
        let known_hosts_error = |e: &dyn std::fmt::Display| SshError::KnownHosts {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        match russh::keys::check_known_hosts_path(&self.host, self.port, key, path) {
            Ok(true) => Ok(()),
            Ok(false) => match self.config.policy {
                HostKeyPolicy::Reject => Err(SshError::UnknownHostKey {
                    target: self.target(),
                    fingerprint: fingerprint(key),
                }),
                HostKeyPolicy::AcceptNew => {
                    russh::keys::known_hosts::learn_known_hosts_path(
                        &self.host, self.port, key, path,
                    )
                    .map_err(|e| known_hosts_error(&e))?;
                    restrict(path);
                    tracing::warn!(
                        "recorded the host key of {} ({}) in {}",
                        self.target(),
                        fingerprint(key),
                        path.display()
                    );
                    Ok(())
                }
            },
            Err(russh::keys::Error::KeyChanged { line }) => {
                let recorded =
                    russh::keys::known_hosts::known_host_keys_path(&self.host, self.port, path)
                        .ok()
                        .and_then(|keys| keys.into_iter().find(|(l, _)| *l == line))
                        .map_or_else(|| "?".to_owned(), |(_, k)| fingerprint(&k));
                Err(SshError::HostKeyChanged {
                    target: self.target(),
                    recorded,
                    offered: fingerprint(key),
                    line,
                })
            }
            Err(e) => Err(known_hosts_error(&e)),
        }
    }
}

/// known_hosts is the gateway's: only its owner reads and writes it.
fn restrict(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

impl client::Handler for Checker {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = offered else {
            // Host certificates need a CA line this gateway's known_hosts reader does not
            // take: refused, and said so.
            *self.verdict.lock().expect("not poisoned") = HostKeyVerdict(Some(SshError::Protocol(
                "the host offered a certificate; only plain host keys are checked".into(),
            )));
            return Ok(false);
        };
        let verdict = self.check(key);
        let ok = verdict.is_ok();
        *self.verdict.lock().expect("not poisoned") = HostKeyVerdict(verdict.err());
        Ok(ok)
    }
}

/// A logged-in shell on a PTY: the console's SSH backend.
///
/// Input and resizes go to the target from a task of their own: russh's connection stops taking
/// messages while a channel's output waits unread (the backpressure that stops `yes`), and a
/// write awaited in the run loop would then stop the reads that drain it.
pub struct SshTerm {
    output: ChannelReadHalf,
    to_target: tokio::sync::mpsc::Sender<ToTarget>,
    writer: tokio::task::JoinHandle<()>,
    waiting: std::collections::VecDeque<ToTarget>,
    waiting_bytes: usize,
    connection: Handle<Checker>,
    target: String,
    exit_status: Option<u32>,
    exit_signal: Option<String>,
    closed: bool,
}

/// What goes to the target.
enum ToTarget {
    Input(bytes::Bytes),
    Resize { cols: u16, rows: u16 },
}

impl SshTerm {
    fn new(
        output: ChannelReadHalf,
        input: ChannelWriteHalf<client::Msg>,
        connection: Handle<Checker>,
        target: String,
    ) -> Self {
        let (to_target, mut for_target) = tokio::sync::mpsc::channel::<ToTarget>(16);
        let writer = tokio::spawn(async move {
            while let Some(message) = for_target.recv().await {
                let sent = match message {
                    ToTarget::Input(bytes) => input.data_bytes(bytes).await,
                    ToTarget::Resize { cols, rows } => {
                        input.window_change(cols.into(), rows.into(), 0, 0).await
                    }
                };
                if sent.is_err() {
                    break;
                }
            }
        });
        Self {
            output,
            to_target,
            writer,
            waiting: std::collections::VecDeque::new(),
            waiting_bytes: 0,
            connection,
            target,
            exit_status: None,
            exit_signal: None,
            closed: false,
        }
    }

    /// How the session ended, once the channel closed.
    fn ended(&self) -> Step {
        let (code, reason) = match (self.exit_status, &self.exit_signal) {
            (Some(status), _) => (
                CloseCode::Exited,
                format!("the shell exited with status {status}"),
            ),
            (None, Some(signal)) => (
                CloseCode::Exited,
                format!("the shell was killed by signal {signal}"),
            ),
            (None, None) if self.connection.is_closed() => (
                CloseCode::TargetLost,
                format!("the connection to {} was lost", self.target),
            ),
            (None, None) => (CloseCode::TargetLost, "the shell ended".to_owned()),
        };
        Step::Ended { code, reason }
    }
}

impl TermBackend for SshTerm {
    fn input(&mut self, bytes: bytes::Bytes) -> Result<(), InputOverflow> {
        self.waiting_bytes += bytes.len();
        self.waiting.push_back(ToTarget::Input(bytes));
        if self.waiting_bytes > MAX_WAITING_INPUT {
            return Err(InputOverflow);
        }
        Ok(())
    }

    fn resize(&mut self, cols: u16, rows: u16) {
        self.waiting.push_back(ToTarget::Resize { cols, rows });
    }

    fn has_pending_input(&self) -> bool {
        !self.waiting.is_empty()
    }

    async fn step(&mut self, read_output: bool) -> Step {
        if self.closed {
            return self.ended();
        }
        loop {
            tokio::select! {
                biased;
                permit = self.to_target.reserve(), if !self.waiting.is_empty() => {
                    let Ok(permit) = permit else {
                        return Step::Ended {
                            code: CloseCode::TargetLost,
                            reason: format!("the connection to {} was lost", self.target),
                        };
                    };
                    let message = self.waiting.pop_front().expect("not empty");
                    if let ToTarget::Input(bytes) = &message {
                        self.waiting_bytes -= bytes.len();
                    }
                    permit.send(message);
                    return Step::Progress;
                }
                message = self.output.wait(), if read_output => {
                    // What russh already holds goes out as one frame.
                    let mut batch: Vec<u8> = Vec::new();
                    let mut next = Some(message);
                    while let Some(message) = next.take() {
                        match message {
                            Some(ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. }) => {
                                batch.extend_from_slice(&data);
                            }
                            Some(ChannelMsg::ExitStatus { exit_status }) => {
                                self.exit_status = Some(exit_status);
                            }
                            Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                                self.exit_signal = Some(format!("{signal_name:?}"));
                            }
                            Some(ChannelMsg::Close) | None => {
                                self.closed = true;
                                break;
                            }
                            Some(_) => {}
                        }
                        if batch.len() < OUTPUT_BATCH {
                            next = self.output.wait().now_or_never();
                        }
                    }
                    if !batch.is_empty() {
                        return Step::Output(batch);
                    }
                    if self.closed {
                        return self.ended();
                    }
                }
            }
        }
    }

    async fn close(self) {
        self.writer.abort();
        let _ = self
            .connection
            .disconnect(russh::Disconnect::ByApplication, "session ended", "en")
            .await;
    }
}

/// The line discipline xterm.js expects, sent with the PTY request as OpenSSH's client sends
/// its own terminal's: Ctrl-C, Ctrl-\\, Ctrl-Z signal; DEL erases (xterm.js's Backspace);
/// input is UTF-8.
const TERMINAL_MODES: &[(russh::Pty, u32)] = &[
    (russh::Pty::VINTR, 0x03),
    (russh::Pty::VQUIT, 0x1c),
    (russh::Pty::VERASE, 0x7f),
    (russh::Pty::VKILL, 0x15),
    (russh::Pty::VEOF, 0x04),
    (russh::Pty::VSTART, 0x11),
    (russh::Pty::VSTOP, 0x13),
    (russh::Pty::VSUSP, 0x1a),
    (russh::Pty::VWERASE, 0x17),
    (russh::Pty::VLNEXT, 0x16),
    (russh::Pty::ICRNL, 1),
    (russh::Pty::IXON, 0),
    (russh::Pty::ISIG, 1),
    (russh::Pty::ICANON, 1),
    (russh::Pty::IEXTEN, 1),
    (russh::Pty::ECHO, 1),
    (russh::Pty::ECHOE, 1),
    (russh::Pty::ECHOK, 1),
    (russh::Pty::ECHOCTL, 1),
    (russh::Pty::ECHOKE, 1),
    (russh::Pty::OPOST, 1),
    (russh::Pty::ONLCR, 1),
];

/// The terminal type announced to the target: what xterm.js emulates.
const TERM: &str = "xterm-256color";

/// Connects, checks the host key, logs in and opens a shell on a `cols` x `rows` PTY, all
/// within [`SshConfig::connect_timeout`].
pub async fn open_shell(
    config: Arc<SshConfig>,
    login: Login,
    cols: u16,
    rows: u16,
) -> Result<SshTerm, SshError> {
    let target = format!("{}:{}", login.host, login.port);
    let limit = config.connect_timeout;
    match tokio::time::timeout(limit, open(config, login, cols, rows)).await {
        Ok(result) => result,
        Err(_) => Err(SshError::TimedOut { target, limit }),
    }
}

async fn open(
    config: Arc<SshConfig>,
    login: Login,
    cols: u16,
    rows: u16,
) -> Result<SshTerm, SshError> {
    let target = format!("{}:{}", login.host, login.port);
    let verdict = Arc::new(std::sync::Mutex::new(HostKeyVerdict::default()));
    let checker = Checker {
        host: login.host.clone(),
        port: login.port,
        config: Arc::clone(&config),
        verdict: Arc::clone(&verdict),
    };
    let ssh_config = Arc::new(client::Config {
        keepalive_interval: Some(config.keepalive),
        keepalive_max: 3,
        nodelay: true,
        // What the target may send ahead of the page: its window, and the messages russh
        // queues for a channel. Both small, so that Ctrl-C after `yes` shows at once (the
        // byte credit then holds the rest back); 256 KiB still fills a 50 ms link at 5 MB/s,
        // about what a browser terminal renders.
        window_size: 256 * 1024,
        channel_buffer_size: 8,
        ..client::Config::default()
    });
    let tcp = tokio::net::TcpStream::connect((login.host.as_str(), login.port))
        .await
        .map_err(|e| SshError::Unreachable {
            target: target.clone(),
            reason: e.to_string(),
        })?;
    let _ = tcp.set_nodelay(true);
    let mut connection = match client::connect_stream(ssh_config, tcp, checker).await {
        Ok(connection) => connection,
        Err(e) => {
            let refused = verdict.lock().expect("not poisoned").0.take();
            return Err(refused.unwrap_or_else(|| SshError::Protocol(e.to_string())));
        }
    };
    authenticate(&mut connection, &config, &login, &target).await?;
    let channel = connection
        .channel_open_session()
        .await
        .map_err(|e| SshError::Protocol(format!("no session channel: {e}")))?;
    channel
        .request_pty(false, TERM, cols.into(), rows.into(), 0, 0, TERMINAL_MODES)
        .await
        .map_err(|e| SshError::Protocol(format!("no PTY: {e}")))?;
    channel
        .request_shell(false)
        .await
        .map_err(|e| SshError::Protocol(format!("no shell: {e}")))?;
    let (output, input) = channel.split();
    Ok(SshTerm::new(output, input, connection, target))
}

async fn authenticate(
    connection: &mut Handle<Checker>,
    config: &SshConfig,
    login: &Login,
    target: &str,
) -> Result<(), SshError> {
    let user = login.user.as_str();
    let protocol = |e: russh::Error| SshError::Protocol(e.to_string());
    let failed = |methods: String| SshError::AuthFailed {
        user: user.to_owned(),
        target: target.to_owned(),
        methods,
    };
    match &login.credential {
        Credential::Password(password) => {
            let result = connection
                .authenticate_password(user, password.as_str())
                .await
                .map_err(protocol)?;
            let remaining = match result {
                AuthResult::Success => return Ok(()),
                AuthResult::Failure {
                    remaining_methods, ..
                } => remaining_methods,
            };
            // Servers that take passwords only through keyboard-interactive (PAM): answer
            // its prompts with the same password.
            if remaining.contains(&russh::MethodKind::KeyboardInteractive) {
                if keyboard_interactive(connection, user, password).await? {
                    return Ok(());
                }
                return Err(failed("password and keyboard-interactive refused".into()));
            }
            Err(failed(format!(
                "password refused; the server takes {}",
                describe(&remaining)
            )))
        }
        Credential::PrivateKey { pem, passphrase } => {
            let key = russh::keys::decode_secret_key(pem, passphrase.as_deref())
                .map_err(|e| SshError::BadKey(e.to_string()))?;
            public_key(connection, user, key).await.map_err(failed)
        }
        Credential::GatewayKey(index) => {
            let path = config
                .gateway_keys
                .get(*index)
                .ok_or_else(|| SshError::BadKey(format!("no gateway key {index}")))?;
            let key = russh::keys::load_secret_key(path, None)
                .map_err(|e| SshError::BadKey(format!("{}: {e}", path.display())))?;
            public_key(connection, user, key).await.map_err(failed)
        }
    }
}

async fn public_key(
    connection: &mut Handle<Checker>,
    user: &str,
    key: russh::keys::PrivateKey,
) -> Result<(), String> {
    let hash = connection
        .best_supported_rsa_hash()
        .await
        .map_err(|e| e.to_string())?
        .flatten();
    let result = connection
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
        .await
        .map_err(|e| e.to_string())?;
    match result {
        AuthResult::Success => Ok(()),
        AuthResult::Failure {
            remaining_methods, ..
        } => Err(format!(
            "the key was refused; the server takes {}",
            describe(&remaining_methods)
        )),
    }
}

/// Answers keyboard-interactive rounds: every hidden prompt gets the password, visible ones an
/// empty answer; at most 5 rounds.
async fn keyboard_interactive(
    connection: &mut Handle<Checker>,
    user: &str,
    password: &str,
) -> Result<bool, SshError> {
    let protocol = |e: russh::Error| SshError::Protocol(e.to_string());
    let mut reply = connection
        .authenticate_keyboard_interactive_start(user, None)
        .await
        .map_err(protocol)?;
    for _ in 0..5 {
        match reply {
            KeyboardInteractiveAuthResponse::Success => return Ok(true),
            KeyboardInteractiveAuthResponse::Failure { .. } => return Ok(false),
            KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => {
                let answers = prompts
                    .iter()
                    .map(|p| {
                        if p.echo {
                            String::new()
                        } else {
                            password.to_owned()
                        }
                    })
                    .collect();
                reply = connection
                    .authenticate_keyboard_interactive_respond(answers)
                    .await
                    .map_err(protocol)?;
            }
        }
    }
    Ok(false)
}

fn describe(methods: &russh::MethodSet) -> String {
    let names: Vec<&str> = methods.iter().map(<&str>::from).collect();
    if names.is_empty() {
        "nothing more".into()
    } else {
        names.join(", ")
    }
}
