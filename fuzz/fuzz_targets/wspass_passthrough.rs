//! Arbitrary bytes as a websocket client's and a server's frames through the passthrough,
//! cut into reads two ways: typed errors, progress on every step, and the same bytes forwarded
//! and controls seen however the input was cut.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oobkit_wspass::fuzzing::passthrough(data));
