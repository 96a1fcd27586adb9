//! RFC 6902 `add` operations applied to YAML *text*: each operation's
//! target is found in the node tree ([`super::yaml`]) and the addition is
//! spliced in at the right place, in the file's own indentation and line
//! endings. Everything else stays byte for byte: comments, quoting, key
//! order, anchors.
//!
//! Operations are located in the tree of the original text. The mutation
//! core's operations never address a node another operation of the same
//! pod creates (containers keep their original indices; the init
//! container is inserted last), so every edit is an insertion or a
//! replacement at a position of the original text.

use super::yaml::{self, Document, Kind, Node};
use crate::patch::Op;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

/// One change to the text: `input[at..end]` becomes `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// Byte offset where the change starts.
    pub at: usize,
    /// Byte offset where the replaced text ends (`at`: an insertion).
    pub end: usize,
    /// The new text.
    pub text: String,
    /// How deep an added line is (twice its column, plus one for a `-`
    /// item, which is inside the key at its column): of two lines added at
    /// one place, the deeper one goes first (it ends the inner collection).
    pub indent: usize,
}

/// How the file writes YAML, learnt from its own text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Extra indentation of a block mapping under its key.
    pub step: usize,
    /// Extra indentation of a block sequence's `-` under its key (0: `key:\n- a`).
    pub seq_offset: usize,
    /// The line break.
    pub eol: &'static str,
}

impl Style {
    /// The style of `input`: the most common indentation steps of its
    /// documents (2 and 0 when it has none), and its line break.
    pub fn detect(input: &str, docs: &[Document]) -> Style {
        let mut steps = [0usize; 9];
        let mut offsets = [0usize; 9];
        for root in docs.iter().filter_map(|d| d.root.as_ref()) {
            count_steps(input, root, &mut steps, &mut offsets, 0);
        }
        let most = |counts: &[usize; 9], default: usize| {
            let (best, n) = counts
                .iter()
                .enumerate()
                .max_by_key(|&(i, n)| (*n, usize::from(i == default)))
                .unwrap_or((default, &0));
            if *n == 0 { default } else { best }
        };
        Style {
            step: most(&steps, 2).max(1),
            seq_offset: most(&offsets, 0),
            eol: if input.contains("\r\n") { "\r\n" } else { "\n" },
        }
    }
}

fn count_steps(
    input: &str,
    node: &Node,
    steps: &mut [usize; 9],
    offsets: &mut [usize; 9],
    depth: usize,
) {
    if depth > 64 {
        return;
    }
    match &node.kind {
        Kind::Map {
            flow: false,
            entries,
        } => {
            for (k, v) in entries {
                let key_col = column(input, k.start);
                match &v.kind {
                    Kind::Map { flow: false, .. } => {
                        if let Some(slot) = column(input, v.start)
                            .checked_sub(key_col)
                            .and_then(|d| steps.get_mut(d))
                        {
                            *slot += 1;
                        }
                    }
                    Kind::Seq { flow: false, .. } => {
                        if let Some(slot) = column(input, v.start)
                            .checked_sub(key_col)
                            .and_then(|d| offsets.get_mut(d))
                        {
                            *slot += 1;
                        }
                    }
                    _ => {}
                }
                count_steps(input, v, steps, offsets, depth + 1);
            }
        }
        Kind::Seq { items, .. } => {
            for item in items {
                count_steps(input, item, steps, offsets, depth + 1);
            }
        }
        Kind::Map { entries, .. } => {
            for (_, v) in entries {
                count_steps(input, v, steps, offsets, depth + 1);
            }
        }
        _ => {}
    }
}

/// The character column of byte offset `at`.
pub fn column(input: &str, at: usize) -> usize {
    let before = input.get(..at).unwrap_or(input);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    before[line_start..].chars().count()
}

