//! SIGTERM/SIGINT → a future, for `serve`.

use std::future::Future;
use tokio::signal::unix::{SignalKind, signal};

/// Installs the SIGTERM and SIGINT handlers now (so a signal that arrives
/// during start-up is not fatal) and returns a future that resolves with
/// the name of the first one received.
pub fn on_signal() -> std::io::Result<impl Future<Output = &'static str> + Send> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}
