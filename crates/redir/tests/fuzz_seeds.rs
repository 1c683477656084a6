//! Replays the committed fuzz corpus through the fuzz targets' entry points.

use oobkit_testkit::replay_seeds;

#[test]
fn redir_decoder_seeds() {
    replay_seeds("redir_decoder", oobkit_redir::fuzzing::decoder);
}

#[test]
fn redir_client_seeds() {
    replay_seeds("redir_client", oobkit_redir::fuzzing::client);
}

#[test]
fn redir_device_seeds() {
    replay_seeds("redir_device", oobkit_redir::fuzzing::device);
}

#[test]
fn redir_storage_seeds() {
    replay_seeds("redir_storage", oobkit_redir::fuzzing::storage);
}
