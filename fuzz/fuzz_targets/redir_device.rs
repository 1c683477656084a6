//! Arbitrary client bytes fed to a device session.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oobkit_redir::fuzzing::device(data));
