//! oobkit-rrmt: 16 KiB ChannelData frames encoded and decoded, beside memcpy of the same bytes
//! and beside tokio-util's LengthDelimitedCodec (a peer framing of the same shape: 2-byte
//! big-endian length) in the same run.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oobkit_rrmt::codec::{Frame, decode};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

const FRAMES: usize = 64;
const PAYLOAD: usize = 16 * 1024;

fn codec(c: &mut Criterion) {
    let data = vec![0x5Au8; PAYLOAD];
    let mut stream = Vec::new();
    for _ in 0..FRAMES {
        Frame::ChannelData {
            channel: 1,
            data: &data,
        }
        .encode(&mut stream)
        .unwrap();
    }
    let mut ld = LengthDelimitedCodec::builder()
        .length_field_length(2)
        .new_codec();
    let mut ld_stream = BytesMut::new();
    for _ in 0..FRAMES {
        ld.encode(Bytes::from(data.clone()), &mut ld_stream)
            .unwrap();
    }
    let mut g = c.benchmark_group("rrmt/16KiB_frames");
    g.throughput(Throughput::Bytes((FRAMES * PAYLOAD) as u64));
    g.bench_function("baseline_memcpy", |b| {
        let mut dst = vec![0u8; stream.len()];
        b.iter(|| {
            dst.copy_from_slice(black_box(&stream));
            black_box(&dst);
        })
    });
    g.bench_function("rrmt_decode", |b| {
        b.iter(|| {
            let mut rest = black_box(&stream[..]);
            let mut n = 0;
            while let Some((frame, used)) = decode(rest).unwrap() {
                if let Frame::ChannelData { data, .. } = frame {
                    n += data.len();
                }
                rest = &rest[used..];
            }
            assert_eq!(n, FRAMES * PAYLOAD);
        })
    });
    // Both decoders hand out payloads without copying them (borrowed slices here, split
    // BytesMut there); the peer's input buffer is prepared outside the timing.
    g.bench_function("peer_length_delimited_decode", |b| {
        b.iter_batched(
            || BytesMut::from(&ld_stream[..]),
            |mut buf| {
                let mut n = 0;
                while let Some(frame) = ld.decode(&mut buf).unwrap() {
                    n += frame.len();
                }
                assert_eq!(n, FRAMES * PAYLOAD);
            },
            criterion::BatchSize::LargeInput,
        )
    });
    // A consumer that needs owned payloads pays one copy: measured too, beside memcpy.
    g.bench_function("rrmt_decode_and_copy_out", |b| {
        let mut owned = vec![0u8; FRAMES * PAYLOAD];
        b.iter(|| {
            let mut rest = black_box(&stream[..]);
            let mut at = 0;
            while let Some((frame, used)) = decode(rest).unwrap() {
                if let Frame::ChannelData { data, .. } = frame {
                    owned[at..at + data.len()].copy_from_slice(data);
                    at += data.len();
                }
                rest = &rest[used..];
            }
            black_box(&owned);
        })
    });
    g.bench_function("rrmt_encode", |b| {
        let mut out = Vec::with_capacity(stream.len());
        b.iter(|| {
            out.clear();
            for _ in 0..FRAMES {
                Frame::ChannelData {
                    channel: 1,
                    data: black_box(&data),
                }
                .encode(&mut out)
                .unwrap();
            }
            black_box(&out);
        })
    });
    g.bench_function("peer_length_delimited_encode", |b| {
        let payload = Bytes::from(data.clone());
        let mut out = BytesMut::with_capacity(ld_stream.len());
        b.iter(|| {
            out.clear();
            for _ in 0..FRAMES {
                ld.encode(black_box(payload.clone()), &mut out).unwrap();
            }
            black_box(&out);
        })
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
