//! `forcebacklog inject`: Kubernetes YAML in, the same YAML out with every
//! pod template mutated exactly as the webhook would mutate its pods.
//!
//! Each document (multi-document streams, and the `items` of a `List`) is
//! read into a `serde_json::Value`; the pod template of the kinds listed by
//! [`crate::plan::pod_template_pointer`] (Pod, Deployment, StatefulSet,
//! DaemonSet, ReplicaSet, ReplicationController, Job, CronJob, PodTemplate)
//! goes through the one mutation path ([`crate::patch::mutate`]) and its
//! operations are applied to the document. Every other kind passes through
//! untouched. Running `inject` on its own output changes nothing.
//!
//! Numbers with a leading zero (`defaultMode: 0644`) are read as octal,
//! as Kubernetes' YAML reader does, and written back in decimal; comments
//! are not kept.

use crate::annotations::Defaults;
use crate::config::InjectConfig;
use crate::patch::{self, ApplyError};
use crate::plan::{self, PodView};
use serde::Deserialize;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;

/// Why `inject` failed.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The input file (or stdin) could not be read.
    #[error("cannot read {file}")]
    Read {
        /// The file name (`-` for stdin).
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The input is not valid YAML.
    #[error("{file}: invalid YAML in document {document}{}: {message}", position(.line, .column))]
    Yaml {
        /// The file name (`-` for stdin).
        file: String,
        /// The document (1-based) the error is in.
        document: usize,
        /// The line (1-based), when the reader reported one.
        line: Option<u64>,
        /// The column (1-based), when the reader reported one.
        column: Option<u64>,
        /// What the YAML reader reported.
        message: String,
    },
    /// A pod template does not have the shape of a pod template.
    #[error("{file}: document {document} ({object}): the pod template is not valid: {message}")]
    Template {
        /// The file name (`-` for stdin).
        file: String,
        /// The document (1-based).
        document: usize,
        /// The object, e.g. `Deployment web`.
        object: String,
        /// What is wrong with it.
        message: String,
    },
    /// The operations of the mutation core did not apply (a bug, reported, never a panic).
    #[error("{file}: document {document} ({object}): cannot apply the injection")]
    Apply {
        /// The file name (`-` for stdin).
        file: String,
        /// The document (1-based).
        document: usize,
        /// The object, e.g. `Deployment web`.
        object: String,
        /// The failing operation.
        #[source]
        source: ApplyError,
    },
    /// The result could not be written as YAML.
    #[error("cannot write the result as YAML")]
    Serialize(#[source] serde_saphyr::SerializeError),
    /// Standard output could not be written.
    #[error("cannot write to standard output")]
    Write(#[source] std::io::Error),
}

fn position(line: &Option<u64>, column: &Option<u64>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" at line {line}, column {column}"),
        (Some(line), None) => format!(" at line {line}"),
        _ => String::new(),
    }
}

/// The mutated YAML and the warnings the webhook would have returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    /// The YAML documents, separated by `---`.
    pub yaml: String,
    /// One line per warning, naming the document and object.
    pub warnings: Vec<String>,
}

/// `forcebacklog inject -f FILE`: reads FILE (`-` for stdin), prints the mutated YAML to stdout.
pub fn inject_file(
    file: &Path,
    backlog: Option<u16>,
    config: &InjectConfig,
) -> Result<(), ManifestError> {
    let name = file.display().to_string();
    let mut input = String::new();
    let read = if name == "-" {
        std::io::stdin().lock().read_to_string(&mut input)
    } else {
        std::fs::File::open(file).and_then(|mut f| f.read_to_string(&mut input))
    };
    read.map_err(|source| ManifestError::Read {
        file: name.clone(),
        source,
    })?;
    let injected = inject_str(&input, &name, backlog, config)?;
    for warning in &injected.warnings {
        eprintln!("forcebacklog: warning: {warning}");
    }
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(injected.yaml.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // A closed pipe (`inject … | head`) is the reader's choice, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(ManifestError::Write),
    }
}

