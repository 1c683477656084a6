//! `kvm_vnc`: the KVM of an Intel AMT on a local VNC port, for any VNC viewer.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use oobkit_io::redirection::{RedirTarget, open_session};
use oobkit_io::{EndCause, Side};
use oobkit_launch::{
    AmtArgs, LocalPort, StallArgs, listen_and_launch, resolve, say, serve_one_at_a_time,
};
use oobkit_redir::codec::SessionKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The KVM of an Intel AMT on a local VNC port, for any VNC viewer.
///
/// Listens on a local port, then (if configured) starts a viewer on it; each viewer connection
/// opens a KVM session and the RFB bytes flow through untouched both ways. Without --host, a
/// simulated AMT (showing colour bars) runs in this process.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    amt: AmtArgs,
    /// Local address for the VNC port (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Viewer to start once listening: tigervnc, none, or a command template with {host} and
    /// {port}. Default: TigerVNC if installed (with the settings that suit AMT: ZRLE, low
    /// colour, no JPEG), else none.
    #[arg(long)]
    viewer: Option<String>,
    #[command(flatten)]
    stall: StallArgs,
}

const VIEWERS: [(&str, &str, &str); 1] = [(
    "tigervnc",
    "vncviewer",
    "vncviewer -PreferredEncoding=ZRLE -LowColorLevel=2 -NoJPEG -AutoSelect=0 -FullColor=0 {host}::{port}",
)];

/// Tells a viewer why there is no screen, the RFB way (the viewer shows the text).
async fn refuse(local: &mut TcpStream, reason: &str) -> std::io::Result<()> {
    use oobkit_rfb::{Security, ServerHandshake, ServerInit};
    let now = std::time::Instant::now();
    let init = ServerInit::new(0, 0, "");
    let mut handshake = ServerHandshake::new(Security::Refuse(reason.into()), init, now);
    let mut buf = [0u8; 64];
    // Bounded: a viewer that never sends its version is dropped with the handshake deadline.
    let deadline = tokio::time::Instant::now() + oobkit_rfb::HANDSHAKE_TIMEOUT;
    loop {
        while let Some(bytes) = handshake.poll_transmit() {
            local.write_all(&bytes).await?;
        }
        if handshake.poll_event().is_some() {
            return Ok(());
        }
        let n = tokio::time::timeout_at(deadline, local.read(&mut buf))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if n == 0 {
            return Ok(());
        }
        handshake.handle_input(std::time::Instant::now(), &buf[..n]);
    }
}

async fn serve_viewer(
    mut local: TcpStream,
    target: &RedirTarget,
    stall_limit: Duration,
) -> std::io::Result<String> {
    local.set_nodelay(true).ok();
    // RFB viewers wait for the server to speak first, so anything readable now is the viewer
    // leaving: then stop at once instead of holding the bridge for the AMT's handshake.
    let opening = open_session(target, SessionKind::Kvm);
    tokio::pin!(opening);
    let opened = loop {
        tokio::select! {
            opened = &mut opening => break opened,
            ready = local.readable() => {
                ready?;
                let mut probe = [0u8; 1];
                match local.try_read(&mut probe) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Ok(0) | Err(_) => return Ok("viewer left before the KVM session opened".into()),
                    Ok(_) => return Ok("viewer spoke before the server (not RFB); closed".into()),
                }
            }
        }
    };
    let session = match opened {
        Ok(s) => s,
        Err(e) => {
            let reason = format!("AMT KVM session refused: {e}");
            let _ = tokio::time::timeout(Duration::from_secs(5), refuse(&mut local, &reason)).await;
            return Ok(reason);
        }
    };
    let rfb = session.into_rfb();
    local.write_all(&rfb.early).await?;
    let started = Instant::now();
    // Both ways with backpressure, each write bounded: a viewer that stops reading (or an AMT
    // that does) ends the session instead of holding the bridge, and the AMT's KVM, forever.
    // No silence limit: the AMT ends a KVM session without input itself (about 3 minutes).
    let limits = oobkit_io::RelayLimits {
        write: stall_limit,
        a_silent: None,
    };
    let end = oobkit_io::relay_bounded(local, rfb.stream, limits).await;
    let after = started.elapsed().as_secs();
    let (up, down) = (end.a_to_b, end.b_to_a);
    Ok(match (end.side, end.cause) {
        (Side::A, EndCause::StoppedReading) => format!(
            "the viewer took nothing for {} s; session ended so that KVM is free again",
            stall_limit.as_secs()
        ),
        (Side::B, EndCause::StoppedReading) => format!(
            "the AMT took no viewer input for {} s {after} s into the KVM session; ended",
            stall_limit.as_secs()
        ),
        (Side::A, _) => format!("viewer closed the session ({up} bytes to the device)"),
        // Say what is known: a broken connection is not a silent close, and a silent close has
        // several known causes, none of which the AMT names.
        (Side::B, EndCause::Failed(e)) => format!(
            "the connection to the AMT failed {after} s into the KVM session: {e} (the device \
             or the network went away; nothing says the session itself was refused)"
        ),
        (Side::B, _) if after < 30 => format!(
            "the AMT closed the KVM session {after} s after it started ({down} bytes \
             received) without giving a reason. Known causes: the screen in the viewer's pixel \
             format exceeds its 9,216,000-byte display buffer (use 8 or 16 bits per pixel: \
             TigerVNC -LowColorLevel=1 or -FullColor=0), user consent is required (amt consent \
             start), or another viewer took over"
        ),
        (Side::B, _) => format!(
            "the AMT closed the KVM session after {after} s ({down} bytes) without giving a \
             reason; AMT ends sessions after about 3 minutes without input"
        ),
    })
}

async fn run(cli: Cli) -> Result<(), String> {
    #[cfg(feature = "simulator")]
    let (target, _simulator) = resolve(&cli.amt, async |transport| {
        amt_sim::Simulator::start_for_launcher(transport, |_| {}).await
    })
    .await?;
    #[cfg(not(feature = "simulator"))]
    let (target, _simulator) = resolve(&cli.amt, async |_| {
        Err::<(_, ()), _>("built without the simulator: name an AMT with --host".to_owned())
    })
    .await?;
    let target = Arc::new(target);
    let what = format!("KVM of {}", target.endpoint.authority());
    let port = LocalPort {
        scheme: "vnc",
        what: &what,
        known: &VIEWERS,
        manual: "connect a VNC viewer to {host}::{port}",
    };
    let stall_limit = cli.stall.limit();
    // The client starts only once the port listens.
    let (listener, child) = listen_and_launch(cli.listen, port, cli.viewer.as_deref()).await?;
    serve_one_at_a_time(
        listener,
        child,
        |stream, peer| {
            let target = Arc::clone(&target);
            Box::pin(async move {
                match serve_viewer(stream, &target, stall_limit).await {
                    Ok(why) => say(&format!("{peer}: {why}")),
                    Err(e) => tracing::info!("{peer}: {e}"),
                }
            })
        },
        // AMT allows one KVM session; a second viewer is told so in RFB terms.
        |mut stream| {
            Box::pin(async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    refuse(&mut stream, "another viewer is using the KVM session"),
                )
                .await;
            })
        },
    )
    .await;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    oobkit_io::init_logging("info");
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvm_vnc: {e}");
            ExitCode::FAILURE
        }
    }
}
