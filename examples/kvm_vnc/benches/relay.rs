//! Relay throughput of kvm_vnc over loopback, beside a plain loopback TCP copy of the same
//! bytes in the same run. The chain: a byte source (standing in for the VNC server behind the
//! AMT) -> simulated AMT (KVM forwarded to the source) -> kvm_vnc -> reader.
//! `cargo bench -p kvm_vnc`; with `--test` it moves 1 MiB once as a smoke run.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A source that sends `total` bytes to each connection, after skipping what a VNC client
/// would send (we never send anything).
async fn source(total: usize) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let chunk = vec![0xA5u8; 256 * 1024];
                let mut left = total;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if s.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    left -= n;
                }
            });
        }
    });
    addr
}

async fn drain(addr: std::net::SocketAddr, total: usize) -> Duration {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    while got < total {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "stream ended after {got} bytes");
        got += n;
    }
    start.elapsed()
}

/// The same bytes read straight from the simulated AMT's KVM session (no kvm_vnc): what the
/// chain costs without the launcher's hop.
async fn drain_direct(target: &oobkit_io::redirection::RedirTarget, total: usize) -> Duration {
    let session =
        oobkit_io::redirection::open_session(target, oobkit_redir::codec::SessionKind::Kvm)
            .await
            .unwrap();
    let rfb = session.into_rfb();
    let mut stream = rfb.stream;
    let start = Instant::now();
    let mut got = rfb.early.len();
    let mut buf = vec![0u8; 256 * 1024];
    while got < total {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got += n;
    }
    start.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let total = if smoke { 1 << 20 } else { 256 << 20 };
    let rounds = if smoke { 1 } else { 5 };
    let src = source(total).await;
    let mut config = amt_sim::SimConfig::loopback("bench-pw");
    config.redir_listen = Some("127.0.0.1:0".parse().unwrap());
    config.kvm = amt_sim::KvmBackend::Forward(src.to_string());
    let sim = amt_sim::Simulator::start(config).await.unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kvm_vnc"));
    command
        .args([
            "--viewer",
            "none",
            "--host",
            "127.0.0.1",
            "--port",
            &sim.redir_addr.unwrap().port().to_string(),
        ])
        .env("AMT_PASSWORD", "bench-pw");
    let (_bridge, port) = oobkit_testkit::spawn_listening(&mut command, "vnc").await;
    let relay = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let target = oobkit_io::redirection::RedirTarget {
        endpoint: oobkit_io::Endpoint::plain("127.0.0.1", sim.redir_addr.unwrap().port()),
        transport: oobkit_redir::Transport::Tcp,
        user: "admin".into(),
        password: "bench-pw".into(),
    };
    let (mut plain, mut relayed, mut direct) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        plain.push(drain(src, total).await);
        relayed.push(drain(relay, total).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        direct.push(drain_direct(&target, total).await);
        // Let the KVM session end before the next round (one session at a time).
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let best = |v: &[Duration]| v.iter().min().copied().unwrap();
    let rate = |d: Duration| total as f64 / d.as_secs_f64() / (1u64 << 30) as f64;
    let (p, r, d) = (best(&plain), best(&relayed), best(&direct));
    println!(
        "kvm_vnc relay: {:.2} GiB/s through simulated AMT + kvm_vnc; {:.2} GiB/s plain loopback copy ({:.0}%); \
         {:.2} GiB/s from the simulated AMT without kvm_vnc (kvm_vnc's hop keeps {:.0}%) ({} MiB, best of {rounds})",
        rate(r),
        rate(p),
        100.0 * p.as_secs_f64() / r.as_secs_f64(),
        rate(d),
        100.0 * d.as_secs_f64() / r.as_secs_f64(),
        total >> 20
    );
    println!(
        "FIGURE kvm_relay_gib_s={:.2} tcp_copy_gib_s={:.2} amt_direct_gib_s={:.2}",
        rate(r),
        rate(p),
        rate(d)
    );
}
