//! Process-wide logging: tracing-subscriber's fmt layer, text or JSON, on
//! stderr, filtered by an EnvFilter expression (`--log-level`).
//!
//! Levels the server uses: `info` for start, ready, reload and stop (a
//! handful of lines per process); `warn` for every error (one line each);
//! `debug` for one line per admission decision. Nothing per request at
//! `info`, so the default level costs nothing on the hot path.

use tracing_subscriber::EnvFilter;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The `--log-level` expression is not valid EnvFilter syntax.
    #[error("invalid --log-level {filter:?}")]
    Filter {
        /// The expression as given.
        filter: String,
        /// What the parser said.
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already installed in this process.
    #[error("logging is already initialised: {0}")]
    AlreadySet(String),
}

/// Installs the global subscriber: `filter` in EnvFilter syntax (`info`,
/// `forcebacklog=debug,warn`), JSON lines when `json`.
pub fn init(filter: &str, json: bool) -> Result<(), LoggingError> {
    let env_filter = EnvFilter::builder()
        .parse(filter)
        .map_err(|source| LoggingError::Filter {
            filter: filter.to_owned(),
            source,
        })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().with_current_span(false).try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
    result.map_err(|err| LoggingError::AlreadySet(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_filter_is_named() {
        let err = init("forcebacklog=loud", false).expect_err("invalid");
        assert!(err.to_string().contains("forcebacklog=loud"), "{err}");
    }
}
