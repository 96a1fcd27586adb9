//! `forcebacklog inject`: Kubernetes YAML in, the same YAML out with every
//! pod template mutated exactly as the webhook would mutate its pods.
//!
//! Each document (multi-document streams, and the `items` of a `List`) is
//! read with positions (`yaml`) and as JSON, the way kubectl reads it
//! (YAML 1.1: `on`/`yes`/`y` are `true`, `0644` is octal). The pod template
//! of the kinds listed by [`crate::plan::pod_template_pointer`] (Pod,
//! Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController,
//! Job, CronJob, PodTemplate) goes through the one mutation path
//! ([`crate::patch::mutate`]); its operations are then spliced into the
//! original text (`splice`), so that comments, anchors, quoting, key order
//! and line endings stay as they were. Documents with nothing to change are
//! printed byte for byte. A change that cannot be spliced (a template
//! reached through an alias) is written normalised, with a warning;
//! `--reformat` writes every document normalised. Every output is read back
//! and compared with the result of the operations before it is printed.
//! Running `inject` on its own output changes nothing.

mod splice;
mod yaml;

pub use yaml::ValueError;

use crate::annotations::Defaults;
use crate::patch::{self, ApplyError, Injector, Op};
use crate::plan::{self, PodView};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use yaml::Node;

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
    #[error(
        "{file}: invalid YAML in document {document}{}{} at line {line}, column {column}: {message}",
        object.as_ref().map(|o| format!(" ({o})")).unwrap_or_default(),
        if path.is_empty() { String::new() } else { format!(", in {path}") }
    )]
    Yaml {
        /// The file name (`-` for stdin).
        file: String,
        /// The document (1-based) the error is in.
        document: usize,
        /// The line (1-based).
        line: usize,
        /// The column (1-based).
        column: usize,
        /// What the YAML reader reported.
        message: String,
        /// `Kind name` of the document, when its text names them before the error.
        object: Option<String>,
        /// The field the error is in (`spec.template.spec.containers[0]`).
        path: String,
    },
    /// A value kubectl would not read as written (a duplicate key, `.inf`).
    #[error("{file}: document {document} ({object}): {error}")]
    Value {
        /// The file name (`-` for stdin).
        file: String,
        /// The document (1-based).
        document: usize,
        /// The object, e.g. `Deployment web`.
        object: String,
        /// What is wrong, where, and the fix.
        error: yaml::ValueError,
    },
    /// A pod template does not have the shape of a pod template.
    #[error("{file}: document {document} ({object}): {path}{}: {message}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Template {
        /// The file name (`-` for stdin).
        file: String,
        /// The document (1-based).
        document: usize,
        /// The object, e.g. `Deployment web`.
        object: String,
        /// The field, e.g. `spec.template.spec.containers[0].env[3].value`.
        path: String,
        /// The field's line, when it is written out.
        line: Option<usize>,
        /// What is wrong with it, and the fix when there is an obvious one.
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
    /// The written document would not read back as the injected object (a bug, reported).
    #[error(
        "{file}: document {document} ({object}): the output would not read back as the injected object; try --reformat"
    )]
    ReadBack {
        /// The file name (`-` for stdin).
        file: String,
        /// The document (1-based).
        document: usize,
        /// The object, e.g. `Deployment web`.
        object: String,
    },
    /// The result could not be written as YAML.
    #[error("cannot write the result as YAML")]
    Serialize(#[source] serde_saphyr::SerializeError),
    /// Standard output could not be written.
    #[error("cannot write to standard output")]
    Write(#[source] std::io::Error),
}

/// The mutated YAML and the warnings the webhook would have returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    /// The YAML documents, separated by `---`.
    pub yaml: String,
    /// One line per warning, naming the document and object.
    pub warnings: Vec<String>,
    /// What happened, in numbers.
    pub report: Report,
}

