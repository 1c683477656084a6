//! oobkit-wsman: parse a 100-item PullResponse beside quick-xml's bare event loops over the same
//! bytes (the floor), and envelope building per second.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oobkit_wsman::{Instance, Reply, Response, ResponseBody, Style, ops};
use quick_xml::events::Event;

/// 100 real instances from the fixture corpus's Pull replies, written as one compact
/// PullResponse the way AMT sends it.
fn pull_100() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/wsman-responses");
    let mut items: Vec<Instance> = Vec::new();
    let mut stack = vec![dir];
    let mut files = Vec::new();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "pull.xml") {
                files.push(p);
            }
        }
    }
    files.sort();
    for f in files {
        let xml = std::fs::read_to_string(f).unwrap();
        if let Ok(Response {
            body: ResponseBody::Items { items: got, .. },
            ..
        }) = Response::parse(&xml, 200)
        {
            items.extend(got.into_iter().filter_map(|i| i.instance));
        }
    }
    assert!(!items.is_empty());
    let hundred: Vec<Instance> = items.iter().cycle().take(100).cloned().collect();
    Reply {
        relates_to: "1",
        sequence: 1,
        resource_uri: None,
    }
    .pull(&hundred, None)
    .unwrap()
}

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
