//! The project's files: the Helm chart (linted and rendered by real Helm
//! engines), the CI workflows and the shell scripts.
//!
//! One test binary for the area (`cargo test --test project`; one module
//! with `cargo test --test project MODULE::`): the modules below are its
//! test files, and `support` holds what they share.

mod support;

mod chart_lint;
mod chart_render;
mod scripts;
mod workflows;
