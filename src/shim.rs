//! The embedded shim, `libforcebacklog.so`: `install-shim` and `run`.
//!
//! The shim is built from `shim/` by the build script (a workspace of its
//! own, see `build.rs`) and embedded here, so this binary is the only
//! file the init container and a laptop need.
//!
//! - [`install`] writes it into a directory atomically, mode 0555 (the
//!   injected init container's job).
//! - [`install_binary`] copies this whole binary next to it (`install-shim
//!   --with-binary`, for `forcebacklog/method: supervise`).
//! - [`run`] extracts it to a private per-user cache file and executes a
//!   command with it preloaded (`forcebacklog run`).

mod cache;
mod launch;
mod write;

use crate::annotations::{self, Mode};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The shim's file name, everywhere (image, init container, cache).
pub const FILE_NAME: &str = "libforcebacklog.so";

/// The bytes of `libforcebacklog.so`, built by `build.rs`.
pub static SHIM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libforcebacklog.so"));

/// Why the shim could not be installed or a command could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// The target directory does not exist.
    #[error("{}: no such directory", path.display())]
    MissingDir {
        /// The directory asked for.
        path: PathBuf,
    },
    /// The target path exists but is not a directory.
    #[error("{}: not a directory", path.display())]
    NotADirectory {
        /// The path asked for.
        path: PathBuf,
    },
    /// Writing the shim into a directory failed (read-only file system,
    /// permissions, full disk...).
    #[error("cannot write {} into {}", FILE_NAME, path.display())]
    Write {
        /// The directory written to.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// Copying this binary into a directory failed (read-only file
    /// system, permissions, full disk or a volume's size limit...).
    #[error("cannot copy {} to {}", source_path.display(), path.display())]
    CopyBinary {
        /// The file copied (this binary).
        source_path: PathBuf,
        /// The file written.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// `--backlog` is outside 1..=65535.
    #[error("invalid --backlog {value}: expected an integer in 1..=65535")]
    InvalidBacklog {
        /// The rejected value.
        value: u16,
    },
    /// `--mode` is neither `raise` nor `set`.
    #[error("invalid --mode {value:?}: expected `raise` or `set`")]
    InvalidMode {
        /// The rejected value.
        value: String,
    },
    /// `--ports` is not a comma list of ports.
    #[error(
        "invalid --ports {value:?}: {item:?} is not a port; expected a comma list of \
         integers in 1..=65535, e.g. 8080,9090"
    )]
    InvalidPorts {
        /// The whole rejected list.
        value: String,
        /// The first bad item.
        item: String,
    },
    /// No command was given after `--`.
    #[error("no command given: forcebacklog run --backlog N -- COMMAND [ARGS...]")]
    NoCommand,
    /// The private cache directory or file cannot be used safely.
    #[error("shim cache {}: {reason}", path.display())]
    Cache {
        /// The directory or file concerned.
        path: PathBuf,
        /// Why it was refused or failed.
        reason: String,
    },
    /// The command does not exist (not on `PATH`, or no such file).
    #[error("{}: command not found", command.to_string_lossy())]
    CommandNotFound {
        /// The command as given.
        command: OsString,
    },
    /// The command exists but could not be executed.
    #[error("cannot run {}", command.to_string_lossy())]
    Exec {
        /// The command as given.
        command: OsString,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
}

/// Options of `forcebacklog run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The backlog (1..=65535).
    pub backlog: u16,
    /// `raise` or `set`.
    pub mode: Option<String>,
    /// Comma-separated local ports, e.g. `80,8080` or ` 80, 8080`.
    pub ports: Option<String>,
    /// `FORCEBACKLOG_DEBUG=1`.
    pub debug: bool,
}

impl RunOptions {
    /// Checks every option with the rules of the annotations
    /// ([`crate::annotations::Mode::parse`],
    /// [`crate::annotations::normalise_ports`]), so a value the shim would
    /// silently ignore is an error before anything runs, and returns them
    /// in the form the shim reads (`80,8080`).
    pub fn normalised(&self) -> Result<RunOptions, ShimError> {
        if self.backlog == 0 {
            return Err(ShimError::InvalidBacklog {
                value: self.backlog,
            });
        }
        let mode = match &self.mode {
            None => None,
            Some(mode) => match Mode::parse(mode) {
                Some(mode) => Some(mode.as_str().to_owned()),
                None => {
                    return Err(ShimError::InvalidMode {
                        value: mode.clone(),
                    });
                }
            },
        };
        let ports = match &self.ports {
            None => None,
            Some(list) => Some(annotations::normalise_ports(list).map_err(|item| {
                ShimError::InvalidPorts {
                    value: list.clone(),
                    item: item.to_owned(),
                }
            })?),
        };
        Ok(RunOptions {
            backlog: self.backlog,
            mode,
            ports,
            debug: self.debug,
        })
    }
}

