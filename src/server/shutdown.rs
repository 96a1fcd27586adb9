//! SIGTERM/SIGINT for `serve`: the first starts a graceful shutdown, a
//! second one ends the process without waiting for in-flight requests.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// The SIGTERM and SIGINT handlers, installed when created (so a signal
/// that arrives during start-up is not fatal).
#[derive(Debug)]
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Installs the handlers.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next SIGTERM or SIGINT and returns its name.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
