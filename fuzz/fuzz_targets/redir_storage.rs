//! Arbitrary IDE-R drive commands answered from images of arbitrary sizes, and arbitrary
//! El Torito blocks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oobkit_redir::fuzzing::storage(data));
