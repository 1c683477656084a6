//! `WWW-Authenticate` values (newline-separated) through the challenge parser and chooser.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oobkit_digest::fuzzing::challenge_parser(data));
