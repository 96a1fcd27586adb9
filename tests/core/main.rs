//! The mutation core through `review::handle`: the API rules, the fixtures,
//! `forcebacklog/method`, the metrics sidecar, properties, the wire format,
//! and the fuzz targets' checks.
//!
//! One test binary for the area (`cargo test --test core`; one module
//! with `cargo test --test core MODULE::`): the modules below are its
//! test files, and `support` holds what they share.

#[path = "../../fuzz/checks.rs"]
mod checks;
mod support;

mod api_rules;
mod fixtures;
mod method;
mod metrics_sidecar;
mod prop_fuzz;
mod properties;
mod review_wire;
