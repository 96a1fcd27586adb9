//! Executing the command of `forcebacklog run` with the shim preloaded.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use super::{RunOptions, ShimError};
use crate::env;

/// What `run` does to one environment variable.
#[derive(Debug, PartialEq, Eq)]
pub enum EnvChange {
    /// Set it to this value.
    Set(&'static str, OsString),
    /// Remove it (an inherited value must not change what the options say).
    Remove(&'static str),
}

/// The environment of the command. The options are the whole shim
/// configuration: inherited `FORCEBACKLOG_MODE`/`PORTS`/`DEBUG` values
/// are replaced or removed. `LD_PRELOAD` follows the webhook's rule
/// ([`crate::plan::preload_with_shim`]): the shim first, an inherited
/// list kept after it with its separator, nothing added when the shim is
/// already listed.
pub fn environment(
    options: &RunOptions,
    shim: &Path,
    inherited_preload: Option<&OsStr>,
) -> Vec<EnvChange> {
    let existing = inherited_preload.unwrap_or_default();
    let preload =
        match crate::plan::preload_with_shim(shim.as_os_str().as_bytes(), existing.as_bytes()) {
            Some(merged) => OsString::from_vec(merged),
            None => existing.to_owned(),
        };
    let mut env = vec![
        EnvChange::Set(env::BACKLOG, options.backlog.to_string().into()),
        EnvChange::Set(env::LD_PRELOAD, preload),
    ];
    env.push(match &options.mode {
        Some(mode) => EnvChange::Set(env::MODE, mode.into()),
        None => EnvChange::Remove(env::MODE),
    });
    env.push(match &options.ports {
        Some(ports) => EnvChange::Set(env::PORTS, ports.into()),
        None => EnvChange::Remove(env::PORTS),
    });
    env.push(if options.debug {
        EnvChange::Set(env::DEBUG, "1".into())
    } else {
        EnvChange::Remove(env::DEBUG)
    });
    env
}

/// Replaces this process with `program args...`; returns only on failure.
pub fn exec(options: &RunOptions, shim: &Path, program: &OsStr, args: &[OsString]) -> ShimError {
    let mut command = Command::new(program);
    command.args(args);
    let inherited = std::env::var_os(env::LD_PRELOAD);
    for change in environment(options, shim, inherited.as_deref()) {
        match change {
            EnvChange::Set(key, value) => command.env(key, value),
            EnvChange::Remove(key) => command.env_remove(key),
        };
    }
    let err = command.exec();
    if err.kind() == io::ErrorKind::NotFound {
        ShimError::CommandNotFound {
            command: program.to_owned(),
        }
    } else {
        ShimError::Exec {
            command: program.to_owned(),
            source: err,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> RunOptions {
        RunOptions {
            backlog: 1024,
            mode: None,
            ports: None,
            debug: false,
        }
    }

    #[test]
    fn defaults_set_backlog_and_preload_and_clear_the_rest() {
        let env = environment(&options(), Path::new("/c/libforcebacklog.so"), None);
        assert_eq!(
            env,
            vec![
                EnvChange::Set("BACKLOG", "1024".into()),
                EnvChange::Set("LD_PRELOAD", "/c/libforcebacklog.so".into()),
                EnvChange::Remove("FORCEBACKLOG_MODE"),
                EnvChange::Remove("FORCEBACKLOG_PORTS"),
                EnvChange::Remove("FORCEBACKLOG_DEBUG"),
            ]
        );
    }

    #[test]
    fn existing_preload_is_kept_after_ours() {
        let env = environment(
            &options(),
            Path::new("/c/libforcebacklog.so"),
            Some(OsStr::new("/lib/other.so")),
        );
        assert!(env.contains(&EnvChange::Set(
            "LD_PRELOAD",
            "/c/libforcebacklog.so:/lib/other.so".into()
        )));
        let env = environment(&options(), Path::new("/s.so"), Some(OsStr::new("")));
        assert!(env.contains(&EnvChange::Set("LD_PRELOAD", "/s.so".into())));
    }

    #[test]
    fn preload_follows_the_webhook_rule() {
        let set = |inherited: &str| {
            environment(
                &options(),
                Path::new("/c/s.so"),
                Some(OsStr::new(inherited)),
            )
            .into_iter()
            .find_map(|change| match change {
                EnvChange::Set("LD_PRELOAD", value) => Some(value),
                _ => None,
            })
            .expect("LD_PRELOAD is set")
        };
        // Spaces stay spaces; the shim is not listed twice.
        assert_eq!(set("/l/a.so /l/b.so"), "/c/s.so /l/a.so /l/b.so");
        assert_eq!(set("/l/a.so:/c/s.so"), "/l/a.so:/c/s.so");
        assert_eq!(set(":/l/a.so:"), "/c/s.so:/l/a.so");
        // Not UTF-8: passed through byte for byte.
        let odd = OsString::from_vec(b"/l/\xff.so".to_vec());
        let env = environment(&options(), Path::new("/c/s.so"), Some(&odd));
        assert!(env.contains(&EnvChange::Set(
            "LD_PRELOAD",
            OsString::from_vec(b"/c/s.so:/l/\xff.so".to_vec())
        )));
    }

    #[test]
    fn every_option_becomes_a_variable() {
        let opts = RunOptions {
            backlog: 234,
            mode: Some("set".into()),
            ports: Some("8080,9090".into()),
            debug: true,
        };
        let env = environment(&opts, Path::new("/s.so"), None);
        assert!(env.contains(&EnvChange::Set("FORCEBACKLOG_MODE", "set".into())));
        assert!(env.contains(&EnvChange::Set("FORCEBACKLOG_PORTS", "8080,9090".into())));
        assert!(env.contains(&EnvChange::Set("FORCEBACKLOG_DEBUG", "1".into())));
    }

    #[test]
    fn a_missing_command_is_reported_as_such() {
        let err = exec(
            &options(),
            Path::new("/nonexistent.so"),
            OsStr::new("forcebacklog-no-such-command"),
            &[],
        );
        assert!(matches!(err, ShimError::CommandNotFound { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "forcebacklog-no-such-command: command not found"
        );
    }
}
