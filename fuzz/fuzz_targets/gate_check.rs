//! Arbitrary request paths and offered subprotocols (`PATH\nPROTO,PROTO`) through the VNC
//! proxy's gate: a refusal with a short body, or an admission whose session clock keeps the
//! run-loop contract.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oobkit_gate::fuzz_check(data));
