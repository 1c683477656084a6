//! Test support for the oobkit crates; a dev-dependency only, never shipped.
//!
//! ```no_run
//! oobkit_testkit::replay_seeds("digest_challenge", |data| {
//!     let _ = std::str::from_utf8(data);
//! });
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;

/// Runs `check` on every file of `fuzz/seeds/<target>/` (valid inputs, hostile inputs and saved
/// crashes), so that the fuzz targets' checks run on stable in every `cargo test`. Panics if
/// the corpus is missing or holds fewer than five seeds, so a lost corpus cannot pass silently.
pub fn replay_seeds(target: &str, check: impl Fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {} is missing: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.expect("readable directory entry").path();
        let data = std::fs::read(&path).expect("readable seed");
        check(&data);
        count += 1;
    }
    assert!(
        count >= 5,
        "{target}: only {count} seeds in {}",
        dir.display()
    );
}
