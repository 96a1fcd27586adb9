//! What the server logs, captured: a tracing subscriber for the current
//! thread (a `#[tokio::test]` runtime runs every task on it), writing
//! plain-text lines into memory.

use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::MakeWriter;

/// The captured lines (text format, no ANSI colours).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().expect("log buffer").clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The lines at `level` (`WARN`, `INFO`, `DEBUG`).
    pub fn at(&self, level: &str) -> Vec<String> {
        let tag = format!(" {level} ");
        self.lines()
            .into_iter()
            .filter(|l| l.contains(&tag))
            .collect()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Captures `forcebacklog`'s events at `filter` (EnvFilter syntax, e.g.
/// `forcebacklog=debug`) on this thread until the guard is dropped.
pub fn capture(filter: &str) -> (tracing::subscriber::DefaultGuard, Logs) {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    (tracing::subscriber::set_default(subscriber), logs)
}
