//! Build script: builds the `LD_PRELOAD` shim and hands it to
//! `src/shim.rs`, which embeds it with `include_bytes!`, so the
//! `forcebacklog` binary is the only file the image and the init
//! container need.
//!
//! Why a second workspace (`shim/`) built by a nested `cargo build`:
//! the shim must be `no_std`, `panic = "abort"`, size-optimised and
//! linked without libc, while this crate (the webhook: tokio, rustls)
//! needs std and unwinding. Cargo profiles apply to a whole workspace, so
//! making the shim a member would force its profile on the webhook or
//! the webhook's on the shim. A separate workspace keeps both right and
//! lets `cd shim && cargo build --release` work on its own.
//!
//! The shim is always built for `<arch>-unknown-linux-gnu`, also when
//! this crate targets musl: it has no libc dependency at all (every libc
//! function is bound at load time from the host program's libc), so the
//! gnu-target artifact is the one file that loads into glibc AND musl
//! programs, and the gnu target is the one that builds a `cdylib`
//! without a C runtime.
//!
//! Packagers can skip the nested build with `FORCEBACKLOG_SHIM_SO=/path
//! /to/libforcebacklog.so` (a shim built beforehand).

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Shim sources whose change rebuilds the shim.
const SHIM_INPUTS: &[&str] = &[
    "shim/Cargo.toml",
    "shim/Cargo.lock",
    "shim/build.rs",
    "shim/.cargo/config.toml",
    "shim/src",
];

/// The flags of shim/.cargo/config.toml, passed explicitly so an outer
/// RUSTFLAGS (coverage, sanitizers, target-cpu...) never reaches the shim.
const SHIM_RUSTFLAGS: &str = "-Cforce-unwind-tables=no";

fn main() -> ExitCode {
    match build() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: building libforcebacklog.so: {message}");
            ExitCode::FAILURE
        }
    }
}

fn build() -> Result<(), String> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=FORCEBACKLOG_SHIM_SO");
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);
    let destination = out_dir.join("libforcebacklog.so");

    let prebuilt = env::var_os("FORCEBACKLOG_SHIM_SO").filter(|v| !v.is_empty());
    let from_env = prebuilt.is_some();
    let built = match prebuilt {
        Some(prebuilt) => {
            let prebuilt = PathBuf::from(prebuilt);
            println!("cargo:rerun-if-changed={}", prebuilt.display());
            prebuilt
        }
        None => build_shim()?,
    };
    check_elf(&built).map_err(|err| {
        if from_env {
            format!("FORCEBACKLOG_SHIM_SO: {err}")
        } else {
            err
        }
    })?;
    fs::copy(&built, &destination).map_err(|err| {
        format!(
            "copying {} to {}: {err}",
            built.display(),
            destination.display()
        )
    })?;
    Ok(())
}

/// Runs the nested `cargo build --release` of `shim/`; returns the .so.
fn build_shim() -> Result<PathBuf, String> {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    for input in SHIM_INPUTS {
        println!("cargo:rerun-if-changed={input}");
    }
    let arch = env_var("CARGO_CFG_TARGET_ARCH")?;
    let os = env_var("CARGO_CFG_TARGET_OS")?;
    if os != "linux" || !matches!(arch.as_str(), "x86_64" | "aarch64") {
        return Err(format!(
            "the shim supports x86_64 and aarch64 Linux only, this build targets {arch}-{os}; \
             set FORCEBACKLOG_SHIM_SO to a prebuilt libforcebacklog.so"
        ));
    }
    let triple = format!("{arch}-unknown-linux-gnu");
    // A directory of its own: the nested cargo must not contend with the
    // outer build for its target directory lock.
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir.join("target"))
        .join("shim");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let shim_dir = manifest_dir.join("shim");

    let mut command = Command::new(&cargo);
    command
        // From inside shim/ so shim/.cargo/config.toml applies as it does
        // for a manual build there.
        .current_dir(&shim_dir)
        .args(["build", "--release", "--offline", "--target"])
        .arg(&triple)
        .arg("--manifest-path")
        .arg(shim_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", SHIM_RUSTFLAGS);
    // Settings of the outer build that would break or change the shim.
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let upper_triple = triple.to_uppercase().replace('-', "_");
        if matches!(
            key,
            "RUSTFLAGS"
                | "CARGO_BUILD_RUSTFLAGS"
                | "CARGO_TARGET_DIR"
                | "CARGO_BUILD_TARGET_DIR"
                | "CARGO_BUILD_TARGET"
                | "RUSTC_WORKSPACE_WRAPPER"
                | "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER"
        ) || key.starts_with("CARGO_PROFILE_")
            || key == format!("CARGO_TARGET_{upper_triple}_RUSTFLAGS")
        {
            command.env_remove(key);
        }
    }
    let output = command
        .output()
        .map_err(|err| format!("running {}: {err}", Path::new(&cargo).display()))?;
    if !output.status.success() {
        return Err(format!(
            "`cargo build --release --target {triple}` in {} failed ({}):\n{}",
            shim_dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(target_dir
        .join(&triple)
        .join("release")
        .join("libforcebacklog.so"))
}

/// A clear error for a missing file or one that is not an ELF object.
fn check_elf(path: &Path) -> Result<(), String> {
    let bytes = fs::read(path).map_err(|err| format!("reading {}: {err}", path.display()))?;
    if !bytes.starts_with(b"\x7fELF") {
        return Err(format!(
            "{} is not an ELF shared library ({} bytes)",
            path.display(),
            bytes.len()
        ));
    }
    Ok(())
}

fn env_var(key: &str) -> Result<String, String> {
    env::var(key).map_err(|_| format!("cargo did not set {key}"))
}
