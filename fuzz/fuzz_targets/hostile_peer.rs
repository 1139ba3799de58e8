//! `cargo fuzz run hostile_peer`: see `shmlane_fuzz_support::hostile_peer` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmlane_fuzz_support::hostile_peer(data));
