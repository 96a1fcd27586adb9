//! The GitHub Actions workflows (`.github/workflows/*.yml`) cannot run
//! here, so they are linted with actionlint (with shellcheck for `run:`
//! scripts), built from the Go module proxy into the cache outside the
//! repository; and the release workflow is checked for what a release must
//! publish.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ACTIONLINT: &str = "github.com/rhysd/actionlint/cmd/actionlint";
const VERSION: &str = "v1.7.12";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn skip_allowed() -> bool {
    std::env::var("FORCEBACKLOG_ALLOW_SKIP").as_deref() == Ok("1")
}

/// `$FORCEBACKLOG_CACHE` (default `~/.cache/forcebacklog`)/tools/actionlint-VERSION.
fn cache_dir() -> PathBuf {
    let base = std::env::var_os("FORCEBACKLOG_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/forcebacklog")
        });
    base.join("tools").join(format!("actionlint-{VERSION}"))
}

/// Go from PATH, or the usual /usr/local/go/bin/go.
fn go() -> Option<PathBuf> {
    let on_path = Command::new("go").arg("version").output();
    if on_path.is_ok_and(|o| o.status.success()) {
        return Some(PathBuf::from("go"));
    }
    let usual = PathBuf::from("/usr/local/go/bin/go");
    usual.is_file().then_some(usual)
}

/// The actionlint binary, built once with `go install` when missing.
/// `None` (a skip) only with `FORCEBACKLOG_ALLOW_SKIP=1`.
fn actionlint() -> Option<PathBuf> {
    let dir = cache_dir();
    let binary = dir.join("actionlint");
    if binary.is_file() {
        return Some(binary);
    }
    let Some(go) = go() else {
        let why = format!(
            "actionlint {VERSION} is not in {} and Go is missing to build it \
             (install Go, e.g. the Debian package golang-go or go.dev/dl into /usr/local/go)",
            dir.display()
        );
        if skip_allowed() {
            eprintln!("SKIPPED (FORCEBACKLOG_ALLOW_SKIP=1): {why}");
            return None;
        }
        panic!("{why} (set FORCEBACKLOG_ALLOW_SKIP=1 to skip)");
    };
    std::fs::create_dir_all(&dir).expect("create the tool cache");
    let out = Command::new(&go)
        .args(["install", &format!("{ACTIONLINT}@{VERSION}")])
        .env("GOBIN", &dir)
        .env("CGO_ENABLED", "0")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("go runs");
    assert!(
        out.status.success() && binary.is_file(),
        "go install {ACTIONLINT}@{VERSION} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(binary)
}

/// actionlint over `files`, or over every workflow of the repository at
/// `repo` when `files` is empty.
fn lint(actionlint: &Path, repo: &Path, files: &[&Path]) -> Output {
    // shellcheck (Debian package shellcheck, installed by .ci/run) checks the
    // `run:` scripts; actionlint finds it on PATH.
    let shellcheck = Command::new("shellcheck").arg("--version").output();
    if !shellcheck.is_ok_and(|o| o.status.success()) && !skip_allowed() {
        panic!(
            "shellcheck is missing (Debian package shellcheck); set FORCEBACKLOG_ALLOW_SKIP=1 to lint without it"
        );
    }
    Command::new(actionlint)
        .arg("-no-color")
        .args(files)
        .current_dir(repo)
        .output()
        .expect("actionlint runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn every_workflow_passes_actionlint() {
    let Some(actionlint) = actionlint() else {
        return;
    };
    let out = lint(&actionlint, &root(), &[]);
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "actionlint found problems:\n{}",
        text(&out)
    );
}

/// The lint is not a no-op: a release workflow with an undefined job in
/// `needs`, an unknown expression and an unquoted shell variable is refused.
#[test]
fn actionlint_rejects_a_broken_workflow() {
    let Some(actionlint) = actionlint() else {
        return;
    };
    let release =
        std::fs::read_to_string(root().join(".github/workflows/release.yml")).expect("release.yml");
    let broken = release
        .replacen("needs: [version, image]", "needs: [version, imagee]", 1)
        .replacen(
            "${{ steps.build.outputs.digest }}",
            "${{ steps.build.output.digest }}",
            1,
        )
        .replacen("mkdir -p dist", "mkdir -p dist; cd $RUNNER_TEMP/x", 1);
    assert_ne!(broken, release, "the breakages apply");
    let dir = tempfile::tempdir().expect("temp dir");
    let workflows = dir.path().join(".github/workflows");
    std::fs::create_dir_all(&workflows).expect("mkdir");
    let file = workflows.join("release.yml");
    std::fs::write(&file, broken).expect("write");
    let out = lint(&actionlint, dir.path(), &[&file]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("imagee"), "{report}");
    assert!(report.contains("output"), "{report}");
    if Command::new("shellcheck").arg("--version").output().is_ok() {
        assert!(report.contains("SC2086"), "{report}");
    }
}

fn release() -> Value {
    let text =
        std::fs::read_to_string(root().join(".github/workflows/release.yml")).expect("release.yml");
    serde_saphyr::from_str(&text).expect("release.yml is YAML")
}

/// The steps of a job, as (uses or "run", the step).
fn steps<'a>(workflow: &'a Value, job: &str) -> Vec<&'a Value> {
    workflow["jobs"][job]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("job {job} has steps"))
        .iter()
        .collect()
}

