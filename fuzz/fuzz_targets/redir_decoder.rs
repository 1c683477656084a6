//! Redirection byte streams through the decoder in every session context.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oobkit_redir::fuzzing::decoder(data));
