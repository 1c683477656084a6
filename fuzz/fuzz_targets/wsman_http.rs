//! HTTP responses through the incremental reader, whole and byte by byte.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oobkit_wsman::fuzzing::http_reader(data));
