//! End to end with vncdotool (PyPI, installed by `.ci/run` into `target/vncdotool-venv`):
//! `vncdo capture` through kvm_vnc from the simulated AMT's KVM, and the PNG's pixels checked
//! against the simulator's colour bars.

use std::time::Duration;

use oobkit_testkit::vncdo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

async fn start_bridge(extra: &[&str]) -> (Child, u16) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kvm_vnc"));
    command
        .args(["--viewer", "none", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env_remove("AMT_HOST");
    oobkit_testkit::spawn_listening(&mut command, "vnc").await
}

#[tokio::test]
async fn vncdo_captures_the_test_pattern() {
    let (_bridge, port) = start_bridge(&[]).await;
    let out = std::env::temp_dir().join(format!("kvm-vnc-{}.png", std::process::id()));
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(vncdo())
            .args(["-s", &format!("127.0.0.1::{port}"), "capture"])
            .arg(&out)
            .status(),
    )
    .await
    .expect("vncdo finishes")
    .expect("vncdo runs");
    assert!(status.success(), "vncdo failed: {status}");
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&out).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (1024, 768));
    let channels = info.line_size / info.width as usize;
    for bar in 0..8u32 {
        let x = bar * 128 + 64;
        for y in [10, 384, 760] {
            let at = y as usize * info.line_size + x as usize * channels;
            assert_eq!(
                &pixels[at..at + 3],
                &amt_sim::rfb::BARS[bar as usize],
                "bar {bar} at ({x}, {y})"
            );
        }
    }
    std::fs::remove_file(out).ok();
}

#[tokio::test]
async fn a_refused_viewer_is_told_why_in_rfb() {
    let (_bridge, port) = start_bridge(&[]).await;
    // The first viewer holds the KVM session (it has read the server's version).
    let mut first = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut version = [0u8; 12];
    first.read_exact(&mut version).await.unwrap();
    assert_eq!(&version, b"RFB 003.008\n");
    // A second one gets a proper RFB failure with the reason, which viewers display.
    let mut second = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    second.read_exact(&mut version).await.unwrap();
    assert_eq!(&version, b"RFB 003.008\n");
    second.write_all(b"RFB 003.008\n").await.unwrap();
    let mut rest = Vec::new();
    second.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest[0], 0, "no security types: a reason follows");
    let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
    assert_eq!(
        String::from_utf8_lossy(&rest[5..5 + len]),
        "another viewer is using the KVM session"
    );
}

/// A viewer that leaves while a silent device is still being asked for KVM frees the bridge at
/// once: the next viewer is not told "another viewer is using the KVM session".
#[tokio::test]
async fn a_viewer_leaving_a_silent_device_frees_the_bridge() {
    let device = oobkit_testkit::SilentDevice::start().await;
    let port_arg = device.addr.port().to_string();
    let mut command = Command::new(env!("CARGO_BIN_EXE_kvm_vnc"));
    command
        .args(["--viewer", "none", "--listen", "127.0.0.1:0"])
        .args(["--host", "127.0.0.1", "--port", &port_arg])
        .env("AMT_PASSWORD", "irrelevant");
    let (_bridge, port) = oobkit_testkit::spawn_listening(&mut command, "vnc").await;
    let heard = oobkit_testkit::leave_then_return(port, b"RFB 003.008\n").await;
    assert!(
        !heard.contains("another viewer"),
        "the bridge stayed busy: {heard}"
    );
}

/// A viewer that asks for full screens and stops reading is dropped after --stall-timeout, and
/// the next viewer gets the screen (the bridge's plain copies used to block on it forever, and
/// it serves one viewer at a time).
#[tokio::test]
async fn a_viewer_that_stops_reading_is_dropped_and_the_next_is_served() {
    use tokio::io::AsyncWriteExt;
    let (_bridge, port) = start_bridge(&["--stall-timeout", "1"]).await;
    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut version = [0u8; 12];
    tokio::io::AsyncReadExt::read_exact(&mut stalled, &mut version)
        .await
        .unwrap();
    assert_eq!(&version, b"RFB 003.008\n");
    // Version, security None, ClientInit, then full screens (2.3 MiB each) never read.
    stalled.write_all(b"RFB 003.008\n\x01\x01").await.unwrap();
    for _ in 0..20 {
        let _ = stalled
            .write_all(b"\x03\x00\x00\x00\x00\x00\x04\x00\x03\x00")
            .await;
    }
    let out = std::env::temp_dir().join(format!("kvm-vnc-stall-{}.png", std::process::id()));
    // Refused ("another viewer is using the KVM session") until the stalled one is dropped.
    let started = std::time::Instant::now();
    loop {
        let status = tokio::time::timeout(
            Duration::from_secs(30),
            Command::new(vncdo())
                .args(["-s", &format!("127.0.0.1::{port}"), "capture"])
                .arg(&out)
                .stderr(std::process::Stdio::null())
                .status(),
        )
        .await
        .expect("vncdo finishes")
        .expect("vncdo runs");
        if status.success() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the stalled viewer still holds the bridge"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    std::fs::remove_file(out).ok();
    drop(stalled);
}
