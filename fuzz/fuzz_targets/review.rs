//! An admission request body → `review::handle`, for every endpoint (the
//! first byte picks it). Properties: see `checks::review`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::review(data));
