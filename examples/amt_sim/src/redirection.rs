//! The redirection ports (16994 raw, 16995 TLS): one `oobkit_redir::DeviceSession` per
//! connection, session availability from the device model, one session per type, and SOL
//! wired to a shell on a pseudo-terminal.

use std::sync::Arc;
use std::time::Instant;

use oobkit_io::Io;
use oobkit_redir::codec::{IderCommand, SessionKind, StartStatus};
use oobkit_redir::{DeviceSession, DeviceSessionConfig, Event};
use oobkit_sim::bios::{Bios, BiosStep};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::{Admission, KvmBackend, Shared, SolBackend, lock};
use oobkit_sim::SerialConsole;

/// A connection on a redirection port (16994, 16995).
pub(crate) fn serve_raw(
    stream: Box<dyn Io>,
    shared: Arc<Shared>,
    peer: std::net::SocketAddr,
    admission: Admission,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        match serve(stream, &shared, peer.ip(), false, admission).await {
            Ok(reason) => tracing::info!("{peer}: redirection session ended: {reason}"),
            Err(e) => tracing::info!("{peer}: redirection connection failed: {e}"),
        }
    })
}

/// Releases the session type when the connection ends, however it ends.
struct OpenSession<'a> {
    shared: &'a Shared,
    kind: SessionKind,
}

impl Drop for OpenSession<'_> {
    fn drop(&mut self) {
        lock(&self.shared.sessions).release(self.kind);
    }
}

/// The far end of a SOL session.
enum Console {
    /// The built-in simulated serial console.
    Simulated(SerialConsole),
    /// A program on a pseudo-terminal.
    Program {
        _child: Child,
        stdin: ChildStdin,
        stdout: ChildStdout,
    },
    /// Every byte back.
    Echo,
    /// The program exited: a real serial line just goes quiet.
    Gone,
}

impl Console {
    fn start(backend: &SolBackend) -> std::io::Result<Self> {
        let command = match backend {
            SolBackend::Echo => return Ok(Self::Echo),
            SolBackend::Simulated => return Ok(Self::Simulated(SerialConsole::new("oobkit-sim"))),
            SolBackend::Command(c) => c.clone(),
        };
        // util-linux `script` runs the command on a fresh pseudo-terminal with our pipes at
        // the other end: a real tty for the program, no unsafe code here. `setpriv --pdeathsig`
        // (util-linux too) has it killed if this process dies without dropping it (SIGKILL):
        // orphaned, `script` kept copying the program's output into a broken pipe, and a
        // `yes` on the console ran on for good. Its program then sees its terminal hang up.
        let mut child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--", "script"])
            .args(["-q", "-f", "-e", "-c", &command, "/dev/null"])
            .env("TERM", "vt100")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        Ok(Self::Program {
            _child: child,
            stdin,
            stdout,
        })
    }

    /// Serial bytes from the client; what the console answers at once goes to `session`. A
    /// program that stops reading its input does not stall the session: after `limit` the
    /// bytes are dropped, as a serial line with no one listening would.
    async fn input(
        &mut self,
        bytes: &[u8],
        session: &mut DeviceSession,
        limit: std::time::Duration,
    ) -> std::io::Result<()> {
        match self {
            Self::Simulated(console) => {
                console.handle_input(bytes);
                Self::drain(console, session);
            }
            Self::Program { stdin, .. } => {
                if tokio::time::timeout(limit, stdin.write_all(bytes))
                    .await
                    .is_err()
                {
                    tracing::info!("the SOL console program is not reading; input dropped");
                }
            }
            Self::Echo => session.send_sol(bytes),
            Self::Gone => {}
        }
        Ok(())
    }

    fn drain(console: &mut SerialConsole, session: &mut DeviceSession) {
        while let Some(out) = console.poll_output() {
            session.send_sol(&out);
        }
    }
}

async fn read_console(console: &mut Option<Console>, buf: &mut [u8]) -> std::io::Result<usize> {
    match console {
        Some(Console::Program { stdout, .. }) => stdout.read(buf).await,
        _ => std::future::pending().await,
    }
}

/// Ends the sending side, bounded: a TLS close_notify is a write too, and a client that
/// stopped reading must not hold the connection (and its slot) on it.
async fn close<W: tokio::io::AsyncWrite + Unpin>(wr: &mut W, limit: std::time::Duration) {
    let _ = tokio::time::timeout(limit, wr.shutdown()).await;
}

async fn read_stream<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    r.read(buf).await
}

