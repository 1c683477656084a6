//! `Authorization` values through the parser, the renderer and the server's verification.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oobkit_digest::fuzzing::authorization_parser(data));
