//! Arbitrary console messages fed to the simulated AMT's booting BIOS.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oobkit_sim::bios::fuzz_bios(data));