/// What `inject` did to a stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Documents read (empty ones included).
    pub documents: usize,
    /// Pod templates found.
    pub templates: usize,
    /// Pod templates injected.
    pub injected: usize,
    /// Pod templates skipped (a `forcebacklog/status: skipped: …` written).
    pub skipped: usize,
    /// Documents changed, with their additions spliced into the text.
    pub spliced: usize,
    /// Documents changed and written normalised because the change could not be spliced.
    pub normalised: usize,
}

/// How `inject` writes its output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Output {
    /// The input's text, with the additions spliced in (the default).
    #[default]
    Splice,
    /// Every document normalised (`--reformat`): no comments, anchors expanded.
    Reformat,
}

/// `forcebacklog inject -f FILE`: reads FILE (`-` for stdin), prints the mutated YAML to stdout.
pub fn inject_file(
    file: &Path,
    backlog: Option<u16>,
    injector: &Injector,
    output: Output,
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
    let injected = inject(&input, &name, backlog, injector, output)?;
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

/// Injects every pod template of the YAML stream `input` (`file` names it
/// in errors), keeping the text of everything it does not change.
pub fn inject_str(
    input: &str,
    file: &str,
    backlog: Option<u16>,
    injector: &Injector,
) -> Result<Injected, ManifestError> {
    inject(input, file, backlog, injector, Output::Splice)
}

/// Reads a YAML stream as kubectl does: one JSON value per document
/// (`null` for an empty one).
pub fn read(input: &str, file: &str) -> Result<Vec<Value>, ManifestError> {
    let docs = parse(input, file)?;
    docs.iter()
        .enumerate()
        .map(|(i, doc)| doc_value(doc, file, i + 1))
        .collect()
}

fn parse(input: &str, file: &str) -> Result<Vec<yaml::Document>, ManifestError> {
    yaml::parse(input).map_err(|e| ManifestError::Yaml {
        file: file.to_owned(),
        document: e.document,
        line: e.line,
        column: e.column,
        message: e.message,
        object: e.object,
        path: e.path,
    })
}

fn doc_value(doc: &yaml::Document, file: &str, document: usize) -> Result<Value, ManifestError> {
    match &doc.root {
        None => Ok(Value::Null),
        Some(root) => yaml::to_json(root).map_err(|error| ManifestError::Value {
            file: file.to_owned(),
            document,
            object: describe_node(root),
            error,
        }),
    }
}

/// Injects every pod template of `input`, written as `output` asks.
pub fn inject(
    input: &str,
    file: &str,
    backlog: Option<u16>,
    injector: &Injector,
    output: Output,
) -> Result<Injected, ManifestError> {
    let docs = parse(input, file)?;
    let defaults = Defaults {
        backlog: backlog.unwrap_or(injector.config().default_backlog),
        implicit: backlog.is_some(),
    };
    let mut warnings = Vec::new();
    let mut report = Report {
        documents: docs.len(),
        ..Report::default()
    };
    let mut values = Vec::with_capacity(docs.len());
    let mut planned: Vec<Vec<Planned>> = Vec::with_capacity(docs.len());
    for (i, doc) in docs.iter().enumerate() {
        let mut value = doc_value(doc, file, i + 1)?;
        let mut ctx = Ctx {
            file,
            document: i + 1,
            defaults,
            injector,
            warnings: &mut warnings,
            root: doc.root.as_ref(),
            planned: Vec::new(),
            report: &mut report,
        };
        let mut at = Vec::new();
        inject_object(&mut value, &mut ctx, &mut at, 0)?;
        planned.push(ctx.planned);
        values.push(value);
    }
    let yaml = match output {
        Output::Reformat => {
            // The reader drops empty documents; a tagged empty node
            // (`--- !!foo`) is null too: leave it out, or `null` would
            // read back as a document and `inject` would not be idempotent.
            let present: Vec<&Value> = values.iter().filter(|v| !v.is_null()).collect();
            serde_saphyr::to_string_multiple(&present).map_err(ManifestError::Serialize)?
        }
        Output::Splice => splice_all(
            input,
            file,
            &docs,
            &values,
            &planned,
            &mut warnings,
            &mut report,
        )?,
    };
    Ok(Injected {
        yaml,
        warnings,
        report,
    })
}

/// The operations for one pod template, addressed from the document's root.
struct Planned {
    base: Vec<String>,
    ops: Vec<Op>,
}

/// Splices every document's operations into the input. A document whose
/// operations cannot be spliced, or whose spliced text reads back
/// differently, is written normalised instead.
fn splice_all(
    input: &str,
    file: &str,
    docs: &[yaml::Document],
    values: &[Value],
    planned: &[Vec<Planned>],
    warnings: &mut Vec<String>,
    report: &mut Report,
) -> Result<String, ManifestError> {
    let stream = Stream {
        input,
        file,
        docs,
        values,
        planned,
    };
    let style = splice::Style::detect(input, docs);
    let mut normalised: Normalised = Vec::new();
    // Each round writes at most one more document normalised.
    for _round in 0..=docs.len() {
        let edits = stream.round_edits(&mut normalised, style)?;
        let shifts = growth(&edits);
        let text = splice::apply(input, edits).map_err(|_| stream.read_back_error(None))?;
        // Read the result back: every document must be what the operations
        // made. The changed documents alone first (their text read on its
        // own); the whole stream when that is not conclusive.
        let wrong = if changed_read_back(&text, docs, values, planned, &shifts, input) {
            None
        } else {
            stream.first_wrong(&text, &normalised)
        };
        match wrong {
            None => {
                stream.finish(&normalised, warnings, report);
                return Ok(text);
            }
            Some(i) if !is_normalised(&normalised, i) => {
                normalised.push((i, "the spliced text reads back differently".to_owned()));
            }
            Some(i) => return Err(stream.read_back_error(Some(i))),
        }
    }
    Err(stream.read_back_error(None))
}

/// Documents written normalised: their index and why.
type Normalised = Vec<(usize, String)>;

/// Whether document `i` is written normalised.
fn is_normalised(normalised: &Normalised, i: usize) -> bool {
    normalised.iter().any(|(n, _)| *n == i)
}

/// Whether a document's templates change it at all.
fn changes(templates: &[Planned]) -> bool {
    templates.iter().any(|t| !t.ops.is_empty())
}

/// How much each edit grows the text, at the edit's offset.
fn growth(edits: &[splice::Edit]) -> Vec<(usize, isize)> {
    edits
        .iter()
        .map(|e| {
            let grown = e.text.len().cast_signed() - (e.end - e.at).cast_signed();
            (e.at, grown)
        })
        .collect()
}

/// One input stream: its documents, what they become, and the operations
/// that make them.
struct Stream<'a> {
    input: &'a str,
    file: &'a str,
    docs: &'a [yaml::Document],
    values: &'a [Value],
    planned: &'a [Vec<Planned>],
}

