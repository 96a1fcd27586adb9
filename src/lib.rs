//! forcebacklog raises the TCP listen backlog of programs that cannot be
//! changed, on one machine and across a Kubernetes cluster.
//!
//! An application that calls `listen(fd, 5)` drops connections under a
//! burst because its accept queue is tiny. The `LD_PRELOAD` shim
//! (`libforcebacklog.so`, built from `shim/` and embedded in this binary)
//! replaces that backlog with the value of `BACKLOG`. The admission webhook
//! puts the shim into the pods that ask for it.
//!
//! # Layout
//!
//! The data flow of every pod, for the webhook and for `inject` alike, is
//! AdmissionReview → injection plan → JSONPatch → response:
//!
//! - [`annotations`]: the annotation contract → typed [`annotations::Settings`],
//!   with errors that name the key, the value and the allowed range.
//! - [`plan`]: pod JSON + settings → what to inject where, or a skip reason.
//! - [`patch`]: a plan → RFC 6902 operations against the raw pod JSON.
//! - [`review`]: AdmissionReview bytes in → AdmissionReview bytes out
//!   (uid echoed, base64 patch, warnings), for `/mutate` and `/validate`.
//! - [`manifest`]: YAML documents → pod templates, for `forcebacklog inject`.
//! - [`server`]: the HTTPS webhook (axum + rustls, certificates reloaded
//!   from disk), the admin port (`/healthz`, `/readyz`, `/metrics`) and
//!   graceful shutdown.
//! - [`shim`]: the embedded shim bytes, `install-shim` and `run`.
//! - [`config`]: what the operator configures for injection (image,
//!   default backlog, init-container resources).
#![forbid(unsafe_code)]

pub mod annotations;
pub mod config;
pub mod manifest;
pub mod patch;
pub mod plan;
pub mod review;
pub mod server;
pub mod shim;