/// Writes `dir/libforcebacklog.so` atomically, mode 0555.
pub fn install(dir: &Path) -> Result<PathBuf, ShimError> {
    write::install(dir, SHIM)
}

/// The file name of the whole binary in the volume (`install-shim
/// --with-binary`): `/opt/forcebacklog/forcebacklog` in a pod, what
/// `forcebacklog/method: supervise` wraps a container's command with.
pub const BINARY_FILE_NAME: &str = "forcebacklog";

/// Copies this very binary (`/proc/self/exe`) to `dir/forcebacklog`
/// atomically, mode 0555 (readable and executable by every user of the
/// pod, writable by none), streamed by the kernel. The shim is installed
/// first by the caller; the binary is what `run --method supervise` runs
/// from in an app container whose image does not have it.
pub fn install_binary(dir: &Path) -> Result<PathBuf, ShimError> {
    write::install_copy(dir, BINARY_FILE_NAME, Path::new("/proc/self/exe"))
}

/// Runs `command` with the shim preloaded. The command replaces this
/// process (`exec`), so its exit code and signals pass through as if it
/// had been started directly; this returns only on an error.
pub fn run(options: &RunOptions, command: &[OsString]) -> Result<ExitCode, ShimError> {
    let options = options.normalised()?;
    let (program, args) = command.split_first().ok_or(ShimError::NoCommand)?;
    let shim = cache::extract(SHIM)?;
    Err(launch::exec(&options, &shim, program, args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> RunOptions {
        RunOptions {
            backlog: 234,
            mode: None,
            ports: None,
            debug: false,
        }
    }

    #[test]
    fn embedded_shim_is_an_elf_shared_object() {
        assert!(SHIM.starts_with(b"\x7fELF"));
        // e_type at offset 16: ET_DYN (3), little endian.
        assert_eq!(SHIM.get(16..18), Some(&[3u8, 0][..]));
    }

    #[test]
    fn valid_options_pass() {
        let mut opts = options();
        opts.mode = Some("set".into());
        opts.ports = Some("8080,9090".into());
        let checked = opts.normalised().expect("valid");
        assert_eq!(checked.mode.as_deref(), Some("set"));
        assert_eq!(checked.ports.as_deref(), Some("8080,9090"));
        opts.mode = Some("raise".into());
        opts.ports = Some("1".into());
        assert!(opts.normalised().is_ok());
    }

    #[test]
    fn ports_are_normalised_like_the_annotation() {
        for (list, shim_reads) in [
            (" 80, 8080", "80,8080"),
            ("8080 ,9090 ", "8080,9090"),
            ("443", "443"),
        ] {
            let mut opts = options();
            opts.ports = Some(list.into());
            let checked = opts.normalised().expect(list);
            assert_eq!(checked.ports.as_deref(), Some(shim_reads), "{list:?}");
            assert_eq!(
                crate::annotations::normalise_ports(list).as_deref(),
                Ok(shim_reads)
            );
        }
    }

    #[test]
    fn bad_ports_name_the_item() {
        for (list, item) in [
            ("", ""),
            ("8080,", ""),
            ("8080, ,9090", ""),
            ("8080, x", "x"),
            ("0", "0"),
            ("65536", "65536"),
            ("+80", "+80"),
            ("80 90", "80 90"),
            ("http", "http"),
        ] {
            let mut opts = options();
            opts.ports = Some(list.into());
            match opts.normalised() {
                Err(ShimError::InvalidPorts { value, item: bad }) => {
                    assert_eq!(value, list);
                    assert_eq!(bad, item);
                }
                other => panic!("{list:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_mode_and_backlog_are_rejected() {
        for mode in ["lower", "SET", " raise", ""] {
            let mut opts = options();
            opts.mode = Some(mode.into());
            assert!(
                matches!(opts.normalised(), Err(ShimError::InvalidMode { value }) if value == mode),
                "{mode:?}"
            );
        }
        let mut opts = options();
        opts.backlog = 0;
        assert!(matches!(
            opts.normalised(),
            Err(ShimError::InvalidBacklog { value: 0 })
        ));
    }

    #[test]
    fn run_without_command_is_an_error() {
        assert!(matches!(run(&options(), &[]), Err(ShimError::NoCommand)));
    }

    #[test]
    fn run_rejects_bad_ports_before_anything_runs() {
        let mut opts = options();
        opts.ports = Some("x".into());
        let err = run(&opts, &["forcebacklog-no-such-command".into()]);
        assert!(matches!(err, Err(ShimError::InvalidPorts { .. })));
    }
}
