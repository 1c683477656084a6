//! Arbitrary server bytes fed to an RRMT agent session.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oobkit_rrmt::fuzzing::agent(data));
