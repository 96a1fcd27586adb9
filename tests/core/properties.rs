//! Property tests of the mutation core over generated pods of every shape
//! (missing or null metadata, annotations, env, volumeMounts, volumes,
//! initContainers; native sidecars; existing LD_PRELOAD/BACKLOG; collisions;
//! Windows; valid and invalid annotation values; unknown fields):
//!
//! - the patch always applies (json-patch crate, and `patch::apply` agrees);
//! - the result always deserialises as a k8s-openapi Pod;
//! - the core applied twice equals once (no operations the second time);
//! - no existing container field other than `env`/`volumeMounts` changes,
//!   existing env entries and mounts keep their place, nothing outside the
//!   status annotation, `volumes`, `initContainers` and the containers changes;
//! - a skipped pod only gets its status annotation.

use forcebacklog::annotations::Defaults;
use forcebacklog::patch::Injector;
use forcebacklog::patch::{self, mutate};
use forcebacklog::plan::{PodView, Verdict};
use k8s_openapi::api::core::v1::Pod;
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// A JSON member that may be absent, null, or present.
fn maybe(value: impl Strategy<Value = Value>) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(Value::Null)),
        4 => value.prop_map(Some),
    ]
}

fn insert(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), v);
    }
}

fn env_entry() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"name": "LD_PRELOAD", "value": "/usr/lib/libjemalloc.so"})),
        Just(json!({"name": "LD_PRELOAD", "value": "/a.so /b.so"})),
        Just(json!({"name": "LD_PRELOAD", "value": "/opt/forcebacklog/libforcebacklog.so"})),
        Just(json!({"name": "LD_PRELOAD"})),
        Just(
            json!({"name": "LD_PRELOAD", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}})
        ),
        Just(json!({"name": "BACKLOG", "value": "64"})),
        Just(json!({"name": "FORCEBACKLOG_MODE", "value": "raise"})),
        Just(json!({"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})),
        "[A-Z]{1,6}".prop_map(|n| json!({"name": n, "value": "v", "x-unknown": 1})),
    ]
}

fn mount() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => Just(json!({"name": "data", "mountPath": "/data"})),
        1 => Just(json!({"name": "data", "mountPath": "/opt/forcebacklog"})),
        1 => Just(json!({"name": "forcebacklog-shim", "mountPath": "/opt/forcebacklog", "readOnly": true})),
    ]
}

fn container(name: String, sidecar: bool) -> impl Strategy<Value = Value> {
    (
        maybe(prop::collection::vec(env_entry(), 0..4).prop_map(Value::Array)),
        maybe(prop::collection::vec(mount(), 0..3).prop_map(Value::Array)),
        any::<bool>(),
    )
        .prop_map(move |(env, mounts, unknown)| {
            let mut c = Map::new();
            c.insert("name".into(), name.clone().into());
            c.insert("image".into(), "registry.example.com/app:1".into());
            insert(&mut c, "env", env);
            insert(&mut c, "volumeMounts", mounts);
            if sidecar {
                c.insert("restartPolicy".into(), "Always".into());
            }
            if unknown {
                c.insert("futureField".into(), json!({"keep": [1, 2]}));
                c.insert(
                    "securityContext".into(),
                    json!({"runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}}),
                );
            }
            Value::Object(c)
        })
}

fn containers(prefix: &'static str, n: std::ops::Range<usize>) -> impl Strategy<Value = Value> {
    prop::collection::vec(any::<bool>(), n).prop_flat_map(move |sidecars| {
        sidecars
            .into_iter()
            .enumerate()
            .map(|(i, sidecar)| container(format!("{prefix}{i}"), sidecar && prefix == "init"))
            .collect::<Vec<_>>()
            .prop_map(Value::Array)
    })
}

fn annotation_value() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(prop::sample::select(vec![
        "234", "1", "65535", "8192", "abc", "0", "70000", "-1", "",
    ]))
}

fn annotations() -> impl Strategy<Value = Value> {
    (
        annotation_value(),
        prop::option::of(prop::sample::select(vec![
            "true", "false", "enabled", "maybe",
        ])),
        prop::option::of(prop::sample::select(vec![
            "app0",
            "app0,init1",
            "init0",
            "ghost",
            "",
        ])),
        prop::option::of(prop::sample::select(vec!["raise", "set", "fast"])),
        prop::option::of(prop::sample::select(vec!["80", "80, 8080", "http"])),
        prop::option::of(prop::sample::select(vec!["injected", "skipped: old"])),
    )
        .prop_map(|(value, inject, containers, mode, ports, status)| {
            let mut a = Map::new();
            a.insert("team".into(), "shop".into());
            for (key, v) in [
                ("forcebacklog/value", value),
                ("forcebacklog/inject", inject),
                ("forcebacklog/containers", containers),
                ("forcebacklog/mode", mode),
                ("forcebacklog/ports", ports),
                ("forcebacklog/status", status),
            ] {
                if let Some(v) = v {
                    a.insert(key.into(), v.into());
                }
            }
            Value::Object(a)
        })
}

fn volumes() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        prop_oneof![
            4 => Just(json!({"name": "data", "emptyDir": {}})),
            1 => Just(json!({"name": "forcebacklog-shim", "emptyDir": {"sizeLimit": "1Mi"}})),
            1 => Just(json!({"name": "forcebacklog-shim", "hostPath": {"path": "/x"}})),
        ],
        0..3,
    )
    .prop_map(|mut v| {
        // Volume names are unique in a valid pod.
        let mut seen = std::collections::HashSet::new();
        v.retain(|vol| seen.insert(vol["name"].as_str().unwrap_or("").to_owned()));
        Value::Array(v)
    })
}

