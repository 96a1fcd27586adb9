//! Programs on this machine: the shim under glibc, musl and aarch64, `run`,
//! `install-shim`, the seccomp supervisor and `sockets`, each checked with
//! `ss`/sock_diag.
//!
//! One test binary for the area (`cargo test --test local`; one module
//! with `cargo test --test local MODULE::`): the modules below are its
//! test files, and `support` holds what they share.

mod support;

mod install_shim;
mod shim_aarch64;
mod shim_libc;
mod shim_run;
mod sockets;
mod supervise;
