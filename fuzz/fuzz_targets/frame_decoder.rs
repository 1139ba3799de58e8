//! `cargo fuzz run frame_decoder`: see `shmlane_posix::framing::fuzz_frame_decoder`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmlane_posix::framing::fuzz_frame_decoder(data));
