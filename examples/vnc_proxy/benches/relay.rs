//! vnc_proxy beside the seed (PyPI lab-orchestrator-ws-proxy-lib 1.0.0, in its dev mode) and
//! beside no proxy at all (a client talking to the KubeVirt stand-in directly: the limit), and
//! the stand-in's own websocket-to-TCP hop beside websockify (Debian's, the relay noVNC users
//! reach for) in front of the same console, in one run: relay throughput of a VM console
//! streaming 256 MiB, websocket connect latency (through each proxy to the upstream), and
//! resident memory per idle session.
//!
//! The three-way relay runs with this process (the stand-in, streaming virt-handler's 32 KiB
//! frames of a console held in memory, and the client) on one core and the proxy under test
//! on another: the load generator and the program it measures apart, as the API server, the
//! browser and the proxy are in a deployment. `-- --test` (CI) moves 8 MiB and opens fewer
//! sessions.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use oobkit_testkit::free_port;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use vnc_proxy::standin::{Console, StandInConfig};
use vnc_proxy::upstream::vnc_path;

const SECRET: &str = "bench-secret";

/// A console that sends `total` bytes to each connection, then closes.
async fn source(total: usize) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let chunk = vec![0x42; 64 * 1024];
                let mut left = total;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if s.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    left -= n;
                }
                let _ = s.shutdown().await;
                // Keep the socket until the peer closes, so nothing is lost in flight.
                let mut sink = [0u8; 1024];
                while let Ok(n) = tokio::io::AsyncReadExt::read(&mut s, &mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A console that greets like a VNC server and then waits: for connect latency and idle
/// sessions, which must not measure a stream running underneath.
async fn quiet() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                if s.write_all(b"RFB 003.008\n").await.is_ok() {
                    let mut sink = [0u8; 1024];
                    while let Ok(n) = tokio::io::AsyncReadExt::read(&mut s, &mut sink).await {
                        if n == 0 {
                            break;
                        }
                    }
                }
            });
        }
    });
    addr
}

fn token() -> String {
    vnc_proxy::token_valid_for(
        SECRET.as_bytes(),
        Duration::from_secs(3600),
        "ns",
        &["vm", "quiet"],
    )
}

async fn open(url: &str) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    let request = url.into_client_request().unwrap();
    let host = request.uri().authority().unwrap().to_string();
    let tcp = TcpStream::connect(host).await.unwrap();
    let mut config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
    config.max_message_size = Some(64 << 20);
    config.max_frame_size = Some(64 << 20);
    tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
        .await
        .unwrap()
        .0
}

