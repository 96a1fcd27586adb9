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
//!   Each rule is a named function, in the order `plan::work` applies them:
//!   `skip_mirror_pod`, `skip_windows`, `select` (with the excluded mesh
//!   proxies), `skip_ld_preload_value_from`, `skip_mount_at_or_below_ours`,
//!   `skip_read_only_parent`, `volume_to_add`, `init_container_to_add` (the
//!   name collision, and telling ours from a foreign one), `init_resources`
//!   (the QoS class), `pull_secrets_to_add`, `container_work` with
//!   `env_edit`, `keep_user_value` and `merge_ld_preload`. For
//!   `forcebacklog/method: supervise` (typed as `annotations::Method`):
//!   `skip_without_command` (in place of `skip_ld_preload_value_from`),
//!   `binary_to_install` (the init container's `--with-binary`),
//!   `wrap_command` and `supervise_backlog_warning` (no env edits).
//! - [`patch`]: a plan → RFC 6902 operations against the raw pod JSON
//!   (applied by the json-patch crate where `inject` needs them applied).
//!   [`patch::Injector`] is the core prepared once from a configuration
//!   (its parts of every patch already rendered); the server and `inject`
//!   hold one and pass it down.
//! - [`review`]: AdmissionReview bytes in → AdmissionReview bytes out
//!   (uid echoed, base64 patch, warnings), for `/mutate` and `/validate`.
//!   It reads the request through `scan` (crate-private): a scanner that
//!   finds the members the review needs and steps over the rest 64 bytes
//!   at a time; `scan::de` lets the views read themselves through it, and
//!   `scan::pod` reads a targeted pod's spec on it directly.
//! - [`manifest`]: YAML documents → pod templates, for `forcebacklog inject`;
//!   the operations are spliced into the original text (`manifest::splice`)
//!   located through a tree with positions (`manifest::yaml`). The steps by
//!   name: `inject_object` → `inject_template` (one template through the
//!   core); `splice_all` → `Stream::round_edits` → `splice::edits`
//!   (`add_to_map`, `add_block_entry`, `add_block_item`, `flow_add`,
//!   `replace`) → the read-back (`changed_read_back`, `Stream::first_wrong`).
//! - [`server`]: the HTTPS webhook (axum + rustls, certificates reloaded
//!   from disk), the admin port (`/healthz`, `/readyz`, `/metrics`) and
//!   graceful shutdown.
//! - [`shim`]: the embedded shim bytes, `install-shim` and `run`.
//! - [`supervise`]: `run --method supervise`, for programs `LD_PRELOAD`
//!   cannot reach: a seccomp filter that traps `listen` only, answered by
//!   user notification or ptrace (the ioctls in the `seccomp-notify`
//!   workspace crate).
//! - [`sockets`]: the listening TCP sockets of a network namespace
//!   (sock_diag) and its listen-overflow counters, as a table, JSON or
//!   Prometheus metrics (`forcebacklog sockets`).
//! - [`audit`]: the cluster client of `forcebacklog audit` (kube-rs):
//!   which pods asked for the shim and were injected, skipped or missed,
//!   grouped by owner with the command that fixes each.
//! - [`config`]: what the operator configures for injection (image,
//!   pull policy, default backlog, init-container resources), typed and
//!   checked when parsed, with the defaults in one place.
//! - [`env`](mod@env): the names of the variables the shim reads (`BACKLOG`,
//!   `LD_PRELOAD`, `FORCEBACKLOG_MODE`/`PORTS`/`DEBUG`), for `plan` and `run`.
#![forbid(unsafe_code)]

pub mod annotations;
pub mod audit;
pub mod config;
pub mod env;
pub mod manifest;
pub mod patch;
pub mod plan;
pub mod review;
mod scan;
pub mod server;
pub mod shim;
pub mod sockets;
pub mod supervise;

/// An error and its causes on one line: `outer: inner: innermost`.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // Some errors repeat their cause in their own message.
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}
