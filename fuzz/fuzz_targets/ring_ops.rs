//! `cargo fuzz run ring_ops`: see `shmlane_fuzz_support::ring_ops` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmlane_fuzz_support::ring_ops(data));