fn pod() -> impl Strategy<Value = Value> {
    (
        maybe(maybe(annotations()).prop_map(|a| {
            let mut m = Map::new();
            m.insert("name".into(), "p".into());
            insert(&mut m, "annotations", a);
            Value::Object(m)
        })),
        containers("app", 1..4),
        maybe(containers("init", 0..3)),
        maybe(volumes()),
        prop::sample::select(vec![0u8, 1, 2, 3]),
        any::<bool>(),
    )
        .prop_map(|(metadata, containers, init, volumes, os, sysctl)| {
            let mut spec = Map::new();
            spec.insert("containers".into(), containers);
            insert(&mut spec, "initContainers", init);
            insert(&mut spec, "volumes", volumes);
            match os {
                1 => {
                    spec.insert("os".into(), json!({"name": "windows"}));
                }
                2 => {
                    spec.insert("nodeSelector".into(), json!({"kubernetes.io/os": "linux"}));
                }
                _ => {}
            }
            if sysctl {
                spec.insert(
                    "securityContext".into(),
                    json!({"sysctls": [{"name": "net.core.somaxconn", "value": "8192"}]}),
                );
            }
            spec.insert("x-future".into(), json!([1, {"a": null}]));
            let mut pod = Map::new();
            pod.insert("apiVersion".into(), "v1".into());
            pod.insert("kind".into(), "Pod".into());
            insert(&mut pod, "metadata", metadata);
            pod.insert("spec".into(), Value::Object(spec));
            pod.insert("status".into(), json!({"phase": "Pending"}));
            Value::Object(pod)
        })
}

fn run(pod: &Value, defaults: Defaults) -> (Verdict, Vec<patch::Op>) {
    let text = pod.to_string();
    let view: PodView<'_> = serde_json::from_str(&text).expect("view from bytes");
    let m = mutate(&view, defaults, &Injector::default());
    // The same decision from a Value (the `inject` path).
    let from_value = mutate(
        &PodView::deserialize(pod).expect("view from Value"),
        defaults,
        &Injector::default(),
    );
    assert_eq!(from_value.ops, m.ops);
    (m.verdict, m.ops)
}

/// Everything outside what injection may touch.
fn outside(pod: &Value) -> Value {
    let mut p = pod.clone();
    if let Some(Value::Object(a)) = p.pointer_mut("/metadata/annotations") {
        a.remove("forcebacklog/status");
    }
    if let Some(Value::Object(spec)) = p.get_mut("spec") {
        spec.remove("volumes");
        spec.remove("initContainers");
        spec.remove("containers");
    }
    strip_empty_meta(p)
}