/// `/ws-redirection`: the redirection protocol in websocket binary messages, after HTTP Digest
/// authenticated the user (so the in-band step is an empty Kerberos message).
pub(crate) async fn serve_websocket(
    stream: Box<dyn Io>,
    shared: &Shared,
    peer: std::net::IpAddr,
    admission: Admission,
) -> std::io::Result<()> {
    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(1 << 20);
    config.max_frame_size = Some(1 << 20);
    let ws =
        tokio_tungstenite::WebSocketStream::from_raw_socket(stream, Role::Server, Some(config))
            .await;
    // The session reads and writes a byte stream, as on the raw port.
    let reason = serve(
        oobkit_io::websocket::into_byte_stream(ws, shared.config.write_timeout),
        shared,
        peer,
        true,
        admission,
    )
    .await?;
    tracing::info!("websocket redirection session ended: {reason}");
    Ok(())
}

async fn serve(
    stream: Box<dyn Io>,
    shared: &Shared,
    peer: std::net::IpAddr,
    websocket: bool,
    mut admission: Admission,
) -> std::io::Result<String> {
    let (realm, firmware) = {
        let device = lock(&shared.device);
        let fw = &device.config().firmware;
        let mut parts = fw.split('.').map(|p| p.parse::<u8>().unwrap_or(0));
        (
            device.config().realm.clone(),
            [parts.next().unwrap_or(0), parts.next().unwrap_or(0)],
        )
    };
    let mut config = DeviceSessionConfig::new(
        firmware,
        &realm,
        &shared.config.user,
        &shared.config.password,
    );
    config.auth_types = shared.config.redir_auth.clone();
    config.accept_empty_kerberos = websocket;
    // A fresh 32-character nonce per connection, as AMT.
    let nonce = oobkit_io::random_hex16();
    let mut session = DeviceSession::new(config, Instant::now(), &nonce);
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut console: Option<Console> = None;
    let mut open: Option<OpenSession<'_>> = None;
    let mut requested: Option<SessionKind> = None;
    let mut net_buf = vec![0u8; 16 * 1024];
    let mut con_buf = vec![0u8; 16 * 1024];
    let mut reason = String::from("connection closed");
    let mut rfb: Option<Vec<u8>> = None;
    let mut bios: Option<Bios> = None;
    loop {
        // Events first: they may produce bytes to send.
        while let Some(event) = session.poll_event() {
            match event {
                Event::StartRequested(kind) => {
                    // Only answered here; the slot is taken once the client authenticated,
                    // so clients that ask and stall cannot keep the owner out.
                    let status = lock(&shared.sessions).answer(kind, &lock(&shared.device));
                    if status == StartStatus::Success {
                        requested = Some(kind);
                    }
                    tracing::info!("{kind:?} session requested: {status:?}");
                    session.answer_start(Instant::now(), status);
                }
                Event::Authenticated { .. } => {
                    if !admission.authenticated() {
                        close(&mut wr, shared.config.write_timeout).await;
                        return Ok(format!(
                            "connection limit ({}) of the port reached after authentication",
                            shared.config.max_connections
                        ));
                    }
                    if let Some(kind) = requested.take() {
                        if !lock(&shared.sessions).claim(kind) {
                            tracing::info!("{kind:?} session opened by another client meanwhile");
                            close(&mut wr, shared.config.write_timeout).await;
                            return Ok(
                                "busy: another session of the type opened during authentication"
                                    .into(),
                            );
                        }
                        open = Some(OpenSession { shared, kind });
                    }
                }
                Event::SolReady => {
                    let mut started = Console::start(&shared.config.sol)?;
                    if let Console::Simulated(banner) = &mut started {
                        Console::drain(banner, &mut session);
                    }
                    console = Some(started);
                    let powered = lock(&shared.device).power_state() == 2;
                    session.send_controls(0, if powered { 0x04 } else { 0 });
                }
                Event::SolData(bytes) => {
                    if let Some(console) = &mut console {
                        console
                            .input(&bytes, &mut session, shared.config.write_timeout)
                            .await?;
                    }
                }
                Event::RfbHandoff => {
                    lock(&shared.device).consent_in_session();
                    rfb = Some(Vec::new());
                }
                Event::Rfb(bytes) => {
                    if let Some(early) = &mut rfb {
                        early.extend_from_slice(&bytes);
                    }
                }
                Event::IderEnabled { register } => {
                    tracing::info!(
                        "IDE-R drives enabled (register {register:#04x}): the BIOS boots from them"
                    );
                    let (started, first) = Bios::start(shared.config.ider_read);
                    session.send_ider(IderCommand::CommandWritten, 0, &first.body());
                    bios = Some(started);
                }
                Event::Ider {
                    command,
                    attributes,
                    body,
                    ..
                } => {
                    let Some(reader) = &mut bios else { continue };
                    match reader.handle(command, attributes, &body) {
                        Ok(BiosStep::Send(next)) => {
                            session.send_ider(IderCommand::CommandWritten, 0, &next.body());
                        }
                        Ok(BiosStep::Done(report)) => {
                            tracing::info!("IDE-R boot: {report}");
                            lock(&shared.boots).push(report);
                            bios = None;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            close(&mut wr, shared.config.write_timeout).await;
                            return Ok(format!("IDE-R boot failed: {e}"));
                        }
                    }
                }
                Event::Closed(why) => {
                    if why == oobkit_redir::CloseReason::ClientAuthFailed {
                        crate::record_failure(shared, peer);
                    }
                    reason = why.to_string();
                }
                _ => {}
            }
        }
        while let Some(bytes) = session.poll_transmit() {
            // Bounded: a client that stops reading is dropped and its slot freed, instead of
            // holding the session (and every later request's BUSY) forever.
            match tokio::time::timeout(shared.config.write_timeout, wr.write_all(&bytes)).await {
                Ok(written) => written?,
                Err(_) => {
                    close(&mut wr, shared.config.write_timeout).await;
                    return Ok(format!(
                        "the client stopped reading for {:?}; session dropped",
                        shared.config.write_timeout
                    ));
                }
            }
        }
        if let Some(early) = rfb.take() {
            // From here the connection is raw RFB; the bytes read with the 0x41 go first.
            let reader = std::io::Cursor::new(early).chain(rd);
            let mut stream = tokio::io::join(reader, wr);
            return serve_kvm(&mut stream, &shared.config).await;
        }
        if session.is_closed() {
            close(&mut wr, shared.config.write_timeout).await;
            drop(open);
            return Ok(reason);
        }
        let deadline = session.poll_timeout();
        tokio::select! {
            n = read_stream(&mut rd, &mut net_buf) => {
                let n = n?;
                if n == 0 {
                    session.handle_eof();
                } else {
                    session.handle_input(Instant::now(), &net_buf[..n]);
                }
            }
            n = read_console(&mut console, &mut con_buf) => {
                let n = n?;
                if n == 0 {
                    // The program exited: the console goes quiet, the session stays.
                    console = Some(Console::Gone);
                } else {
                    session.send_sol(&con_buf[..n]);
                }
            }
            () = oobkit_io::sleep_until(deadline) => session.handle_timeout(Instant::now()),
        }
    }
}

