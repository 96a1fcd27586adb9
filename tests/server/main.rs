//! `forcebacklog serve` over real TLS: the library server (`http`, `limits`,
//! `reload`, `shutdown`, `faults`) and the real binary (`binary`).
//!
//! One test binary for the area (`cargo test --test server`; one module
//! with `cargo test --test server MODULE::`): the modules below are its
//! test files, and `support` holds what they share.

mod support;

mod binary;
mod faults;
mod http;
mod limits;
mod reload;
mod shutdown;
