//! The fuzz corpus, replayed as a test.

#[test]
fn passthrough_corpus() {
    oobkit_testkit::replay_seeds("wspass_passthrough", oobkit_wspass::fuzzing::passthrough);
}
