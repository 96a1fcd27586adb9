//! The fuzz targets' checks (`fuzz/checks.rs`), bounded, in `cargo test`:
//!
//! - every input of the committed fuzz corpus (`fuzz/corpus/review`,
//!   `fuzz/corpus/inject`), which includes the inputs that once broke a
//!   property, is replayed;
//! - a few hundred generated inputs: arbitrary JSON trees in AdmissionReview
//!   envelopes for every endpoint, and arbitrary YAML documents (and their
//!   text cut, spliced and garbled) for `inject`.
//!
//! The long runs are `cargo fuzz` (docs/reliability.md, "Fuzzing").

use crate::checks;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use std::path::Path;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("corpus entry").path();
            let bytes = std::fs::read(&path).expect("corpus file");
            (path.display().to_string(), bytes)
        })
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 3,
        "{}: {} inputs",
        dir.display(),
        inputs.len()
    );
    inputs
}

#[test]
fn the_review_corpus_replays() {
    for (name, bytes) in corpus("review") {
        eprintln!("{name}");
        checks::review(&bytes);
    }
}

#[test]
fn the_inject_corpus_replays() {
    for (name, bytes) in corpus("inject") {
        eprintln!("{name}");
        checks::inject(&bytes);
    }
}

/// Keys the core reads, so generated objects reach its rules.
const KEYS: &[&str] = &[
    "metadata",
    "annotations",
    "ownerReferences",
    "spec",
    "template",
    "jobTemplate",
    "containers",
    "initContainers",
    "restartPolicy",
    "name",
    "env",
    "value",
    "valueFrom",
    "volumeMounts",
    "mountPath",
    "volumes",
    "emptyDir",
    "os",
    "nodeSelector",
    "securityContext",
    "sysctls",
    "forcebacklog/value",
    "forcebacklog/inject",
    "forcebacklog/containers",
    "forcebacklog/mode",
    "forcebacklog/ports",
    "forcebacklog/status",
    "forcebacklog/other",
    "x",
];

/// Strings the core compares against.
const STRINGS: &[&str] = &[
    "",
    "234",
    "0",
    "70000",
    "-1",
    "abc",
    "false",
    "true",
    "enabled",
    "set",
    "raise",
    "80,8080",
    "a",
    "web",
    "Always",
    "LD_PRELOAD",
    "BACKLOG",
    "/opt/forcebacklog",
    "/opt/forcebacklog/",
    "/opt/forcebacklog/libforcebacklog.so",
    "forcebacklog-shim",
    "forcebacklog-install",
    "injected",
    "windows",
    "net.core.somaxconn",
    "~1/\\\"é\u{0}",
];

fn json_tree() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        prop::sample::select(STRINGS).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 80, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        3 => prop::sample::select(KEYS).prop_map(str::to_owned),
                        1 => "\\PC{0,8}",
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// `forcebacklog/*` annotations with values the rules compare against,
/// and noise; half of them carry a valid backlog, so pods get injected.
fn annotations() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(
            (
                prop::sample::select(&KEYS[21..28]),
                prop_oneof![
                    4 => prop::sample::select(STRINGS).prop_map(Value::from),
                    1 => json_tree(),
                ],
            ),
            0..4,
        ),
        prop::option::of(prop::sample::select(&["234", "1", "10000", "65535"][..])),
    )
        .prop_map(|(members, value)| {
            let mut map: Map<String, Value> = members
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            if let Some(value) = value {
                map.insert("forcebacklog/value".to_owned(), json!(value));
            }
            Value::Object(map)
        })
}

fn named(names: &'static [&'static str]) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(names),
        prop::sample::select(STRINGS),
        prop::option::of(json_tree()),
    )
        .prop_map(|(name, value, from)| {
            let mut v = json!({"name": name, "value": value});
            if let Some(from) = from {
                v["valueFrom"] = from;
            }
            v
        })
}

fn container() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(&["a", "web", "b", "forcebacklog-install"][..]),
        prop::option::of(prop::collection::vec(
            named(&["LD_PRELOAD", "BACKLOG", "X", "FORCEBACKLOG_MODE"]),
            0..3,
        )),
        prop::option::of(prop::collection::vec(
            (
                prop::sample::select(&["forcebacklog-shim", "data"][..]),
                prop::sample::select(&["/opt/forcebacklog", "/opt/forcebacklog/", "/data"][..]),
            )
                .prop_map(|(name, path)| json!({"name": name, "mountPath": path})),
            0..3,
        )),
        prop::option::of(Just("Always")),
        json_tree(),
    )
        .prop_map(|(name, env, mounts, restart, noise)| {
            let mut c = json!({"name": name, "x-noise": noise});
            if let Some(env) = env {
                c["env"] = Value::Array(env);
            }
            if let Some(mounts) = mounts {
                c["volumeMounts"] = Value::Array(mounts);
            }
            if let Some(restart) = restart {
                c["restartPolicy"] = json!(restart);
            }
            c
        })
}

