//! HTTP responses through the incremental reader, whole and byte by byte.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oobkit_http1::fuzzing::http_reader(data));
