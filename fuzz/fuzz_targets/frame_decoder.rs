//! `cargo fuzz run frame_decoder`: see `shmlane_fuzz_support::frame_decoder` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmlane_fuzz_support::frame_decoder(data));
