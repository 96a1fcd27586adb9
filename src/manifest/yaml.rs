//! YAML text → a tree of nodes that know where they are in the text, and
//! that tree → JSON read the way `kubectl` reads it.
//!
//! `kubectl` (through `sigs.k8s.io/yaml`) reads YAML 1.1: the plain
//! scalars `y`, `yes`, `on` (and `n`, `no`, `off`, in any of the cases
//! `x`, `X`, `Xx`, `XX`) are booleans, and as mapping keys they become the
//! strings `"true"` and `"false"`; `0644` is octal, `1_000` is 1000, `0x1F`
//! is hexadecimal. [`to_json`] does the same, so that what `inject` reads is
//! what `kubectl apply` would send. A block scalar on the last line of the
//! input without a final line break gets no line feed (as libyaml and
//! kubectl read it). Duplicate keys are rejected, as kubectl's strict field
//! validation rejects duplicate fields.

use granit_parser::{Event, Parser, ScalarStyle, StructureStyle};
use serde_json::{Map, Number, Value};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

/// One YAML node and where its text is.
#[derive(Debug, Clone)]
pub struct Node {
    /// What the node is.
    pub kind: Kind,
    /// Byte offset where the node's content starts (a block sequence: its first `-`).
    pub start: usize,
    /// Byte offset where the node's own text ends (a flow collection: after
    /// its bracket; a block collection: the end of its last child).
    pub end: usize,
    /// The 1-based line of `start`.
    pub line: usize,
    /// The anchor defined on this node (0: none).
    pub anchor: usize,
}

/// The kinds of node.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A scalar.
    Scalar {
        /// Its value after escapes and folding.
        value: String,
        /// How it is written.
        style: ScalarStyle,
        /// Its tag, `!!int` style for the core schema (`!!str`), or as written.
        tag: Option<String>,
    },
    /// A sequence.
    Seq {
        /// Written as `[…]`.
        flow: bool,
        /// The items.
        items: Vec<Node>,
    },
    /// A mapping.
    Map {
        /// Written as `{…}`.
        flow: bool,
        /// Keys and values, in order.
        entries: Vec<(Node, Node)>,
    },
    /// `*name`: the anchor id it refers to.
    Alias(usize),
}

impl Node {
    /// Whether this is a scalar in block (`|`, `>`) style.
    pub fn is_block_scalar(&self) -> bool {
        matches!(
            self.kind,
            Kind::Scalar {
                style: ScalarStyle::Literal | ScalarStyle::Folded,
                ..
            }
        )
    }

    /// The value of `key` in a mapping node (its last occurrence).
    pub fn get(&self, key: &str) -> Option<&Node> {
        let Kind::Map { entries, .. } = &self.kind else {
            return None;
        };
        entries
            .iter()
            .rev()
            .find(|(k, _)| k.key_text().as_deref() == Some(key))
            .map(|(_, v)| v)
    }

    /// This node as a mapping key (scalars only), read as kubectl reads keys.
    pub fn key_text(&self) -> Option<String> {
        let Kind::Scalar { value, style, tag } = &self.kind else {
            return None;
        };
        match resolve(value, *style, tag.as_deref()) {
            Ok(v) => Some(key_string(&v)),
            Err(_) => Some(value.clone()),
        }
    }
}

/// One document of a stream.
#[derive(Debug, Clone)]
pub struct Document {
    /// The root node (`None`: an empty document).
    pub root: Option<Node>,
    /// Anchor ids some alias in this document refers to.
    pub aliased: HashSet<usize>,
}

/// The YAML is not well-formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// The 1-based document the error is in.
    pub document: usize,
    /// The 1-based line.
    pub line: usize,
    /// The 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// `Kind name` of the document, when its text names them before the error.
    pub object: Option<String>,
    /// Where in the document the error is (`spec.template.spec`), when inside a collection.
    pub path: String,
}

/// `Kind name` and the path of the collections open at an error.
fn context(stack: &[Partial]) -> (Option<String>, String) {
    let text = |n: Option<&Node>| match n.map(|n| &n.kind) {
        Some(Kind::Scalar { value, .. }) => Some(value.clone()),
        _ => None,
    };
    let object = stack.first().and_then(|root| {
        let kind = text(root.node.get("kind"))?;
        Some(
            match text(root.node.get("metadata").and_then(|m| m.get("name"))) {
                Some(name) => format!("{kind} {name}"),
                None => kind,
            },
        )
    });
    let mut path = String::new();
    for open in stack {
        match &open.node.kind {
            Kind::Map { .. } => {
                if let Some(key) = open.key.as_ref().and_then(Node::key_text) {
                    push_key(&mut path, &key);
                }
            }
            Kind::Seq { items, .. } => {
                let _ = write!(path, "[{}]", items.len());
            }
            _ => {}
        }
    }
    (object, path)
}

