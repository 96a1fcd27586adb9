//! The app images of the end-to-end tests, built FROM scratch from local
//! files (no registry): a C server with a hard-coded `listen(fd, 20)`
//! (tests/e2e/fixtures/listen20.c), dynamically linked against glibc and
//! against musl, the same server linked statically against musl (no
//! loader: `LD_PRELOAD` cannot reach it), and the static pod sandbox
//! (tests/e2e/fixtures/pause.c).

use crate::kubelet::{Cleanup, docker};
use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Runs `cmd`; its stdout, or a panic with its output.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The ELF interpreter a binary asks for, if any.
pub fn interpreter(binary: &Path) -> Option<String> {
    let text = run(Command::new("readelf").arg("-lW").arg(binary));
    text.lines().find_map(|l| {
        l.split("Requesting program interpreter: ")
            .nth(1)
            .map(|rest| rest.trim_end_matches(']').to_owned())
    })
}

/// Copies `source` (following symlinks) to `rootfs` + its absolute path.
pub fn copy_into(rootfs: &Path, source: &str) {
    let destination = rootfs.join(source.trim_start_matches('/'));
    std::fs::create_dir_all(destination.parent().expect("absolute path")).expect("mkdir");
    std::fs::copy(source, &destination)
        .unwrap_or_else(|e| panic!("copying {source} into the image: {e}"));
}

/// Builds `tag` FROM scratch with `files` (path in image → host file) plus
/// the host files in `libraries` at their own paths.
pub fn build_scratch_image(
    work: &Path,
    tag: &str,
    files: &[(&str, &Path)],
    libraries: &[String],
    entrypoint: &str,
) {
    let context = work.join(tag.replace(['/', ':'], "_"));
    let rootfs = context.join("rootfs");
    for (path, source) in files {
        let destination = rootfs.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(destination.parent().expect("absolute path")).expect("mkdir");
        std::fs::copy(source, &destination).expect("copy file into image");
    }
    for library in libraries {
        copy_into(&rootfs, library);
    }
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"{entrypoint}\"]\n"),
    )
    .expect("write Dockerfile");
    docker(&[
        "build".into(),
        "--quiet".into(),
        "-t".into(),
        tag.into(),
        context.to_string_lossy().into_owned(),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
}

/// The app images: (glibc tag, musl tag, pause tag).
pub fn build_app_images(work: &Path, prefix: &str, cleanup: &Cleanup) -> (String, String, String) {
    let source = Path::new(ROOT).join("tests/e2e/fixtures/listen20.c");
    let pause_source = Path::new(ROOT).join("tests/e2e/fixtures/pause.c");
    let glibc_bin = work.join("listen20-glibc");
    let musl_bin = work.join("listen20-musl");
    let pause_bin = work.join("pause");
    run(Command::new("gcc")
        .args(["-O2", "-Wall", "-Werror", "-o"])
        .arg(&glibc_bin)
        .arg(&source));
    run(Command::new("musl-gcc")
        .args(["-O2", "-Wall", "-Werror", "-o"])
        .arg(&musl_bin)
        .arg(&source));
    run(Command::new("musl-gcc")
        .args(["-O2", "-static", "-o"])
        .arg(&pause_bin)
        .arg(&pause_source));

    // Both apps are dynamic executables: LD_PRELOAD only works through a loader.
    let glibc_loader = interpreter(&glibc_bin).expect("the glibc app is dynamically linked");
    let musl_loader = interpreter(&musl_bin).expect("the musl app is dynamically linked");
    assert!(
        musl_loader.contains("ld-musl"),
        "musl app loader: {musl_loader}"
    );
    assert!(interpreter(&pause_bin).is_none(), "pause is static");

    // glibc: the loader plus every library ldd resolves (libc.so.6).
    let mut glibc_libs = vec![glibc_loader];
    for line in run(Command::new("ldd").arg(&glibc_bin)).lines() {
        if let Some(path) = line
            .split("=> ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
        {
            glibc_libs.push(path.to_owned());
        }
    }
    assert!(
        glibc_libs.iter().any(|l| l.ends_with("libc.so.6")),
        "ldd found libc.so.6: {glibc_libs:?}"
    );

    let glibc = format!("{prefix}/app-glibc:e2e");
    let musl = format!("{prefix}/app-musl:e2e");
    let pause = format!("{prefix}/pause:e2e");
    for tag in [&glibc, &musl, &pause] {
        cleanup.image(tag);
    }
    build_scratch_image(
        work,
        &glibc,
        &[("/server", &glibc_bin)],
        &glibc_libs,
        "/server",
    );
    // musl: the loader is the C library (ld-musl-*.so.1 → libc.so).
    build_scratch_image(
        work,
        &musl,
        &[("/server", &musl_bin)],
        &[musl_loader],
        "/server",
    );
    build_scratch_image(work, &pause, &[("/pause", &pause_bin)], &[], "/pause");
    (glibc, musl, pause)
}

/// The static server image: tests/e2e/fixtures/listen20.c linked
/// statically against musl (`/server`, no loader, no library), the
/// program only `forcebacklog/method: supervise` reaches.
pub fn build_static_image(work: &Path, prefix: &str, cleanup: &Cleanup) -> String {
    let source = Path::new(ROOT).join("tests/e2e/fixtures/listen20.c");
    let binary = work.join("listen20-static");
    run(Command::new("musl-gcc")
        .args(["-O2", "-Wall", "-Werror", "-static", "-o"])
        .arg(&binary)
        .arg(&source));
    assert!(
        interpreter(&binary).is_none(),
        "the static server has no loader"
    );
    let tag = format!("{prefix}/app-static:e2e");
    cleanup.image(&tag);
    build_scratch_image(work, &tag, &[("/server", &binary)], &[], "/server");
    tag
}
