//! `inject` re-writes every document it reads: whatever it does not inject
//! must come back with the same meaning. Arbitrary strings, numbers and
//! Kubernetes-looking scalars round-trip through `inject_str`.

use forcebacklog::config::InjectConfig;
use forcebacklog::manifest::inject_str;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Reads YAML the way `inject` does (YAML 1.1 octal, as Kubernetes).
fn parse(yaml: &str) -> Vec<Value> {
    let mut options = serde_saphyr::Options::default();
    options.legacy_octal_numbers = true;
    serde_saphyr::from_multiple_with_options(yaml, options).expect("valid YAML")
}

fn round_trip(doc: &Value) {
    let input = serde_saphyr::to_string(doc).expect("YAML");
    let out = inject_str(&input, "t.yaml", Some(100), &InjectConfig::default()).expect("inject");
    assert_eq!(
        parse(&out.yaml),
        vec![doc.clone()],
        "input:\n{input}\noutput:\n{}",
        out.yaml
    );
}

#[test]
fn tricky_scalars_keep_their_type() {
    let tricky = [
        "",
        " ",
        "true",
        "false",
        "yes",
        "no",
        "on",
        "off",
        "y",
        "n",
        "Y",
        "N",
        "null",
        "Null",
        "~",
        "0644",
        "0o17",
        "0x1F",
        "1e3",
        ".5",
        "+1",
        "-1",
        "1_000",
        "12:30",
        "2001-12-14",
        ".inf",
        ".nan",
        "- a",
        "? b",
        "a: b",
        "#c",
        "&x",
        "*x",
        "!t",
        "%p",
        "@a",
        "`b",
        "|",
        ">",
        "'",
        "\"",
        "a\nb",
        "trailing ",
        "\ttab",
        "é ü 中文 😀",
        "\u{7f}",
        "\u{1b}[0m",
        "---",
        "...",
        "{a: 1}",
        "[1]",
        "=",
    ];
    let data: serde_json::Map<String, Value> = tricky
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("k{i}"), Value::String((*s).to_owned())))
        .collect();
    round_trip(
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data}),
    );
    round_trip(
        &json!({"apiVersion": "v1", "kind": "Thing", "n": [0, 1, -5, 420, 1.5, 1e300, true, null],
                       "keys": {"yes": 1, "0644": 2, "": 3, "a b": 4}}),
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_round_trip(values in prop::collection::vec(any::<String>(), 1..6)) {
        let data: serde_json::Map<String, Value> = values
            .into_iter()
            .enumerate()
            .map(|(i, s)| (format!("k{i}"), Value::String(s)))
            .collect();
        round_trip(&json!({"apiVersion": "v1", "kind": "ConfigMap", "data": data}));
    }

    #[test]
    fn annotated_pod_strings_round_trip(image in "\\PC{0,30}", arg in any::<String>()) {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                         "spec": {"containers": [{"name": "a", "image": image, "args": [arg]}]}});
        let input = serde_saphyr::to_string(&pod).expect("YAML");
        let out = inject_str(&input, "t.yaml", Some(100), &InjectConfig::default()).expect("inject");
        let docs = parse(&out.yaml);
        prop_assert_eq!(&docs[0]["spec"]["containers"][0]["image"], &pod["spec"]["containers"][0]["image"]);
        prop_assert_eq!(&docs[0]["spec"]["containers"][0]["args"], &pod["spec"]["containers"][0]["args"]);
        let again = inject_str(&out.yaml, "t.yaml", Some(100), &InjectConfig::default()).expect("inject");
        prop_assert_eq!(again.yaml, out.yaml);
    }
}