fn uses<'a>(steps: &[&'a Value], action: &str) -> &'a Value {
    steps
        .iter()
        .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(action)))
        .unwrap_or_else(|| panic!("no step uses {action}"))
}

fn runs(steps: &[&Value]) -> String {
    steps
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_release_publishes_a_signed_image_an_oci_chart_and_binaries() {
    let w = release();
    // On a version tag only.
    assert_eq!(w["on"]["push"]["tags"], serde_json::json!(["v*.*.*"]));
    assert!(w["on"]["pull_request"].is_null());

    // The multi-arch image with provenance and an SBOM, signed keyless.
    let image = steps(&w, "image");
    let build = &uses(&image, "docker/build-push-action")["with"];
    assert_eq!(build["platforms"], "linux/amd64,linux/arm64");
    assert_eq!(build["push"], true);
    assert_eq!(build["provenance"], "mode=max");
    assert_eq!(build["sbom"], true);
    uses(&image, "sigstore/cosign-installer");
    assert!(runs(&image).contains("cosign sign --yes \"$IMAGE@$DIGEST\""));
    assert_eq!(w["jobs"]["image"]["permissions"]["id-token"], "write");
    assert_eq!(w["jobs"]["image"]["permissions"]["packages"], "write");
    assert_eq!(w["env"]["IMAGE"], "ghcr.io/forcebacklog/forcebacklog");
    assert!(
        forcebacklog::config::DEFAULT_IMAGE.starts_with("ghcr.io/forcebacklog/forcebacklog:"),
        "the image the binary injects is the one released"
    );

    // The chart as an OCI artifact, signed too.
    let chart = runs(&steps(&w, "chart"));
    assert!(chart.contains("helm package charts/forcebacklog"));
    assert!(chart.contains("helm push \"dist/forcebacklog-$VERSION.tgz\" \"$CHART_REPO\""));
    assert!(chart.contains("cosign sign --yes"));
    assert_eq!(w["env"]["CHART_REPO"], "oci://ghcr.io/forcebacklog/charts");

    // Static binaries for both architectures, attached to the release.
    let binaries = steps(&w, "binaries");
    let export = &uses(&binaries, "docker/build-push-action")["with"];
    assert_eq!(export["platforms"], "linux/amd64,linux/arm64");
    assert_eq!(export["outputs"], "type=local,dest=out");
    assert!(runs(&binaries).contains("sha256sum"));
    let release = runs(&steps(&w, "release"));
    assert!(release.contains("gh release create \"$TAG\""));
    assert!(release.contains("dist/*"));
    assert_eq!(w["jobs"]["release"]["permissions"]["contents"], "write");
    // The workflow's default token is read-only.
    assert_eq!(w["permissions"]["contents"], "read");
}

/// The README's install section names the OCI chart the release pushes.
#[test]
fn the_readme_installs_the_released_oci_chart() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    assert!(
        readme.contains("oci://ghcr.io/forcebacklog/charts/forcebacklog"),
        "README.md should name the OCI chart"
    );
}
