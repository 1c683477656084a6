//! The WS-Man parse figures of `docs/performance.md`, on the benches' 100-item PullResponse:
//!
//! - `wsman_parse MODE N`: N parses in MODE, for instruction counts under callgrind;
//! - `wsman_parse time`: every mode timed in this run (best of 40 rounds of 100 parses, the modes taking turns), as `FIGURE` lines;
//! - `wsman_parse dump FILE`: writes the document, for the Python peers to parse the same bytes.
//!
//! MODE: `ns_reader` (quick-xml's namespace-resolving event loop, the floor), `reader` (the
//! bare event loop), `oobkit_view` (every instance parsed, borrowing from the document) or
//! `oobkit` (owned: what `Response::parse` returns).

use std::hint::black_box;
use std::time::Instant;

use oobkit_benches::pull_100;
use quick_xml::events::Event;

const MODES: [&str; 4] = ["reader", "ns_reader", "oobkit_view", "oobkit"];

fn run(mode: &str, xml: &str) -> usize {
    match mode {
        "reader" => {
            let mut reader = quick_xml::Reader::from_str(black_box(xml));
            let mut count = 0;
            while !matches!(reader.read_event().expect("valid"), Event::Eof) {
                count += 1;
            }
            count
        }
        "ns_reader" => {
            let mut reader = quick_xml::NsReader::from_str(black_box(xml));
            let mut count = 0;
            while !matches!(reader.read_resolved_event().expect("valid").1, Event::Eof) {
                count += 1;
            }
            count
        }
        "oobkit_view" => match oobkit_wsman::ResponseView::parse(black_box(xml), 200) {
            Ok(r) => black_box(r).action.len(),
            Err(e) => panic!("{e}"),
        },
        "oobkit" => match oobkit_wsman::Response::parse(black_box(xml), 200) {
            Ok(r) => black_box(r).action.len(),
            Err(e) => panic!("{e}"),
        },
        other => panic!("unknown mode {other}: {}", MODES.join(", ")),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "time".into());
    let xml = pull_100();
    match mode.as_str() {
        "dump" => {
            let path = args.next().expect("dump FILE");
            std::fs::write(&path, &xml).expect("writable");
        }
        "time" => {
            // Rounds of each mode in turn, so a busy moment hits all of them; the best round
            // of each is reported.
            let n = 100;
            let mut best = [f64::MAX; MODES.len()];
            for _ in 0..40 {
                for (i, m) in MODES.iter().enumerate() {
                    let start = Instant::now();
                    for _ in 0..n {
                        black_box(run(m, &xml));
                    }
                    let us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
                    best[i] = best[i].min(us);
                }
            }
            println!("FIGURE wsman_bytes={}", xml.len());
            for (m, us) in MODES.iter().zip(best) {
                println!("FIGURE wsman_{m}_us={us:.1}");
            }
        }
        _ => {
            let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100);
            let mut total = 0usize;
            for _ in 0..n {
                total += run(&mode, &xml);
            }
            println!("{mode}: {n} parses of {} bytes ({total})", xml.len());
        }
    }
}
