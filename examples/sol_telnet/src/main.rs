//! `sol_telnet`: the Serial-over-LAN console of an Intel AMT on a local telnet port.

mod telnet;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use oobkit_io::redirection::{MAX_SEND_BACKLOG, RedirTarget, SolEvent, open_session};
use oobkit_launch::{
    AmtArgs, LocalPort, StallArgs, listen_and_launch, resolve, serve_one_at_a_time,
};
use oobkit_redir::codec::SessionKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The Serial-over-LAN console of an Intel AMT on a local telnet port.
///
/// Listens on a local port, then (if configured) starts a terminal client on it; each telnet
/// connection opens a SOL session to the AMT and bridges the two, one client at a time, until
/// either side ends. Without --host, a simulated AMT is started in this process, so the whole
/// chain can be tried on any machine: its console is a simulated serial console (banner,
/// login prompt, a few built-in commands) unless --sol-command names a real program.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    amt: AmtArgs,
    /// Local address for the telnet port (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Terminal client to start once listening: putty, telnet, none, or a command template
    /// with {host} and {port}. Default: PuTTY if installed, else telnet, else none.
    #[arg(long)]
    client: Option<String>,
    /// Simulated AMT only: run this program on the SOL console, on a pseudo-terminal (for
    /// example "/bin/sh -i"). Anyone who can connect to the local telnet port gets it, so the
    /// default is the harmless simulated console.
    #[arg(long, conflicts_with = "host")]
    sol_command: Option<String>,
    #[command(flatten)]
    stall: StallArgs,
}

/// Writes to the telnet client, bounded: one that stops reading ends the session (the bridge
/// serves one client at a time) instead of blocking the bridge forever.
async fn write_local(local: &mut TcpStream, bytes: &[u8], limit: Duration) -> std::io::Result<()> {
    match tokio::time::timeout(limit, local.write_all(bytes)).await {
        Ok(written) => written,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "the telnet client took nothing for {} s; session ended",
                limit.as_secs()
            ),
        )),
    }
}

async fn serve_client(
    mut local: TcpStream,
    target: &RedirTarget,
    stall: Duration,
) -> std::io::Result<String> {
    local.set_nodelay(true).ok();
    write_local(&mut local, &telnet::GREETING, stall).await?;
    // The telnet client may leave while the AMT takes its time (a device that accepts TCP and
    // never answers takes the whole handshake deadline): then stop at once, so the bridge is
    // free for the next client. What it types meanwhile is kept for the session.
    let mut early = Vec::new();
    let opening = open_session(target, SessionKind::Sol);
    tokio::pin!(opening);
    let opened = loop {
        let mut chunk = [0u8; 1024];
        tokio::select! {
            opened = &mut opening => break opened,
            n = local.read(&mut chunk) => match n {
                Ok(0) | Err(_) => return Ok("telnet client left before the SOL session opened".into()),
                // Bounded: type-ahead beyond 64 KiB while the device is silent is dropped.
                Ok(n) if early.len() < 64 * 1024 => early.extend_from_slice(&chunk[..n]),
                Ok(_) => {}
            },
        }
    };
    let mut session = match opened {
        Ok(s) => s,
        Err(e) => {
            let line = format!("\r\nsol_telnet: cannot open the SOL session: {e}\r\n");
            write_local(&mut local, line.as_bytes(), stall).await?;
            return Ok(format!("SOL session refused: {e}"));
        }
    };
    let mut decoder = telnet::Decoder::default();
    let mut buf = vec![0u8; 16 * 1024];
    let (mut data, mut replies, mut out) = (Vec::new(), Vec::new(), Vec::new());
    if !early.is_empty() {
        decoder.decode(&early, &mut data, &mut replies);
        if !replies.is_empty() {
            write_local(&mut local, &replies, stall).await?;
        }
        session.send(&data);
    }
    loop {
        tokio::select! {
            // Backpressure: no more input is taken while the device has not taken what came.
            n = local.read(&mut buf), if session.backlog() < MAX_SEND_BACKLOG => {
                let n = n?;
                if n == 0 {
                    session.end().await;
                    return Ok("telnet client disconnected".into());
                }
                data.clear();
                replies.clear();
                decoder.decode(&buf[..n], &mut data, &mut replies);
                if !replies.is_empty() {
                    write_local(&mut local, &replies, stall).await?;
                }
                session.send(&data);
            }
            event = session.wait() => match event {
                Ok(Some(SolEvent::Data(bytes))) => {
                    out.clear();
                    telnet::escape(&bytes, &mut out);
                    write_local(&mut local, &out, stall).await?;
                }
                Ok(Some(SolEvent::Closed(reason))) => {
                    write_local(&mut local, format!("\r\n[SOL session ended: {reason}]\r\n").as_bytes(), stall).await?;
                    return Ok(reason.to_string());
                }
                Ok(None) => {}
                Err(e) => {
                    write_local(&mut local, format!("\r\n[AMT connection failed: {e}]\r\n").as_bytes(), stall).await?;
                    return Ok(e.to_string());
                }
            },
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    // The target: a real AMT, or the simulator in this process (kept alive here).
    #[cfg(feature = "simulator")]
    let (target, _simulator) = {
        let sol_command = cli.sol_command.clone();
        resolve(&cli.amt, async |transport| {
            amt_sim::Simulator::start_for_launcher(transport, |config| {
                if let Some(command) = sol_command {
                    config.sol = amt_sim::SolBackend::Command(command);
                }
            })
            .await
        })
        .await?
    };
    #[cfg(not(feature = "simulator"))]
    let (target, _simulator) = resolve(&cli.amt, async |_| {
        Err::<(_, ()), _>("built without the simulator: name an AMT with --host".to_owned())
    })
    .await?;
    let target = Arc::new(target);
    const CLIENTS: [(&str, &str, &str); 2] = [
        ("putty", "putty", "putty -telnet {host} -P {port}"),
        ("telnet", "telnet", "telnet {host} {port}"),
    ];
    let what = format!("SOL of {}", target.endpoint.authority());
    let port = LocalPort {
        scheme: "telnet",
        what: &what,
        known: &CLIENTS,
        manual: "connect with: telnet {host} {port}",
    };
    let stall = cli.stall.limit();
    // The client starts only once the port listens.
    let (listener, child) = listen_and_launch(cli.listen, port, cli.client.as_deref()).await?;
    serve_one_at_a_time(
        listener,
        child,
        |stream, peer| {
            let target = Arc::clone(&target);
            Box::pin(async move {
                match serve_client(stream, &target, stall).await {
                    Ok(why) => tracing::info!("{peer}: {why}"),
                    Err(e) => tracing::info!("{peer}: {e}"),
                }
            })
        },
        // AMT allows one SOL session: a second client is told so, not queued.
        |mut stream| {
            Box::pin(async move {
                let _ = stream
                    .write_all(b"sol_telnet: another client is using the console\r\n")
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
            eprintln!("sol_telnet: {e}");
            ExitCode::FAILURE
        }
    }
}
