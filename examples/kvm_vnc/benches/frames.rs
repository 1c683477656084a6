//! KVM frames per second of the simulated AMT's screen (1024x768, 32-bit colour, the whole
//! frame every time): in the browser through web_console (noVNC in headless Chromium, asking
//! for whole frames back to back), beside kvm_vnc and a native RFB client reading the same
//! simulator the same way, in one run. `-- --test` (CI) measures for one second each.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use oobkit_testkit::browser::{browser, chromedriver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "frames-bench-token-0123456789";

/// A native client through kvm_vnc: RFB 3.8, security None, raw 32-bit frames requested whole
/// (non-incremental) one after another; frames per second over `seconds`.
async fn native_fps(addr: SocketAddr, seconds: f64) -> f64 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut version = [0u8; 12];
    s.read_exact(&mut version).await.unwrap();
    s.write_all(b"RFB 003.008\n").await.unwrap();
    let n = s.read_u8().await.unwrap() as usize;
    let mut types = vec![0u8; n];
    s.read_exact(&mut types).await.unwrap();
    assert!(types.contains(&1), "security None offered: {types:?}");
    s.write_all(&[1]).await.unwrap();
    assert_eq!(s.read_u32().await.unwrap(), 0, "security result");
    s.write_all(&[1]).await.unwrap(); // ClientInit, shared
    let width = s.read_u16().await.unwrap();
    let height = s.read_u16().await.unwrap();
    let mut format = [0u8; 16];
    s.read_exact(&mut format).await.unwrap();
    let bytes_per_pixel = usize::from(format[0] / 8);
    let name_len = s.read_u32().await.unwrap() as usize;
    let mut name = vec![0u8; name_len];
    s.read_exact(&mut name).await.unwrap();
    // Raw encoding only.
    s.write_all(&[2, 0, 0, 1, 0, 0, 0, 0]).await.unwrap();
    let request = {
        let mut r = vec![3u8, 0];
        r.extend_from_slice(&0u16.to_be_bytes());
        r.extend_from_slice(&0u16.to_be_bytes());
        r.extend_from_slice(&width.to_be_bytes());
        r.extend_from_slice(&height.to_be_bytes());
        r
    };
    let mut pixels = vec![0u8; 1 << 20];
    let started = Instant::now();
    let mut frames = 0u32;
    while started.elapsed().as_secs_f64() < seconds {
        s.write_all(&request).await.unwrap();
        let kind = s.read_u8().await.unwrap();
        assert_eq!(kind, 0, "a FramebufferUpdate");
        s.read_u8().await.unwrap();
        let rects = s.read_u16().await.unwrap();
        for _ in 0..rects {
            let mut header = [0u8; 12];
            s.read_exact(&mut header).await.unwrap();
            let w = usize::from(u16::from_be_bytes([header[4], header[5]]));
            let h = usize::from(u16::from_be_bytes([header[6], header[7]]));
            let encoding = i32::from_be_bytes([header[8], header[9], header[10], header[11]]);
            if encoding != 0 {
                continue; // pseudo-encodings carry no pixels
            }
            let mut left = w * h * bytes_per_pixel;
            while left > 0 {
                let n = left.min(pixels.len());
                s.read_exact(&mut pixels[..n]).await.unwrap();
                left -= n;
            }
        }
        frames += 1;
    }
    f64::from(frames) / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let seconds = if smoke { 1.0 } else { 10.0 };
    let mut config = amt_sim::SimConfig::loopback("frames-pass");
    config.redir_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let sim = amt_sim::Simulator::start(config).await.unwrap();
    let redir_port = sim.redir_addr.unwrap().port();

    // kvm_vnc, as a user runs it, in front of the same simulator.
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kvm_vnc"));
    command
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &redir_port.to_string(),
            "--viewer",
            "none",
        ])
        .env("AMT_PASSWORD", "frames-pass")
        .env("RUST_LOG", "warn");
    let (_kvm_vnc, vnc_port) = oobkit_testkit::spawn_listening(&mut command, "vnc").await;
    let native = native_fps(SocketAddr::from(([127, 0, 0, 1], vnc_port)), seconds).await;
    // The simulator allows one KVM session at a time, as AMT does: let the first one end.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // web_console in this process, the page in Chromium.
    let amt = web_console::AmtTarget {
        name: "sim".into(),
        wsman: oobkit_io::Endpoint::plain("127.0.0.1", sim.http_addr.port()),
        redirection: oobkit_io::redirection::RedirTarget {
            endpoint: oobkit_io::Endpoint::plain("127.0.0.1", redir_port),
            transport: oobkit_redir::Transport::Tcp,
            user: "admin".into(),
            password: "frames-pass".into(),
        },
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let console = listener.local_addr().unwrap();
    let dir = std::env::temp_dir().join(format!("frames-bench-{}", std::process::id()));
    let mut config = web_console::ConsoleConfig::new(
        dir.join("known_hosts"),
        web_console::GatewayAuth::Bearer {
            token: TOKEN.into(),
            user: "bench".into(),
        },
    );
    config.amts = vec![amt];
    tokio::spawn(web_console::serve(listener, config));
    let created = std::process::Command::new("curl")
        .args([
            "-sS",
            "-H",
            &format!("Authorization: Bearer {TOKEN}"),
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"target":"sim","kind":"kvm"}"#,
        ])
        .arg(format!("http://{console}/sessions"))
        .output()
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let driver = chromedriver().await;
    let page = browser(&driver, 1100, 900).await;
    page.goto(&format!(
        "http://{console}{}",
        answer["url"].as_str().unwrap()
    ))
    .await
    .unwrap();
    let started = Instant::now();
    while page
        .execute("return document.body.dataset.state", vec![])
        .await
        .unwrap()
        != "connected"
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "noVNC did not connect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // noVNC asks for incremental updates, which a still screen answers with nothing: ask for
    // whole frames instead, as the native client does, and count the frames drawn.
    let browser_fps = page
        .execute_async(
            "const [seconds, done] = arguments;
             const rfb = window.consoleRfb;
             const messages = rfb.constructor.messages;
             const request = messages.fbUpdateRequest;
             messages.fbUpdateRequest = (sock, incremental, x, y, w, h) => request(sock, false, x, y, w, h);
             let frames = 0;
             const flip = rfb._display.flip.bind(rfb._display);
             rfb._display.flip = (...a) => { frames++; return flip(...a); };
             request(rfb._sock, false, 0, 0, rfb._fbWidth, rfb._fbHeight);
             const t0 = performance.now();
             setTimeout(() => done(frames / ((performance.now() - t0) / 1000)), seconds * 1000);",
            vec![seconds.into()],
        )
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    let _ = page.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "KVM frames per second (1024x768, 32-bit, whole frames): in Chromium through web_console and noVNC {browser_fps:.1}, through kvm_vnc to a native RFB client {native:.1} (the browser reaches {:.0}%)",
        100.0 * browser_fps / native
    );
    println!("FIGURE kvm_browser_fps={browser_fps:.2} kvm_native_fps={native:.2}");
}
