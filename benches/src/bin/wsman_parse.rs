//! Runs one WS-Man parse of the benches' 100-item PullResponse N times, for instruction counts
//! under callgrind (`benches/callgrind.sh`): `wsman_parse MODE N` with MODE `ns_reader` (quick-xml's
//! namespace-resolving event loop, the floor), `reader` (the bare event loop) or `oobkit`.

use std::hint::black_box;

use oobkit_benches::pull_100;
use quick_xml::events::Event;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "oobkit".into());
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100);
    let xml = pull_100();
    let mut total = 0usize;
    for _ in 0..n {
        total += match mode.as_str() {
            "reader" => {
                let mut reader = quick_xml::Reader::from_str(black_box(&xml));
                let mut count = 0;
                while !matches!(reader.read_event().expect("valid"), Event::Eof) {
                    count += 1;
                }
                count
            }
            "ns_reader" => {
                let mut reader = quick_xml::NsReader::from_str(black_box(&xml));
                let mut count = 0;
                while !matches!(reader.read_resolved_event().expect("valid").1, Event::Eof) {
                    count += 1;
                }
                count
            }
            "oobkit" => match oobkit_wsman::Response::parse(black_box(&xml), 200) {
                Ok(r) => black_box(r).action.len(),
                Err(e) => panic!("{e}"),
            },
            other => panic!("unknown mode {other}: ns_reader, reader or oobkit"),
        };
    }
    println!("{mode}: {n} parses of {} bytes ({total})", xml.len());
}
