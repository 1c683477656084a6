//! Arbitrary device bytes, in arbitrary chunks with time passing, fed to redirection clients.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oobkit_redir::fuzzing::client(data));