/// Time to receive `total` bytes of binary messages through `url`. The client reads frames
/// without decoding them into messages (oobkit-wspass counting payload bytes, a 256 KiB
/// read buffer), so that on two cores it takes as little as it can from what it measures
/// (the same client for all three paths).
async fn drain(url: &str, total: usize) -> Duration {
    let rest = url.strip_prefix("ws://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let (host, port) = authority.rsplit_once(':').unwrap();
    let endpoint = oobkit_io::Endpoint::plain(host, port.parse().unwrap());
    let raw = oobkit_io::websocket_upgrade(&endpoint, path, &[])
        .await
        .unwrap()
        .unwrap_or_else(|refused| panic!("{url}: HTTP {}", refused.status));
    let started = Instant::now();
    let mut stream = raw.stream;
    let mut frames = oobkit_wspass::Passthrough::from_server(u64::MAX);
    let mut buf = vec![0u8; 256 * 1024];
    buf[..raw.early.len()].copy_from_slice(&raw.early);
    let mut held = raw.early.len();
    while frames.payload_forwarded() < total as u64 {
        let mut start = 0;
        loop {
            match frames.step(&mut buf[start..held]) {
                Ok(oobkit_wspass::Step::NeedMore) => break,
                Ok(_) => start += frames.consumed(),
                Err(e) => panic!("{url}: {e}"),
            }
        }
        buf.copy_within(start..held, 0);
        held -= start;
        if frames.payload_forwarded() >= total as u64 {
            break;
        }
        match stream.read(&mut buf[held..]).await {
            Ok(0) | Err(_) => panic!(
                "{url}: ended after {} of {total} bytes",
                frames.payload_forwarded()
            ),
            Ok(n) => held += n,
        }
    }
    started.elapsed()
}

/// Connect latencies (websocket handshake through to the upstream), sorted.
async fn connects(url: &str, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let mut ws = open(url).await;
        // The upstream answered: the first console bytes arrive.
        let _ = ws.next().await;
        out.push(started.elapsed());
        drop(ws);
    }
    out.sort();
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let total: usize = if smoke { 8 << 20 } else { 256 << 20 };
    let (rounds, latency_n, idle_n) = if smoke { (1, 10, 20) } else { (15, 200, 200) };
    let console = source(total).await;
    let idle_console = quiet().await;
    // The upstream of the three-way comparison: virt-handler's frames (32 KiB, one write each)
    // of a console streaming from memory, the cheapest upstream there is, so that the core it
    // shares with the client is spent on the two ends of the transfer and nothing else.
    let api = vnc_proxy::standin::start(StandInConfig {
        vmis: vec![
            (
                "ns".into(),
                "vm".into(),
                Console::Generated {
                    bytes: total as u64,
                },
            ),
            ("ns".into(), "quiet".into(), Console::Tcp(idle_console)),
        ],
        bearer: None,
        tls: None,
        coalesce: false,
    })
    .await
    .unwrap();
    // vnc_proxy, as a process of its own like the seed.
    let ours_port = free_port();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_vnc_proxy"));
    command
        .args([
            "--listen",
            &format!("127.0.0.1:{ours_port}"),
            "--dev",
            "--api",
            &format!("127.0.0.1:{}", api.port()),
        ])
        .args(["--max-message", &(64usize << 20).to_string()])
        .env("VNC_PROXY_SECRET", SECRET)
        .env("RUST_LOG", "warn");
    let (ours, _) = oobkit_testkit::spawn_listening(&mut command, "http").await;
    // The seed, on Debian's python3 in the venv ./test.sh makes.
    let seed_port = free_port();
    let python = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/seedproxy-venv/bin/python"
    );
    assert!(
        std::path::Path::new(python).exists(),
        "{python} missing: run ./test.sh --setup-only"
    );
    let mut command = tokio::process::Command::new(python);
    command.args([
        concat!(env!("CARGO_MANIFEST_DIR"), "/bench/seed_proxy.py"),
        &seed_port.to_string(),
        &api.port().to_string(),
        SECRET,
    ]);
    let seed = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the seed starts");
    oobkit_testkit::wait_listening(seed_port, Duration::from_secs(30), "the seed proxy").await;

    // oobkit's websocket-to-TCP hop at its best (the stand-in joining waiting console bytes
    // into one write; the stand-in above writes each message at once, as virt-handler does).
    let hop = vnc_proxy::standin::start(StandInConfig {
        vmis: vec![("ns".into(), "vm".into(), Console::Tcp(console))],
        bearer: None,
        tls: None,
        coalesce: true,
    })
    .await
    .unwrap();
    let hop_url = format!("ws://{hop}{}", vnc_path("v1", "ns", "vm"));
    let mut hop_best = Duration::MAX;
    // websockify in front of the same console: a single websocket-to-TCP hop, as the stand-in.
    let websockify_port = free_port();
    let websockify = tokio::process::Command::new("websockify")
        .args([
            &format!("127.0.0.1:{websockify_port}"),
            &console.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("websockify runs (./test.sh installs it)");
    oobkit_testkit::wait_listening(websockify_port, Duration::from_secs(30), "websockify").await;
    let websockify_url = format!("ws://127.0.0.1:{websockify_port}/");
    let mut websockify_best = Duration::MAX;
    let mut websockify_cpu = Duration::ZERO;
    let websockify_pid = websockify.id().expect("websockify runs");

    let token = token();
    let direct_url = format!("ws://{api}{}", vnc_path("v1", "ns", "vm"));
    let ours_url = format!("ws://127.0.0.1:{ours_port}/{token}/vm");
    let seed_url = format!("ws://127.0.0.1:{seed_port}/{token}/vm");
    let mut best = [Duration::MAX; 3];
    // The load generator (this process: the upstream and the client) on one core and each
    // proxy on the other, as in a deployment, where the proxy does not share its cores with
    // the API server and the browser. Unpinned on two cores, the figure measured how the
    // scheduler shared them: the proxy's two copies of every byte cost as much as the two
    // ends' together, so it took a core's worth from the ends it was measured against.
    let me = std::process::id();
    let cpus = oobkit_testkit::allowed_cpus(None).unwrap();
    let everywhere = cpus
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let pinned = cpus.len() >= 2;
    if pinned {
        for pid in [ours.id(), seed.id()] {
            let pid = pid.expect("the proxy runs");
            oobkit_testkit::pin_to_cpus(pid, &cpus[1].to_string()).unwrap();
        }
        oobkit_testkit::pin_to_cpus(me, &cpus[0].to_string()).unwrap();
    } else {
        println!("one core: the proxies share it with the load generator");
    }
    // Each proxy's own processor time over its transfers: the bytes a proxy relays per
    // second of its own processor time compares the proxies however the machine is shared.
    let mut proxy_cpu = [Duration::ZERO; 3];
    let pids = [None, ours.id(), seed.id()];
    for _ in 0..rounds {
        for (i, url) in [&direct_url, &ours_url, &seed_url].into_iter().enumerate() {
            let before = pids[i].map(|pid| oobkit_testkit::cpu_time(pid).unwrap());
            best[i] = best[i].min(drain(url, total).await);
            if let (Some(pid), Some(before)) = (pids[i], before) {
                proxy_cpu[i] += oobkit_testkit::cpu_time(pid).unwrap() - before;
            }
        }
    }
    if pinned {
        oobkit_testkit::pin_to_cpus(me, &everywhere).unwrap();
    }
    // The single hops (a TCP console behind each), unpinned.
    for _ in 0..rounds {
        // websockify forks a process per connection: its time counts with the parent's once
        // the child is reaped, so the tree is read, and read again after the child ended.
        let before = oobkit_testkit::tree_cpu_time(websockify_pid).unwrap();
        websockify_best = websockify_best.min(drain(&websockify_url, total).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        websockify_cpu += oobkit_testkit::tree_cpu_time(websockify_pid).unwrap() - before;
        hop_best = hop_best.min(drain(&hop_url, total).await);
    }
    let rate = |d: Duration| total as f64 / d.as_secs_f64() / (1 << 20) as f64;
    let (direct, ours_rate, seed_rate) = (rate(best[0]), rate(best[1]), rate(best[2]));
    // Processor time is counted in clock ticks: a short (--test) run may show none, which is
    // no figure rather than an infinite one.
    let per_cpu = |cpu: Duration| {
        if cpu.is_zero() {
            f64::NAN
        } else {
            (total * rounds) as f64 / cpu.as_secs_f64() / (1 << 20) as f64
        }
    };
    let (ours_per_cpu, seed_per_cpu) = (per_cpu(proxy_cpu[1]), per_cpu(proxy_cpu[2]));
    let pct = |v: &[Duration], q: f64| v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    let quiet_urls = [&direct_url, &ours_url, &seed_url].map(|u| u.replace("/vm", "/quiet"));
    let lat: Vec<Vec<Duration>> = {
        let mut out = Vec::new();
        for url in &quiet_urls {
            out.push(connects(url, latency_n).await);
        }
        out
    };
    // Memory per idle session: open idle_n sessions through each proxy.
    let mut per_session = Vec::new();
    for (child, url) in [(&ours, &quiet_urls[1]), (&seed, &quiet_urls[2])] {
        let pid = child.id();
        let before = oobkit_testkit::resident_kib(pid).unwrap();
        let mut idle = Vec::new();
        for _ in 0..idle_n {
            idle.push(open(url).await);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = oobkit_testkit::resident_kib(pid).unwrap();
        per_session.push((after.saturating_sub(before)) as f64 * 1024.0 / idle_n as f64);
        drop(idle);
    }
    println!(
        "vnc_proxy relay of {} MiB (best of {rounds}): {ours_rate:.0} MiB/s; the seed {seed_rate:.0} MiB/s ({:.1}x); direct to the upstream {direct:.0} MiB/s (vnc_proxy keeps {:.0}%)",
        total >> 20,
        ours_rate / seed_rate,
        100.0 * ours_rate / direct
    );
    let websockify_rate = rate(websockify_best);
    let hop_rate = rate(hop_best);
    let websockify_per_cpu = per_cpu(websockify_cpu);
    println!(
        "one websocket-to-TCP hop in front of the same console: oobkit's (the stand-in joining \
         waiting console bytes into one write) {hop_rate:.0} MiB/s, websockify \
         {websockify_rate:.0} MiB/s ({:.1}x; websockify relays {websockify_per_cpu:.0} MiB per \
         second of its own processor time)",
        hop_rate / websockify_rate
    );
    println!(
        "relayed per second of the proxy's own processor time: vnc_proxy {ours_per_cpu:.0} MiB, the seed {seed_per_cpu:.0} MiB ({:.1}x)",
        ours_per_cpu / seed_per_cpu
    );
    println!(
        "connect latency p50/p99 (us): direct {:.0}/{:.0}, vnc_proxy {:.0}/{:.0}, seed {:.0}/{:.0}; memory per idle session: vnc_proxy {:.0} bytes, seed {:.0} bytes",
        pct(&lat[0], 0.5),
        pct(&lat[0], 0.99),
        pct(&lat[1], 0.5),
        pct(&lat[1], 0.99),
        pct(&lat[2], 0.5),
        pct(&lat[2], 0.99),
        per_session[0],
        per_session[1]
    );
    println!(
        "FIGURE websockify_mib_s={websockify_rate:.0} oobkit_hop_mib_s={hop_rate:.0} websockify_mib_per_cpu_s={websockify_per_cpu:.0} vnc_proxy_mib_s={ours_rate:.0} seed_proxy_mib_s={seed_rate:.0} direct_ws_mib_s={direct:.0} vnc_proxy_mib_per_cpu_s={ours_per_cpu:.0} seed_proxy_mib_per_cpu_s={seed_per_cpu:.0} vnc_proxy_connect_p99_us={:.0} direct_connect_p99_us={:.0} seed_connect_p99_us={:.0} vnc_proxy_bytes_per_idle={:.0} seed_bytes_per_idle={:.0}",
        pct(&lat[1], 0.99),
        pct(&lat[0], 0.99),
        pct(&lat[2], 0.99),
        per_session[0],
        per_session[1]
    );
}
