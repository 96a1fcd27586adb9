//! Runs `tests/helm/chart.py` (Helm's engine from the helm-python-sdk
//! package) and parses what it renders. Shared by `tests/chart_*.rs`.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The chart under test.
pub fn chart_dir() -> PathBuf {
    root().join("charts/forcebacklog")
}

/// True when `FORCEBACKLOG_ALLOW_SKIP=1`.
fn skip_allowed() -> bool {
    std::env::var("FORCEBACKLOG_ALLOW_SKIP").as_deref() == Ok("1")
}

/// Is the Helm engine usable? `Ok(false)` means "skip" (allowed by the
/// environment); a missing engine without the opt-out panics with what to
/// install.
pub fn engine_available() -> bool {
    usable(
        || chart_py(&["schema", &chart_dir().to_string_lossy()]),
        "the Helm engine is missing: run tests/helm/install-helm-sdk.sh \
         (PyPI package helm-python-sdk)",
    )
}

/// Is the second Helm engine (helm-sdkpy's `libhelm_sdkpy.so`, loaded with
/// cffi by `tests/helm/sdkpy_lint.py`) usable? Like [`engine_available`]:
/// `false` only when `FORCEBACKLOG_ALLOW_SKIP=1`, else a panic naming what
/// to install.
pub fn sdkpy_available() -> bool {
    usable(
        || sdkpy_lint(&["--version"]),
        "the helm-sdkpy engine is missing: run tests/helm/install-helm-sdk.sh \
         (PyPI packages helm-sdkpy and cffi; needs python3-pip)",
    )
}