/// Reads a YAML stream into its documents, with positions.
pub fn parse(input: &str) -> Result<Vec<Document>, SyntaxError> {
    let mut options = granit_parser::Options::default();
    options.block_scalar_eof_without_line_feed = true;
    options.emit_comments = false;
    let mut parser = Parser::new_from_str_with_options(input, options);
    let mut builder = Builder {
        input,
        docs: Vec::new(),
        stack: Vec::new(),
        current: None,
    };
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| {
            let marker = e.marker();
            builder.syntax_error(marker.line(), marker.col() + 1, e.kind().to_string())
        })?;
        let start = span.start.byte_offset().unwrap_or(0);
        let end = span.end.byte_offset().unwrap_or(start);
        builder.event(event, start, end, span.start.line());
    }
    Ok(builder.docs)
}

/// The documents read so far, and the collections open in the current one.
struct Builder<'a> {
    input: &'a str,
    docs: Vec<Document>,
    stack: Vec<Partial>,
    current: Option<Document>,
}

impl Builder<'_> {
    /// A syntax error at `line` and `column` (1-based) of the document being read.
    fn syntax_error(&self, line: usize, column: usize, message: String) -> SyntaxError {
        let (object, path) = context(&self.stack);
        SyntaxError {
            document: self.docs.len() + 1,
            line,
            column,
            message,
            object,
            path,
        }
    }

    /// Takes one parser event whose text is `start..end`, starting on `line`.
    fn event(&mut self, event: Event<'_>, start: usize, end: usize, line: usize) {
        let node = match event {
            Event::DocumentStart(..) => {
                self.current = Some(Document {
                    root: None,
                    aliased: HashSet::new(),
                });
                return;
            }
            Event::DocumentEnd => {
                if let Some(doc) = self.current.take() {
                    self.docs.push(doc);
                }
                return;
            }
            Event::Alias(id) => {
                if let Some(doc) = self.current.as_mut() {
                    doc.aliased.insert(id);
                }
                Node {
                    kind: Kind::Alias(id),
                    start,
                    end,
                    line,
                    anchor: 0,
                }
            }
            Event::Scalar(value, style, anchor, tag) => Node {
                kind: Kind::Scalar {
                    value: value.into_owned(),
                    style,
                    tag: tag.map(|t| tag_name(&t)),
                },
                start,
                end,
                line,
                anchor,
            },
            Event::SequenceStart(style, anchor, _) => {
                return self.open(false, style == StructureStyle::Flow, anchor, start, line);
            }
            Event::MappingStart(style, anchor, _) => {
                return self.open(true, style == StructureStyle::Flow, anchor, start, line);
            }
            Event::SequenceEnd | Event::MappingEnd => match self.close(end) {
                Some(done) => done,
                None => return,
            },
            // Anchors, comments, the stream's bounds, unresolved aliases,
            // and events a later parser version adds: presentation only.
            _ => return,
        };
        self.add(node);
    }

    /// Opens a mapping (`is_map`) or a sequence starting at `start` (a
    /// block sequence: at its first `-`).
    fn open(&mut self, is_map: bool, flow: bool, anchor: usize, start: usize, line: usize) {
        let start = if !flow && !is_map {
            dash_before(self.input, start).unwrap_or(start)
        } else {
            start
        };
        let kind = if is_map {
            Kind::Map {
                flow,
                entries: Vec::new(),
            }
        } else {
            Kind::Seq {
                flow,
                items: Vec::new(),
            }
        };
        self.stack.push(Partial {
            node: Node {
                kind,
                start,
                end: start,
                line,
                anchor,
            },
            key: None,
        });
    }

    /// Closes the innermost collection: a flow one ends at its bracket
    /// (`end`), a block one with its last value.
    fn close(&mut self, end: usize) -> Option<Node> {
        let mut done = self.stack.pop()?;
        done.node.end = match &done.node.kind {
            Kind::Map { flow: true, .. } | Kind::Seq { flow: true, .. } => end,
            Kind::Map { entries, .. } => entries.last().map_or(end, |(_, v)| v.end),
            Kind::Seq { items, .. } => items.last().map_or(end, |v| v.end),
            _ => end,
        };
        Some(done.node)
    }

    /// Adds a finished node to the open collection, or makes it the
    /// document's root.
    fn add(&mut self, node: Node) {
        match self.stack.last_mut() {
            Some(parent) => parent.push(node),
            None => {
                if let Some(doc) = self.current.as_mut() {
                    doc.root = Some(node);
                }
            }
        }
    }
}