/// The edits that apply `ops` (addressed relative to the node at `base`)
/// to the document `doc`, or why they cannot be spliced.
pub fn edits(
    input: &str,
    doc: &Document,
    base: &[String],
    ops: &[Op],
    style: Style,
) -> Result<Vec<Edit>, String> {
    let root = doc.root.as_ref().ok_or("the document is empty")?;
    let writer = Writer {
        json: is_json(root),
    };
    let mut added = Insertions::default();
    let mut out = Vec::with_capacity(ops.len());
    for (path, mut tokens, value) in fold(base, ops)? {
        let op = path.as_str();
        let last = tokens.pop().ok_or("the operation replaces the document")?;
        let parent = parent_of(doc, root, &tokens, op)?;
        let edit = match &parent.kind {
            Kind::Map { .. } => add_to_map(input, doc, parent, &last, &value, writer, style)?,
            Kind::Seq { flow, items } => {
                let before = added.insert(parent.start, items.len(), &last, op)?;
                let target = before.and_then(|j| items.get(j));
                match (flow, target) {
                    (true, None) => flow_add(input, parent, ']', &writer.flow(&value))?,
                    (true, Some(item)) => Edit {
                        at: item.start,
                        end: item.start,
                        text: format!("{}, ", writer.flow(&value)),
                        indent: usize::MAX,
                    },
                    (false, _) => add_block_item(input, parent, target, &value, style, op)?,
                }
            }
            _ => {
                return Err(format!("{}: the parent is not a mapping or a list", op));
            }
        };
        out.push(edit);
    }
    Ok(out)
}

/// How added values are written: a JSON document (`kubectl get -o json`)
/// gets JSON additions, a YAML document YAML ones.
#[derive(Debug, Clone, Copy)]
struct Writer {
    /// Whether the document is JSON.
    json: bool,
}

impl Writer {
    /// `value` written on one line (flow style, or JSON).
    fn flow(self, value: &Value) -> String {
        if self.json {
            value.to_string()
        } else {
            flow_text(value)
        }
    }

    /// A mapping key written on one line.
    fn key(self, key: &str) -> String {
        if self.json {
            Value::String(key.to_owned()).to_string()
        } else {
            scalar_key(key)
        }
    }
}

/// The elements added to each block or flow sequence so far (by the
/// sequence's offset): their indices in the array as it is now.
#[derive(Debug, Default)]
struct Insertions(HashMap<usize, Vec<usize>>);

impl Insertions {
    /// Records an element added at `last` (an index or `-`) to the sequence
    /// at offset `seq` that had `len` items in the text, and returns the
    /// original item it goes before (`None`: it is appended).
    fn insert(
        &mut self,
        seq: usize,
        len: usize,
        last: &str,
        op: &str,
    ) -> Result<Option<usize>, String> {
        let news = self.0.entry(seq).or_default();
        let now = len + news.len();
        let index = if last == "-" {
            now
        } else {
            last.parse::<usize>()
                .ok()
                .filter(|&i| i <= now && !news.contains(&i))
                .ok_or_else(|| format!("{}: not an index to insert at", op))?
        };
        let before = (index < now).then(|| index - news.iter().filter(|&&p| p < index).count());
        for p in news.iter_mut().filter(|p| **p >= index) {
            *p += 1;
        }
        news.push(index);
        Ok(before)
    }
}

/// The node the operation `op` adds to (`tokens`: its path from the root),
/// unless it is not in the text or an alias repeats it.
fn parent_of<'d>(
    doc: &Document,
    root: &'d Node,
    tokens: &[String],
    op: &str,
) -> Result<&'d Node, String> {
    let nodes =
        yaml::walk(root, tokens).ok_or_else(|| format!("{} is not written out in the text", op))?;
    if let Some(shared) = nodes.iter().find(|n| doc.aliased.contains(&n.anchor)) {
        return Err(format!(
            "{} is inside an anchor (line {}) that an alias repeats",
            op, shared.line
        ));
    }
    nodes.last().copied().ok_or_else(|| "no parent".to_owned())
}

/// The edit that sets the key `last` of the mapping `parent` to `value`:
/// a replacement when the key is there, else a new entry at its end.
fn add_to_map(
    input: &str,
    doc: &Document,
    parent: &Node,
    last: &str,
    value: &Value,
    writer: Writer,
    style: Style,
) -> Result<Edit, String> {
    match parent.get(last) {
        Some(existing) if writer.json => replace_json(existing, value, &doc.aliased),
        Some(existing) => replace(input, parent, existing, value, style, &doc.aliased),
        None if matches!(parent.kind, Kind::Map { flow: true, .. }) => flow_add(
            input,
            parent,
            '}',
            &format!("{}: {}", writer.key(last), writer.flow(value)),
        ),
        None => add_block_entry(input, parent, last, value, style),
    }
}

