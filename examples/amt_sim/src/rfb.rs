//! The simulator's KVM screen: RFB behind the redirection handoff, with AMT's constraints
//! (`docs/amt-redirection.md` section 2.4): RFB 3.3, 3.7 and 3.8 clients, security type None
//! (the redirection layer authenticated the user), Raw encoding in tiles of at most 64x64,
//! DesktopSize, and the display-buffer limit: a framebuffer over 9,216,000 bytes in the
//! client's pixel format makes AMT close the session silently, and so does this.
//!
//! The protocol is `oobkit-rfb`'s; this is the IO around it. The picture is its colour-bar test
//! pattern, so a client's capture can be checked pixel by pixel.

use std::time::Instant;

pub use oobkit_rfb::{BARS, pattern};
use oobkit_rfb::{
    ClientMessage, DESKTOP_SIZE, HandshakeEvent, PixelFormat, Security, ServerHandshake,
    ServerInit, decode_client, test_pattern_update,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// AMT's display-buffer limit in bytes.
pub const DISPLAY_BUFFER_LIMIT: u64 = 9_216_000;

/// Why the RFB session ended.
#[derive(Debug)]
pub enum RfbEnd {
    /// The client closed.
    Closed,
    /// The framebuffer in the client's format exceeds the display buffer (AMT closes silently).
    DisplayBufferLimit(u64),
    /// The client spoke something that is not RFB.
    Protocol(String),
    /// The client's VNC password was wrong (port 5900).
    PasswordRefused,
    /// The client sent nothing for the idle limit: the session ends and KVM is free again.
    Idle(std::time::Duration),
}

/// The time limits of an RFB connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A write that does not finish in this time drops the viewer (it stopped reading).
    pub write: std::time::Duration,
    /// A viewer that sends nothing for this long is dropped, so that a silent one cannot hold
    /// the device's one KVM session.
    pub idle: std::time::Duration,
}

impl Limits {
    /// The simulator's: its write timeout and its idle timeout.
    pub fn of(config: &crate::SimConfig) -> Self {
        Self {
            write: config.write_timeout,
            idle: config.idle_timeout,
        }
    }
}

impl std::fmt::Display for RfbEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Closed => f.write_str("KVM session closed by the client"),
            Self::DisplayBufferLimit(size) => write!(
                f,
                "KVM closed silently: a {size}-byte framebuffer exceeds the \
                 {DISPLAY_BUFFER_LIMIT}-byte display buffer (as AMT does)"
            ),
            Self::Protocol(why) => write!(f, "KVM: bad RFB from the client: {why}"),
            Self::PasswordRefused => f.write_str("KVM: wrong VNC password"),
            Self::Idle(limit) => write!(f, "KVM: the viewer sent nothing for {limit:?}; closed"),
        }
    }
}

async fn write<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    limit: std::time::Duration,
) -> std::io::Result<()> {
    tokio::time::timeout(limit, stream.write_all(bytes))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// The RFB handshake with `security`: the client bytes that followed ClientInit once the
/// session runs, or why it does not.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    width: u16,
    height: u16,
    security: Security,
    limits: Limits,
) -> std::io::Result<Result<Vec<u8>, RfbEnd>> {
    let init = ServerInit::new(width, height, "Intel(r) AMT KVM (oobkit simulator)");
    let mut handshake = ServerHandshake::new(security, init, Instant::now());
    let mut buf = vec![0u8; 4096];
    loop {
        while let Some(bytes) = handshake.poll_transmit() {
            write(stream, &bytes, limits.write).await?;
        }
        match handshake.poll_event() {
            Some(HandshakeEvent::Ready { leftover, .. }) => return Ok(Ok(leftover)),
            Some(HandshakeEvent::Failed(why)) => return Ok(Err(RfbEnd::Protocol(why.into()))),
            Some(HandshakeEvent::PasswordRefused) => return Ok(Err(RfbEnd::PasswordRefused)),
            Some(_) => return Ok(Err(RfbEnd::Closed)),
            None => {}
        }
        tokio::select! {
            n = stream.read(&mut buf) => match n? {
                0 => handshake.handle_eof(),
                n => handshake.handle_input(Instant::now(), &buf[..n]),
            },
            () = oobkit_io::sleep_until(handshake.poll_timeout()) => {
                handshake.handle_timeout(Instant::now());
            }
        }
    }
}

/// Serves RFB on `stream` (everything after the 0x41 reply), with a `width` x `height` screen
/// and security None (the redirection layer authenticated the user). Writes and silence are
/// bounded by `limits`: a viewer that stops reading, or sends nothing, loses the session (and
/// frees the KVM slot) instead of holding it.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    width: u16,
    height: u16,
    limits: Limits,
) -> std::io::Result<RfbEnd> {
    match handshake(stream, width, height, Security::None, limits).await? {
        Ok(leftover) => screen(stream, leftover, width, height, limits).await,
        Err(end) => Ok(end),
    }
}

