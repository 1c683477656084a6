//! A stand-in for KubeVirt's VNC subresource, for tests and for running the proxy with nothing
//! configured: it answers `GET /apis/subresources.kubevirt.io/(v1|v1alpha3)/namespaces/NS/
//! virtualmachineinstances/NAME/vnc` with a websocket (selecting `plain.kubevirt.io` when
//! offered, as virt-api does), checks the bearer token when it has one, answers unknown VMIs
//! with a Kubernetes `Status` 404, and relays binary messages to the VMI's console: a VNC
//! server over TCP, or the simulated AMT's colour-bar RFB screen.

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
    let ws = WebSocketStream::from_raw_socket(stream, Role::Server, None).await;
    match console {
        Console::Tcp(addr) => {
            let vnc = TcpStream::connect(addr).await?;
            relay_tcp(ws, vnc, config.coalesce).await;
        }
        Console::Pattern { width, height } => {
            let mut bytes = oobkit_io::websocket::into_byte_stream(ws, Duration::from_secs(30));
            let limits = amt_sim::rfb::Limits {
                write: Duration::from_secs(30),
                idle: Duration::from_secs(600),
            };
            let _ = amt_sim::rfb::serve(&mut bytes, *width, *height, limits).await;
        }
    }
    Ok(())
}

/// Relays a VNC server's TCP stream and the websocket as virt-handler does: each read of the
/// console (up to 32 KiB, Go's copy buffer) becomes one binary message, and each message
/// received is written to the console. With `coalesce`, messages whose bytes were already
/// waiting go out in one write (up to 256 KiB); without, each goes out at once. Every write is
/// bounded, so a reader that stops ends it.
async fn relay_tcp(ws: WebSocketStream<Box<dyn oobkit_io::Io>>, vnc: TcpStream, coalesce: bool) {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::AsyncWriteExt;
    use tokio_tungstenite::tungstenite::Message;
    const WRITE: Duration = Duration::from_secs(30);
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut vnc_rx, mut vnc_tx) = vnc.into_split();
    let from_vm = async {
        use futures_util::FutureExt;
        const BATCH: usize = 256 * 1024;
        let mut buf = vec![0u8; 32 * 1024];
        // A read's end (EOF, an error) found while batching, handled after the flush.
        let mut ended = None;
        loop {
            let read = match ended.take() {
                Some(read) => read,
                None => vnc_rx.read(&mut buf).await,
            };
            let Ok(n @ 1..) = read else { break };
            let mut batched = n;
            let mut message = Message::Binary(buf[..n].to_vec().into());
            loop {
                if !matches!(
                    tokio::time::timeout(WRITE, ws_tx.feed(message)).await,
                    Ok(Ok(()))
                ) {
                    return;
                }
                // What the console already sent joins this write; a read that would wait
                // ends the batch.
                if !coalesce || batched >= BATCH {
                    break;
                }
                match vnc_rx.read(&mut buf).now_or_never() {
                    Some(Ok(n @ 1..)) => {
                        batched += n;
                        message = Message::Binary(buf[..n].to_vec().into());
                    }
                    Some(end) => {
                        ended = Some(end);
                        break;
                    }
                    None => break,
                }
            }
            if !matches!(tokio::time::timeout(WRITE, ws_tx.flush()).await, Ok(Ok(()))) {
                return;
            }
        }
        let _ = tokio::time::timeout(WRITE, ws_tx.close()).await;
    };
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