/// The edit that adds `key: value` as the last entry of the block mapping
/// `parent`, at its column.
fn add_block_entry(
    input: &str,
    parent: &Node,
    key: &str,
    value: &Value,
    style: Style,
) -> Result<Edit, String> {
    let (at, prefix) = after(input, parent)?;
    let col = column(input, parent.start);
    let mut text = String::new();
    if prefix {
        text.push_str(style.eol);
    }
    text.push_str(&" ".repeat(col));
    text.push_str(&scalar_key(key));
    text.push(':');
    block_value(&mut text, value, col, style);
    text.push_str(style.eol);
    Ok(Edit {
        at,
        end: at,
        text,
        indent: 2 * col,
    })
}

/// The edit that adds `- value` to the block sequence `parent`: before the
/// item `target` (and the comments above it), or after its last item.
fn add_block_item(
    input: &str,
    parent: &Node,
    target: Option<&Node>,
    value: &Value,
    style: Style,
    op: &str,
) -> Result<Edit, String> {
    if input.as_bytes().get(parent.start) != Some(&b'-') {
        return Err(format!("{}: the list's first `-` was not found", op));
    }
    let dash = column(input, parent.start);
    let mut item = String::from("-");
    block_item(&mut item, value, dash, style);
    let Some(target) = target else {
        let (at, prefix) = after(input, parent)?;
        let text = format!(
            "{}{}{item}{}",
            if prefix { style.eol } else { "" },
            " ".repeat(dash),
            style.eol
        );
        return Ok(Edit {
            at,
            end: at,
            text,
            indent: 2 * dash + 1,
        });
    };
    let at = yaml::dash_before(input, target.start)
        .filter(|&at| column(input, at) == dash)
        .ok_or_else(|| format!("{}: the item's `-` was not found", op))?;
    let (at, text) = match comments_above(input, at) {
        // Before the comments that belong to the item.
        Some(line) => (line, format!("{}{item}{}", " ".repeat(dash), style.eol)),
        // On the item's line, after its indentation.
        None => (at, format!("{item}{}{}", style.eol, " ".repeat(dash))),
    };
    Ok(Edit {
        at,
        end: at,
        text,
        indent: 2 * dash + 1,
    })
}

/// When the `-` at `dash` starts its line (after spaces), the start of the
/// comment lines right above it, or of its own line when there are none.
fn comments_above(input: &str, dash: usize) -> Option<usize> {
    let line = input[..dash].rfind('\n').map_or(0, |i| i + 1);
    if !input[line..dash].chars().all(|c| c == ' ') {
        return None;
    }
    let mut start = line;
    while start > 0 {
        let above = input[..start - 1].rfind('\n').map_or(0, |i| i + 1);
        if !input[above..start].trim_start().starts_with('#') {
            break;
        }
        start = above;
    }
    Some(start)
}

/// The operations as (path, tokens from the document's root, value), with
/// every operation that lands inside a value an earlier one adds (the
/// metrics sidecar in an `initContainers` the same patch creates) applied
/// to that value instead.
fn fold(base: &[String], ops: &[Op]) -> Result<Vec<(String, Vec<String>, Value)>, String> {
    let mut folded: Vec<(String, Vec<String>, Value)> = Vec::with_capacity(ops.len());
    for op in ops {
        if op.op != "add" {
            return Err(format!("{} is not an add operation", op.op));
        }
        let value = op
            .value()
            .map_err(|e| format!("{}: the value is not JSON: {e}", op.path))?;
        let mut tokens = base.to_vec();
        tokens.extend(yaml::pointer_tokens(&op.path));
        let inside = folded
            .iter_mut()
            .find(|(_, t, _)| tokens.len() > t.len() && tokens.starts_with(t));
        match inside {
            Some((_, t, target)) => {
                let relative: String = tokens[t.len()..]
                    .iter()
                    .map(|token| format!("/{}", crate::patch::escape(token)))
                    .collect();
                let inner = Op {
                    op: "add",
                    path: relative,
                    value: op.value.clone(),
                };
                crate::patch::apply(target, std::slice::from_ref(&inner))
                    .map_err(|e| format!("{}: {e}", op.path))?;
            }
            None => folded.push((op.path.clone(), tokens, value)),
        }
    }
    Ok(folded)
}