impl Stream<'_> {
    /// The edits of one round: each changed document spliced, or written
    /// normalised when it already is or its operations cannot be spliced
    /// (then it joins `normalised`).
    fn round_edits(
        &self,
        normalised: &mut Normalised,
        style: splice::Style,
    ) -> Result<Vec<splice::Edit>, ManifestError> {
        let mut edits = Vec::new();
        for (i, (doc, templates)) in self.docs.iter().zip(self.planned).enumerate() {
            if !changes(templates) {
                continue;
            }
            if !is_normalised(normalised, i) {
                match template_edits(self.input, doc, templates, style) {
                    Ok(spliced) => {
                        edits.extend(spliced);
                        continue;
                    }
                    Err(reason) => normalised.push((i, reason)),
                }
            }
            edits.push(normalise(self.input, doc, &self.values[i], style.eol)?);
        }
        Ok(edits)
    }

    /// The first document that the whole spliced `text` does not read back
    /// as; when the text does not read as as many documents, the first
    /// document still spliced.
    fn first_wrong(&self, text: &str, normalised: &Normalised) -> Option<usize> {
        let count = self.docs.len();
        match parse(text, self.file) {
            Ok(out) if out.len() == count => (0..count).find(|&i| {
                doc_value(&out[i], self.file, i + 1).ok().as_ref() != Some(&self.values[i])
            }),
            _ => Some(
                (0..count)
                    .find(|&i| changes(&self.planned[i]) && !is_normalised(normalised, i))
                    .unwrap_or(0),
            ),
        }
    }

    /// Counts the spliced and normalised documents, and warns about each
    /// document written normalised.
    fn finish(&self, normalised: &Normalised, warnings: &mut Vec<String>, report: &mut Report) {
        report.normalised = normalised.len();
        report.spliced = self.planned.iter().filter(|t| changes(t)).count() - normalised.len();
        for (i, reason) in normalised {
            let object = self.docs[*i]
                .root
                .as_ref()
                .map_or_else(String::new, describe_node);
            warnings.push(format!(
                "document {} ({object}): written normalised, without its comments: the injection cannot be spliced into the text: {reason}",
                i + 1
            ));
        }
    }

    /// The error for a document (`None`: the whole stream) that does not
    /// read back as the operations made it.
    fn read_back_error(&self, document: Option<usize>) -> ManifestError {
        match document {
            Some(i) => ManifestError::ReadBack {
                file: self.file.to_owned(),
                document: i + 1,
                object: self.docs[i]
                    .root
                    .as_ref()
                    .map_or_else(String::new, describe_node),
            },
            None => ManifestError::ReadBack {
                file: self.file.to_owned(),
                document: 1,
                object: "stream".to_owned(),
            },
        }
    }
}