/// A collection being read.
struct Partial {
    node: Node,
    key: Option<Node>,
}

impl Partial {
    fn push(&mut self, child: Node) {
        match &mut self.node.kind {
            Kind::Seq { items, .. } => items.push(child),
            Kind::Map { entries, .. } => match self.key.take() {
                Some(key) => entries.push((key, child)),
                None => self.key = Some(child),
            },
            _ => {}
        }
    }
}

/// The `-` of a block sequence's first item, before `at` on the same line.
pub fn dash_before(input: &str, at: usize) -> Option<usize> {
    let before = input.get(..at)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = &before[line_start..];
    // `- item`, `- &a item`, `- !t item`: the last `-` followed by a space
    // with only spaces or other `- ` markers before it.
    let mut dash = None;
    for (i, c) in line.char_indices() {
        if c == '-' && line[i + 1..].starts_with([' ', '\t']) {
            dash = Some(line_start + i);
            break;
        }
        if !matches!(c, ' ' | '\t') {
            return None;
        }
    }
    dash
}

fn tag_name(tag: &granit_parser::Tag) -> String {
    if tag.is_yaml_core_schema() {
        format!("!!{}", tag.suffix())
    } else {
        format!("{}{}", tag.handle(), tag.suffix())
    }
}

/// A value kubectl cannot read, or reads differently from what it looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    /// A key appears twice in one mapping.
    DuplicateKey {
        /// Where the mapping is (`spec.template`).
        path: String,
        /// The key.
        key: String,
        /// The lines of the two occurrences.
        lines: (usize, usize),
    },
    /// A scalar that is not representable in JSON (`.inf`, `.nan`) or does not fit its tag.
    Scalar {
        /// Where it is.
        path: String,
        /// Its line.
        line: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A mapping key that is a mapping or a sequence.
    ComplexKey {
        /// Where the mapping is.
        path: String,
        /// The key's line.
        line: usize,
    },
    /// Aliases expand to more nodes than any manifest needs.
    TooLarge {
        /// Where the expansion went past the limit.
        path: String,
    },
}

impl std::fmt::Display for ValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueError::DuplicateKey { path, key, lines } => write!(
                f,
                "{}: key {key:?} appears twice (lines {} and {}); remove one (kubectl rejects duplicate fields too)",
                display_path(path),
                lines.0,
                lines.1
            ),
            ValueError::Scalar {
                path,
                line,
                message,
            } => write!(f, "{} (line {line}): {message}", display_path(path)),
            ValueError::ComplexKey { path, line } => write!(
                f,
                "{} (line {line}): a mapping key must be a string, not a mapping or a list",
                display_path(path)
            ),
            ValueError::TooLarge { path } => write!(
                f,
                "{}: aliases expand to more than {MAX_NODES} values",
                display_path(path)
            ),
        }
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() {
        "the document"
    } else {
        path
    }
}

/// The most values a document may expand to through aliases.
const MAX_NODES: usize = 2_000_000;

/// A document's tree as JSON, read the way kubectl reads it.
pub fn to_json(root: &Node) -> Result<Value, ValueError> {
    let mut reader = Reader {
        anchors: HashMap::new(),
        budget: MAX_NODES,
    };
    let mut path = String::new();
    reader.value(root, &mut path)
}

struct Reader {
    anchors: HashMap<usize, (Value, usize)>,
    budget: usize,
}

impl Reader {
    fn spend(&mut self, n: usize, path: &str) -> Result<(), ValueError> {
        self.budget = self
            .budget
            .checked_sub(n)
            .ok_or_else(|| ValueError::TooLarge {
                path: path.to_owned(),
            })?;
        Ok(())
    }

