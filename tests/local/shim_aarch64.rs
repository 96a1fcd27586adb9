//! The shim's source is architecture-portable: built for aarch64
//! (`aarch64-unknown-linux-gnu`, linked with Debian's cross gcc) it has no
//! `DT_NEEDED` entries, fits in 8 KiB, and changes the backlog of a real
//! aarch64 C server run under `qemu-aarch64` (user-mode emulation: the
//! program's system calls reach this machine's kernel, so `ss` sees its
//! listener).
//!
//! Needs: `rustup target add aarch64-unknown-linux-gnu`, and the Debian
//! packages `gcc-aarch64-linux-gnu`, `libc6-dev-arm64-cross`, `qemu-user`.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::{Running, allow_skip, require_tool, ss_backlog};

const TARGET: &str = "aarch64-unknown-linux-gnu";
const SYSROOT: &str = "/usr/aarch64-linux-gnu";

/// The shim and the C server, both built for aarch64 once per test binary.
struct Built {
    shim: PathBuf,
    server: PathBuf,
}

fn built() -> Option<&'static Built> {
    static BUILT: OnceLock<Option<Built>> = OnceLock::new();
    BUILT.get_or_init(build).as_ref()
}

fn rust_target_installed() -> bool {
    let out = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .expect("run rustc --print target-libdir");
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    out.status.success() && Path::new(&dir).is_dir()
}

fn build() -> Option<Built> {
    if !require_tool("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")
        || !require_tool("qemu-aarch64", "qemu-user")
        || !require_tool("readelf", "binutils")
        || !require_tool("ss", "iproute2")
    {
        return None;
    }
    if !Path::new(SYSROOT).join("lib/libc.so.6").exists() {
        let message =
            format!("{SYSROOT}/lib/libc.so.6 is missing: install `libc6-dev-arm64-cross`");
        if allow_skip() {
            eprintln!("SKIP (FORCEBACKLOG_ALLOW_SKIP=1): {message}");
            return None;
        }
        panic!("{message} (or set FORCEBACKLOG_ALLOW_SKIP=1 to skip)");
    }
    if !rust_target_installed() {
        let message = format!("the Rust target {TARGET} is missing: `rustup target add {TARGET}`");
        if allow_skip() {
            eprintln!("SKIP (FORCEBACKLOG_ALLOW_SKIP=1): {message}");
            return None;
        }
        panic!("{message} (or set FORCEBACKLOG_ALLOW_SKIP=1 to skip)");
    }

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("shim-aarch64");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root.join("shim"))
        .args(["build", "--release", "--quiet", "--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir)
        .env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
            "aarch64-linux-gnu-gcc",
        );
    for key in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        command.env_remove(key);
    }
    let out = command
        .output()
        .expect("run cargo build for the aarch64 shim");
    assert!(
        out.status.success(),
        "building the shim for {TARGET} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shim = target_dir.join(TARGET).join("release/libforcebacklog.so");

    let server = target_dir.join("backlog_server-aarch64");
    let out = Command::new("aarch64-linux-gnu-gcc")
        .args(["-O2", "-Wall", "-pthread", "-o"])
        .arg(&server)
        .arg(root.join("tests/c/backlog_server.c"))
        .output()
        .expect("run aarch64-linux-gnu-gcc");
    assert!(
        out.status.success(),
        "aarch64-linux-gnu-gcc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(Built { shim, server })
}

/// The aarch64 C server under qemu with the aarch64 shim preloaded and
/// `env` set (passed through qemu's `-E`, so the emulated loader sees them).
fn qemu_server(built: &Built, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new("qemu-aarch64");
    command.args(["-L", SYSROOT]);
    command
        .arg("-E")
        .arg(format!("LD_PRELOAD={}", built.shim.display()));
    for (key, value) in env {
        command.arg("-E").arg(format!("{key}={value}"));
    }
    command.arg(&built.server).args(args);
    for key in [
        "BACKLOG",
        "FORCEBACKLOG_MODE",
        "FORCEBACKLOG_PORTS",
        "FORCEBACKLOG_DEBUG",
        "LD_PRELOAD",
    ] {
        command.env_remove(key);
    }
    command
}

/// Listens once with `backlog` under `env`; returns what `ss` shows and the
/// server's stderr.
fn listen_once(built: &Built, backlog: &str, env: &[(&str, &str)]) -> (u32, String) {
    let running = Running::start(qemu_server(built, &["listen", backlog], env));
    let port = running.port();
    let seen = ss_backlog(port);
    let out = running.finish();
    assert!(out.status.success(), "server failed: {out:?}");
    (seen, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn elf_has_no_needed_entries_and_fits_in_8_kib() {
    let Some(built) = built() else { return };
    let size = std::fs::metadata(&built.shim).expect("stat the shim").len();
    assert!(size <= 8192, "aarch64 shim is {size} bytes, over 8 KiB");
    let out = Command::new("readelf")
        .arg("-dh")
        .arg(&built.shim)
        .output()
        .expect("run readelf");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("AArch64"), "not an aarch64 object:\n{text}");
    assert!(!text.contains("(NEEDED)"), "NEEDED entries:\n{text}");
}

#[test]
fn set_raise_and_pass_through() {
    let Some(built) = built() else { return };
    assert_eq!(listen_once(built, "20", &[("BACKLOG", "234")]).0, 234);
    assert_eq!(
        listen_once(
            built,
            "511",
            &[("BACKLOG", "234"), ("FORCEBACKLOG_MODE", "raise")]
        )
        .0,
        511
    );
    assert_eq!(
        listen_once(
            built,
            "511",
            &[("BACKLOG", "234"), ("FORCEBACKLOG_MODE", "set")]
        )
        .0,
        234
    );
    assert_eq!(listen_once(built, "20", &[]).0, 20);
    assert_eq!(listen_once(built, "20", &[("BACKLOG", "12abc")]).0, 20);
}

#[test]
fn debug_line_is_exact() {
    let Some(built) = built() else { return };
    let (seen, stderr) = listen_once(
        built,
        "20",
        &[("BACKLOG", "300"), ("FORCEBACKLOG_DEBUG", "1")],
    );
    assert_eq!(seen, 300);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("forcebacklog: listen(fd 3, port ")
            && lines[0].ends_with(") backlog 20 -> 300"),
        "{stderr}"
    );
}

#[test]
fn errno_is_the_kernels() {
    let Some(built) = built() else { return };
    let running = Running::start(qemu_server(built, &["errno"], &[("BACKLOG", "234")]));
    let lines = running.lines.clone();
    let out = running.finish();
    assert!(out.status.success(), "server failed: {out:?}");
    assert!(
        lines
            .iter()
            .any(|l| l == "notsock ret -1 errno 88 ENOTSOCK"),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l == "closed ret -1 errno 9 EBADF"),
        "{lines:?}"
    );
    // errno is left alone by a successful call (the C server sets 4242
    // before it); the backlog column relies on TCP_INFO, which qemu-user
    // does not translate, so it is not checked here.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("success ret 0 errno 4242")),
        "{lines:?}"
    );
}
