//! A stand-in for KubeVirt's VNC subresource, for tests and for running the proxy with nothing
//! configured: it answers `GET /apis/subresources.kubevirt.io/(v1|v1alpha3)/namespaces/NS/
//! virtualmachineinstances/NAME/vnc` with a websocket (selecting `plain.kubevirt.io` when
//! offered, as virt-api does), checks the bearer token when it has one, answers unknown VMIs
//! with a Kubernetes `Status` 404, and relays binary messages to the VMI's console: a VNC
//! server over TCP, the simulated AMT's colour-bar RFB screen, or (for benchmarks) a stream of
//! bytes from memory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use oobkit_http1::{RequestReader, ResponseWriter};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

/// What a VMI's console is.
#[derive(Debug, Clone)]
pub enum Console {
    /// A VNC server at this address.
    Tcp(SocketAddr),
    /// The simulated AMT's test pattern at this size.
    Pattern {
        /// Width.
        width: u16,
        /// Height.
        height: u16,
    },
    /// A console streaming this many bytes from memory, then closing (1000); its input is
    /// read and dropped. Framed as virt-handler frames a console's reads (32 KiB, one write
    /// each), it is an upstream that takes as little processor time as one can: for measuring
    /// what sits between it and a client on a machine whose cores they share.
    Generated {
        /// Bytes of console output.
        bytes: u64,
    },
}

/// The stand-in's VMIs and credentials.
#[derive(Clone, Default)]
pub struct StandInConfig {
    /// (namespace, name, console).
    pub vmis: Vec<(String, String, Console)>,
    /// The bearer token it requires (`None`: like `kubectl proxy`, none).
    pub bearer: Option<String>,
    /// Serve TLS with this identity, as an API server does (`None`: plain, like `kubectl proxy`).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Join console bytes already waiting into one websocket write (up to 256 KiB). Off, the
    /// stand-in writes each 32 KiB message at once, as virt-handler does: the upstream a proxy
    /// in front of KubeVirt meets. On, it is oobkit's websocket-to-TCP hop at its best.
    pub coalesce: bool,
}

/// Starts the stand-in on loopback; returns its address.
pub async fn start(config: StandInConfig) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let config = Arc::new(config);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let config = Arc::clone(&config);
            tokio::spawn(async move {
                let served = match &config.tls {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(tls) => serve(Box::new(tls), &config).await,
                        Err(e) => Err(e),
                    },
                    None => serve(Box::new(stream), &config).await,
                };
                if let Err(e) = served {
                    tracing::debug!("stand-in: {e}");
                }
            });
        }
    });
    Ok(addr)
}

fn status(code: u16, reason: &str, message: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": message, "reason": reason, "code": code,
    })
    .to_string();
    ResponseWriter::new(code, reason)
        .header("Content-Type", "application/json")
        .body(body.as_bytes())
}

async fn serve(mut stream: Box<dyn oobkit_io::Io>, config: &StandInConfig) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut reader = RequestReader::new().with_max_body(0);
    let mut buf = [0u8; 4096];
    let request = loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await??;
        if n == 0 {
            return Ok(());
        }
        if let Some(request) = reader.next(&buf[..n]).map_err(std::io::Error::other)? {
            break request;
        }
    };
    let parts: Vec<&str> = request
        .target
        .split('?')
        .next()
        .unwrap_or_default()
        .split('/')
        .collect();
    let (namespace, name) = match parts.as_slice() {
        [
            "",
            "apis",
            "subresources.kubevirt.io",
            "v1" | "v1alpha3",
            "namespaces",
            ns,
            "virtualmachineinstances",
            name,
            "vnc",
        ] => (*ns, *name),
        _ => {
            stream
                .write_all(&status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ))
                .await?;
            return Ok(());
        }
    };
    if let Some(expected) = &config.bearer
        && request.header("authorization") != Some(&format!("Bearer {expected}"))
    {
        stream
            .write_all(&status(401, "Unauthorized", "Unauthorized"))
            .await?;
        return Ok(());
    }
    let Some((_, _, console)) = config
        .vmis
        .iter()
        .find(|(ns, n, _)| ns == namespace && n == name)
    else {
        let message = format!("virtualmachineinstance.kubevirt.io \"{name}\" not found");
        stream.write_all(&status(404, "NotFound", &message)).await?;
        return Ok(());
    };
    let Some(key) = request.header("sec-websocket-key") else {
        stream
            .write_all(&status(400, "BadRequest", "not a websocket upgrade"))
            .await?;
        return Ok(());
    };
    let offered = request
        .header("sec-websocket-protocol")
        .is_some_and(|p| p.split(',').any(|p| p.trim() == "plain.kubevirt.io"));
    let response = oobkit_io::web::switching_protocols(key, offered.then_some("plain.kubevirt.io"));
    stream.write_all(&response).await?;
    match console {
        Console::Tcp(addr) => {
            let vnc = TcpStream::connect(addr).await?;
            relay_tcp(stream, vnc, config.coalesce).await;
        }
        Console::Pattern { width, height } => {
            let ws = WebSocketStream::from_raw_socket(stream, Role::Server, None).await;
            let mut bytes = oobkit_io::websocket::into_byte_stream(ws, Duration::from_secs(30));
            let limits = amt_sim::rfb::Limits {
                write: Duration::from_secs(30),
                idle: Duration::from_secs(600),
            };
            let _ = amt_sim::rfb::serve(&mut bytes, *width, *height, limits).await;
        }
        Console::Generated { bytes } => generate(stream, *bytes).await,
    }
    Ok(())
}

