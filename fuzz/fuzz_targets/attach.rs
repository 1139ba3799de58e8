//! `cargo fuzz run attach`: see `shmlane_fuzz_support::attach` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmlane_fuzz_support::attach(data));