    fn value(&mut self, node: &Node, path: &mut String) -> Result<Value, ValueError> {
        let before = self.budget;
        let value = match &node.kind {
            Kind::Alias(id) => {
                // The parser rejects aliases to unknown anchors.
                let (value, size) = self.anchors.get(id).cloned().unwrap_or((Value::Null, 1));
                self.spend(size, path)?;
                return Ok(value);
            }
            Kind::Scalar { value, style, tag } => {
                self.spend(1, path)?;
                resolve(value, *style, tag.as_deref()).map_err(|message| ValueError::Scalar {
                    path: path.clone(),
                    line: node.line,
                    message,
                })?
            }
            Kind::Seq { items, .. } => {
                self.spend(1, path)?;
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    let _ = write!(path, "[{i}]");
                    out.push(self.value(item, path)?);
                    path.truncate(len);
                }
                Value::Array(out)
            }
            Kind::Map { entries, .. } => {
                self.spend(1, path)?;
                self.mapping(entries, path)?
            }
        };
        if node.anchor != 0 {
            let size = before.saturating_sub(self.budget).max(1);
            self.anchors.insert(node.anchor, (value.clone(), size));
        }
        Ok(value)
    }

    /// A mapping's value: its keys resolved as kubectl resolves them,
    /// duplicates rejected, and merge keys (`<<`) applied after them.
    fn mapping(
        &mut self,
        entries: &[(Node, Node)],
        path: &mut String,
    ) -> Result<Value, ValueError> {
        let mut out = Map::new();
        let mut lines: HashMap<String, usize> = HashMap::new();
        let mut merged = Vec::new();
        for (key, value) in entries {
            match self.key(key, path)? {
                Key::Merge => self.merge_sources(value, path, &mut merged)?,
                Key::Name(name) => {
                    let v = self.child(value, path, &name)?;
                    insert(&mut out, &mut lines, name, key.line, v, path)?;
                }
            }
        }
        // Merged keys never override explicit ones; earlier merges win.
        for m in merged {
            for (k, v) in m {
                out.entry(k).or_insert(v);
            }
        }
        Ok(Value::Object(out))
    }

    /// What the key node `key` of a mapping is: a merge key, or the JSON
    /// name of a scalar (or of an alias of a scalar).
    fn key(&mut self, key: &Node, path: &mut String) -> Result<Key, ValueError> {
        match &key.kind {
            Kind::Scalar { value, style, tag } => {
                if is_merge_key(value, *style, tag.as_deref()) {
                    return Ok(Key::Merge);
                }
                let resolved = resolve(value, *style, tag.as_deref()).map_err(|message| {
                    ValueError::Scalar {
                        path: path.clone(),
                        line: key.line,
                        message,
                    }
                })?;
                Ok(Key::Name(key_string(&resolved)))
            }
            Kind::Alias(_) => {
                // An alias as a key: its scalar value.
                let k = self.value(key, path)?;
                if !k.is_object() && !k.is_array() {
                    return Ok(Key::Name(key_string(&k)));
                }
                Err(ValueError::ComplexKey {
                    path: path.clone(),
                    line: key.line,
                })
            }
            _ => Err(ValueError::ComplexKey {
                path: path.clone(),
                line: key.line,
            }),
        }
    }

    /// The mappings a merge key's `value` brings in: a mapping, or a list
    /// of mappings.
    fn merge_sources(
        &mut self,
        value: &Node,
        path: &mut String,
        merged: &mut Vec<Map<String, Value>>,
    ) -> Result<(), ValueError> {
        match self.value(value, path)? {
            Value::Object(m) => merged.push(m),
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::Object(m) => merged.push(m),
                        _ => return Err(merge_error(path, value.line)),
                    }
                }
            }
            _ => return Err(merge_error(path, value.line)),
        }
        Ok(())
    }

    fn child(&mut self, node: &Node, path: &mut String, key: &str) -> Result<Value, ValueError> {
        let len = path.len();
        push_key(path, key);
        let v = self.value(node, path);
        path.truncate(len);
        v
    }
}

/// A mapping key, as the JSON reading sees it.
enum Key {
    /// The merge key `<<` (plain, untagged or tagged `!!merge`).
    Merge,
    /// A key with this JSON name.
    Name(String),
}

/// Whether a scalar key is the merge key `<<`.
fn is_merge_key(text: &str, style: ScalarStyle, tag: Option<&str>) -> bool {
    text == "<<" && style == ScalarStyle::Plain && tag.is_none_or(|t| t == "!!merge")
}

fn merge_error(path: &str, line: usize) -> ValueError {
    ValueError::Scalar {
        path: path.to_owned(),
        line,
        message: "a merge key (<<) needs a mapping or a list of mappings".to_owned(),
    }
}

