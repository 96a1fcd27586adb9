//! `forcebacklog install-shim DIR` and the properties of the installed
//! `libforcebacklog.so`: no DT_NEEDED entries, at most 8 KiB, a
//! non-executable stack, `listen` its only export.

use crate::support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use support::BIN;

fn install_shim(dir: &Path) -> Output {
    Command::new(BIN)
        .arg("install-shim")
        .arg(dir)
        .output()
        .expect("run forcebacklog install-shim")
}

fn readelf(args: &[&str], file: &Path) -> Option<String> {
    if !support::require_tool("readelf", "binutils") {
        return None;
    }
    let out = Command::new("readelf")
        .args(args)
        .arg(file)
        .output()
        .expect("run readelf");
    assert!(out.status.success(), "readelf {args:?}: {out:?}");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Asserts a failed install: non-zero exit, exactly one stderr line that
/// names `path`, nothing written.
fn assert_one_line_error(out: &Output, path: &Path, reason: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("forcebacklog: "), "{stderr}");
    assert!(
        stderr.contains(&*path.to_string_lossy()),
        "names {}: {stderr}",
        path.display()
    );
    assert!(stderr.contains(reason), "says {reason:?}: {stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn installs_atomically_with_mode_0555() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = install_shim(dir.path());
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    let file = dir.path().join("libforcebacklog.so");
    let meta = std::fs::metadata(&file).expect("the installed shim");
    assert_eq!(meta.mode() & 0o7777, 0o555);
    let bytes = std::fs::read(&file).expect("read the shim");
    assert!(bytes.starts_with(b"\x7fELF"));
    // Again over the existing read-only file (a restarted init container).
    let out = install_shim(dir.path());
    assert!(out.status.success(), "{out:?}");
    let entries = std::fs::read_dir(dir.path()).expect("list").count();
    assert_eq!(entries, 1, "no temporary file left behind");
}

/// `install-shim DIR --with-binary` (the init container of
/// `forcebacklog/method: supervise`): the shim and this whole binary,
/// both mode 0555, in a world-writable directory like an emptyDir; the
/// copy is byte for byte the binary and runs as a user that is neither
/// root nor its owner (the app container's user under Pod Security
/// "restricted").
#[test]
fn with_binary_copies_the_whole_binary_executable_by_any_user() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
        .expect("chmod 0777, like an emptyDir");
    for _ in 0..2 {
        // Twice: a restarted init container replaces the read-only files.
        let out = Command::new(BIN)
            .arg("install-shim")
            .arg(dir.path())
            .arg("--with-binary")
            .output()
            .expect("run forcebacklog install-shim --with-binary");
        assert!(out.status.success(), "{out:?}");
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["forcebacklog", "libforcebacklog.so"],
        "no temporary file"
    );
    let copy = dir.path().join("forcebacklog");
    let meta = std::fs::metadata(&copy).expect("the copied binary");
    assert_eq!(
        meta.mode() & 0o7777,
        0o555,
        "r-x for everyone, writable by none"
    );
    assert_eq!(
        std::fs::read(&copy).expect("read the copy"),
        std::fs::read(BIN).expect("read the binary"),
        "the copy is the binary"
    );
    let mut run = Command::new(&copy);
    run.arg("--version");
    let as_root = is_root();
    if as_root {
        // Another user than the owner, like the app container's.
        run.uid(65534).gid(65534);
    }
    let out = run.output().expect("run the copy");
    assert!(
        out.status.success(),
        "the copy runs (as root: {as_root}): {out:?}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("forcebacklog "));
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn missing_dir_is_one_clear_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let missing = dir.path().join("missing");
    assert_one_line_error(&install_shim(&missing), &missing, "no such directory");
}

#[test]
fn a_file_instead_of_a_dir_is_one_clear_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("file");
    std::fs::write(&file, b"").expect("write a file");
    assert_one_line_error(&install_shim(&file), &file, "not a directory");
}

#[test]
fn read_only_dir_is_one_clear_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let target = dir.path().join("ro");
    std::fs::create_dir(&target).expect("create the directory");
    let is_root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    let out = if is_root {
        // Root ignores permission bits: mount a read-only tmpfs there,
        // in a private mount namespace so nothing leaks out.
        if !support::require_tool("unshare", "util-linux") {
            return;
        }
        let script =
            r#"mount -t tmpfs -o ro,size=64k forcebacklog-ro "$1" && exec "$0" install-shim "$1""#;
        Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                BIN,
            ])
            .arg(&target)
            .output()
            .expect("run unshare")
    } else {
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o555))
            .expect("chmod 0555");
        install_shim(&target)
    };
    let reason = if is_root {
        "Read-only file system"
    } else {
        "Permission denied"
    };
    assert_one_line_error(&out, &target, reason);
}

#[test]
fn shim_has_no_needed_entries_and_fits_in_8_kib() {
    let shim = support::shim();
    let size = std::fs::metadata(shim).expect("the installed shim").len();
    println!("libforcebacklog.so: {size} bytes");
    assert!(
        size <= 8192,
        "libforcebacklog.so is {size} bytes, more than 8 KiB"
    );
    let Some(dynamic) = readelf(&["-d", "-W"], shim) else {
        return;
    };
    assert!(
        !dynamic.contains("(NEEDED)"),
        "no DT_NEEDED entries:\n{dynamic}"
    );
    assert!(dynamic.contains("(GNU_HASH)"), "{dynamic}");
}

#[test]
fn shim_exports_only_listen_and_has_a_non_executable_stack() {
    let shim = support::shim();
    let Some(symbols) = readelf(&["--dyn-syms", "-W"], shim) else {
        return;
    };
    let defined: Vec<&str> = symbols
        .lines()
        .filter(|l| l.contains(" FUNC ") || l.contains(" OBJECT "))
        .filter(|l| !l.contains(" UND "))
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert_eq!(defined, ["listen"], "{symbols}");
    // Everything taken from libc is weak: a libc without it never breaks loading.
    let strong: Vec<&str> = symbols
        .lines()
        .filter(|l| l.contains(" UND ") && l.contains(" GLOBAL "))
        .collect();
    assert!(strong.is_empty(), "strong undefined symbols: {strong:?}");
    let Some(headers) = readelf(&["-l", "-W"], shim) else {
        return;
    };
    let stack = headers
        .lines()
        .find(|l| l.contains("GNU_STACK"))
        .unwrap_or_else(|| {
            panic!("no GNU_STACK header (the loader would make the stack executable):\n{headers}")
        });
    assert!(stack.contains(" RW "), "{stack}");
}
