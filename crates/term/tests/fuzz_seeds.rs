//! The fuzz corpus, replayed as a test.

#[test]
fn term_server_corpus() {
    oobkit_testkit::replay_seeds("term_server", oobkit_term::fuzzing::term_server);
}
