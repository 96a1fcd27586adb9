//! The `forcebacklog` command line run as the real binary: its errors, and
//! `inject` on the examples, the Istio corpus and YAML round trips.
//!
//! One test binary for the area (`cargo test --test cli`; one module
//! with `cargo test --test cli MODULE::`): the modules below are its
//! test files, and `support` holds what they share.

mod support;

mod errors;
mod inject;
mod inject_corpus;
mod inject_yaml;
