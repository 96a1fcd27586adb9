//! The private per-user copy of the shim that `forcebacklog run` preloads.
//!
//! `$XDG_RUNTIME_DIR/forcebacklog/` when that directory is ours, else
//! `$TMPDIR/forcebacklog-<uid>/` (`/tmp` by default). The directory is
//! created 0700; a directory or file that another user owns, or a
//! symlink, is never used. The file is named after a hash of its content
//! (`libforcebacklog-<hash>.so`), reused when its bytes match and
//! rewritten atomically otherwise, so different forcebacklog versions can
//! share the cache.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::ShimError;
use super::write::atomic_write;

/// Mode of the cached shim: the owner may read and map it, nobody writes.
const CACHED_MODE: u32 = 0o500;

/// Returns the path of a private copy of `bytes`, writing it if needed.
pub fn extract(bytes: &[u8]) -> Result<PathBuf, ShimError> {
    let uid = current_uid()?;
    let dir = match runtime_dir(uid) {
        Some(runtime) => runtime.join("forcebacklog"),
        None => std::env::temp_dir().join(format!("forcebacklog-{uid}")),
    };
    extract_in(&dir, uid, bytes)
}

/// [`extract`] into `dir` for user `uid`.
fn extract_in(dir: &Path, uid: u32, bytes: &[u8]) -> Result<PathBuf, ShimError> {
    ensure_private_dir(dir, uid)?;
    let file = dir.join(format!("libforcebacklog-{:016x}.so", fnv1a(bytes)));
    if is_trusted_copy(&file, uid, bytes) {
        return Ok(file);
    }
    atomic_write(&file, bytes, CACHED_MODE).map_err(|err| cache_error(&file, err))?;
    Ok(file)
}

/// `$XDG_RUNTIME_DIR` when it is an absolute directory owned by `uid`.
fn runtime_dir(uid: u32) -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("XDG_RUNTIME_DIR")?);
    let meta = fs::symlink_metadata(&dir).ok()?;
    (dir.is_absolute() && meta.is_dir() && meta.uid() == uid).then_some(dir)
}

/// Creates `dir` 0700 if needed and checks that it is a real directory
/// owned by `uid` that nobody else can write.
fn ensure_private_dir(dir: &Path, uid: u32) -> Result<(), ShimError> {
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(cache_error(dir, err)),
    }
    let meta = fs::symlink_metadata(dir).map_err(|err| cache_error(dir, err))?;
    if !meta.is_dir() {
        return Err(ShimError::Cache {
            path: dir.to_owned(),
            reason: "exists and is not a directory (a symlink is not accepted either)".into(),
        });
    }
    if meta.uid() != uid {
        return Err(ShimError::Cache {
            path: dir.to_owned(),
            reason: format!(
                "owned by uid {}, not by the current user (uid {uid}); refusing to use it",
                meta.uid()
            ),
        });
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|err| cache_error(dir, err))?;
    }
    Ok(())
}

/// Whether `file` is a regular file owned by `uid`, writable by nobody
/// else, holding exactly `bytes`.
fn is_trusted_copy(file: &Path, uid: u32, bytes: &[u8]) -> bool {
    let Ok(meta) = fs::symlink_metadata(file) else {
        return false;
    };
    meta.is_file()
        && meta.uid() == uid
        && meta.mode() & 0o022 == 0
        && meta.len() == bytes.len() as u64
        && fs::read(file).is_ok_and(|content| content == bytes)
}

/// The effective user id, from `/proc/self/status` (std has no safe
/// `geteuid`, and this crate forbids `unsafe`).
fn current_uid() -> Result<u32, ShimError> {
    let path = Path::new("/proc/self/status");
    let status = fs::read_to_string(path).map_err(|err| cache_error(path, err))?;
    parse_effective_uid(&status).ok_or_else(|| ShimError::Cache {
        path: path.to_owned(),
        reason: "no readable Uid: line".into(),
    })
}

/// The effective uid: the second number of the `Uid:` line.
fn parse_effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// 64-bit FNV-1a: a stable content hash for the cache file name.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn cache_error(path: &Path, err: io::Error) -> ShimError {
    ShimError::Cache {
        path: path.to_owned(),
        reason: err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn extracts_once_and_reuses_the_copy() -> TestResult {
        let base = tempfile::tempdir()?;
        let dir = base.path().join("cache");
        let uid = current_uid()?;
        let first = extract_in(&dir, uid, b"\x7fELF one")?;
        assert_eq!(fs::read(&first)?, b"\x7fELF one");
        assert_eq!(fs::metadata(&dir)?.mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(&first)?.mode() & 0o777, CACHED_MODE);
        let modified = fs::metadata(&first)?.modified()?;
        let again = extract_in(&dir, uid, b"\x7fELF one")?;
        assert_eq!(again, first);
        assert_eq!(
            fs::metadata(&again)?.modified()?,
            modified,
            "reused, not rewritten"
        );
        let other = extract_in(&dir, uid, b"\x7fELF two")?;
        assert_ne!(other, first, "another version gets its own file");
        Ok(())
    }

    #[test]
    fn a_tampered_copy_is_replaced() -> TestResult {
        let base = tempfile::tempdir()?;
        let uid = current_uid()?;
        let file = extract_in(base.path(), uid, b"\x7fELF good")?;
        fs::remove_file(&file)?;
        fs::write(&file, b"\x7fELF evil")?;
        let file = extract_in(base.path(), uid, b"\x7fELF good")?;
        assert_eq!(fs::read(&file)?, b"\x7fELF good");
        Ok(())
    }

    #[test]
    fn a_directory_of_another_user_is_refused() -> TestResult {
        let base = tempfile::tempdir()?;
        let uid = current_uid()?;
        let err = extract_in(base.path(), uid.wrapping_add(1), b"x")
            .err()
            .ok_or("expected a refusal")?;
        assert!(err.to_string().contains("refusing to use it"), "{err}");
        Ok(())
    }

    #[test]
    fn a_symlinked_directory_is_refused() -> TestResult {
        let base = tempfile::tempdir()?;
        let link = base.path().join("link");
        std::os::unix::fs::symlink(base.path(), &link)?;
        let err = extract_in(&link, current_uid()?, b"x")
            .err()
            .ok_or("expected a refusal")?;
        assert!(err.to_string().contains("not a directory"), "{err}");
        Ok(())
    }

    #[test]
    fn a_group_writable_directory_is_made_private() -> TestResult {
        let base = tempfile::tempdir()?;
        fs::set_permissions(base.path(), fs::Permissions::from_mode(0o777))?;
        extract_in(base.path(), current_uid()?, b"x")?;
        assert_eq!(fs::metadata(base.path())?.mode() & 0o777, 0o700);
        Ok(())
    }

    #[test]
    fn effective_uid_is_the_second_field() {
        let status = "Name:\tx\nUid:\t1000\t1001\t1000\t1001\nGid:\t5\t5\t5\t5\n";
        assert_eq!(parse_effective_uid(status), Some(1001));
        assert_eq!(parse_effective_uid("Name:\tx\n"), None);
    }
}
