//! The relay's websocket manners, between tungstenite peers that check every frame (a client
//! on one side, a scripted VNC endpoint on the other): what the endpoint sends with its 101
//! arrives, pings are answered by the proxy (masked toward the endpoint), text is dropped,
//! closes pass both ways with their codes, and a client that breaks RFC 6455 is told why.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use oobkit_io::Endpoint;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Bytes, Message};
use vnc_proxy::ProxyConfig;

const SECRET: &[u8] = b"frames-test-secret";
const MAX_MESSAGE: usize = 64 * 1024;
const WITHIN: Duration = Duration::from_secs(5);

/// Reads the proxy's upgrade request and returns the 101 answering it (to be sent with
/// whatever the test adds after it).
async fn upgrade(tcp: &mut TcpStream, protocol: Option<&str>) -> Vec<u8> {
    let request = oobkit_io::web::read_request(tcp, 0)
        .await
        .unwrap()
        .expect("the proxy sends its upgrade request");
    let key = request
        .header("sec-websocket-key")
        .expect("the proxy sends a key");
    oobkit_io::web::switching_protocols(key, protocol)
}

/// A VNC endpoint that answers the upgrade and, in the same write, a binary greeting and a
/// ping; then echoes binary messages and reports everything it reads.
async fn scripted_endpoint() -> (u16, mpsc::UnboundedReceiver<Message>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (report, reports) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let report = report.clone();
            tokio::spawn(async move {
                let mut answer = upgrade(&mut tcp, Some("plain.kubevirt.io")).await;
                answer.extend([0x82, 12]);
                answer.extend(b"RFB 003.008\n");
                answer.extend([0x89, 1, b'p']);
                tcp.write_all(&answer).await.unwrap();
                // From here a strict server: unmasked frames from the proxy are errors.
                let mut ws = WebSocketStream::from_raw_socket(tcp, Role::Server, None).await;
                while let Some(message) = ws.next().await {
                    let Ok(message) = message else {
                        let _ = report.send(Message::Text("protocol error".into()));
                        break;
                    };
                    let _ = report.send(message.clone());
                    if let Message::Binary(data) = message {
                        ws.send(Message::Binary(data)).await.unwrap();
                    }
                }
            });
        }
    });
    (port, reports)
}

async fn proxy(endpoint: u16) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = ProxyConfig::dev(SECRET, Endpoint::plain("127.0.0.1", endpoint)).unwrap();
    config.limits.max_message = MAX_MESSAGE;
    tokio::spawn(vnc_proxy::serve(listener, config));
    addr
}

fn token() -> String {
    vnc_proxy::token_valid_for(SECRET, Duration::from_secs(600), "ns", &["vm"])
}

/// The request for the session, and the TCP connection to send it on.
async fn open(proxy: std::net::SocketAddr) -> WebSocketStream<TcpStream> {
    let request = format!("ws://{proxy}/{}/vm", token())
        .into_client_request()
        .unwrap();
    let tcp = TcpStream::connect(proxy).await.unwrap();
    let (ws, _) = tokio::time::timeout(WITHIN, tokio_tungstenite::client_async(request, tcp))
        .await
        .unwrap()
        .unwrap();
    ws
}

async fn next<T>(receiver: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WITHIN, receiver.recv())
        .await
        .expect("within 5 s")
        .expect("the endpoint is running")
}

#[tokio::test]
async fn frames_pass_both_ways_with_pings_answered_text_dropped_and_closes_relayed() {
    let (endpoint, mut seen) = scripted_endpoint().await;
    let proxy = proxy(endpoint).await;
    let mut ws = open(proxy).await;
    // The greeting sent with the 101 arrives; the ping after it is the proxy's to answer.
    match tokio::time::timeout(WITHIN, ws.next()).await {
        Ok(Some(Ok(Message::Binary(data)))) => assert_eq!(&data[..], b"RFB 003.008\n"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        next(&mut seen).await,
        Message::Pong(Bytes::from_static(b"p"))
    );
    // Text has no meaning to a VNC endpoint; binary messages of every length form go through
    // and come back.
    ws.send(Message::Text("not for the VM".into()))
        .await
        .unwrap();
    for size in [0, 1, 125, 126, 65535, MAX_MESSAGE] {
        let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
        ws.send(Message::Binary(data.clone().into())).await.unwrap();
        assert_eq!(next(&mut seen).await, Message::Binary(data.clone().into()));
        match tokio::time::timeout(WITHIN, ws.next()).await {
            Ok(Some(Ok(Message::Binary(echo)))) => assert_eq!(echo.len(), size),
            other => panic!("{size}: {other:?}"),
        }
    }
    // The client's close reaches the endpoint with its code and reason.
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::from(4000),
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    match next(&mut seen).await {
        Message::Close(Some(frame)) => {
            assert_eq!(
                (u16::from(frame.code), frame.reason.as_str()),
                (4000, "bye")
            )
        }
        other => panic!("{other:?}"),
    }
    // And the client's closing handshake completes.
    match tokio::time::timeout(WITHIN, ws.next()).await {
        Ok(Some(Ok(Message::Close(Some(frame))))) => assert_eq!(u16::from(frame.code), 4000),
        other => panic!("{other:?}"),
    }
}

/// The close the client gets after `wire` is sent raw on an open session.
async fn close_after_raw(wire: &[u8]) -> (u16, Message) {
    let (endpoint, mut seen) = scripted_endpoint().await;
    let proxy = proxy(endpoint).await;
    let ws = open(proxy).await;
    assert_eq!(
        next(&mut seen).await,
        Message::Pong(Bytes::from_static(b"p"))
    );
    let mut tcp = ws.into_inner();
    tcp.write_all(wire).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(WITHIN, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the proxy kept the connection open"),
        }
    }
    // The greeting (unless the client's handshake read it already), then the close: 0x88,
    // length, code.
    let close = if got.first() == Some(&0x82) {
        &got[14..]
    } else {
        &got[..]
    };
    assert_eq!(close[0], 0x88, "{got:02x?}");
    let code = u16::from_be_bytes([close[2], close[3]]);
    (code, next(&mut seen).await)
}

