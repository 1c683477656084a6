//! Arbitrary page messages (split at 0xff) into the web terminal's server side, with backend
//! output and time between them: typed errors, canonical round trips, the run-loop contract.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oobkit_term::fuzzing::term_server(data));
