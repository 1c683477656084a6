//! WS-Man reply envelopes through the namespace-resolving reply parser.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oobkit_wsman::fuzzing::reply_parser(data));
