//! File descriptors for `serve`: webhook connections must never take the
//! last ones, or the admin port (health, readiness, metrics) and the
//! certificate reload fail with EMFILE while the webhook port is full.
//!
//! At start the soft `RLIMIT_NOFILE` is raised to the hard limit (as Go
//! programs do; container runtimes often start processes at a soft limit
//! of 1024), and `--max-connections` is lowered, with a warning, when it
//! would leave fewer than [`RESERVED`] descriptors.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept for everything but webhook connections: stdio, the
/// runtime's epoll and wakers, the two listeners, admin connections and
/// the certificate files.
pub const RESERVED: u64 = 32;

/// Raises the soft limit on open files to the hard limit; returns the soft
/// limit in force afterwards (`None`: unlimited).
pub fn raise_limit() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => return limit.maximum,
            Err(err) => {
                tracing::debug!(error = %err, "cannot raise the open-files limit");
            }
        }
    }
    limit.current
}

/// The connection limit that fits under `nofile` open files (`None`:
/// unlimited) while keeping [`RESERVED`] descriptors; at least 1.
pub fn connection_limit(wanted: usize, nofile: Option<u64>) -> usize {
    let Some(nofile) = nofile else {
        return wanted;
    };
    let fits = usize::try_from(nofile.saturating_sub(RESERVED)).unwrap_or(usize::MAX);
    wanted.min(fits).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_leaves_the_reserve() {
        assert_eq!(connection_limit(1000, None), 1000);
        assert_eq!(connection_limit(1000, Some(1_048_576)), 1000);
        assert_eq!(connection_limit(1000, Some(1024)), 992);
        assert_eq!(connection_limit(1000, Some(64)), 32);
        assert_eq!(connection_limit(1000, Some(10)), 1);
    }

    #[test]
    fn raising_keeps_the_hard_limit() {
        let before = getrlimit(Resource::Nofile);
        let soft = raise_limit();
        let after = getrlimit(Resource::Nofile);
        assert_eq!(after.maximum, before.maximum);
        assert_eq!(soft, after.current);
    }
}