/// The edit that replaces the value `existing` of a key of `parent`.
fn replace(
    input: &str,
    parent: &Node,
    existing: &Node,
    value: &Value,
    style: Style,
    aliased: &HashSet<usize>,
) -> Result<Edit, String> {
    if aliased.contains(&existing.anchor) {
        return Err(format!(
            "the value at line {} is repeated by an alias",
            existing.line
        ));
    }
    match &existing.kind {
        Kind::Scalar { .. } if existing.start == existing.end => {
            // `key:` with nothing after it: the scalar sits on the `:`.
            if input.as_bytes().get(existing.start) != Some(&b':') {
                return Err(format!(
                    "line {}: an empty value without its `:`",
                    existing.line
                ));
            }
            let at = existing.start + 1;
            let mut text = String::new();
            if matches!(parent.kind, Kind::Map { flow: true, .. }) {
                text.push(' ');
                text.push_str(&flow_text(value));
            } else {
                block_value(&mut text, value, column(input, parent.start), style);
            }
            Ok(Edit {
                at,
                end: at,
                text,
                indent: usize::MAX,
            })
        }
        Kind::Scalar { .. } if !existing.is_block_scalar() => Ok(Edit {
            at: existing.start,
            end: existing.end,
            text: flow_text(value),
            indent: usize::MAX,
        }),
        _ => Err(format!(
            "line {}: replacing a block scalar or a collection is not spliced",
            existing.line
        )),
    }
}

/// An entry added after the last entry of a flow collection (or on the
/// line of its closing bracket when a comment ends the line before it).
fn flow_add(input: &str, node: &Node, close: char, entry: &str) -> Result<Edit, String> {
    let bracket = node.end.checked_sub(1).ok_or("empty flow collection")?;
    if !input[bracket..].starts_with(close) {
        return Err(format!(
            "line {}: the closing {close} was not found",
            node.line
        ));
    }
    let inside = input[node.start + 1..bracket].trim_end();
    let last_line = inside.rsplit('\n').next().unwrap_or(inside);
    let at = if last_line.contains('#') {
        bracket
    } else {
        node.start + 1 + inside.len()
    };
    let text = if inside.is_empty() || inside.ends_with(',') {
        entry.to_owned()
    } else {
        format!(", {entry}")
    };
    Ok(Edit {
        at,
        end: at,
        text,
        indent: usize::MAX,
    })
}

/// Whether a document is JSON: a flow mapping with a double-quoted first key.
fn is_json(root: &Node) -> bool {
    match &root.kind {
        Kind::Map {
            flow: true,
            entries,
        } => entries.first().is_some_and(|(k, _)| {
            matches!(
                k.kind,
                Kind::Scalar {
                    style: granit_parser::ScalarStyle::DoubleQuoted,
                    ..
                }
            )
        }),
        _ => false,
    }
}

/// The edit that replaces a scalar value in a JSON document.
fn replace_json(existing: &Node, value: &Value, aliased: &HashSet<usize>) -> Result<Edit, String> {
    if aliased.contains(&existing.anchor) || !matches!(existing.kind, Kind::Scalar { .. }) {
        return Err(format!(
            "line {}: only a scalar is replaced in a JSON document",
            existing.line
        ));
    }
    Ok(Edit {
        at: existing.start,
        end: existing.end,
        text: value.to_string(),
        indent: usize::MAX,
    })
}

