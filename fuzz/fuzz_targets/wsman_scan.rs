//! Any text through the WS-Man scanner beside quick-xml's reader: the same tokens and verdict.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oobkit_wsman::fuzzing::scanner(data));