/// How long a write to the websocket may take.
const WRITE: Duration = Duration::from_secs(30);
/// A console read, and so the largest frame: Go's copy buffer.
const READ: usize = 32 * 1024;
/// The longest header of a frame of up to [`READ`] bytes (no mask from a server).
const HEADER: usize = 4;
/// The closing frame, code 1000.
const CLOSE_NORMAL: [u8; 4] = [0x88, 0x02, 0x03, 0xe8];

/// The header of a binary frame of `len` bytes (at most [`READ`]), and how long it is.
fn binary_header(len: usize) -> ([u8; HEADER], usize) {
    use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let mut header = [0u8; HEADER];
    let mut cursor = &mut header[..];
    FrameHeader {
        opcode: OpCode::Data(Data::Binary),
        ..FrameHeader::default()
    }
    .format(len as u64, &mut cursor)
    .expect("a 4-byte header fits");
    let len = HEADER - cursor.len();
    (header, len)
}

/// Streams `bytes` of console output (0x42) in frames of one console read each, one write per
/// frame as [`relay_tcp`] without coalescing, then closes and reads until the client goes, so
/// nothing is lost in flight.
async fn generate(mut ws: Box<dyn oobkit_io::Io>, bytes: u64) {
    use tokio::io::AsyncWriteExt;
    let frame = |len: usize| {
        let (header, header_len) = binary_header(len);
        let mut frame = header[..header_len].to_vec();
        frame.resize(header_len + len, 0x42);
        frame
    };
    let full = frame(READ);
    let rest = (bytes % READ as u64) as usize;
    let frames = std::iter::repeat_n(&full, (bytes / READ as u64) as usize);
    let last = (rest > 0).then(|| frame(rest));
    for frame in frames.chain(last.as_ref()) {
        if !matches!(
            tokio::time::timeout(WRITE, ws.write_all(frame)).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
    let _ = tokio::time::timeout(WRITE, ws.write_all(&CLOSE_NORMAL)).await;
    let mut sink = [0u8; 1024];
    while let Ok(Ok(1..)) = tokio::time::timeout(WRITE, ws.read(&mut sink)).await {}
}

/// Relays a VNC server's TCP stream and the websocket as virt-handler does: each read of the
/// console (up to 32 KiB, Go's copy buffer) becomes one binary frame, written with its header
/// in one write and without copying the payload (gorilla/websocket's server fast path writes
/// header and payload together with writev); each message received is written to the
/// console. With `coalesce`, frames of console bytes already waiting go out in one write (up
/// to 256 KiB); without, each goes out at once. Every write is bounded, so a reader that stops
/// ends it.
async fn relay_tcp(ws: Box<dyn oobkit_io::Io>, vnc: TcpStream, coalesce: bool) {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    use tokio_tungstenite::tungstenite::Message;
    const BATCH: usize = 256 * 1024;
    let (ws_rx, mut ws_tx) = tokio::io::split(ws);
    let (mut vnc_rx, mut vnc_tx) = vnc.into_split();
    let from_vm = async {
        use futures_util::FutureExt;
        // Room for one read and its header, or for a batch and the read that ends it.
        let mut buf = vec![0u8; if coalesce { BATCH } else { 0 } + HEADER + READ];
        // The console's end (EOF, an error), once seen: what was batched goes out first.
        let mut ended = None;
        while ended.is_none() {
            let mut filled = 0;
            loop {
                let space = &mut buf[filled + HEADER..filled + HEADER + READ];
                // The first read of a batch waits; later ones take what is already there.
                let read = if filled == 0 {
                    vnc_rx.read(space).await
                } else {
                    match vnc_rx.read(space).now_or_never() {
                        Some(read) => read,
                        None => break,
                    }
                };
                let Ok(n @ 1..) = read else {
                    ended = Some(read);
                    break;
                };
                let (header, header_len) = binary_header(n);
                buf[filled..filled + header_len].copy_from_slice(&header[..header_len]);
                if header_len < HEADER {
                    // A short frame: its payload moves up to meet its 2-byte header.
                    buf.copy_within(filled + HEADER..filled + HEADER + n, filled + header_len);
                }
                filled += header_len + n;
                if !coalesce || filled >= BATCH {
                    break;
                }
            }
            if filled > 0
                && !matches!(
                    tokio::time::timeout(WRITE, ws_tx.write_all(&buf[..filled])).await,
                    Ok(Ok(()))
                )
            {
                return;
            }
        }
        // The closing frame (1000), then the end.
        let _ = tokio::time::timeout(WRITE, ws_tx.write_all(&CLOSE_NORMAL)).await;
    };
    // Client frames are read by tungstenite; what it would write back (pongs, a close reply)
    // goes nowhere, since the websocket's write side is the frame writer above.
    let mut ws_rx = WebSocketStream::from_raw_socket(
        tokio::io::join(ws_rx, tokio::io::sink()),
        Role::Server,
        None,
    )
    .await;
    let to_vm = async {
        while let Some(Ok(message)) = ws_rx.next().await {
            match message {
                Message::Binary(data) => {
                    let written = tokio::time::timeout(WRITE, vnc_tx.write_all(&data)).await;
                    if !matches!(written, Ok(Ok(()))) {
                        return;
                    }
                }
                Message::Close(_) => return,
                _ => {}
            }
        }
    };
    tokio::select! {
        () = from_vm => {}
        () = to_vm => {}
    }
}
