//! The project's shell scripts (tests/, bench/, docker/, .ci/) pass
//! `shellcheck`, and tests/e2e/kind.sh skips cleanly where kind is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Files under `dir` that are shell scripts: `*.sh`, or a `sh`/`bash` shebang.
fn scripts(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && name != "node_modules" {
                scripts(&path, found);
            }
            continue;
        }
        let first_line = std::fs::read(&path)
            .ok()
            .and_then(|bytes| {
                bytes
                    .split(|b| *b == b'\n')
                    .next()
                    .map(|l| String::from_utf8_lossy(l).into_owned())
            })
            .unwrap_or_default();
        let shebang = first_line.starts_with("#!")
            && (first_line.ends_with("bash") || first_line.ends_with("/sh"));
        if path.extension().is_some_and(|e| e == "sh") || shebang {
            found.push(path);
        }
    }
}

#[test]
fn shell_scripts_pass_shellcheck() {
    if Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_err()
    {
        let why = "shellcheck not found (Debian package shellcheck)";
        if std::env::var("FORCEBACKLOG_ALLOW_SKIP").as_deref() == Ok("1") {
            eprintln!("SKIPPED (FORCEBACKLOG_ALLOW_SKIP=1): {why}");
            return;
        }
        panic!("{why} (set FORCEBACKLOG_ALLOW_SKIP=1 to skip)");
    }
    let mut found = Vec::new();
    for dir in ["tests", "bench", "docker", ".ci"] {
        scripts(&Path::new(ROOT).join(dir), &mut found);
    }
    found.sort();
    for expected in [
        "tests/e2e/kind.sh",
        "tests/e2e/cluster.sh",
        "tests/e2e/cluster/build.sh",
        "docker/build-local.sh",
        "tests/helm/install-helm-sdk.sh",
        ".ci/run",
    ] {
        assert!(
            found.contains(&Path::new(ROOT).join(expected)),
            "{expected} not found among {found:?}"
        );
    }
    let out = Command::new("shellcheck")
        .arg("--shell=bash")
        .arg("--severity=style")
        .args(&found)
        .output()
        .expect("shellcheck runs");
    assert!(
        out.status.success(),
        "shellcheck found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kind_e2e_skips_without_kind() {
    // An empty PATH: no kind (nor anything else) to find.
    let empty = tempfile::tempdir().expect("temp dir");
    let bash = ["/bin/bash", "/usr/bin/bash"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("bash is installed");
    let out = Command::new(bash)
        .arg(Path::new(ROOT).join("tests/e2e/kind.sh"))
        .env("PATH", empty.path())
        .output()
        .expect("kind.sh runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kind.sh failed without kind: {stdout}"
    );
    assert!(
        stdout.contains("kind not found, skipped"),
        "kind.sh should say it skipped: {stdout}"
    );
}
