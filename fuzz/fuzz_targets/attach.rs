//! `cargo fuzz run attach`: see `shmlane_core::fuzzing::attach` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmlane_core::fuzzing::attach(data));
