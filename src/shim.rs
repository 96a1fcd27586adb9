//! The embedded shim: `install-shim` and `run` (to be written).

use std::path::Path;
use std::process::ExitCode;

/// Why the shim could not be installed or a command could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// Placeholder.
    #[error("not implemented yet")]
    Todo,
}

/// Options of `forcebacklog run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The backlog (already validated: 1..=65535).
    pub backlog: u16,
    /// `raise` or `set`.
    pub mode: Option<String>,
    /// Comma-separated local ports.
    pub ports: Option<String>,
    /// `FORCEBACKLOG_DEBUG=1`.
    pub debug: bool,
}

/// Writes `dir/libforcebacklog.so` atomically, mode 0555.
pub fn install(dir: &Path) -> Result<std::path::PathBuf, ShimError> {
    let _ = dir;
    Err(ShimError::Todo)
}

/// Runs `command` with the shim preloaded; returns its exit code.
pub fn run(options: &RunOptions, command: &[std::ffi::OsString]) -> Result<ExitCode, ShimError> {
    let _ = (options, command);
    Err(ShimError::Todo)
}