/// The edits that splice every template of one document, or why one
/// cannot be spliced.
fn template_edits(
    input: &str,
    doc: &yaml::Document,
    templates: &[Planned],
    style: splice::Style,
) -> Result<Vec<splice::Edit>, String> {
    let mut edits = Vec::new();
    for t in templates.iter().filter(|t| !t.ops.is_empty()) {
        edits.extend(splice::edits(input, doc, &t.base, &t.ops, style)?);
    }
    Ok(edits)
}

/// Whether every changed document's text in `text` (the input with edits
/// that grew it by `shifts` at their offsets) reads as its injected value.
fn changed_read_back(
    text: &str,
    docs: &[yaml::Document],
    values: &[Value],
    planned: &[Vec<Planned>],
    shifts: &[(usize, isize)],
    input: &str,
) -> bool {
    let moved = |at: usize, inclusive: bool| {
        let grown: isize = shifts
            .iter()
            .filter(|(e, _)| *e < at || (inclusive && *e == at))
            .map(|(_, g)| g)
            .sum();
        at.checked_add_signed(grown)
    };
    docs.iter()
        .zip(planned)
        .enumerate()
        .all(|(i, (doc, templates))| {
            if templates.iter().all(|t| t.ops.is_empty()) {
                return true;
            }
            let Some(root) = &doc.root else { return false };
            let end = splice::end_of(input, root).unwrap_or(input.len());
            let (Some(from), Some(to)) = (moved(root.start, false), moved(end, true)) else {
                return false;
            };
            let Some(region) = text.get(from..to) else {
                return false;
            };
            match yaml::parse(region) {
                Ok(out) if out.len() == 1 => out[0]
                    .root
                    .as_ref()
                    .and_then(|r| yaml::to_json(r).ok())
                    .is_some_and(|v| v == values[i]),
                _ => false,
            }
        })
}

/// The edit that writes a whole document normalised.
fn normalise(
    input: &str,
    doc: &yaml::Document,
    value: &Value,
    eol: &str,
) -> Result<splice::Edit, ManifestError> {
    let Some(root) = &doc.root else {
        return Ok(splice::Edit {
            at: 0,
            end: 0,
            text: String::new(),
            indent: 0,
        });
    };
    let end = splice::end_of(input, root).unwrap_or(input.len());
    let mut text = serde_saphyr::to_string(value).map_err(ManifestError::Serialize)?;
    if eol != "\n" {
        // In the file's line endings (a line break in a scalar is read as `\n` either way).
        text = text.replace('\n', eol);
    }
    Ok(splice::Edit {
        at: root.start,
        end,
        text,
        indent: usize::MAX,
    })
}

