//! The fuzz target's seed corpus, replayed on stable in every `cargo test`.

#[test]
fn http1_response_seeds() {
    oobkit_testkit::replay_seeds("http1_response", oobkit_http1::fuzzing::http_reader);
}

#[test]
fn http1_request_seeds() {
    oobkit_testkit::replay_seeds("http1_request", oobkit_http1::fuzzing::http_request_reader);
}

/// A request head trickled a byte at a time costs one parse per line, not one per byte: a
/// 16 KiB head (one long header, then the blank line) fed byte by byte, 20 times, stays far
/// below a second (quadratic rescanning took seconds in a debug build).
#[test]
fn a_trickled_head_is_parsed_in_linear_time() {
    let mut head = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
    head.resize(oobkit_http1::MAX_HEAD - 8, b'a');
    head.extend_from_slice(b"\r\n\r\n");
    let started = std::time::Instant::now();
    for _ in 0..20 {
        let mut reader = oobkit_http1::RequestReader::new();
        let mut done = false;
        for byte in &head {
            if reader.next(std::slice::from_ref(byte)).unwrap().is_some() {
                done = true;
            }
        }
        assert!(done);
    }
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(1), "took {took:?}");
}