#[tokio::test]
async fn a_client_that_breaks_rfc_6455_is_told_why_and_the_endpoint_closed() {
    // A frame without a mask: protocol error.
    let (code, endpoint_saw) = close_after_raw(&[0x82, 0x01, 0x21]).await;
    assert_eq!(code, 1002);
    assert_eq!(endpoint_saw, Message::Close(None));
    // A message over the limit (announced, not sent): 1009 before any of it is relayed.
    let mut too_big = vec![0x82, 0xff];
    too_big.extend((MAX_MESSAGE as u64 + 1).to_be_bytes());
    too_big.extend([1, 2, 3, 4]);
    let (code, endpoint_saw) = close_after_raw(&too_big).await;
    assert_eq!(code, 1009);
    assert_eq!(endpoint_saw, Message::Close(None));
}

#[tokio::test]
async fn a_ping_flood_is_answered_once_per_read_with_the_latest_ping() {
    let (endpoint, mut seen) = scripted_endpoint().await;
    let proxy = proxy(endpoint).await;
    let mut ws = open(proxy).await;
    assert_eq!(
        next(&mut seen).await,
        Message::Pong(Bytes::from_static(b"p"))
    );
    // A thousand pings in one write, then a message to know when they were all read.
    for i in 0..1000 {
        ws.feed(Message::Ping(format!("ping {i}").into()))
            .await
            .unwrap();
    }
    ws.feed(Message::Binary(Bytes::from_static(b"after")))
        .await
        .unwrap();
    ws.flush().await.unwrap();
    let mut pongs = Vec::new();
    loop {
        match tokio::time::timeout(WITHIN, ws.next()).await {
            Ok(Some(Ok(Message::Pong(data)))) => pongs.push(data),
            Ok(Some(Ok(Message::Binary(data)))) if &data[..] == b"after" => break,
            Ok(Some(Ok(Message::Binary(_)))) => {} // the greeting
            other => panic!("{other:?}"),
        }
    }
    // Pongs come at most once per read of the proxy's (the pings arrive in a few reads), and
    // the last one answers the last ping.
    assert!(
        !pongs.is_empty() && pongs.len() <= 20,
        "{} pongs",
        pongs.len()
    );
    assert_eq!(&pongs.last().unwrap()[..], b"ping 999");
}

#[tokio::test]
async fn an_upstream_gone_in_the_middle_of_a_frame_ends_the_client_without_a_close_inside_it() {
    // An endpoint that starts a 256-byte frame, sends 10 bytes of it, and goes away.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut answer = upgrade(&mut tcp, None).await;
        answer.extend([0x82, 0x7e, 0x01, 0x00]);
        answer.extend([7u8; 10]);
        tcp.write_all(&answer).await.unwrap();
    });
    let proxy = proxy(port).await;
    let request = format!(
        "GET /{}/vm HTTP/1.1\r\nHost: {proxy}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        token()
    );
    let mut tcp = TcpStream::connect(proxy).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(WITHIN, tcp.read_to_end(&mut got))
        .await
        .expect("the proxy ends the connection")
        .unwrap();
    let body = &got[got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    // The frame's start as it came, and nothing after it: a close there would be read as
    // payload.
    assert_eq!(body, [&[0x82, 0x7e, 0x01, 0x00][..], &[7u8; 10]].concat());
}

/// A console streaming several buffers' worth through the stand-in and the proxy: every byte
/// arrives, in virt-handler's frames (at most 32 KiB), then the stand-in's close 1000. Reads
/// end mid-frame and mid-header at every buffer boundary, so this checks the carrying over of
/// partial frames in the console's direction (the bench's transfer, with a strict reader).
#[tokio::test]
async fn a_long_stream_arrives_whole_in_the_consoles_frames() {
    const BYTES: u64 = (3 << 20) + 12_345;
    let api = vnc_proxy::standin::start(vnc_proxy::standin::StandInConfig {
        vmis: vec![(
            "ns".into(),
            "vm".into(),
            vnc_proxy::standin::Console::Generated { bytes: BYTES },
        )],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut ws = open(proxy(api.port()).await).await;
    let (mut received, mut frames) = (0u64, 0u32);
    let close = loop {
        match tokio::time::timeout(WITHIN, ws.next())
            .await
            .expect("within 5 s")
        {
            Some(Ok(Message::Binary(data))) => {
                assert!(data.len() <= 32 * 1024, "a frame of {} bytes", data.len());
                assert!(data.iter().all(|&b| b == 0x42), "the console's bytes");
                received += data.len() as u64;
                frames += 1;
            }
            Some(Ok(Message::Close(close))) => break close,
            other => panic!("after {received} bytes: {other:?}"),
        }
    };
    assert_eq!(received, BYTES);
    assert_eq!(frames, BYTES.div_ceil(32 * 1024) as u32);
    assert_eq!(close.map(|c| c.code), Some(CloseCode::Normal));
}
