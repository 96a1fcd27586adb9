//! End to end: on a Docker engine (`docker`) and on the real Kubernetes
//! control plane (`api_server`).
//!
//! One test binary for the area (`cargo test --test e2e`; one module
//! with `cargo test --test e2e MODULE::`): the modules below are its
//! test files, and `images` and `kubelet` are their shared parts.

mod images;
mod kubelet;

mod api_server;
mod docker;

/// The two end-to-end runs, the Docker one and the control plane's, each
/// build images and start many containers on a machine that may have two
/// CPUs: they take this lock so they run one after the other, as they did
/// as separate binaries, and their time limits keep their meaning.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A panic in one run poisons the lock; the other still runs.
    HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
