//! `cargo fuzz run address`: see `shmlane_fuzz_support::address` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmlane_fuzz_support::address(data));