/// The session after the handshake: the test pattern on request. `pending` are client bytes
/// already read.
pub async fn screen<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    mut pending: Vec<u8>,
    width: u16,
    height: u16,
    limits: Limits,
) -> std::io::Result<RfbEnd> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut format = PixelFormat::DEFAULT;
    let mut desktop_size = false;
    let mut sent_size = false;
    loop {
        let (message, used) = match decode_client(&pending) {
            Ok(Some(decoded)) => decoded,
            Ok(None) => {
                let Ok(n) = tokio::time::timeout(limits.idle, stream.read(&mut buf)).await else {
                    return Ok(RfbEnd::Idle(limits.idle));
                };
                let n = n?;
                if n == 0 {
                    return Ok(RfbEnd::Closed);
                }
                pending.extend_from_slice(&buf[..n]);
                continue;
            }
            Err(e) => return Ok(RfbEnd::Protocol(e.to_string())),
        };
        pending.drain(..used);
        match message {
            ClientMessage::SetPixelFormat(f) => format = f,
            ClientMessage::SetEncodings(list) => desktop_size = list.contains(&DESKTOP_SIZE),
            ClientMessage::FramebufferUpdateRequest { incremental, .. } => {
                let size = u64::from(width) * u64::from(height) * format.bytes_per_pixel() as u64;
                if size > DISPLAY_BUFFER_LIMIT {
                    return Ok(RfbEnd::DisplayBufferLimit(size));
                }
                if incremental && sent_size {
                    // Nothing changes on this screen: answer slowly with an empty update, so
                    // that a polling client neither spins nor waits forever.
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    write(stream, &[0, 0, 0, 0], limits.write).await?;
                    continue;
                }
                let update =
                    test_pattern_update(width, height, &format, desktop_size && !sent_size);
                sent_size = true;
                write(stream, &update, limits.write).await?;
            }
            // Input and cut text (AMT's KvmExtCmd rides in it) change nothing here.
            _ => {}
        }
    }
}

/// A connection on the standard RFB port (AMT: 5900). Open only while `Is5900PortEnabled` is
/// true, KVM is enabled and an `RFBPassword` is set, as on AMT; then VNC Authentication
/// (security type 2) with that password, the same consent rule as redirection KVM, and the
/// one KVM session of the device (a viewer here and one over redirection exclude each other).
pub(crate) fn serve_port(
    mut stream: Box<dyn oobkit_io::Io>,
    shared: std::sync::Arc<crate::Shared>,
    peer: std::net::SocketAddr,
    mut admission: crate::Admission,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    use oobkit_redir::codec::SessionKind;
    Box::pin(async move {
        let config = &shared.config;
        let (width, height) = match config.kvm {
            crate::KvmBackend::Pattern { width, height } => (width, height),
            // A forwarded screen is for the redirection port only.
            crate::KvmBackend::Forward(_) => (1024, 768),
        };
        let (password, allowed) = {
            let device = crate::lock(&shared.device);
            (
                device.port_5900_password().map(str::to_owned),
                device.kvm_session_allowed(),
            )
        };
        let Some(password) = password else {
            tracing::info!(
                "{peer}: port 5900 is closed (Is5900PortEnabled false, KVM disabled or no RFBPassword)"
            );
            return;
        };
        let security = if allowed {
            Security::VncPassword(oobkit_rfb::VncAuth::new(
                &password,
                oobkit_io::random_bytes(),
            ))
        } else {
            Security::Refuse("user consent is required: start it with amt consent".into())
        };
        let limits = Limits::of(config);
        let end = match handshake(&mut stream, width, height, security, limits).await {
            Ok(Ok(leftover)) => {
                if !admission.authenticated() {
                    tracing::warn!("{peer}: port 5900: connection limit reached, closing");
                    return;
                }
                if !crate::lock(&shared.sessions).claim(SessionKind::Kvm) {
                    tracing::info!("{peer}: port 5900: a KVM session is already open; closing");
                    return;
                }
                crate::lock(&shared.device).consent_in_session();
                let end = screen(&mut stream, leftover, width, height, limits).await;
                crate::lock(&shared.sessions).release(SessionKind::Kvm);
                end
            }
            Ok(Err(RfbEnd::PasswordRefused)) => {
                crate::record_failure(&shared, peer.ip());
                Ok(RfbEnd::PasswordRefused)
            }
            Ok(Err(end)) => Ok(end),
            Err(e) => Err(e),
        };
        match end {
            Ok(end) => tracing::info!("{peer}: port 5900: {end}"),
            Err(e) => tracing::info!("{peer}: port 5900: {e}"),
        }
    })
}
