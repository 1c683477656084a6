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
