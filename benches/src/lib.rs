//! Benchmarks only: see `benches/`. Each group measures a baseline (a memcpy, a bare hash, or
//! a peer implementation) in the same run, so results read as ratios on a noisy machine.
//!
//! ```sh
//! cargo bench -p oobkit-benches            # measure
//! cargo bench -p oobkit-benches -- --test  # run each once (what CI does)
//! ```
#![forbid(unsafe_code)]