/// A pod: mostly the shape the rules read (annotations, containers, init
/// containers, volumes), with arbitrary JSON mixed in; sometimes any tree.
fn pod_like() -> impl Strategy<Value = Value> {
    let shaped = (
        annotations(),
        prop::collection::vec(container(), 0..4),
        prop::option::of(prop::collection::vec(container(), 0..3)),
        prop::option::of(json_tree()),
        json_tree(),
    )
        .prop_map(|(annotations, containers, init, volumes, noise)| {
            let mut spec = json!({"containers": containers, "x-noise": noise});
            if let Some(init) = init {
                spec["initContainers"] = Value::Array(init);
            }
            if let Some(volumes) = volumes {
                spec["volumes"] = volumes;
            }
            json!({"metadata": {"annotations": annotations}, "spec": spec})
        });
    prop_oneof![
        3 => shaped,
        1 => (json_tree(), json_tree()).prop_map(|(metadata, spec)| json!({"metadata": metadata, "spec": spec})),
    ]
}

/// A pod, or a workload around one.
fn object() -> impl Strategy<Value = Value> {
    (pod_like(), json_tree(), any::<bool>()).prop_map(|(pod, noise, wrap)| {
        if wrap {
            json!({"metadata": {"name": "w"}, "spec": {"template": pod, "x": noise,
                   "jobTemplate": {"spec": {"template": {"metadata": {}}}}}})
        } else {
            pod
        }
    })
}

const KINDS: &[(&str, &str)] = &[
    ("", "Pod"),
    ("apps", "Deployment"),
    ("batch", "CronJob"),
    ("batch", "Job"),
    ("", "PodTemplate"),
    ("", "ConfigMap"),
    ("apps", "Pod"),
];

fn review_body() -> impl Strategy<Value = Vec<u8>> {
    (
        object(),
        prop::option::of(object()),
        prop_oneof![3 => Just(("", "Pod")), 2 => prop::sample::select(KINDS)],
        prop_oneof![
            3 => Just("CREATE"),
            1 => prop::sample::select(&["UPDATE", "DELETE", "CONNECT", ""][..]),
        ],
        prop::option::of(prop::sample::select(
            &["", "status", "ephemeralcontainers"][..],
        )),
        json_tree(),
    )
        .prop_map(|(object, old, (group, kind), operation, sub, extra)| {
            let mut request = json!({
                "uid": "fuzz-uid", "kind": {"group": group, "version": "v1", "kind": kind},
                "operation": operation, "object": object, "oldObject": old, "extra": extra,
            });
            if let Some(sub) = sub {
                request["subResource"] = json!(sub);
            }
            serde_json::to_vec(&json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request
            }))
            .expect("JSON")
        })
}

/// Text edits that turn valid input into almost-valid input.
#[derive(Debug, Clone)]
enum Edit {
    Keep,
    Cut(usize),
    Insert(usize, String),
    Remove(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => Just(Edit::Keep),
        1 => any::<usize>().prop_map(Edit::Cut),
        1 => (any::<usize>(), prop::sample::select(&[
            "\n", "- ", ": ", "---\n", "{", "[", "\"", "'", "&a ", "*a", "!!str ", "? ", "|\n", "\t", "#", "\u{feff}",
        ][..])).prop_map(|(at, s)| Edit::Insert(at, s.to_owned())),
        1 => (any::<usize>(), 1usize..8).prop_map(|(at, n)| Edit::Remove(at, n)),
    ]
}

fn apply(edit: &Edit, text: &str) -> String {
    let at = |i: usize| {
        let mut i = i % (text.len() + 1);
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    match edit {
        Edit::Keep => text.to_owned(),
        Edit::Cut(i) => text[..at(*i)].to_owned(),
        Edit::Insert(i, s) => {
            let i = at(*i);
            format!("{}{s}{}", &text[..i], &text[i..])
        }
        Edit::Remove(i, n) => {
            let i = at(*i);
            let j = at(i + n);
            if j < i {
                text.to_owned()
            } else {
                format!("{}{}", &text[..i], &text[j..])
            }
        }
    }
}

const YAML_KINDS: &[(&str, &str)] = &[
    ("v1", "Pod"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("batch/v1", "CronJob"),
    ("v1", "List"),
    ("v1", "ConfigMap"),
];

fn yaml_stream() -> impl Strategy<Value = String> {
    prop::collection::vec((object(), prop::sample::select(YAML_KINDS)), 1..3).prop_map(|docs| {
        docs.into_iter()
            .map(|(mut doc, (api_version, kind))| {
                doc["apiVersion"] = json!(api_version);
                doc["kind"] = json!(kind);
                if kind == "List" {
                    doc = json!({"apiVersion": "v1", "kind": "List", "items": [doc["spec"].clone(), doc]});
                }
                serde_saphyr::to_string(&doc).expect("YAML")
            })
            .collect::<Vec<_>>()
            .join("---\n")
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_reviews_keep_the_review_properties(body in review_body(), selector in 0u8..3, edit in edit()) {
        let mut data = vec![selector];
        data.extend_from_slice(&body);
        checks::review(&data);
        // The same body cut, spliced or garbled (as text).
        let garbled = apply(&edit, &String::from_utf8_lossy(&body));
        let mut data = vec![selector];
        data.extend_from_slice(garbled.as_bytes());
        checks::review(&data);
    }

    #[test]
    fn generated_yaml_keeps_the_inject_properties(yaml in yaml_stream(), edit in edit(), odd in any::<bool>()) {
        for text in [yaml.clone(), apply(&edit, &yaml)] {
            let mut data = text.into_bytes();
            // The length's parity picks --backlog: try both.
            if odd != (data.len() % 2 == 1) {
                data.push(b'\n');
            }
            checks::inject(&data);
        }
    }
}
