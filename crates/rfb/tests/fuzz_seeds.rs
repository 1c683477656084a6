//! The fuzz target's seed corpus, replayed on stable in every `cargo test`.

#[test]
fn rfb_server_seeds() {
    oobkit_testkit::replay_seeds("rfb_server", oobkit_rfb::fuzzing::server);
}