fn insert(
    out: &mut Map<String, Value>,
    lines: &mut HashMap<String, usize>,
    name: String,
    line: usize,
    value: Value,
    path: &str,
) -> Result<(), ValueError> {
    if let Some(first) = lines.get(&name) {
        return Err(ValueError::DuplicateKey {
            path: path.to_owned(),
            key: name,
            lines: (*first, line),
        });
    }
    lines.insert(name.clone(), line);
    out.insert(name, value);
    Ok(())
}

/// Appends `.key` (or `["key"]` when the key has dots or brackets) to a path.
pub fn push_key(path: &mut String, key: &str) {
    if key.is_empty() || key.contains(['.', '[', ']', ' ', '"']) {
        let _ = write!(path, "[{key:?}]");
    } else {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    }
}

/// A resolved key as the string kubectl makes of it.
fn key_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "null".to_owned(),
        other => other.to_string(),
    }
}

/// A scalar's value: quoted and block scalars are strings; plain ones are
/// read as YAML 1.1 (kubectl); core-schema tags are honoured.
pub fn resolve(text: &str, style: ScalarStyle, tag: Option<&str>) -> Result<Value, String> {
    let wanted = match tag {
        None => {
            return Ok(if style == ScalarStyle::Plain {
                resolve_plain(text)?
            } else {
                Value::String(text.to_owned())
            });
        }
        Some("!!null" | "!!bool" | "!!int" | "!!float") => tag.unwrap_or_default(),
        // `!!str`, `!!binary`, `!!timestamp`, local tags: the text (kubectl
        // does not resolve what it does not know).
        Some(_) => return Ok(Value::String(text.to_owned())),
    };
    let value = resolve_plain(text)?;
    let fits = match (wanted, &value) {
        ("!!null", Value::Null) | ("!!bool", Value::Bool(_)) => true,
        ("!!int", Value::Number(n)) => n.is_i64() || n.is_u64(),
        ("!!float", Value::Number(_)) => true,
        _ => false,
    };
    if fits {
        Ok(value)
    } else {
        Err(format!("{text:?} is not a valid {wanted}"))
    }
}

