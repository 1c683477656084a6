//! Helpers shared by the simulator's test files: an oobkit-redir client driven over TCP.
#![allow(dead_code)] // each test file uses its own part

use std::time::{Duration, Instant};

use oobkit_redir::codec::SessionKind;
use oobkit_redir::{ClientSession, ClientSessionConfig, CloseReason, Event};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The simulators' password in tests.
pub(crate) const PASSWORD: &str = "Sim-P@ss1";

/// Opens a `kind` session on the redirection port at `addr`, driven until it is ready (SOL up,
/// or the handoff to RFB) or closed; returns the connection and the events.
pub(crate) async fn open_session(
    addr: std::net::SocketAddr,
    kind: SessionKind,
) -> (TcpStream, Vec<Event>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut client = ClientSession::new(
        ClientSessionConfig::new(kind, "admin", PASSWORD, &oobkit_io::random_hex16()),
        Instant::now(),
    );
    let events = drive(&mut stream, &mut client, |_, events| {
        events.contains(&Event::SolReady)
            || events.contains(&Event::RfbHandoff)
            || events.iter().any(|e| matches!(e, Event::Closed(_)))
    })
    .await;
    (stream, events)
}

/// Opens a `kind` session every 250 ms until one is ready, within 8 s; meanwhile only BUSY is
/// an acceptable answer. Fails with `still_held` when the slot stays taken.
pub(crate) async fn once_free(
    addr: std::net::SocketAddr,
    kind: SessionKind,
    still_held: &str,
) -> TcpStream {
    let started = tokio::time::Instant::now();
    loop {
        let (stream, events) = open_session(addr, kind).await;
        if events.contains(&Event::SolReady) || events.contains(&Event::RfbHandoff) {
            return stream;
        }
        assert!(
            events.contains(&Event::Closed(CloseReason::Busy)),
            "{events:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(8), "{still_held}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A SOL client with the simulator's credentials and a fresh cnonce.
pub(crate) fn sol_client() -> ClientSession {
    ClientSession::new(
        ClientSessionConfig::new(
            SessionKind::Sol,
            "admin",
            PASSWORD,
            &oobkit_io::random_hex16(),
        ),
        Instant::now(),
    )
}

/// Drives an oobkit-redir client over a TCP stream until `stop` says so; returns its events.
pub(crate) async fn drive<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    client: &mut ClientSession,
    mut stop: impl FnMut(&mut ClientSession, &[Event]) -> bool,
) -> Vec<Event> {
    let mut events = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        while let Some(bytes) = client.poll_transmit() {
            stream.write_all(&bytes).await.unwrap();
        }
        while let Some(e) = client.poll_event() {
            events.push(e);
        }
        if stop(client, &events) || client.is_closed() {
            while let Some(bytes) = client.poll_transmit() {
                stream.write_all(&bytes).await.unwrap();
            }
            return events;
        }
        let timer = client.poll_timeout();
        tokio::select! {
            n = stream.read(&mut buf) => match n.unwrap() {
                0 => client.handle_eof(),
                n => client.handle_input(Instant::now(), &buf[..n]),
            },
            () = async { match timer { Some(t) => tokio::time::sleep_until(t.into()).await, None => std::future::pending().await } } => client.handle_timeout(Instant::now()),
            () = tokio::time::sleep_until(deadline) => return events,
        }
    }
}

/// A TCP connection to `to` from the loopback address `from` (all of 127/8 is local).
pub(crate) async fn connect_from(
    from: [u8; 4],
    to: std::net::SocketAddr,
) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::new(std::net::IpAddr::from(from), 0))?;
    socket.connect(to).await
}
