//! oobkit-wspass: 2 MiB of 32 KiB binary frames relayed by the passthrough (copied in as a read
//! would, headers read, frames copied out from the buffer they are in as a write would; a
//! client's frames re-masked in place), beside one memcpy of the same bytes (a relay copies
//! twice: 2.0 is the floor) and beside tungstenite reading the messages and writing them again
//! (what a relay built on a websocket library does), in the same run.

use std::hint::black_box;
use std::io::Cursor;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use oobkit_wspass::{Passthrough, Step};
use tungstenite::Message;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};

const FRAMES: usize = 64;
const PAYLOAD: usize = 32 * 1024;

/// The frames as a server (`mask: None`) or a client sends them.
fn wire(mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..FRAMES {
        let mut frame = Frame::message(vec![i as u8; PAYLOAD], OpCode::Data(Data::Binary), true);
        frame.header_mut().mask = mask;
        frame.format(&mut out).unwrap();
    }
    out
}

/// Copies `wire` into `buf` (as a read from a socket does), steps through it, and copies what
/// is forwarded to `out` (as a write to a socket does): the relay's work besides the kernel's.
fn pass(pass: &mut Passthrough, wire: &[u8], buf: &mut [u8], out: &mut Vec<u8>) {
    buf.copy_from_slice(wire);
    out.clear();
    let mut start = 0;
    loop {
        match pass.step(&mut buf[start..]).unwrap() {
            Step::NeedMore => break,
            Step::Forward(n) => out.extend_from_slice(&buf[start..start + n]),
            _ => {}
        }
        start += pass.consumed();
    }
}

/// tungstenite in `role` reads every message from `wire` and a second websocket writes each
/// again (in the other role) into `out`; 64 KiB read buffers, as vnc_proxy's.
fn rebuild(wire: &[u8], role: Role, out: Vec<u8>) -> usize {
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = 64 * 1024;
    let mut reader = WebSocket::from_raw_socket(ReadOnly(Cursor::new(wire)), role, Some(config));
    let other = if role == Role::Server {
        Role::Client
    } else {
        Role::Server
    };
    let mut writer = WebSocket::from_raw_socket(Cursor::new(out), other, Some(config));
    let mut n = 0;
    for _ in 0..FRAMES {
        match reader.read().unwrap() {
            Message::Binary(data) => {
                n += data.len();
                writer.write(Message::Binary(data)).unwrap();
            }
            other => panic!("{other:?}"),
        }
    }
    writer.flush().unwrap();
    n
}

/// A read-only stream over borrowed bytes: `Cursor<&[u8]>` cannot be written, and tungstenite
/// wants a stream it could answer pings on; none come here.
struct ReadOnly<'a>(Cursor<&'a [u8]>);

impl std::io::Read for ReadOnly<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl std::io::Write for ReadOnly<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn relay(c: &mut Criterion) {
    let from_server = wire(None);
    let from_client = wire(Some([1, 2, 3, 4]));
    let mut g = c.benchmark_group("wspass/32KiB_frames");
    g.throughput(Throughput::Bytes((FRAMES * PAYLOAD) as u64));
    g.bench_function("baseline_memcpy", |b| {
        let mut dst = vec![0u8; from_server.len()];
        b.iter(|| {
            dst.copy_from_slice(black_box(&from_server));
            black_box(&dst);
        })
    });
    g.bench_function("passthrough_from_server", |b| {
        let mut buf = from_server.clone();
        let mut out = Vec::with_capacity(buf.len());
        let mut p = Passthrough::from_server(u64::MAX);
        b.iter(|| pass(&mut p, black_box(&from_server), &mut buf, &mut out))
    });
    g.bench_function("passthrough_from_client_remasked", |b| {
        let mut buf = from_client.clone();
        let mut out = Vec::with_capacity(buf.len());
        let mut key = 0u32;
        let mut p = Passthrough::from_client(
            u64::MAX,
            Box::new(move || {
                key = key.wrapping_add(0x9e37_79b9);
                key.to_be_bytes()
            }),
        );
        b.iter(|| pass(&mut p, black_box(&from_client), &mut buf, &mut out))
    });
    // tungstenite copies the bytes in from its stream and the rebuilt frames out to its
    // stream, as the passthrough above does.
    for (name, wire, role) in [
        ("peer_tungstenite_from_server", &from_server, Role::Client),
        ("peer_tungstenite_from_client", &from_client, Role::Server),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || Vec::with_capacity(wire.len() + FRAMES * 14),
                |out| assert_eq!(rebuild(black_box(wire), role, out), FRAMES * PAYLOAD),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, relay);
criterion_main!(benches);
