//! Arbitrary agent bytes fed to an RRMT server session.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oobkit_rrmt::fuzzing::server(data));
