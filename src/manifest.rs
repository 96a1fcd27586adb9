//! manifest (to be written).

use crate::config::InjectConfig;
use std::path::Path;

/// Why `inject` failed.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Placeholder.
    #[error("not implemented yet")]
    Todo,
}

/// `forcebacklog inject -f FILE`: reads FILE (`-` for stdin), prints the mutated YAML to stdout.
pub fn inject_file(
    file: &Path,
    backlog: Option<u16>,
    config: &InjectConfig,
) -> Result<(), ManifestError> {
    let _ = (file, backlog, config);
    Err(ManifestError::Todo)
}
