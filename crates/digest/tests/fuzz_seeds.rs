//! Replays the committed fuzz corpus (`fuzz/seeds/<target>/`) through the same entry points the
//! fuzz targets call, so every seed and every saved crash stays checked on stable.

use std::path::PathBuf;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {} is missing: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.expect("readable directory entry").path();
        let data = std::fs::read(&path).expect("readable seed");
        run(&data);
        count += 1;
    }
    assert!(
        count >= 5,
        "{target}: only {count} seeds in {}",
        dir.display()
    );
}

#[test]
fn digest_challenge_seeds() {
    replay("digest_challenge", oobkit_digest::fuzzing::challenge_parser);
}

#[test]
fn digest_authorization_seeds() {
    replay(
        "digest_authorization",
        oobkit_digest::fuzzing::authorization_parser,
    );
}