/// Injects every pod template of the YAML stream `input` (`file` names it in errors).
pub fn inject_str(
    input: &str,
    file: &str,
    backlog: Option<u16>,
    config: &InjectConfig,
) -> Result<Injected, ManifestError> {
    let mut docs = parse(input, file)?;
    // The reader drops empty and `null` documents, but a tagged empty node
    // (`--- !!foo`) comes back as null: drop it too, or the output (`null`)
    // would read back as nothing and `inject` would not be idempotent.
    docs.retain(|doc| !doc.is_null());
    let defaults = Defaults {
        backlog: backlog.unwrap_or(config.default_backlog),
        implicit: backlog.is_some(),
    };
    let mut warnings = Vec::new();
    for (i, doc) in docs.iter_mut().enumerate() {
        let mut ctx = Ctx {
            file,
            document: i + 1,
            defaults,
            config,
            warnings: &mut warnings,
        };
        inject_object(doc, &mut ctx, 0)?;
    }
    let yaml = serde_saphyr::to_string_multiple(&docs).map_err(ManifestError::Serialize)?;
    Ok(Injected { yaml, warnings })
}

fn parse(input: &str, file: &str) -> Result<Vec<Value>, ManifestError> {
    let mut options = serde_saphyr::Options::default();
    // Kubernetes reads YAML 1.1: `0644` is octal.
    options.legacy_octal_numbers = true;
    options.with_snippet = false;
    serde_saphyr::from_multiple_with_options::<Value>(input, options).map_err(|e| {
        let location = e.location();
        let mut message = e.without_snippet().to_string();
        if let Some(l) = location {
            // The reader appends the position; the error names it once.
            let suffix = format!(" at line {}, column {}", l.line(), l.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_owned();
            }
        }
        ManifestError::Yaml {
            file: file.to_owned(),
            document: location.map_or(1, |l| document_at_line(input, l.line())),
            line: location.map(|l| l.line()),
            column: location.map(|l| l.column()),
            message,
        }
    })
}

/// The 1-based number of the document that `line` is in: one more than the
/// number of `---` markers before it that follow some content.
fn document_at_line(input: &str, line: u64) -> usize {
    let mut document = 1;
    let mut content = false;
    for text in input
        .lines()
        .take(usize::try_from(line.saturating_sub(1)).unwrap_or(usize::MAX))
    {
        if text == "---" || text.starts_with("--- ") || text.starts_with("---\t") {
            if content {
                document += 1;
            }
            content = text[3..]
                .trim_start()
                .chars()
                .next()
                .is_some_and(|c| c != '#');
            continue;
        }
        let trimmed = text.trim_start();
        if !trimmed.is_empty() && !trimmed.starts_with('#') && !trimmed.starts_with('%') {
            content = true;
        }
    }
    document
}

struct Ctx<'a> {
    file: &'a str,
    document: usize,
    defaults: Defaults,
    config: &'a InjectConfig,
    warnings: &'a mut Vec<String>,
}

/// `Kind name` of an object, for messages.
fn describe(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or("object");
    match object["metadata"]["name"].as_str() {
        Some(name) => format!("{kind} {name}"),
        None => kind.to_owned(),
    }
}

/// Lists nest rarely; a bound keeps hostile input from recursing deeply.
const MAX_LIST_DEPTH: usize = 8;

