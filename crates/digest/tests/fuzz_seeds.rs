//! Replays the committed fuzz corpus (`fuzz/seeds/<target>/`) through the same entry points the
//! fuzz targets call, so every seed and every saved crash stays checked on stable.

use oobkit_testkit::replay_seeds;

#[test]
fn digest_challenge_seeds() {
    replay_seeds("digest_challenge", oobkit_digest::fuzzing::challenge_parser);
}

#[test]
fn digest_authorization_seeds() {
    replay_seeds(
        "digest_authorization",
        oobkit_digest::fuzzing::authorization_parser,
    );
}
