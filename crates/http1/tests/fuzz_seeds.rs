//! The fuzz target's seed corpus, replayed on stable in every `cargo test`.

#[test]
fn http1_response_seeds() {
    oobkit_testkit::replay_seeds("http1_response", oobkit_http1::fuzzing::http_reader);
}

#[test]
fn http1_request_seeds() {
    oobkit_testkit::replay_seeds("http1_request", oobkit_http1::fuzzing::http_request_reader);
}
