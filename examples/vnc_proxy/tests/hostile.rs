//! Hostile clients on loopback: a flood of connections that never send a request, and an
//! admitted client that stops reading, must not keep another user out.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use oobkit_io::Endpoint;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use vnc_proxy::standin::{Console, StandInConfig};
use vnc_proxy::{Limits, ProxyConfig};

const SECRET: &[u8] = b"hostile-test-secret";

fn token() -> String {
    vnc_proxy::token_valid_for(SECRET, Duration::from_secs(600), "ns", &["vm"])
}

/// A "VM console" that sends without end.
async fn flood_source() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let chunk = vec![0x5A; 64 * 1024];
                while s.write_all(&chunk).await.is_ok() {}
            });
        }
    });
    addr
}

async fn proxy(console: Console, limits: Limits) -> std::net::SocketAddr {
    let api = vnc_proxy::standin::start(StandInConfig {
        vmis: vec![("ns".into(), "vm".into(), console)],
        bearer: None,
        tls: None,
        coalesce: false,
    })
    .await
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = ProxyConfig::dev(SECRET, Endpoint::plain("127.0.0.1", api.port())).unwrap();
    config.limits = limits;
    tokio::spawn(vnc_proxy::serve(listener, config));
    addr
}

async fn connect_from(local: [u8; 4], to: std::net::SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((local, 0).into()).unwrap();
    socket.connect(to).await.unwrap()
}

/// A session from `local`: returns the websocket once the first bytes of RFB arrived.
async fn session_from(
    local: [u8; 4],
    proxy: std::net::SocketAddr,
) -> Result<tokio_tungstenite::WebSocketStream<TcpStream>, String> {
    let tcp = connect_from(local, proxy).await;
    let request = format!("ws://{proxy}/{}/vm", token())
        .into_client_request()
        .unwrap();
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(request, tcp),
    )
    .await
    .map_err(|_| "no upgrade within 10 s".to_owned())?
    .map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        Ok(Some(Ok(Message::Binary(data)))) if data.starts_with(b"RFB 003.008") => Ok(ws),
        other => Err(format!("no RFB greeting: {other:?}")),
    }
}

#[tokio::test]
async fn silent_connections_do_not_keep_a_user_out() {
    let limits = Limits {
        handshake: Duration::from_secs(2),
        ..Limits::default()
    };
    let proxy = proxy(
        Console::Pattern {
            width: 320,
            height: 200,
        },
        limits,
    )
    .await;
    // 40 connections from 127.0.0.2 that never send a request.
    let mut silent = Vec::new();
    for _ in 0..40 {
        silent.push(connect_from([127, 0, 0, 2], proxy).await);
    }
    // Those over the per-address budget (16) are answered 503 at once.
    let mut refused = 0;
    for stream in &mut silent[16..] {
        let mut buf = [0u8; 64];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await
            && buf[..n].starts_with(b"HTTP/1.1 503")
        {
            refused += 1;
        }
    }
    assert_eq!(
        refused, 24,
        "connections beyond the per-address budget are refused"
    );
    // Meanwhile another user is served.
    session_from([127, 0, 0, 1], proxy)
        .await
        .expect("the user is served during the flood");
    // The silent ones are closed after the handshake limit.
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), silent[0].read(&mut buf))
        .await
        .expect("closed within the handshake limit")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a reply");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_client_that_stops_reading_loses_its_session() {
    let limits = Limits {
        max_sessions: 1,
        write: Duration::from_secs(1),
        ..Limits::default()
    };
    let source = flood_source().await;
    let proxy = proxy(Console::Tcp(source), limits).await;
    // Admitted, then never reads again while the console floods.
    let stalled = {
        let tcp = connect_from([127, 0, 0, 3], proxy).await;
        let request = format!("ws://{proxy}/{}/vm", token())
            .into_client_request()
            .unwrap();
        tokio_tungstenite::client_async(request, tcp)
            .await
            .unwrap()
            .0
    };
    // The one session place is taken; once the proxy gives up on the stalled client, the
    // next user gets it.
    let started = Instant::now();
    let ws = loop {
        let tcp = connect_from([127, 0, 0, 1], proxy).await;
        let request = format!("ws://{proxy}/{}/vm", token())
            .into_client_request()
            .unwrap();
        match tokio_tungstenite::client_async(request, tcp).await {
            Ok((ws, _)) => break ws,
            Err(e) => {
                assert!(e.to_string().contains("503"), "{e}");
                assert!(
                    started.elapsed() < Duration::from_secs(15),
                    "the stalled client keeps the place"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    drop(stalled);
    let mut ws = ws;
    let data = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap();
    assert!(matches!(data, Some(Ok(Message::Binary(_)))), "{data:?}");
}

#[tokio::test]
async fn an_upstream_that_never_answers_frees_the_place() {
    // An "API server" that accepts connections and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    let mut config = ProxyConfig::dev(SECRET, Endpoint::plain("127.0.0.1", silent_port)).unwrap();
    config.limits = Limits {
        max_sessions: 1,
        upstream: Duration::from_secs(1),
        ..Limits::default()
    };
    tokio::spawn(vnc_proxy::serve(listener, config));
    for _ in 0..2 {
        let started = Instant::now();
        let tcp = connect_from([127, 0, 0, 1], proxy).await;
        let request = format!("ws://{proxy}/{}/vm", token())
            .into_client_request()
            .unwrap();
        let (mut ws, _) = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_tungstenite::client_async(request, tcp),
        )
        .await
        .expect("upgraded within 5 s")
        .expect("upgraded, then closed with the reason");
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => assert_eq!(u16::from(frame.code), 1011),
            other => panic!("expected a 1011 close: {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    }
}
