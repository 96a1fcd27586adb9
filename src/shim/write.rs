//! Atomic file writes: a temporary file in the same directory, fsync,
//! rename over the target, fsync of the directory. A reader (or a
//! crash) sees the old file or the complete new one, never a part.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{FILE_NAME, ShimError};

/// Mode of the installed shim: readable and loadable by every user of the
/// pod (app containers run as other users), writable by none.
pub const INSTALLED_MODE: u32 = 0o555;

/// Checks `dir` and writes `dir/libforcebacklog.so`, mode 0555.
pub fn install(dir: &Path, bytes: &[u8]) -> Result<PathBuf, ShimError> {
    check_dir(dir)?;
    let target = dir.join(FILE_NAME);
    atomic_write(&target, bytes, INSTALLED_MODE).map_err(|source| ShimError::Write {
        path: dir.to_owned(),
        source,
    })?;
    Ok(target)
}

/// Checks `dir` and copies the file `source` to `dir/name`, mode 0555,
/// streamed (the kernel copies it: a binary of many megabytes never sits
/// in this process's memory, which the init container's limit keeps small).
pub fn install_copy(dir: &Path, name: &str, source: &Path) -> Result<PathBuf, ShimError> {
    check_dir(dir)?;
    let target = dir.join(name);
    let copy = || -> io::Result<()> {
        let mut from = File::open(source)?;
        atomic_write_with(&target, INSTALLED_MODE, |file| {
            io::copy(&mut from, file).map(drop)
        })
    };
    copy().map_err(|err| ShimError::CopyBinary {
        source_path: source.to_owned(),
        path: target.clone(),
        source: err,
    })?;
    Ok(target)
}

/// `dir` exists and is a directory, or the error that says otherwise.
fn check_dir(dir: &Path) -> Result<(), ShimError> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(ShimError::NotADirectory {
                path: dir.to_owned(),
            });
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(ShimError::MissingDir {
                path: dir.to_owned(),
            });
        }
        Err(source) => {
            return Err(ShimError::Write {
                path: dir.to_owned(),
                source,
            });
        }
    }
    Ok(())
}

/// Writes `bytes` to `target` atomically with permission bits `mode`.
pub fn atomic_write(target: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    atomic_write_with(target, mode, |file| file.write_all(bytes))
}

/// Writes what `fill` writes into the file to `target` atomically, with
/// permission bits `mode`.
fn atomic_write_with(
    target: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temp = dir.join(temp_name(target));
    let result = write_then_rename(&temp, target, fill, mode);
    if result.is_err() {
        // Best effort: the temporary file may not even exist.
        let _ = fs::remove_file(&temp);
    }
    result?;
    // Make the rename itself durable. Some file systems refuse fsync on a
    // directory; the file is in place by now, so that is not an error.
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
    Ok(())
}

fn write_then_rename(
    temp: &Path,
    target: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
    mode: u32,
) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)?;
    fill(&mut file)?;
    file.set_permissions(Permissions::from_mode(mode))?;
    file.sync_all()?;
    drop(file);
    fs::rename(temp, target)
}

/// A name no concurrent writer in this or another process uses.
fn temp_name(target: &Path) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let base = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(
        ".{base}.tmp-{}-{}",
        process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn install_writes_the_file_with_mode_0555() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = install(dir.path(), b"\x7fELF bytes")?;
        assert_eq!(path, dir.path().join(FILE_NAME));
        assert_eq!(fs::read(&path)?, b"\x7fELF bytes");
        assert_eq!(fs::metadata(&path)?.mode() & 0o7777, 0o555);
        // Installing again replaces the read-only file atomically.
        install(dir.path(), b"\x7fELF newer")?;
        assert_eq!(fs::read(&path)?, b"\x7fELF newer");
        let names: Vec<_> = fs::read_dir(dir.path())?.collect::<Result<_, _>>()?;
        assert_eq!(names.len(), 1, "no temporary files left: {names:?}");
        Ok(())
    }

    #[test]
    fn missing_dir_is_named() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let missing = dir.path().join("nope");
        let err = install(&missing, b"x").err().ok_or("expected an error")?;
        assert!(matches!(err, ShimError::MissingDir { .. }));
        assert!(err.to_string().contains(&*missing.to_string_lossy()));
        Ok(())
    }

    #[test]
    fn a_file_is_not_a_directory() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("file");
        fs::write(&file, b"")?;
        let err = install(&file, b"x").err().ok_or("expected an error")?;
        assert!(matches!(err, ShimError::NotADirectory { .. }));
        Ok(())
    }

    #[test]
    fn an_unwritable_target_leaves_no_temporary_file() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        // A directory where the file should go: rename cannot replace it.
        fs::create_dir(dir.path().join(FILE_NAME))?;
        fs::write(dir.path().join(FILE_NAME).join("keep"), b"")?;
        let err = install(dir.path(), b"x").err().ok_or("expected an error")?;
        assert!(matches!(err, ShimError::Write { .. }));
        let names: Vec<_> = fs::read_dir(dir.path())?.collect::<Result<_, _>>()?;
        assert_eq!(names.len(), 1, "{names:?}");
        Ok(())
    }
}
