//! Arbitrary YAML → `manifest::inject_str`. Properties: see `checks::inject`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::inject(data));
