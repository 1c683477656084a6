//! Keystroke echo latency added by sol_telnet: one byte typed on the telnet side, echoed by
//! the simulated AMT's SOL console, back to the telnet side; beside the round trip of a plain
//! loopback TCP echo in the same run. Reports p50 and p99 of both and the difference.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn round_trips(stream: &mut TcpStream, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    let mut byte = [0u8; 1];
    for i in 0..n {
        let key = b'a' + (i % 26) as u8;
        let start = Instant::now();
        stream.write_all(&[key]).await.unwrap();
        loop {
            stream.read_exact(&mut byte).await.unwrap();
            if byte[0] == key {
                break;
            }
        }
        out.push(start.elapsed());
    }
    out.sort_unstable();
    out
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = if std::env::args().any(|a| a == "--test") {
        20
    } else {
        2000
    };
    // Baseline: a plain loopback echo.
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = echo.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = [0u8; 64];
        loop {
            let k = s.read(&mut buf).await.unwrap();
            if k == 0 || s.write_all(&buf[..k]).await.is_err() {
                return;
            }
        }
    });
    let mut plain = TcpStream::connect(echo_addr).await.unwrap();
    plain.set_nodelay(true).unwrap();
    // sol_telnet against a simulated AMT whose console echoes.
    let mut config = amt_sim::SimConfig::loopback("bench-pw");
    config.redir_listen = Some("127.0.0.1:0".parse().unwrap());
    config.sol = amt_sim::SolBackend::Echo;
    let sim = amt_sim::Simulator::start(config).await.unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sol_telnet"));
    command
        .args([
            "--client",
            "none",
            "--host",
            "127.0.0.1",
            "--port",
            &sim.redir_addr.unwrap().port().to_string(),
        ])
        .env("AMT_PASSWORD", "bench-pw");
    let (_bridge, port) = oobkit_testkit::spawn_listening(&mut command, "telnet").await;
    let mut telnet = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    telnet.set_nodelay(true).unwrap();
    // Skip the greeting and let the SOL session come up.
    let mut greeting = [0u8; 9];
    telnet.read_exact(&mut greeting).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = round_trips(&mut telnet, 10).await; // warm-up
    let base = round_trips(&mut plain, n).await;
    let through = round_trips(&mut telnet, n).await;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "sol_telnet echo: p50 {:.0} us, p99 {:.0} us; plain loopback echo p50 {:.0} us, p99 {:.0} us; added p50 {:.0} us, p99 {:.0} us ({n} keystrokes)",
        us(pct(&through, 0.5)),
        us(pct(&through, 0.99)),
        us(pct(&base, 0.5)),
        us(pct(&base, 0.99)),
        us(pct(&through, 0.5)) - us(pct(&base, 0.5)),
        us(pct(&through, 0.99)) - us(pct(&base, 0.99)),
    );
    println!(
        "FIGURE sol_echo_p50_us={:.0} sol_echo_p99_us={:.0} tcp_echo_p50_us={:.0} tcp_echo_p99_us={:.0}",
        us(pct(&through, 0.5)),
        us(pct(&through, 0.99)),
        us(pct(&base, 0.5)),
        us(pct(&base, 0.99)),
    );
}