/// A plain scalar as YAML 1.1 (`gopkg.in/yaml.v2`, which kubectl uses) reads it.
pub fn resolve_plain(text: &str) -> Result<Value, String> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
            return Ok(Value::Bool(true));
        }
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            return Ok(Value::Bool(false));
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => {
            return Err(format!(
                "{text} is not a number JSON can hold (kubectl rejects it too); quote it: \"{text}\""
            ));
        }
        _ => {}
    }
    let first = text.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
        return Ok(Value::String(text.to_owned()));
    }
    let plain: String = text.chars().filter(|&c| c != '_').collect();
    if let Some(n) = go_int(&plain) {
        return Ok(Value::Number(n));
    }
    if let Some(f) = is_yaml_float(&plain)
        .then(|| plain.parse::<f64>().ok())
        .flatten()
        .filter(|f| f.is_finite())
    {
        #[allow(clippy::cast_possible_truncation)]
        let n = if f.fract() == 0.0 && f.abs() < 9.0e15 {
            // Whole and exact in an f64: written as an integer, as Go's JSON does.
            Number::from(f as i64)
        } else {
            Number::from_f64(f).unwrap_or_else(|| Number::from(0))
        };
        return Ok(Value::Number(n));
    }
    Ok(Value::String(text.to_owned()))
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint`: an optional sign,
/// then `0x`, `0o`, `0b` or a leading `0` (octal), or decimal.
fn go_int(s: &str) -> Option<Number> {
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = digits.get(..2).map(str::to_ascii_lowercase);
    let (radix, body) = match lower.as_deref() {
        Some("0x") => (16, &digits[2..]),
        Some("0o") => (8, &digits[2..]),
        Some("0b") => (2, &digits[2..]),
        _ if digits.len() > 1 && digits.starts_with('0') => (8, &digits[1..]),
        _ => (10, digits),
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(body, radix).ok()?;
    if negative {
        let n = i64::try_from(magnitude)
            .ok()
            .map(|m| -m)
            .or((magnitude == 1 << 63).then_some(i64::MIN))?;
        Some(Number::from(n))
    } else {
        Some(Number::from(magnitude))
    }
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let digits = |i: &mut usize| {
        let from = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - from
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// The node at a JSON Pointer below `root`, with every node on the way
/// (`root` first). `None` when the path leaves the explicit tree (an
/// alias, a merged key, an index out of range).
pub fn walk<'n>(root: &'n Node, tokens: &[String]) -> Option<Vec<&'n Node>> {
    let mut nodes = vec![root];
    let mut at = root;
    for token in tokens {
        at = match &at.kind {
            Kind::Map { .. } => at.get(token)?,
            Kind::Seq { items, .. } => items.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
        nodes.push(at);
    }
    Some(nodes)
}

/// The reference tokens of a JSON Pointer.
pub fn pointer_tokens(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(yaml: &str) -> Value {
        let docs = parse(yaml).expect("parses");
        to_json(docs[0].root.as_ref().expect("root")).expect("reads")
    }

    #[test]
    fn yaml_1_1_scalars_as_kubectl_reads_them() {
        let v = read(
            "a: on\nb: Off\nc: y\nd: N\ne: yes\nf: 'on'\non: 1\nno: 2\ng: 0644\nh: 1_000\ni: 0x1F\nj: +1\nk: 08\nl: 1e3\nm: 12:30\nnull1: ~\no: \"0644\"\np: !!str 5\nq: .5\nr: 0o17\n",
        );
        assert_eq!(
            v,
            json!({"a": true, "b": false, "c": true, "d": false, "e": true, "f": "on",
                   "true": 1, "false": 2, "g": 420, "h": 1000, "i": 31, "j": 1, "k": 8,
                   "l": 1000, "m": "12:30", "null1": null, "o": "0644", "p": "5", "q": 0.5, "r": 15})
        );
    }

    #[test]
    fn block_scalars_at_the_end_without_a_line_break() {
        for (yaml, want) in [
            ("k: |\n  line", "line"),
            ("k: |+\n  line", "line"),
            ("k: >\n  line", "line"),
            ("k: |-\n  line", "line"),
            ("k: |\n  line\n", "line\n"),
            ("k: |+\n  line\n\n", "line\n\n"),
            ("k: |\r\n  line\r\n", "line\n"),
        ] {
            assert_eq!(read(yaml)["k"], want, "{yaml:?}");
        }
    }

    #[test]
    fn duplicate_keys_name_both_lines() {
        let docs = parse("a:\n  b: 1\n  c: 2\n  b: 3\n").expect("parses");
        let err = to_json(docs[0].root.as_ref().expect("root")).unwrap_err();
        assert_eq!(
            err,
            ValueError::DuplicateKey {
                path: "a".into(),
                key: "b".into(),
                lines: (2, 4)
            }
        );
        // `on` and `true` are the same key to kubectl.
        let docs = parse("on: 1\n\"true\": 2\n").expect("parses");
        assert!(to_json(docs[0].root.as_ref().expect("root")).is_err());
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let v = read("base: &b {x: 1, z: 2}\nc:\n  <<: *b\n  z: 3\nd: *b\n");
        assert_eq!(v["c"], json!({"z": 3, "x": 1}));
        assert_eq!(v["d"], json!({"x": 1, "z": 2}));
        // YAML 1.1, as kubectl: the key `y` is `true`.
        assert_eq!(read("y: 1\nn: 2\n"), json!({"true": 1, "false": 2}));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            let _ = writeln!(
                yaml,
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]"
            );
        }
        let docs = parse(&yaml).expect("parses");
        assert!(matches!(
            to_json(docs[0].root.as_ref().expect("root")),
            Err(ValueError::TooLarge { .. })
        ));
    }

    #[test]
    fn not_json_numbers_are_errors() {
        let docs = parse("a:\n  b: .inf\n").expect("parses");
        let err = to_json(docs[0].root.as_ref().expect("root")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a.b (line 2): .inf is not a number JSON can hold (kubectl rejects it too); quote it: \".inf\""
        );
    }

    #[test]
    fn spans() {
        let yaml = "a:\n  - x\n  - {p: 1}\nb: |\n  t\n\nc: 1\n";
        let docs = parse(yaml).expect("parses");
        let root = docs[0].root.as_ref().expect("root");
        let a = root.get("a").expect("a");
        assert_eq!(&yaml[a.start..a.end], "- x\n  - {p: 1}");
        let b = root.get("b").expect("b");
        assert!(b.is_block_scalar());
        assert_eq!(&yaml[b.start..b.end], "t\n\n");
        assert_eq!(root.get("c").expect("c").line, 7);
    }
}
