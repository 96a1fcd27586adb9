//! Arbitrary YAML → `manifest::inject_str`. Properties: see `checks::inject`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::inject(data));