/// `true` when python3 runs and `probe` exits 0; otherwise `false` when
/// `FORCEBACKLOG_ALLOW_SKIP=1` (with a skip line), else a panic naming
/// what to install (`missing`, followed by the probe's stderr).
fn usable(probe: impl FnOnce() -> Output, missing: &str) -> bool {
    let why = match Command::new("python3").arg("--version").output() {
        Err(_) => Some("python3 not found (Debian package python3)".to_owned()),
        Ok(_) => {
            let out = probe();
            match out.status.code() {
                Some(0) => None,
                _ => Some(format!(
                    "{missing} — {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
            }
        }
    };
    match why {
        None => true,
        Some(why) if skip_allowed() => {
            eprintln!("SKIPPED (FORCEBACKLOG_ALLOW_SKIP=1): {why}");
            false
        }
        Some(why) => panic!("{why} (set FORCEBACKLOG_ALLOW_SKIP=1 to skip)"),
    }
}

/// Runs `python3 tests/helm/sdkpy_lint.py ARGS...`.
pub fn sdkpy_lint(args: &[&str]) -> Output {
    Command::new("python3")
        .arg(root().join("tests/helm/sdkpy_lint.py"))
        .args(args)
        .output()
        .expect("python3 runs")
}

/// Runs `python3 tests/helm/chart.py ARGS...`.
pub fn chart_py(args: &[&str]) -> Output {
    Command::new("python3")
        .arg(root().join("tests/helm/chart.py"))
        .args(args)
        .output()
        .expect("python3 runs")
}

/// `chart.py lint` with these values: (exit code 0?, stdout + stderr).
pub fn lint(values: &Value) -> (bool, String) {
    let out = chart_py(&["lint", &chart_dir().to_string_lossy(), &values.to_string()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `chart.py schema` with these values: Err(message) when rejected.
pub fn schema(values: &Value) -> Result<(), String> {
    let out = chart_py(&[
        "schema",
        &chart_dir().to_string_lossy(),
        &values.to_string(),
    ]);
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `chart.py schema-many`: for each values object, `None` when the schema
/// accepts it, else the message (one engine start for the whole list).
pub fn schema_many(values: &[Value]) -> Vec<Option<String>> {
    let list = Value::Array(values.to_vec()).to_string();
    let out = chart_py(&["schema-many", &chart_dir().to_string_lossy(), &list]);
    assert!(
        out.status.success(),
        "chart.py schema-many: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON list of verdicts")
}

/// The objects of a rendered chart, keyed by `Kind/name`.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Every Kubernetes object, by `Kind/name`.
    pub objects: BTreeMap<String, Value>,
    /// The rendered NOTES.txt.
    pub notes: String,
}

impl Rendered {
    /// The object `kind/name`, or a panic naming what exists.
    pub fn get(&self, key: &str) -> &Value {
        self.objects.get(key).unwrap_or_else(|| {
            panic!(
                "rendered chart has no {key}; it has {:?}",
                self.objects.keys().collect::<Vec<_>>()
            )
        })
    }

    /// The objects of one kind.
    pub fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .values()
            .filter(|o| o["kind"] == kind)
            .collect()
    }
}

/// Renders the chart with these values (release and namespace
/// `forcebacklog` unless `__name`/`__namespace` are given).
pub fn render(values: &Value) -> Rendered {
    let out = chart_py(&[
        "render",
        &chart_dir().to_string_lossy(),
        &values.to_string(),
    ]);
    assert!(
        out.status.success(),
        "render with {values} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let templates: BTreeMap<String, String> =
        serde_json::from_slice(&out.stdout).expect("chart.py render prints JSON");
    parse_rendered(templates)
}

/// What a cluster-aware render saw and made.
#[derive(Debug, Clone)]
pub struct ClusterRender {
    /// The rendered objects.
    pub rendered: Rendered,
    /// The paths Helm requested from the API server, in order.
    pub requests: Vec<String>,
}

/// Renders the chart the way `helm upgrade` does against a cluster that
/// holds `objects` (core/v1 objects; `[]`: a first install): the template
/// function `lookup` really runs, through Helm's Kubernetes client, against
/// the minimal API server of `tests/helm/apiserver.py` on loopback.
pub fn render_cluster(values: &Value, objects: &Value) -> ClusterRender {
    let out = chart_py(&[
        "render-cluster",
        &chart_dir().to_string_lossy(),
        &values.to_string(),
        &objects.to_string(),
    ]);
    assert!(
        out.status.success(),
        "render-cluster with {values} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    #[derive(serde::Deserialize)]
    struct Output {
        manifests: BTreeMap<String, String>,
        requests: Vec<String>,
    }
    let output: Output =
        serde_json::from_slice(&out.stdout).expect("chart.py render-cluster prints JSON");
    ClusterRender {
        rendered: parse_rendered(output.manifests),
        requests: output.requests,
    }
}

/// The objects and notes of `{template: manifest}`.
fn parse_rendered(templates: BTreeMap<String, String>) -> Rendered {
    let mut objects = BTreeMap::new();
    let mut notes = String::new();
    for (template, text) in templates {
        if template.ends_with("NOTES.txt") {
            notes = text;
            continue;
        }
        for object in parse_yaml_objects(&text, &template) {
            objects.insert(object_key(&object), object);
        }
    }
    Rendered { objects, notes }
}

/// Parses multi-document YAML into its (non-empty) objects.
pub fn parse_yaml_objects(text: &str, origin: &str) -> Vec<Value> {
    // Split on document markers ourselves: comment-only documents are
    // normal in rendered charts.
    let mut objects = Vec::new();
    for doc in text.split("\n---") {
        let has_content = doc
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#') && l != "---");
        if !has_content {
            continue;
        }
        let value: Value = serde_saphyr::from_str(doc)
            .unwrap_or_else(|e| panic!("{origin}: invalid YAML: {e}\n{doc}"));
        objects.push(value);
    }
    objects
}

/// `Kind/name` of an object.
pub fn object_key(object: &Value) -> String {
    format!(
        "{}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// All objects of the YAML files directly in `dir`, keyed by `Kind/name`.
pub fn load_dir(dir: &Path) -> BTreeMap<String, Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("directory exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut objects = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable manifest");
        for object in parse_yaml_objects(&text, &file.to_string_lossy()) {
            objects.insert(object_key(&object), object);
        }
    }
    objects
}
