//! The HTTPS admission webhook and its admin port (to be written).

use crate::config::InjectConfig;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything `forcebacklog serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where the HTTPS webhook listens.
    pub addr: SocketAddr,
    /// Where the plain-HTTP admin port listens.
    pub admin_addr: SocketAddr,
    /// PEM certificate chain, reloaded when it changes.
    pub tls_cert: PathBuf,
    /// PEM private key, reloaded when it changes.
    pub tls_key: PathBuf,
    /// The mutation core's configuration.
    pub inject: InjectConfig,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Placeholder.
    #[error("not implemented yet")]
    Todo,
}

/// Runs the webhook until SIGTERM/SIGINT (binds the addresses itself).
pub async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    let _ = config;
    Err(ServeError::Todo)
}

/// Installs the global tracing subscriber (`filter` in EnvFilter syntax).
pub fn init_logging(filter: &str, json: bool) -> Result<(), ServeError> {
    let _ = (filter, json);
    Ok(())
}
