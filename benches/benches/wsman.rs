//! oobkit-wsman: parse a 100-item PullResponse beside quick-xml's bare event loops over the same
//! bytes (the floor), and envelope building per second.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oobkit_benches::pull_100;
use oobkit_wsman::{Response, Style, ops};
use quick_xml::events::Event;

fn parse(c: &mut Criterion) {
    let xml = pull_100();
    let mut g = c.benchmark_group("wsman/pull_100_items");
    g.throughput(Throughput::Bytes(xml.len() as u64));
    g.bench_function("floor_quick_xml_reader", |b| {
        b.iter(|| {
            let mut reader = quick_xml::Reader::from_str(black_box(&xml));
            let mut n = 0usize;
            loop {
                match reader.read_event().unwrap() {
                    Event::Eof => break,
                    _ => n += 1,
                }
            }
            n
        })
    });
    g.bench_function("floor_quick_xml_ns_reader", |b| {
        b.iter(|| {
            let mut reader = quick_xml::NsReader::from_str(black_box(&xml));
            let mut n = 0usize;
            loop {
                match reader.read_resolved_event().unwrap() {
                    (_, Event::Eof) => break,
                    _ => n += 1,
                }
            }
            n
        })
    });
    g.bench_function("oobkit_full_parse", |b| {
        b.iter(|| Response::parse(black_box(&xml), 200).unwrap())
    });
    g.bench_function("oobkit_view_parse", |b| {
        b.iter(|| oobkit_wsman::ResponseView::parse(black_box(&xml), 200).unwrap())
    });
    g.finish();
}

fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("wsman/build_envelope");
    g.throughput(Throughput::Elements(1));
    g.bench_function("get_general_settings", |b| {
        b.iter(|| ops::get_general_settings().to_xml(Style::Intel).unwrap())
    });
    g.bench_function("request_power_state_change", |b| {
        b.iter(|| {
            ops::request_power_state_change(ops::PowerAction::Reset)
                .to_xml(Style::Intel)
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, parse, build);
criterion_main!(benches);
