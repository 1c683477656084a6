//! RRMT byte streams through the frame decoder.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oobkit_rrmt::fuzzing::decoder(data));
