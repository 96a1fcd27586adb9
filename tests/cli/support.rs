//! Checks shared by the `inject` tests: what the injection adds, taken
//! out again, and whether the input's text survives in the output.

use serde_json::Value;

/// Reads YAML as `inject` (and kubectl) reads it.
pub fn read(yaml: &str) -> Vec<Value> {
    forcebacklog::manifest::read(yaml, "test").expect("valid YAML")
}

/// Removes everything injection adds, so that input and output can be
/// compared: proves nothing else changed.
pub fn strip_injection(doc: &mut Value) {
    match doc {
        Value::Object(map) => {
            for key in [
                "initContainers",
                "containers",
                "volumes",
                "volumeMounts",
                "env",
            ] {
                if let Some(Value::Array(items)) = map.get_mut(key) {
                    items.retain(|item| {
                        let name = item["name"].as_str().unwrap_or("");
                        !matches!(
                            name,
                            "forcebacklog-install"
                                | "forcebacklog-shim"
                                | "BACKLOG"
                                | "LD_PRELOAD"
                                | "FORCEBACKLOG_MODE"
                                | "FORCEBACKLOG_PORTS"
                        )
                    });
                }
            }
            if let Some(Value::Object(annotations)) = map.get_mut("annotations") {
                annotations.remove("forcebacklog/status");
            }
            for value in map.values_mut() {
                strip_injection(value);
            }
            map.retain(|key, value| {
                let empty = match value {
                    Value::Array(a) => a.is_empty(),
                    Value::Object(o) => o.is_empty(),
                    Value::Null => true,
                    _ => false,
                };
                !(empty
                    && matches!(
                        key.as_str(),
                        "initContainers"
                            | "volumes"
                            | "volumeMounts"
                            | "env"
                            | "annotations"
                            | "metadata"
                    ))
            });
        }
        Value::Array(items) => items.iter_mut().for_each(strip_injection),
        _ => {}
    }
}

/// Whether every line of `input` is in `output`, byte for byte and in
/// order, so that the output is the input with lines added (a final line
/// without a line break may gain one; a line may gain flow entries `, …`
/// at its end). Returns the number of added lines.
pub fn lines_kept(input: &str, output: &str) -> Result<usize, String> {
    let mut out = output.split_inclusive('\n');
    let mut added = 0;
    let lines: Vec<&str> = input.split_inclusive('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let last_without_break = i + 1 == lines.len() && !line.ends_with('\n');
        loop {
            let Some(candidate) = out.next() else {
                return Err(format!(
                    "input line {} is not in the output: {line:?}",
                    i + 1
                ));
            };
            // A flow collection's entries may be added at the end of a line.
            let grown = line.ends_with('\n')
                && candidate
                    .strip_prefix(line.trim_end_matches(['\n', '\r']))
                    .is_some_and(|rest| rest.starts_with(", "));
            let same = if grown {
                true
            } else if last_without_break {
                candidate
                    .strip_suffix('\n')
                    .map(|c| c.strip_suffix('\r').unwrap_or(c))
                    == Some(line)
                    || candidate == *line
            } else {
                candidate == *line
            };
            if same {
                break;
            }
            added += 1;
        }
    }
    Ok(added + out.count())
}
