//! Pipelined HTTP requests through the server-side reader, whole and byte by byte.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oobkit_http1::fuzzing::http_request_reader(data));
