//! Replays the committed corpus and crash inputs of the posix fuzz targets
//! (`fuzz/`) on stable Rust, so a fixed crash stays fixed.

use shmlane_fuzz_support::replay_committed;

#[test]
fn replay_frame_decoder() {
    replay_committed("frame_decoder", shmlane_posix::framing::fuzz_frame_decoder);
}

#[test]
fn replay_address() {
    replay_committed("address", shmlane_posix::address::fuzz_address);
}
