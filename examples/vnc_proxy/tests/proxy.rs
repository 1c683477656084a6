//! End to end over loopback: a websocket client → vnc_proxy → the KubeVirt stand-in →
//! Xtigervnc (Debian's tigervnc-standalone-server, a VNC server nobody here wrote), with
//! tokens from the PyPI library LabOrchestrator mints with; and every refusal, upstream
//! failure, expiry and limit.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use oobkit_gate::testing::mint_hs256;
use oobkit_gate::{Gate, GateConfig, VerifyingKey};
use oobkit_io::Endpoint;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use vnc_proxy::standin::{Console, StandInConfig};
use vnc_proxy::upstream::TokenFile;
use vnc_proxy::{Limits, ProxyConfig, Upstream};

const SECRET: &[u8] = b"8560e663-classroom";
const SA_TOKEN: &str = "service-account-token";

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Xtigervnc on a free display and port, killed on drop.
struct Xvnc {
    child: std::process::Child,
    port: u16,
}

impl Drop for Xvnc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn xvnc() -> Xvnc {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Displays from the process id and a counter, so that tests and parallel test binaries do
    // not collide; a display in use makes Xtigervnc exit, and the next one is tried.
    for _ in 0..20 {
        let display =
            100 + (std::process::id() % 50) * 20 + NEXT.fetch_add(1, Ordering::Relaxed) % 20;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut child = std::process::Command::new("Xtigervnc")
            .args([
                &format!(":{display}"),
                "-rfbport",
                &port.to_string(),
                "-localhost",
            ])
            .args([
                "-SecurityTypes",
                "None",
                "-geometry",
                "640x480",
                "-desktop",
                "oobkit-test-vm",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("Xtigervnc runs (./test.sh installs tigervnc-standalone-server)");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Xvnc { child, port };
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("Xtigervnc did not start on any of 20 displays");
}

struct Setup {
    proxy: std::net::SocketAddr,
    _xvnc: Xvnc,
    _dir: PathBuf,
}

/// The stand-in (requiring the service-account token) in front of Xtigervnc as ns/vm, and the
/// proxy in front of both, with `configure` applied to its config.
async fn setup(configure: impl FnOnce(&mut ProxyConfig)) -> Setup {
    let xvnc = xvnc().await;
    let api = vnc_proxy::standin::start(StandInConfig {
        vmis: vec![(
            "ns".into(),
            "vm".into(),
            Console::Tcp(([127, 0, 0, 1], xvnc.port).into()),
        )],
        bearer: Some(SA_TOKEN.into()),
        tls: None,
        coalesce: false,
    })
    .await
    .unwrap();
    let dir = std::env::temp_dir().join(format!("vnc-proxy-{}-{}", std::process::id(), api.port()));
    std::fs::create_dir_all(&dir).unwrap();
    // As the kubelet writes it: with a trailing newline, which must not reach the header.
    std::fs::write(dir.join("token"), format!("{SA_TOKEN}\n")).unwrap();
    let mut gate = GateConfig::new(vec![VerifyingKey::hs256(SECRET).unwrap()]);
    gate.leeway = Duration::ZERO;
    let mut config = ProxyConfig {
        gate: Gate::new(gate),
        upstream: Upstream {
            api: Endpoint::plain("127.0.0.1", api.port()),
            version: "v1".into(),
            token: Some(TokenFile::new(dir.join("token"))),
        },
        allowed_origins: vec!["https://lab.example".into()],
        limits: Limits::default(),
    };
    configure(&mut config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    tokio::spawn(vnc_proxy::serve(listener, config));
    Setup {
        proxy,
        _xvnc: xvnc,
        _dir: dir,
    }
}

type Client = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn connect(
    proxy: std::net::SocketAddr,
    path: &str,
    headers: &[(&'static str, &str)],
) -> Result<(Client, Option<String>), WsError> {
    let mut request = format!("ws://{proxy}{path}").into_client_request().unwrap();
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, HeaderValue::from_str(value).unwrap());
    }
    let tcp = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let (ws, response) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(request, tcp),
    )
    .await
    .expect("the proxy answers within 10 s")?;
    let protocol = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    Ok((ws, protocol))
}

/// Bytes of binary messages until `n` arrived.
async fn read_bytes(ws: &mut Client, buffer: &mut Vec<u8>, n: usize) {
    while buffer.len() < n {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("data within 10 s")
        {
            Some(Ok(Message::Binary(data))) => buffer.extend_from_slice(&data),
            Some(Ok(_)) => {}
            other => panic!("the stream ended: {other:?}"),
        }
    }
}

/// The RFB handshake with security None, through the proxy: returns the desktop name.
async fn rfb_desktop_name(ws: &mut Client) -> String {
    let mut buf = Vec::new();
    read_bytes(ws, &mut buf, 12).await;
    assert_eq!(&buf[..12], b"RFB 003.008\n");
    buf.drain(..12);
    ws.send(Message::Binary(b"RFB 003.008\n".to_vec().into()))
        .await
        .unwrap();
    read_bytes(ws, &mut buf, 1).await;
    let n = usize::from(buf[0]);
    read_bytes(ws, &mut buf, 1 + n).await;
    assert!(
        buf[1..1 + n].contains(&1),
        "security None offered: {:?}",
        &buf[..1 + n]
    );
    buf.drain(..1 + n);
    ws.send(Message::Binary(vec![1].into())).await.unwrap();
    read_bytes(ws, &mut buf, 4).await;
    assert_eq!(&buf[..4], &[0, 0, 0, 0], "SecurityResult OK");
    buf.drain(..4);
    ws.send(Message::Binary(vec![1].into())).await.unwrap(); // ClientInit, shared
    read_bytes(ws, &mut buf, 24).await;
    let name_len = u32::from_be_bytes(buf[20..24].try_into().unwrap()) as usize;
    read_bytes(ws, &mut buf, 24 + name_len).await;
    assert_eq!(u16::from_be_bytes([buf[0], buf[1]]), 640, "width");
    String::from_utf8_lossy(&buf[24..24 + name_len]).into_owned()
}

#[tokio::test]
async fn novnc_style_session_through_the_proxy_to_xtigervnc() {
    let s = setup(|_| {}).await;
    // A token minted by the PyPI library, as LabOrchestrator's web application does.
    let out = std::process::Command::new(oobkit_testkit::labauth_python("0.0.5"))
        .args(["-c", &format!(
            "from lab_orchestrator_lib_auth.auth import generate_auth_token, LabInstanceTokenParams as P\n\
             print(generate_auth_token('student-1', P(1, 2, 'ns', ['vm']), {:?}, expires_in=600))",
            std::str::from_utf8(SECRET).unwrap()
        )])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let (mut ws, protocol) = connect(
        s.proxy,
        &format!("/{token}/vm"),
        &[("Sec-WebSocket-Protocol", "binary")],
    )
    .await
    .unwrap();
    assert_eq!(
        protocol.as_deref(),
        Some("binary"),
        "an offered subprotocol is echoed"
    );
    assert_eq!(rfb_desktop_name(&mut ws).await, "oobkit-test-vm");
    // The same with KubeVirt's own subprotocol and the token in the bearer subprotocol.
    use base64::Engine as _;
    let carried = format!(
        "{}{}",
        oobkit_gate::BEARER_PROTOCOL_PREFIX,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&token)
    );
    let offered = format!("plain.kubevirt.io, {carried}");
    let (mut ws, protocol) = connect(s.proxy, "/vm", &[("Sec-WebSocket-Protocol", &offered)])
        .await
        .unwrap();
    assert_eq!(protocol.as_deref(), Some("plain.kubevirt.io"));
    assert_eq!(rfb_desktop_name(&mut ws).await, "oobkit-test-vm");
}

#[tokio::test]
async fn refusals_come_before_the_upgrade_with_a_json_reason() {
    let s = setup(|_| {}).await;
    let now = unix_now();
    let good = mint_hs256(SECRET, now + 600.0, "ns", &["vm"]);
    let expired = mint_hs256(SECRET, now - 1.0, "ns", &["vm"]);
    let wrong_secret = mint_hs256(b"another", now + 600.0, "ns", &["vm"]);
    for (path, headers, status, word) in [
        (format!("/{expired}/vm"), vec![], 401, "expired"),
        (format!("/{wrong_secret}/vm"), vec![], 401, "signature"),
        (format!("/{good}/other-vm"), vec![], 403, "does not allow"),
        (format!("/{good}/vm/extra"), vec![], 404, "path"),
        (
            format!("/{good}/vm"),
            vec![("Origin", "https://evil.example")],
            403,
            "origin",
        ),
    ] {
        match connect(s.proxy, &path, &headers).await {
            Err(WsError::Http(response)) => {
                assert_eq!(response.status().as_u16(), status, "{word}");
                let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .into_owned();
                assert!(body.contains(word), "{word}: {body}");
                assert!(
                    !body.contains(&good[..30]) && !body.contains(&expired[..30]),
                    "the token is not echoed"
                );
            }
            other => panic!(
                "{word}: expected HTTP {status}, got {:?}",
                other.map(|_| ())
            ),
        }
    }
    // An allowed origin passes.
    let (mut ws, _) = connect(
        s.proxy,
        &format!("/{good}/vm"),
        &[("Origin", "https://lab.example")],
    )
    .await
    .unwrap();
    assert_eq!(rfb_desktop_name(&mut ws).await, "oobkit-test-vm");
}

/// The close frame of a session, within `limit`.
async fn close_of(ws: &mut Client, limit: Duration) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(_)) => {}
            other => panic!("no close frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_session_is_cut_when_its_token_expires() {
    let s = setup(|_| {}).await;
    let token = mint_hs256(SECRET, unix_now() + 2.0, "ns", &["vm"]);
    let (mut ws, _) = connect(s.proxy, &format!("/{token}/vm"), &[])
        .await
        .unwrap();
    assert_eq!(rfb_desktop_name(&mut ws).await, "oobkit-test-vm");
    let started = Instant::now();
    let (code, reason) = close_of(&mut ws, Duration::from_secs(5)).await;
    assert_eq!((code, reason.as_str()), (4001, "token expired"));
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "cut {:?} after",
        started.elapsed()
    );
}

