//! `inject --backlog 234` over the real-world manifests of `tests/corpus/`
//! (sources, commits and licences in its README) and, when it is beside
//! the repository, the Istio injection corpus: every template injected or
//! skipped as expected, the objects equal to the normalised output's, every
//! value outside the additions read back equal, every input line kept byte
//! for byte, and a second run changing nothing. Prints a report
//! (`cargo test --test cli inject_corpus -- --nocapture`).

use crate::support;

use forcebacklog::manifest::{Output, inject};
use forcebacklog::patch::Injector;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{lines_kept, read, strip_injection};

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.expect("entry").path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[derive(Default)]
struct Totals {
    files: usize,
    documents: usize,
    templates: usize,
    injected: usize,
    skipped: usize,
    normalised: usize,
    lines_kept: usize,
    values_equal: usize,
    idempotent: usize,
    warnings: Vec<String>,
    time: Duration,
    slowest: (Duration, String, usize),
}

fn check(file: &Path, totals: &mut Totals) {
    let name = file
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    let input = std::fs::read_to_string(file).expect("read");
    let config = Injector::default();
    let start = Instant::now();
    let out =
        inject(&input, &name, Some(234), &config, Output::Splice).unwrap_or_else(|e| panic!("{e}"));
    let took = start.elapsed();
    let reformatted = inject(&input, &name, Some(234), &config, Output::Reformat)
        .unwrap_or_else(|e| panic!("{e}"));

    let docs = read(&out.yaml);
    let present: Vec<_> = docs.iter().filter(|d| !d.is_null()).cloned().collect();
    assert_eq!(
        present,
        read(&reformatted.yaml),
        "{name}: splice and reformat differ"
    );
    let mut stripped = docs.clone();
    let mut original = read(&input);
    stripped.iter_mut().for_each(strip_injection);
    original.iter_mut().for_each(strip_injection);
    assert_eq!(stripped, original, "{name}: values outside the additions");
    totals.values_equal += 1;
    if out.report.normalised == 0 {
        lines_kept(&input, &out.yaml).unwrap_or_else(|e| panic!("{name}: {e}"));
        totals.lines_kept += 1;
    }
    let again = inject(&out.yaml, &name, Some(234), &config, Output::Splice).expect("again");
    assert_eq!(again.yaml, out.yaml, "{name}: inject of its own output");
    totals.idempotent += 1;

    totals.files += 1;
    totals.documents += out.report.documents;
    totals.templates += out.report.templates;
    totals.injected += out.report.injected;
    totals.skipped += out.report.skipped;
    totals.normalised += out.report.normalised;
    totals
        .warnings
        .extend(out.warnings.iter().map(|w| format!("{name}: {w}")));
    totals.time += took;
    if took > totals.slowest.0 {
        totals.slowest = (took, name.clone(), input.len());
    }
    println!(
        "{name}: {} bytes, {} documents, {} templates ({} injected, {} skipped), {} normalised, {:.2} ms",
        input.len(),
        out.report.documents,
        out.report.templates,
        out.report.injected,
        out.report.skipped,
        out.report.normalised,
        took.as_secs_f64() * 1000.0
    );
}

fn report(what: &str, t: &Totals) {
    println!(
        "{what}: {} files, {} documents, {} templates: {} injected, {} skipped; {} documents written normalised; \
         values equal outside the additions: {}/{}; input lines all kept: {}/{}; idempotent: {}/{}; \
         {:.2} ms per file (debug build), slowest {} ({} bytes) {:.2} ms",
        t.files,
        t.documents,
        t.templates,
        t.injected,
        t.skipped,
        t.normalised,
        t.values_equal,
        t.files,
        t.lines_kept,
        t.files,
        t.idempotent,
        t.files,
        t.time.as_secs_f64() * 1000.0 / t.files.max(1) as f64,
        t.slowest.1,
        t.slowest.2,
        t.slowest.0.as_secs_f64() * 1000.0
    );
}

#[test]
fn the_repository_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut totals = Totals::default();
    for file in yaml_files(&dir) {
        check(&file, &mut totals);
    }
    report("tests/corpus", &totals);
    assert_eq!(totals.files, 21);
    assert_eq!(totals.templates, 34, "pod templates");
    assert_eq!(totals.injected, 34);
    assert_eq!(totals.skipped, 0);
    assert_eq!(totals.normalised, 0, "every change spliced");
    assert_eq!(
        totals.warnings,
        [
            "examples--_archived_newrelic-infrastructure_newrelic-infra-daemonset.yaml: document 1 (DaemonSet newrelic-infra-agent): apiVersion extensions/v1beta1 for DaemonSet was removed in Kubernetes 1.16 and no cluster serves it; left unchanged: change apiVersion to apps/v1 (which requires spec.selector) and run inject again"
        ]
    );
}

#[test]
fn the_istio_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/istio-inject");
    if !dir.is_dir() {
        // tests/cli/inject.rs requires it (and says so); this report is extra.
        println!("SKIP: {} is missing", dir.display());
        return;
    }
    let mut totals = Totals::default();
    for file in yaml_files(&dir) {
        check(&file, &mut totals);
    }
    report("istio-inject", &totals);
    assert_eq!(totals.files, 34);
    // The gateway is the mesh proxy alone, excluded by default: skipped.
    assert_eq!((totals.injected, totals.skipped), (33, 1));
    assert_eq!(totals.normalised, 0, "every change spliced");
    assert_eq!(totals.lines_kept, 34);
}
