use super::*;

fn splice(input: &str, base: &[&str], ops: &[(&str, &str)]) -> Result<String, String> {
    let docs = yaml::parse(input).expect("parses");
    let style = Style::detect(input, &docs);
    let ops: Vec<Op> = ops
        .iter()
        .map(|(path, value)| Op {
            op: "add",
            path: (*path).to_owned(),
            value: serde_json::value::RawValue::from_string((*value).to_owned()).expect("json"),
        })
        .collect();
    let base: Vec<String> = base.iter().map(|s| (*s).to_owned()).collect();
    let edits = edits(input, &docs[0], &base, &ops, style)?;
    apply(input, edits)
}

#[test]
fn keys_and_items_in_the_files_indentation() {
    let input = "# top\nspec:\n    containers:\n      - name: a # the app\n        image: x\n    # end of spec\n";
    let out = splice(
        input,
        &["spec"],
        &[
            ("/containers/0/env", r#"[{"name":"BACKLOG","value":"5"}]"#),
            ("/volumes", r#"[{"name":"v","emptyDir":{}}]"#),
            ("/containers/0", r#"{"name":"init","command":["a","b"]}"#),
        ],
    )
    .expect("splices");
    assert_eq!(
        out,
        "# top\nspec:\n    containers:\n      - name: init\n        command:\n          - a\n          - b\n      - name: a # the app\n        image: x\n        env:\n          - name: BACKLOG\n            value: \"5\"\n    volumes:\n      - name: v\n        emptyDir: {}\n    # end of spec\n"
    );
}

#[test]
fn flow_collections_crlf_and_no_final_line_break() {
    let input = "spec:\r\n  containers: [{name: a}]\r\n  volumes: []\r\n  x: 1";
    let out = splice(
        input,
        &["spec"],
        &[
            ("/containers/0/env", r#"[{"name":"B","value":"5"}]"#),
            ("/volumes/-", r#"{"name":"v"}"#),
            ("/initContainers", r#"[{"name":"i"}]"#),
            ("/containers/0", r#"{"name":"i"}"#),
        ],
    )
    .expect("splices");
    assert_eq!(
        out,
        "spec:\r\n  containers: [{name: i}, {name: a, env: [{name: B, value: \"5\"}]}]\r\n  volumes: [{name: v}]\r\n  x: 1\r\n  initContainers:\r\n  - name: i\r\n"
    );
}

#[test]
fn replaced_and_empty_values() {
    let input =
        "metadata:\n  annotations:\n  name: p\nenv:\n- name: LD_PRELOAD\n  value: 'a.so' # keep\n";
    let out = splice(
        input,
        &[],
        &[
            (
                "/metadata/annotations",
                r#"{"forcebacklog/status":"injected"}"#,
            ),
            ("/env/0/value", r#""/s.so:a.so""#),
        ],
    )
    .expect("splices");
    assert_eq!(
        out,
        "metadata:\n  annotations:\n    forcebacklog/status: injected\n  name: p\nenv:\n- name: LD_PRELOAD\n  value: \"/s.so:a.so\" # keep\n"
    );
}

#[test]
fn block_scalars_keep_their_value() {
    let input = "c:\n  args: |+\n    x\n\n  # c\nd: 1\n";
    let out = splice(input, &["c"], &[("/env", "[]")]).expect("splices");
    assert_eq!(out, "c:\n  args: |+\n    x\n\n  env: []\n  # c\nd: 1\n");
    assert!(splice("c:\n  args: |\n    x", &["c"], &[("/env", "[]")]).is_err());
    assert!(splice("c:\n  args: |\n    x\n    y", &["c"], &[("/env", "[]")]).is_err());
}

#[test]
fn inserts_at_an_index_and_into_a_created_list() {
    // Ours at 0, then a sidecar at 1: both before the original first item.
    let input = "spec:\n  initContainers:\n  - name: a\n  - name: b\n";
    let out = splice(
        input,
        &["spec"],
        &[
            ("/initContainers/0", r#"{"name":"ours"}"#),
            ("/initContainers/1", r#"{"name":"side"}"#),
            ("/initContainers/4", r#"{"name":"end"}"#),
        ],
    )
    .expect("splices");
    assert_eq!(
        out,
        "spec:\n  initContainers:\n  - name: ours\n  - name: side\n  - name: a\n  - name: b\n  - name: end\n"
    );
    // Ours already there at 0: a sidecar at 1 goes before the second item.
    let out = splice(
        input,
        &["spec"],
        &[("/initContainers/1", r#"{"name":"side"}"#)],
    )
    .expect("splices");
    assert_eq!(
        out,
        "spec:\n  initContainers:\n  - name: a\n  - name: side\n  - name: b\n"
    );
    // A list the same patch creates: the later element goes into it.
    let out = splice(
        "spec:\n  containers: []\n",
        &["spec"],
        &[
            ("/initContainers", r#"[{"name":"ours"}]"#),
            ("/initContainers/1", r#"{"name":"side"}"#),
        ],
    )
    .expect("splices");
    assert_eq!(
        out,
        "spec:\n  containers: []\n  initContainers:\n  - name: ours\n  - name: side\n"
    );
    let out = splice("a: [x, y]\n", &[], &[("/a/1", "1"), ("/a/0", "0")]).expect("splices");
    assert_eq!(out, "a: [0, x, 1, y]\n");
}

#[test]
fn several_additions_at_the_end_of_a_file_without_a_line_break() {
    let input = "spec:\n  containers:\n  - name: a\n    env:\n    - name: X\n      value: \"0\"";
    let out = splice(
        input,
        &["spec"],
        &[
            // The core's order: the mount before the variables; the
            // variables go first in the text (they end the inner list).
            ("/containers/0/volumeMounts", r#"[{"name":"v"}]"#),
            ("/containers/0/env/-", r#"{"name":"B","value":"1"}"#),
            ("/volumes", r#"[{"name":"v"}]"#),
        ],
    )
    .expect("splices");
    assert_eq!(
        out,
        "spec:\n  containers:\n  - name: a\n    env:\n    - name: X\n      value: \"0\"\n    - name: B\n      value: \"1\"\n    volumeMounts:\n    - name: v\n  volumes:\n  - name: v\n"
    );
}

#[test]
fn json_documents_get_json() {
    let input = "{\n  \"metadata\": {\"name\": \"p\"},\n  \"spec\": {\n    \"containers\": [\n      {\"name\": \"a\", \"env\": [{\"name\": \"LD_PRELOAD\", \"value\": \"x.so\"}]}\n    ]\n  }\n}\n";
    let out = splice(
        input,
        &[],
        &[
            (
                "/metadata/annotations",
                r#"{"forcebacklog/status":"injected"}"#,
            ),
            ("/spec/containers/0/env/0/value", r#""/s.so:x.so""#),
            ("/spec/initContainers", r#"[{"name":"i"}]"#),
        ],
    )
    .expect("splices");
    assert_eq!(
        out,
        "{\n  \"metadata\": {\"name\": \"p\", \"annotations\": {\"forcebacklog/status\":\"injected\"}},\n  \"spec\": {\n    \"containers\": [\n      {\"name\": \"a\", \"env\": [{\"name\": \"LD_PRELOAD\", \"value\": \"/s.so:x.so\"}]}\n    ], \"initContainers\": [{\"name\":\"i\"}]\n  }\n}\n"
    );
    let v: Value = serde_json::from_str(&out).expect("still JSON");
    assert_eq!(v["spec"]["initContainers"][0]["name"], "i");
}

#[test]
fn aliased_anchors_are_not_spliced() {
    let input = "a: &x\n  b: 1\nc: *x\n";
    assert!(splice(input, &["a"], &[("/d", "1")]).is_err());
}

#[test]
fn scalars_read_back_as_strings() {
    for s in [
        "234", "true", "on", "y", "", " a", "a: b", "0644", "1e3", "~", "null", "-x", "a#b",
        "\u{2028}", "é",
    ] {
        let text = scalar_text(s);
        let docs = yaml::parse(&format!("k: {text}\n")).expect("parses");
        let v = yaml::to_json(docs[0].root.as_ref().expect("root")).expect("reads");
        assert_eq!(v["k"], s, "{s:?} as {text}");
    }
    assert_eq!(scalar_text("injected"), "injected");
    assert_eq!(
        scalar_text("/opt/forcebacklog/libforcebacklog.so"),
        "/opt/forcebacklog/libforcebacklog.so"
    );
}
