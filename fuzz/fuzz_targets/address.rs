//! `cargo fuzz run address`: see `shmlane_posix::address::fuzz_address`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmlane_posix::address::fuzz_address(data));