async fn serve_kvm<S: AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    config: &crate::SimConfig,
) -> std::io::Result<String> {
    match &config.kvm {
        KvmBackend::Pattern { width, height } => {
            Ok(
                crate::rfb::serve(stream, *width, *height, crate::rfb::Limits::of(config))
                    .await?
                    .to_string(),
            )
        }
        KvmBackend::Forward(target) => {
            let vnc =
                tokio::time::timeout(config.write_timeout, tokio::net::TcpStream::connect(target))
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            // Bounded writes both ways: a viewer (or VNC server) that stops reading ends the
            // session and frees KVM.
            // The same limits as the built-in screen: a viewer that stops reading, or says
            // nothing, gives KVM back.
            let limits = crate::rfb::Limits::of(config);
            let relay = oobkit_io::RelayLimits {
                write: limits.write,
                a_silent: Some(limits.idle),
            };
            let end = oobkit_io::relay_bounded(stream, vnc, relay).await;
            let who = match end.side {
                oobkit_io::Side::A => "the client",
                oobkit_io::Side::B => "the VNC server",
            };
            let what = match end.cause {
                oobkit_io::EndCause::StoppedReading => format!(
                    "{who} stopped reading for {:?}; dropped",
                    config.write_timeout
                ),
                oobkit_io::EndCause::Failed(e) => format!("{who} failed: {e}"),
                oobkit_io::EndCause::Silent => {
                    format!("{who} sent nothing for {:?}; dropped", limits.idle)
                }
                _ => format!("{who} closed"),
            };
            Ok(format!(
                "KVM forwarded to {target}: {what} ({} bytes up, {} down)",
                end.a_to_b, end.b_to_a
            ))
        }
    }
}
