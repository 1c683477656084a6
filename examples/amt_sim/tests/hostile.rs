//! The simulator under attack: every hostile client of the hardening review at once, each
//! from an address of its own on loopback, while the owner (127.0.0.1) uses WS-Management and
//! opens SOL. Resident memory is read from /proc before, during and after.
//!
//! Bounded: a few hundred connections, 20 s at most, loopback only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use amt_sim::{SimConfig, Simulator};
use oobkit_redir::Event;
use oobkit_redir::codec::SessionKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;
use common::{PASSWORD, connect_from, drive, open_session, sol_client};

/// The owner's checks: WS-Management answers and a SOL session opens.
async fn owner_is_served(sim: &Simulator, what: &str) {
    let endpoint = oobkit_io::Endpoint::plain("127.0.0.1", sim.http_addr.port());
    let mut wsman = oobkit_io::WsmanClient::new(endpoint, "admin", PASSWORD);
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        wsman.call(oobkit_wsman::ops::get_power_state()),
    )
    .await;
    assert!(
        matches!(reply, Ok(Ok(_))),
        "{what}: WS-Management refused the owner: {reply:?}"
    );
    let mut stream = TcpStream::connect(sim.redir_addr.unwrap()).await.unwrap();
    let mut client = sol_client();
    let events = drive(&mut stream, &mut client, |_, events| {
        events.contains(&Event::SolReady)
    })
    .await;
    assert!(
        events.contains(&Event::SolReady),
        "{what}: SOL refused the owner: {events:?}"
    );
}

#[tokio::test]
async fn the_owner_is_served_while_every_attack_runs_and_memory_stays_bounded() {
    let mut config = SimConfig::loopback(PASSWORD);
    config.redir_listen = Some("127.0.0.1:0".parse().unwrap());
    config.redir_tls_listen = Some("127.0.0.1:0".parse().unwrap());
    // Small pools, so that the attacks below would fill them many times over if unauthenticated
    // connections counted against them (they did: one pool per port, taken at accept).
    config.max_connections = 8;
    config.head_timeout = Duration::from_secs(3);
    config.write_timeout = Duration::from_secs(2);
    let sim = Simulator::start(config).await.unwrap();
    let (web, redir, redir_tls) = (
        sim.http_addr,
        sim.redir_addr.unwrap(),
        sim.redir_tls_addr.unwrap(),
    );
    let before = oobkit_testkit::resident_kib(None).unwrap();
    let mut attackers = Vec::new();
    // How many attackers of each kind got connected and sent their first bytes: the owner's
    // service proves nothing if the attacks never took hold.
    let took_hold: [Arc<AtomicUsize>; 4] = Default::default();
    let hold = |kind: usize| Arc::clone(&took_hold[kind]);

    // 1. Half-open redirection sessions: StartRedirectionSession "SOL ", then nothing.
    for _ in 0..100 {
        let held = hold(0);
        attackers.push(tokio::spawn(async move {
            if let Ok(mut s) = connect_from([127, 0, 0, 2], redir).await {
                if s.write_all(b"\x10\x00\x00\x00SOL ").await.is_ok() {
                    held.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        }));
    }
    // 2. Slowloris on the web port: a request head a byte every 200 ms.
    for _ in 0..50 {
        let held = hold(1);
        attackers.push(tokio::spawn(async move {
            if let Ok(mut s) = connect_from([127, 0, 0, 3], web).await {
                held.fetch_add(1, Ordering::Relaxed);
                for byte in b"POST /wsman HTTP/1.1\r\nHost: x\r\n".iter().cycle() {
                    if s.write_all(&[*byte]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }));
    }
    // 3. A TLS handshake flood on the TLS redirection port: connect, never say hello.
    for _ in 0..50 {
        let held = hold(2);
        attackers.push(tokio::spawn(async move {
            if let Ok(_s) = connect_from([127, 0, 0, 4], redir_tls).await {
                held.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        }));
    }
    // 4. Oversized and malformed input, over and over: a 1 TB body announced, a chunk size
    //    beyond any bound, a redirection message claiming a 4 GiB field, random bytes.
    for i in 0..40u32 {
        let held = hold(3);
        attackers.push(tokio::spawn(async move {
            let (to, bytes): (SocketAddr, Vec<u8>) = match i % 4 {
                0 => (
                    web,
                    b"POST /wsman HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n"
                        .to_vec(),
                ),
                1 => (
                    web,
                    b"POST /wsman HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n"
                        .to_vec(),
                ),
                2 => (redir, {
                    let mut m = b"\x10\x00\x00\x00SOL \x13\x00\x00\x00\x04\xff\xff\xff\xff".to_vec();
                    m.extend_from_slice(&[0xAA; 4096]);
                    m
                }),
                _ => (redir, (0..4096u32).map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8).collect()),
            };
            if let Ok(mut s) = connect_from([127, 0, 0, 5], to).await {
                if s.write_all(&bytes).await.is_ok() {
                    held.fetch_add(1, Ordering::Relaxed);
                }
                let mut sink = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut sink))
                    .await;
            }
        }));
    }
    // 5. An authenticated KVM viewer that asks for full screens and stops reading.
    let (mut viewer, events) = open_session(redir, SessionKind::Kvm).await;
    assert!(events.contains(&Event::RfbHandoff), "{events:?}");
    viewer.write_all(b"RFB 003.008\n\x01\x01").await.unwrap();
    for _ in 0..20 {
        let _ = viewer
            .write_all(b"\x03\x00\x00\x00\x00\x00\x04\x00\x03\x00")
            .await;
    }

    // Let the attacks take hold, then the owner comes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during = oobkit_testkit::resident_kib(None).unwrap();
    let took_hold = took_hold.each_ref().map(|n| n.load(Ordering::Relaxed));
    assert!(
        took_hold[0] >= 50 && took_hold[1] >= 25 && took_hold[2] >= 25 && took_hold[3] >= 20,
        "the attacks did not take hold (half-open, slowloris, TLS flood, malformed): {took_hold:?}"
    );
    owner_is_served(&sim, "during the attacks").await;

    for attacker in &attackers {
        attacker.abort();
    }
    drop(viewer);
    tokio::time::sleep(Duration::from_secs(1)).await;
    owner_is_served(&sim, "after the attacks").await;
    let after = oobkit_testkit::resident_kib(None).unwrap();
    println!("resident memory: {before} KiB before, {during} KiB during, {after} KiB after");
    // The simulator buffers at most a request head or a body cap per connection, and the
    // unauthenticated budget caps the connections: 64 MiB is far above what that allows and
    // far below what unbounded buffering of the input above would take.
    assert!(
        during.saturating_sub(before) < 64 * 1024,
        "memory grew by {} KiB during the attacks",
        during - before
    );
    assert!(
        after.saturating_sub(before) < 64 * 1024,
        "memory grew by {} KiB",
        after - before
    );
}
