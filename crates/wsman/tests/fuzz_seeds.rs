//! Replays the committed fuzz corpus through the fuzz targets' entry points.

use oobkit_testkit::replay_seeds;

#[test]
fn wsman_reply_seeds() {
    replay_seeds("wsman_reply", oobkit_wsman::fuzzing::reply_parser);
}

#[test]
fn wsman_request_seeds() {
    replay_seeds("wsman_request", oobkit_wsman::fuzzing::request_parser);
}

#[test]
fn wsman_scan_seeds() {
    replay_seeds("wsman_scan", oobkit_wsman::fuzzing::scanner);
}