struct Ctx<'a> {
    file: &'a str,
    document: usize,
    defaults: Defaults,
    injector: &'a Injector,
    warnings: &'a mut Vec<String>,
    root: Option<&'a Node>,
    planned: Vec<Planned>,
    report: &'a mut Report,
}

/// `Kind name` of an object, for messages.
fn describe(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or("object");
    match object["metadata"]["name"].as_str() {
        Some(name) => format!("{kind} {name}"),
        None => kind.to_owned(),
    }
}

/// `Kind name` of a document from its text, for errors found before it is read.
fn describe_node(root: &Node) -> String {
    let text = |n: Option<&Node>| match n.map(|n| &n.kind) {
        Some(yaml::Kind::Scalar { value, .. }) => Some(value.clone()),
        _ => None,
    };
    let kind = text(root.get("kind")).unwrap_or_else(|| "object".to_owned());
    match text(root.get("metadata").and_then(|m| m.get("name"))) {
        Some(name) => format!("{kind} {name}"),
        None => kind,
    }
}

/// Workload API versions Kubernetes 1.16 removed: (apiVersion, kind).
const REMOVED: &[(&str, &str)] = &[
    ("extensions/v1beta1", "Deployment"),
    ("extensions/v1beta1", "DaemonSet"),
    ("extensions/v1beta1", "ReplicaSet"),
    ("apps/v1beta1", "Deployment"),
    ("apps/v1beta1", "StatefulSet"),
    ("apps/v1beta2", "Deployment"),
    ("apps/v1beta2", "DaemonSet"),
    ("apps/v1beta2", "ReplicaSet"),
    ("apps/v1beta2", "StatefulSet"),
];

/// Lists nest rarely; a bound keeps hostile input from recursing deeply.
const MAX_LIST_DEPTH: usize = 8;

/// Injects the pod template of the object `doc` (at the path `at` from the
/// document's root), or of each item of a `List`; warns about objects it
/// leaves alone for a reason the user may not expect.
fn inject_object(
    doc: &mut Value,
    ctx: &mut Ctx<'_>,
    at: &mut Vec<String>,
    depth: usize,
) -> Result<(), ManifestError> {
    let Some(object) = doc.as_object() else {
        return Ok(());
    };
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind.ends_with("List") && object.get("items").is_some_and(Value::is_array) {
        return inject_list(doc, ctx, at, depth);
    }
    if REMOVED.contains(&(api_version, kind)) {
        ctx.warnings.push(format!(
            "document {} ({}): apiVersion {api_version} for {kind} was removed in Kubernetes 1.16 and no cluster serves it; left unchanged: change apiVersion to apps/v1 (which requires spec.selector) and run inject again",
            ctx.document,
            describe(doc)
        ));
        return Ok(());
    }
    // `apps/v1` → `apps`; `v1` → the core group.
    let group = api_version.split_once('/').map_or("", |(group, _)| group);
    let Some(pointer) = plan::pod_template_pointer(group, kind) else {
        warn_unknown_kind(doc, ctx, api_version, kind);
        return Ok(());
    };
    let object_name = describe(doc);
    let Some(template) = doc.pointer_mut(pointer) else {
        return Ok(());
    };
    if !template.is_object() {
        return Ok(());
    }
    let mut base = at.clone();
    base.extend(yaml::pointer_tokens(pointer));
    inject_template(template, ctx, base, &object_name)
}

/// Injects each item of a `List` (up to [`MAX_LIST_DEPTH`] lists deep).
fn inject_list(
    doc: &mut Value,
    ctx: &mut Ctx<'_>,
    at: &mut Vec<String>,
    depth: usize,
) -> Result<(), ManifestError> {
    if depth >= MAX_LIST_DEPTH {
        return Ok(());
    }
    if let Some(Value::Array(items)) = doc.get_mut("items") {
        for (i, item) in items.iter_mut().enumerate() {
            at.push("items".to_owned());
            at.push(i.to_string());
            inject_object(item, ctx, at, depth + 1)?;
            at.truncate(at.len() - 2);
        }
    }
    Ok(())
}

