//! WS-Man request envelopes through the server-side parser, and back out in both styles.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oobkit_wsman::fuzzing::request_parser(data));
