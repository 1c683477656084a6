//! Replays the committed fuzz corpus through the fuzz targets' entry points.

use oobkit_testkit::replay_seeds;

#[test]
fn rrmt_decoder_seeds() {
    replay_seeds("rrmt_decoder", oobkit_rrmt::fuzzing::decoder);
}

#[test]
fn rrmt_agent_seeds() {
    replay_seeds("rrmt_agent", oobkit_rrmt::fuzzing::agent);
}

#[test]
fn rrmt_server_seeds() {
    replay_seeds("rrmt_server", oobkit_rrmt::fuzzing::server);
}