/// A template-like field that asks for the shim in a kind we do not know
/// (an OpenShift DeploymentConfig, a CRD): say why nothing happens.
fn warn_unknown_kind(doc: &Value, ctx: &mut Ctx<'_>, api_version: &str, kind: &str) {
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
}

/// Runs one pod template (at `base` from the document's root) through the
/// mutation core, applies the operations to it, and keeps them to be
/// spliced, with the counts and warnings.
fn inject_template(
    template: &mut Value,
    ctx: &mut Ctx<'_>,
    base: Vec<String>,
    object_name: &str,
) -> Result<(), ManifestError> {
    let mutation = {
        let view: PodView<'_> = serde_path_to_error::deserialize(&*template)
            .map_err(|e| template_error(ctx, object_name, &base, &e))?;
        patch::mutate(&view, ctx.defaults, ctx.injector)
    };
    patch::apply(template, &mutation.ops).map_err(|source| ManifestError::Apply {
        file: ctx.file.to_owned(),
        document: ctx.document,
        object: object_name.to_owned(),
        source,
    })?;
    ctx.report.templates += 1;
    match mutation.verdict {
        plan::Verdict::Inject => ctx.report.injected += 1,
        plan::Verdict::Skip(_) => ctx.report.skipped += 1,
        _ => {}
    }
    for warning in mutation.warnings {
        let warning = warning.strip_prefix("forcebacklog: ").unwrap_or(&warning);
        ctx.warnings.push(format!(
            "document {} ({object_name}): {warning}",
            ctx.document
        ));
    }
    ctx.planned.push(Planned {
        base,
        ops: mutation.ops,
    });
    Ok(())
}

/// A template's shape error, naming the field from the document's root,
/// its line, and the fix when a value only needs quoting.
fn template_error(
    ctx: &Ctx<'_>,
    object: &str,
    base: &[String],
    error: &serde_path_to_error::Error<serde_json::Error>,
) -> ManifestError {
    let mut tokens = base.to_vec();
    for segment in error.path().iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => tokens.push(index.to_string()),
            serde_path_to_error::Segment::Map { key } => tokens.push(key.clone()),
            _ => {}
        }
    }
    let node = ctx
        .root
        .and_then(|root| yaml::walk(root, &tokens))
        .and_then(|nodes| nodes.last().copied());
    let mut message = error.inner().to_string();
    if let Some(yaml::Kind::Scalar { value, .. }) = node
        .map(|n| &n.kind)
        .filter(|_| message.contains("expected a string"))
    {
        let key = tokens.last().map_or("", String::as_str);
        message.push_str(&format!(
            "; quote it: {key}: {}",
            serde_json::Value::String(value.clone())
        ));
    }
    ManifestError::Template {
        file: ctx.file.to_owned(),
        document: ctx.document,
        object: object.to_owned(),
        path: display_path(ctx.root, &tokens),
        line: node.map(|n| n.line),
        message,
    }
}

/// `spec.template.spec.containers[0].env[3].value` for tokens.
fn display_path(root: Option<&Node>, tokens: &[String]) -> String {
    let mut path = String::new();
    let mut at = root;
    for token in tokens {
        let is_seq = matches!(at.map(|n| &n.kind), Some(yaml::Kind::Seq { .. }));
        if is_seq {
            path.push_str(&format!("[{token}]"));
        } else {
            yaml::push_key(&mut path, token);
        }
        at = at.and_then(|n| {
            yaml::walk(n, std::slice::from_ref(token)).and_then(|v| v.last().copied())
        });
    }
    if path.is_empty() {
        "the pod template".to_owned()
    } else {
        path
    }
}

#[cfg(test)]
mod tests;