/// Where a line added after the block collection `node` goes: the start of
/// the line after its last value (after a trailing comment), and whether a
/// line break must come first (the input ends without one).
fn after(input: &str, node: &Node) -> Result<(usize, bool), String> {
    let mut leaf = node;
    loop {
        leaf = match &leaf.kind {
            Kind::Map {
                flow: false,
                entries,
            } => match entries.last() {
                Some((_, v)) => v,
                None => break,
            },
            Kind::Seq { flow: false, items } => match items.last() {
                Some(v) => v,
                None => break,
            },
            _ => break,
        };
    }
    if leaf.is_block_scalar() {
        if leaf.end >= input.len() && !input.ends_with('\n') {
            // A line break after it would become part of its value.
            return Err(format!(
                "line {}: a block scalar ends the input without a line break",
                leaf.line
            ));
        }
        // The scalar's text runs up to the next token: keep its trailing
        // lines (part of the value under `|+`), add after them.
        let text = &input[leaf.start..leaf.end];
        return match text.rfind('\n') {
            Some(i) => Ok((leaf.start + i + 1, false)),
            None => Err(format!(
                "line {}: a block scalar ends the input without a line break",
                leaf.line
            )),
        };
    }
    Ok(match input[leaf.end..].find('\n') {
        Some(i) => (leaf.end + i + 1, false),
        None => (input.len(), true),
    })
}

/// Where the text of `node` ends: the start of the line after its last
/// value (`None`: a block scalar ends the input without a line break).
pub fn end_of(input: &str, node: &Node) -> Option<usize> {
    after(input, node).ok().map(|(at, _)| at)
}

/// A key as YAML text.
fn scalar_key(key: &str) -> String {
    scalar_text(key)
}

/// The text after `key:` for `value` in a block mapping whose keys are at `col`.
fn block_value(out: &mut String, value: &Value, col: usize, style: Style) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                out.push_str(style.eol);
                out.push_str(&" ".repeat(col + style.step));
                out.push_str(&scalar_key(k));
                out.push(':');
                block_value(out, v, col + style.step, style);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let dash = col + style.seq_offset;
            for item in items {
                out.push_str(style.eol);
                out.push_str(&" ".repeat(dash));
                out.push('-');
                block_item(out, item, dash, style);
            }
        }
        other => {
            out.push(' ');
            out.push_str(&flow_text(other));
        }
    }
}

/// The text after `-` for `value` in a block sequence whose `-` is at `dash`.
fn block_item(out: &mut String, value: &Value, dash: usize, style: Style) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (i, (k, v)) in map.iter().enumerate() {
                if i == 0 {
                    out.push(' ');
                } else {
                    out.push_str(style.eol);
                    out.push_str(&" ".repeat(dash + 2));
                }
                out.push_str(&scalar_key(k));
                out.push(':');
                block_value(out, v, dash + 2, style);
            }
        }
        other => {
            out.push(' ');
            out.push_str(&flow_text(other));
        }
    }
}

/// `value` in flow style: `{a: 1, b: [x]}`.
pub fn flow_text(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", scalar_key(k), flow_text(v)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(flow_text).collect();
            format!("[{}]", items.join(", "))
        }
        Value::String(s) => scalar_text(s),
        other => other.to_string(),
    }
}

/// A string as a YAML scalar that kubectl reads back as that string:
/// plain when that is unambiguous, double-quoted otherwise.
pub fn scalar_text(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '=' | '+' | '~' | '@')
        })
        && !s.starts_with(['-', '~', '@', '.', '+'])
        && yaml::resolve_plain(s).is_ok_and(|v| v == Value::String(s.to_owned()));
    if plain {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `input` with `edits` applied. Of the lines added at one offset, deeper
/// ones come first; otherwise edits at one offset keep their order.
pub fn apply(input: &str, mut edits: Vec<Edit>) -> Result<String, String> {
    edits.sort_by_key(|e| (e.at, std::cmp::Reverse(e.indent)));
    let extra: usize = edits.iter().map(|e| e.text.len()).sum();
    let mut out = String::with_capacity(input.len() + extra);
    let mut cursor = 0;
    for edit in edits {
        if edit.at < cursor || edit.end < edit.at {
            return Err(format!("overlapping edits at byte {}", edit.at));
        }
        out.push_str(&input[cursor..edit.at]);
        let mut text = edit.text.as_str();
        if edit.at == input.len() && out.ends_with('\n') {
            // Lines added at the end of an input without a final line
            // break each start with one: the first is enough.
            text = text
                .strip_prefix("\r\n")
                .or_else(|| text.strip_prefix('\n'))
                .unwrap_or(text);
        }
        out.push_str(text);
        cursor = edit.end;
    }
    out.push_str(&input[cursor..]);
    Ok(out)
}

#[cfg(test)]
mod tests;
