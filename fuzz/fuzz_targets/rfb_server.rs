//! Arbitrary client bytes through the RFB server handshake and the client message decoder.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oobkit_rfb::fuzzing::server(data));
