//! Benchmarks only: see `benches/`. Each group measures a baseline (a memcpy, a bare hash, or
//! a peer implementation) in the same run, so results read as ratios on a noisy machine.
//!
//! ```sh
//! cargo bench -p oobkit-benches            # measure
//! cargo bench -p oobkit-benches -- --test  # run each once (what CI does)
//! ```
#![forbid(unsafe_code)]

use std::path::Path;

use oobkit_wsman::{Instance, Reply, Response, ResponseBody};

/// 100 real instances from the fixture corpus's Pull replies, written as one compact
/// PullResponse the way AMT sends it.
pub fn pull_100() -> String {
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