#[tokio::test]
async fn upstream_failures_reach_the_client_as_closes_with_reasons() {
    let now = unix_now();
    // A VMI the token allows but KubeVirt does not know.
    let s = setup(|_| {}).await;
    let token = mint_hs256(SECRET, now + 600.0, "ns", &["gone"]);
    let (mut ws, _) = connect(s.proxy, &format!("/{token}/gone"), &[])
        .await
        .unwrap();
    assert_eq!(close_of(&mut ws, Duration::from_secs(5)).await.0, 4404);
    // The API server refuses the proxy's credentials.
    let s = setup(|c| {
        let dir = std::env::temp_dir().join(format!("vnc-proxy-wrong-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), "not-the-token").unwrap();
        c.upstream.token = Some(TokenFile::new(dir.join("token")));
    })
    .await;
    let token = mint_hs256(SECRET, now + 600.0, "ns", &["vm"]);
    let (mut ws, _) = connect(s.proxy, &format!("/{token}/vm"), &[])
        .await
        .unwrap();
    assert_eq!(
        close_of(&mut ws, Duration::from_secs(5)).await,
        (
            4401,
            "the API server refused the proxy's credentials".into()
        )
    );
    // Nothing listens where the API server should be.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = setup(|c| c.upstream.api = Endpoint::plain("127.0.0.1", dead)).await;
    let (mut ws, _) = connect(s.proxy, &format!("/{token}/vm"), &[])
        .await
        .unwrap();
    let (code, reason) = close_of(&mut ws, Duration::from_secs(15)).await;
    assert_eq!(code, 1011, "{reason}");
}

#[tokio::test]
async fn the_page_and_novnc_are_served_from_the_binary() {
    let s = setup(|_| {}).await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/vnc.html", "text/html"),
        ("/console.js", "text/javascript"),
        ("/novnc/core/rfb.js", "text/javascript"),
        ("/novnc/LICENSE.txt", "text/plain"),
    ] {
        let out = tokio::process::Command::new("curl")
            .args([
                "-s",
                "-D",
                "-",
                "-o",
                "/dev/null",
                &format!("http://{}{path}", s.proxy),
            ])
            .output()
            .await
            .unwrap();
        let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(
            head.contains(&format!("content-type: {kind}")),
            "{path}: {head}"
        );
        assert!(
            head.contains("content-security-policy: default-src 'self'"),
            "{path}"
        );
    }
}

/// Cluster mode as in a pod: the API server speaks TLS with a certificate from the cluster's
/// CA, which the proxy trusts from the service-account directory (`ca.crt`); a server whose
/// certificate another CA signed is refused (1011, TLS failure in the log).
#[tokio::test]
async fn cluster_mode_trusts_the_service_account_ca() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), Issuer::new(params, key))
    };
    let (cluster_ca_pem, cluster_ca) = ca("cluster CA");
    let (_, other_ca) = ca("somebody else");
    let server = |issuer: &Issuer<'_, KeyPair>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, issuer)
            .unwrap();
        oobkit_io::ServerIdentity::from_pem(
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
            "test",
        )
        .unwrap()
        .acceptor()
        .unwrap()
    };
    let xvnc = xvnc().await;
    let dir = std::env::temp_dir().join(format!("vnc-proxy-sa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.crt"), &cluster_ca_pem).unwrap();
    std::fs::write(dir.join("token"), format!("{SA_TOKEN}\n")).unwrap();
    let token = mint_hs256(SECRET, unix_now() + 600.0, "ns", &["vm"]);
    for (issuer, works) in [(&cluster_ca, true), (&other_ca, false)] {
        let api = vnc_proxy::standin::start(StandInConfig {
            vmis: vec![(
                "ns".into(),
                "vm".into(),
                Console::Tcp(([127, 0, 0, 1], xvnc.port).into()),
            )],
            bearer: Some(SA_TOKEN.into()),
            tls: Some(server(issuer)),
            coalesce: false,
        })
        .await
        .unwrap();
        let mut endpoint = Endpoint::plain("127.0.0.1", api.port());
        endpoint.tls = Some(oobkit_io::TlsPolicy::Verify {
            ca_file: Some(dir.join("ca.crt")),
        });
        let mut gate = GateConfig::new(vec![VerifyingKey::hs256(SECRET).unwrap()]);
        gate.leeway = Duration::ZERO;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = listener.local_addr().unwrap();
        tokio::spawn(vnc_proxy::serve(
            listener,
            ProxyConfig {
                gate: Gate::new(gate),
                upstream: Upstream {
                    api: endpoint,
                    version: "v1alpha3".into(),
                    token: Some(TokenFile::new(dir.join("token"))),
                },
                allowed_origins: vec![],
                limits: Limits::default(),
            },
        ));
        let (mut ws, _) = connect(proxy, &format!("/{token}/vm"), &[]).await.unwrap();
        if works {
            assert_eq!(rfb_desktop_name(&mut ws).await, "oobkit-test-vm");
        } else {
            assert_eq!(close_of(&mut ws, Duration::from_secs(10)).await.0, 1011);
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
