//! oobkit-redir: SOL data from the device (decode and hand out as zero-copy `Bytes`) for
//! payloads of 1 B to 4 KiB, and KVM bytes after the RFB handoff, each beside a memcpy of the
//! same bytes in the same run.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oobkit_redir::codec::{AuthType, Message, SessionKind, StartStatus};
use oobkit_redir::{ClientSession, ClientSessionConfig, Event};

/// A client brought to the active state by feeding it a device's replies.
fn active_client(kind: SessionKind) -> ClientSession {
    let now = Instant::now();
    let mut client = ClientSession::new(ClientSessionConfig::new(kind, "admin", "pw", "c"), now);
    let mut replies = vec![
        Message::StartSessionReply {
            status: StartStatus::Success,
            protocol: [1, 0],
            firmware: [16, 1],
            iana: 343,
            oem: &[],
        },
        Message::AuthenticateReply {
            status: 0,
            auth_type: AuthType::Query,
            data: &[1], // AuthType::UserPassword
        },
        Message::AuthenticateReply {
            status: 0,
            auth_type: AuthType::UserPassword,
            data: &[],
        },
    ];
    replies.push(match kind {
        SessionKind::Sol => Message::SolStartReply {
            status: 0,
            echo: [0; 12],
        },
        _ => Message::KvmStartReply,
    });
    for r in replies {
        client.handle_input(now, &r.to_vec());
    }
    let mut ready = false;
    while let Some(e) = client.poll_event() {
        ready |= matches!(e, Event::SolReady | Event::RfbHandoff);
    }
    while client.poll_transmit().is_some() {}
    assert!(ready, "client not active");
    client
}

fn sol_decode(c: &mut Criterion) {
    let now = Instant::now();
    for payload in [1usize, 64, 512, 4096] {
        // About 64 KiB of SOL data messages per iteration.
        let count = (65536 / (payload + 10)).max(1);
        let data = vec![0x5Au8; payload];
        let mut stream = Vec::new();
        for i in 0..count {
            Message::SolDataFromHost {
                seq: i as u32,
                data: &data,
            }
            .encode(&mut stream);
        }
        let mut g = c.benchmark_group(format!("redir/sol_data_{payload}B"));
        g.throughput(Throughput::Bytes(stream.len() as u64));
        g.bench_function("baseline_memcpy", |b| {
            let mut dst = vec![0u8; stream.len()];
            b.iter(|| {
                dst.copy_from_slice(black_box(&stream));
                black_box(&dst);
            })
        });
        let mut client = active_client(SessionKind::Sol);
        g.bench_function("client_decode_and_deliver", |b| {
            b.iter(|| {
                client.handle_input(now, black_box(&stream));
                let mut n = 0;
                while let Some(e) = client.poll_event() {
                    if let Event::SolData(bytes) = e {
                        n += bytes.len();
                    }
                }
                assert_eq!(n, count * payload);
            })
        });
        g.finish();
    }
}

fn kvm_passthrough(c: &mut Criterion) {
    let now = Instant::now();
    let rfb = vec![0xA5u8; 64 * 1024];
    let mut g = c.benchmark_group("redir/kvm_passthrough_64KiB");
    g.throughput(Throughput::Bytes(rfb.len() as u64));
    g.bench_function("baseline_memcpy", |b| {
        let mut dst = vec![0u8; rfb.len()];
        b.iter(|| {
            dst.copy_from_slice(black_box(&rfb));
            black_box(&dst);
        })
    });
    let mut client = active_client(SessionKind::Kvm);
    g.bench_function("client_after_handoff", |b| {
        b.iter(|| {
            client.handle_input(now, black_box(&rfb));
            while let Some(e) = client.poll_event() {
                black_box(e);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, sol_decode, kvm_passthrough);
criterion_main!(benches);
