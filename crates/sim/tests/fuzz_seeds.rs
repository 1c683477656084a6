//! Replays the committed fuzz corpus through the simulator's fuzz entry points.

use oobkit_testkit::replay_seeds;

#[test]
fn sim_bios_seeds() {
    replay_seeds("sim_bios", oobkit_sim::bios::fuzz_bios);
}