fn strip(c: &Value) -> Value {
    let mut c = c.clone();
    if let Some(map) = c.as_object_mut() {
        map.remove("env");
        map.remove("volumeMounts");
    }
    c
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn core_properties(pod in pod(), implicit in any::<bool>(), backlog in 1u16..=65535) {
        let defaults = Defaults { backlog, implicit };
        let (verdict, ops) = run(&pod, defaults);

        // The patch applies, and both appliers agree.
        let wire = serde_json::to_value(&ops).expect("ops serialise");
        let json_patch: json_patch::Patch = serde_json::from_value(wire).expect("JSON Patch");
        let mut out = pod.clone();
        json_patch::patch(&mut out, &json_patch).expect("patch applies");
        let mut ours = pod.clone();
        patch::apply(&mut ours, &ops).expect("our applier");
        prop_assert_eq!(&ours, &out);

        // A valid Pod (when the input was one: null metadata is not).
        if serde_json::from_value::<Pod>(pod.clone()).is_ok() {
            prop_assert!(serde_json::from_value::<Pod>(out.clone()).is_ok(), "not a Pod: {}", out);
        }

        // Twice == once.
        let (_, again) = run(&out, defaults);
        prop_assert!(again.is_empty(), "second run: {:?}", again);

        // Nothing outside the injection's reach changes.
        prop_assert_eq!(outside(&out), outside(&pod));

        // Existing containers keep everything but env/volumeMounts, and the
        // existing env entries and mounts keep their place.
        for list in ["containers", "initContainers"] {
            for before in pod["spec"][list].as_array().into_iter().flatten() {
                let after = out["spec"][list].as_array().expect("list")
                    .iter().find(|c| c["name"] == before["name"]).expect("still there");
                prop_assert_eq!(strip(after), strip(before));
                for (i, var) in before["env"].as_array().into_iter().flatten().enumerate() {
                    if var["name"] == "LD_PRELOAD" {
                        prop_assert_eq!(&after["env"][i]["name"], "LD_PRELOAD");
                    } else {
                        prop_assert_eq!(&after["env"][i], var);
                    }
                }
                for (i, m) in before["volumeMounts"].as_array().into_iter().flatten().enumerate() {
                    prop_assert_eq!(&after["volumeMounts"][i], m);
                }
            }
        }

        match verdict {
            Verdict::Skip(_) | Verdict::NotTargeted | Verdict::OptedOut => {
                // Only the status annotation may change.
                let mut without = out.clone();
                if let Some(Value::Object(a)) = without.pointer_mut("/metadata/annotations") {
                    a.remove("forcebacklog/status");
                }
                let mut before = pod.clone();
                if let Some(Value::Object(a)) = before.pointer_mut("/metadata/annotations") {
                    a.remove("forcebacklog/status");
                }
                prop_assert_eq!(strip_empty_meta(without), strip_empty_meta(before));
                if !matches!(verdict, Verdict::Skip(_)) {
                    prop_assert!(ops.is_empty());
                }
            }
            Verdict::Inject => {
                prop_assert_eq!(
                    out.pointer("/metadata/annotations/forcebacklog~1status"),
                    Some(&json!("injected"))
                );
                prop_assert_eq!(&out["spec"]["initContainers"][0]["name"], "forcebacklog-install");
            }
            Verdict::AlreadyInjected => {}
        }
    }
}

/// A skipped pod that had no metadata/annotations gets them created for the
/// status; once the status is removed they are empty: treat empty, null
/// and absent alike.
fn strip_empty_meta(mut pod: Value) -> Value {
    if let Some(Value::Object(meta)) = pod.get_mut("metadata")
        && meta
            .get("annotations")
            .is_some_and(|a| a.is_null() || a.as_object().is_some_and(Map::is_empty))
    {
        meta.remove("annotations");
    }
    if pod
        .get("metadata")
        .is_some_and(|m| m.is_null() || m.as_object().is_some_and(Map::is_empty))
    {
        pod.as_object_mut().expect("object").remove("metadata");
    }
    pod
}

fn review_of(pod: &Value, operation: &str) -> Vec<u8> {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": operation, "userInfo": {}, "object": pod
        }
    })
    .to_string()
    .into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Through the webhook: always answered, always allowed, the base64
    /// patch is exactly the core's operations; /validate never errors.
    #[test]
    fn review_properties(pod in pod(), namespace_opt_in in any::<bool>()) {
        use base64::prelude::{BASE64_STANDARD, Engine as _};
        use forcebacklog::review::{Endpoint, handle};
        let config = Injector::default();
        let reviewed = handle(&review_of(&pod, "CREATE"), Endpoint::Mutate { namespace_opt_in }, &config)
            .expect("answered");
        let wire: Value = serde_json::from_slice(&reviewed.body).expect("JSON");
        prop_assert_eq!(&wire["response"]["uid"], "u-1");
        prop_assert_eq!(&wire["response"]["allowed"], true);
        let defaults = Defaults { backlog: config.config().default_backlog, implicit: namespace_opt_in };
        let (_, ops) = run(&pod, defaults);
        match wire["response"]["patch"].as_str() {
            None => prop_assert!(ops.is_empty()),
            Some(b64) => {
                let sent: Value = serde_json::from_slice(&BASE64_STANDARD.decode(b64).expect("base64"))
                    .expect("JSON");
                prop_assert_eq!(sent, serde_json::to_value(&ops).expect("ops"));
                prop_assert_eq!(&wire["response"]["patchType"], "JSONPatch");
            }
        }
        let validated = handle(&review_of(&pod, "UPDATE"), Endpoint::Validate, &config)
            .expect("answered");
        let wire: Value = serde_json::from_slice(&validated.body).expect("JSON");
        prop_assert!(wire["response"]["allowed"].is_boolean());
    }

    /// Arbitrary bytes, and valid reviews cut short: an answer or an error, never a panic.
    #[test]
    fn review_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512), pod in pod(), cut in 0usize..4096) {
        use forcebacklog::review::{Endpoint, handle};
        let config = Injector::default();
        for endpoint in [Endpoint::Mutate { namespace_opt_in: true }, Endpoint::Validate] {
            let _ = handle(&bytes, endpoint, &config);
            let body = review_of(&pod, "CREATE");
            let _ = handle(&body[..cut.min(body.len())], endpoint, &config);
        }
    }
}
