//! A client trickling its request cannot hold a connection of the demo server past the request
//! deadline (the idle timeout used to restart on every byte).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use digest_demo::{DemoServer, Settings};

#[test]
fn a_trickled_request_is_cut_off_at_its_deadline() {
    let mut settings = Settings::new("admin", "P@ssw0rd");
    settings.request_timeout = Duration::from_secs(1);
    let addr = DemoServer::bind("127.0.0.1:0", settings)
        .unwrap()
        .spawn()
        .unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let started = Instant::now();
    let mut seen = Vec::new();
    for byte in b"GET / HTTP/1.1\r\nHost: x\r\n".iter().cycle() {
        if stream.write_all(&[*byte]).is_err() || started.elapsed() > Duration::from_secs(5) {
            break;
        }
        let mut buf = [0u8; 256];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(_) => {} // nothing yet
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let held = started.elapsed();
    assert!(held < Duration::from_secs(3), "held for {held:?}");
    assert!(
        seen.starts_with(b"HTTP/1.1 408 "),
        "{}",
        String::from_utf8_lossy(&seen)
    );
}

/// Connections that never authenticate have a budget of their own: 30 silent connections
/// with `max_connections` 4 leave the owner served (they took the 4 places before and the owner
/// was answered 503), and a 33rd unauthenticated connection is refused.
#[test]
fn silent_connections_do_not_take_the_authenticated_places() {
    let mut settings = Settings::new("admin", "P@ssw0rd");
    settings.max_connections = 4;
    // All from 127.0.0.1 here: a per-address cap above the flood, the total one at 32.
    settings.max_unauthenticated = (32, 32);
    let addr = DemoServer::bind("127.0.0.1:0", settings)
        .unwrap()
        .spawn()
        .unwrap();
    let silent: Vec<_> = (0..30)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut client = oobkit_digest::Client::new("admin", "P@ssw0rd");
    let exchanges = digest_demo::fetch(addr, "/", &mut client).expect("the owner is served");
    let last = exchanges.last().unwrap();
    assert_eq!(last.status, 200, "{}", last.body);
    assert!(last.body.contains("Hello, admin!"), "{}", last.body);
    // 30 silent ones and the owner's: two places left, then a refusal.
    let more: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut refused = std::net::TcpStream::connect(addr).unwrap();
    refused
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = refused.read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"HTTP/1.1 503 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop((silent, more));
}