fn inject_object(doc: &mut Value, ctx: &mut Ctx<'_>, depth: usize) -> Result<(), ManifestError> {
    let Some(object) = doc.as_object() else {
        return Ok(());
    };
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind.ends_with("List") && object.get("items").is_some_and(Value::is_array) {
        if depth >= MAX_LIST_DEPTH {
            return Ok(());
        }
        if let Some(Value::Array(items)) = doc.get_mut("items") {
            for item in items {
                inject_object(item, ctx, depth + 1)?;
            }
        }
        return Ok(());
    }
    // `apps/v1` → `apps`; `v1` → the core group.
    let group = api_version.split_once('/').map_or("", |(group, _)| group);
    let Some(pointer) = plan::pod_template_pointer(group, kind) else {
        // A template-like field that asks for the shim in a kind we do not
        // know (an OpenShift DeploymentConfig, a CRD): say why nothing happens.
        let asks = doc
            .pointer("/spec/template/metadata/annotations")
            .and_then(Value::as_object)
            .is_some_and(|a| a.keys().any(|k| k.starts_with(crate::annotations::PREFIX)));
        if asks {
            ctx.warnings.push(format!(
                "document {} ({}): {api_version} {kind} is not a kind forcebacklog injects; left as it is",
                ctx.document,
                describe(doc)
            ));
        }
        return Ok(());
    };
    let object_name = describe(doc);
    let Some(template) = doc.pointer_mut(pointer) else {
        return Ok(());
    };
    if !template.is_object() {
        return Ok(());
    }
    let mutation = {
        let view = PodView::deserialize(&*template).map_err(|e| ManifestError::Template {
            file: ctx.file.to_owned(),
            document: ctx.document,
            object: object_name.clone(),
            message: e.to_string(),
        })?;
        patch::mutate(&view, ctx.defaults, ctx.config)
    };
    patch::apply(template, &mutation.ops).map_err(|source| ManifestError::Apply {
        file: ctx.file.to_owned(),
        document: ctx.document,
        object: object_name.clone(),
        source,
    })?;
    for warning in mutation.warnings {
        let warning = warning.strip_prefix("forcebacklog: ").unwrap_or(&warning);
        ctx.warnings.push(format!(
            "document {} ({object_name}): {warning}",
            ctx.document
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inject(input: &str, backlog: Option<u16>) -> Injected {
        inject_str(input, "test.yaml", backlog, &InjectConfig::default()).expect("injects")
    }

    fn docs(yaml: &str) -> Vec<Value> {
        parse(yaml, "out").expect("output parses")
    }

    const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
      annotations:
        forcebacklog/value: \"234\"
    spec:
      containers:
      - name: web
        image: python:3.12-slim
        ports:
        - containerPort: 8000
      volumes:
      - name: cfg
        configMap:
          name: cfg
          defaultMode: 0644
";

    #[test]
    fn annotated_deployment_is_injected_and_idempotent() {
        let out = inject(DEPLOYMENT, None);
        let d = &docs(&out.yaml)[0];
        let t = &d["spec"]["template"];
        assert_eq!(
            t["metadata"]["annotations"]["forcebacklog/status"],
            "injected"
        );
        assert_eq!(
            t["spec"]["initContainers"][0]["name"],
            "forcebacklog-install"
        );
        assert_eq!(t["spec"]["containers"][0]["env"][0]["value"], "234");
        // YAML 1.1 octal, as Kubernetes reads it.
        assert_eq!(t["spec"]["volumes"][0]["configMap"]["defaultMode"], 420);
        // Key order of the input is kept.
        let keys: Vec<&String> = d.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["apiVersion", "kind", "metadata", "spec"]);
        let again = inject(&out.yaml, None);
        assert_eq!(again.yaml, out.yaml);
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    }

    #[test]
    fn unannotated_templates_need_backlog() {
        let plain = DEPLOYMENT.replace("forcebacklog/value: \"234\"", "x: y");
        let out = inject(&plain, None);
        assert_eq!(docs(&out.yaml), docs(&plain));
        let out = inject(&plain, Some(77));
        let t = &docs(&out.yaml)[0]["spec"]["template"];
        assert_eq!(t["spec"]["containers"][0]["env"][0]["value"], "77");
        // The template's own value wins over --backlog.
        let out = inject(DEPLOYMENT, Some(77));
        let t = &docs(&out.yaml)[0]["spec"]["template"];
        assert_eq!(t["spec"]["containers"][0]["env"][0]["value"], "234");
    }

    #[test]
    fn lists_cronjobs_and_unknown_kinds() {
        let input = "\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: a}
  spec:
    containers: [{name: a, image: x}]
- apiVersion: v1
  kind: Service
  metadata: {name: s}
  spec: {ports: [{port: 80}]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: c}
spec:
  schedule: '*/5 * * * *'
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: c, image: y}]
---
apiVersion: example.com/v1
kind: Widget
spec:
  template:
    spec:
      containers: [{name: w}]
";
        let out = inject(input, Some(500));
        let d = docs(&out.yaml);
        assert_eq!(d.len(), 3);
        assert_eq!(
            d[0]["items"][0]["metadata"]["annotations"]["forcebacklog/status"],
            "injected"
        );
        assert_eq!(d[0]["items"][1], docs(input)[0]["items"][1]);
        let job = &d[1]["spec"]["jobTemplate"]["spec"]["template"];
        assert_eq!(
            job["spec"]["initContainers"][0]["name"],
            "forcebacklog-install"
        );
        assert_eq!(d[2], docs(input)[2]);
        assert!(out.yaml.contains("\n---\n"));
        assert_eq!(inject(&out.yaml, Some(500)).yaml, out.yaml);
    }

    #[test]
    fn skipped_templates_get_a_status_and_a_warning() {
        let input = DEPLOYMENT.replace("\"234\"", "\"70000\"");
        let out = inject(&input, None);
        let t = &docs(&out.yaml)[0]["spec"]["template"];
        assert_eq!(
            t["metadata"]["annotations"]["forcebacklog/status"],
            "skipped: forcebacklog/value: \"70000\" is not a backlog: expected a decimal integer in 1..=65535"
        );
        assert!(t["spec"].get("initContainers").is_none());
        assert_eq!(
            out.warnings,
            [
                "document 1 (Deployment web): pod not injected: forcebacklog/value: \"70000\" is not a backlog: expected a decimal integer in 1..=65535"
            ]
        );
    }

    #[test]
    fn unquoted_numbers_in_annotations_are_reported() {
        let input = DEPLOYMENT.replace("\"234\"", "234");
        let out = inject(&input, None);
        assert!(
            out.warnings[0].contains("forcebacklog/value: 234 is not a string"),
            "{:?}",
            out.warnings
        );
    }

    #[test]
    fn bad_yaml_names_document_line_and_column() {
        let input = "a: 1\n---\nkind: Pod\nmetadata: {name: x\n";
        let err = inject_str(input, "in.yaml", None, &InjectConfig::default()).unwrap_err();
        let ManifestError::Yaml { document, line, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!((*document, line.unwrap() > 2), (2, true), "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with("in.yaml: invalid YAML in document 2 at line "),
            "{text}"
        );
        assert!(!text.contains('\n'), "one line: {text}");
    }

    #[test]
    fn bad_template_shape_names_the_object() {
        let input = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\nspec:\n  template:\n    spec:\n      containers: nope\n";
        let err = inject_str(input, "in.yaml", Some(5), &InjectConfig::default()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(
                "in.yaml: document 1 (Deployment w): the pod template is not valid: invalid type"
            ),
            "{text}"
        );
    }

    #[test]
    fn document_numbers() {
        assert_eq!(document_at_line("a: 1\n---\nb: 2\n", 3), 2);
        assert_eq!(document_at_line("---\na: 1\n---\nb: 2\n", 4), 2);
        assert_eq!(document_at_line("# c\n---\na: 1\n", 3), 1);
        assert_eq!(document_at_line("a: 1\n---\n---\nb: 2\n", 4), 2);
        assert_eq!(document_at_line("--- {a: 1}\n--- \nb: [\n", 3), 2);
    }

    #[test]
    fn unknown_kinds_asking_for_the_shim_get_a_warning() {
        let input = "apiVersion: apps.openshift.io/v1\nkind: DeploymentConfig\nmetadata: {name: d}\nspec:\n  template:\n    metadata:\n      annotations: {forcebacklog/value: \"5\"}\n    spec:\n      containers: [{name: a}]\n";
        let out = inject(input, None);
        assert_eq!(docs(&out.yaml), docs(input));
        assert_eq!(
            out.warnings,
            [
                "document 1 (DeploymentConfig d): apps.openshift.io/v1 DeploymentConfig is not a kind forcebacklog injects; left as it is"
            ]
        );
    }

    #[test]
    fn empty_input_gives_empty_output() {
        assert_eq!(inject("", None).yaml, "");
        assert_eq!(inject("# only a comment\n---\n", None).yaml, "");
    }
}
