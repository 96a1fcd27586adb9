use super::*;
use crate::config::{parse_image, parse_memory, parse_quantity};
use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;
use serde_json::json;

const ANNOTATED: Defaults = Defaults {
    backlog: 4096,
    implicit: false,
};

/// Runs the core on `pod`, applies the patch with the json-patch crate
/// AND with [`apply`] (both must agree), checks the result is a valid
/// k8s-openapi Pod and that a second run changes nothing.
fn run(pod: &Value, defaults: Defaults) -> (Mutation, Value) {
    let injector = Injector::default();
    let text = pod.to_string();
    let view: PodView<'_> = serde_json::from_str(&text).expect("view");
    let m = mutate(&view, defaults, &injector);
    let wire = serde_json::to_value(&m.ops).expect("ops serialise");
    let patch: json_patch::Patch = serde_json::from_value(wire).expect("a JSON Patch");
    let mut by_crate = pod.clone();
    json_patch::patch(&mut by_crate, &patch).expect("patch applies");
    let mut by_us = pod.clone();
    apply(&mut by_us, &m.ops).expect("our applier");
    assert_eq!(by_crate, by_us, "json-patch and apply() agree");
    let _: Pod = serde_json::from_value(by_crate.clone()).expect("result is a Pod");
    // Idempotent: the mutated pod yields no operations.
    let text = by_crate.to_string();
    let view: PodView<'_> = serde_json::from_str(&text).expect("view");
    let again = mutate(&view, defaults, &injector);
    assert!(again.ops.is_empty(), "second run: {:?}", again.ops);
    (m, by_crate)
}

fn env_of(pod: &Value, list: &str, i: usize) -> Vec<(String, String)> {
    pod["spec"][list][i]["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["name"].as_str().unwrap_or_default().to_owned(),
                        e["value"].as_str().unwrap_or("<valueFrom>").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn escape_tokens() {
    assert_eq!(escape("forcebacklog/status"), "forcebacklog~1status");
    assert_eq!(escape("a~b/c"), "a~0b~1c");
}

#[test]
fn minimal_pod_every_shape_missing() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "annotations": {"forcebacklog/value": "234"}},
        "spec": {"containers": [{"name": "web", "image": "python:3.12-slim"}]}});
    let (m, out) = run(&pod, ANNOTATED);
    assert_eq!(m.verdict, Verdict::Inject);
    let paths: Vec<&str> = m.ops.iter().map(|o| o.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/metadata/annotations/forcebacklog~1status",
            "/spec/volumes",
            "/spec/containers/0/volumeMounts",
            "/spec/containers/0/env",
            "/spec/initContainers",
        ]
    );
    assert_eq!(
        out["metadata"]["annotations"]["forcebacklog/status"],
        "injected"
    );
    assert_eq!(
        out["spec"]["volumes"],
        json!([{"name": "forcebacklog-shim", "emptyDir": {"sizeLimit": "1Mi"}}])
    );
    assert_eq!(
        out["spec"]["containers"][0]["volumeMounts"],
        json!([{"name": "forcebacklog-shim", "mountPath": "/opt/forcebacklog", "readOnly": true}])
    );
    assert_eq!(
        env_of(&out, "containers", 0),
        [
            ("BACKLOG".into(), "234".into()),
            (
                "LD_PRELOAD".into(),
                "/opt/forcebacklog/libforcebacklog.so".into()
            )
        ]
    );
    let init = &out["spec"]["initContainers"][0];
    assert_eq!(
        init,
        &json!({
            "name": "forcebacklog-install",
            "image": crate::config::DEFAULT_IMAGE,
            "command": ["/forcebacklog", "install-shim", "/opt/forcebacklog"],
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumeMounts": [{"name": "forcebacklog-shim", "mountPath": "/opt/forcebacklog"}],
            "terminationMessagePolicy": "FallbackToLogsOnError"
        }),
        "a pod without resources (BestEffort) gets an init container without any"
    );
    // The image field is the only other thing in the container, untouched.
    assert_eq!(out["spec"]["containers"][0]["image"], "python:3.12-slim");

    // A pod that sets resources: requests = limits, the configured ones.
    let mut sized = pod.clone();
    sized["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "100m"}});
    let (_, out) = run(&sized, ANNOTATED);
    assert_eq!(
        out["spec"]["initContainers"][0]["resources"],
        json!({"requests": {"cpu": "10m", "memory": "16Mi"},
               "limits": {"cpu": "10m", "memory": "16Mi"}})
    );
}

#[test]
fn missing_metadata_and_annotations_are_created() {
    let ns = Defaults {
        backlog: 300,
        implicit: true,
    };
    let (m, out) = run(&json!({"spec": {"containers": [{"name": "a"}]}}), ns);
    assert_eq!(m.ops[0].path, "/metadata");
    assert_eq!(
        out["metadata"]["annotations"]["forcebacklog/status"],
        "injected"
    );
    let (m, out) = run(
        &json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "a"}]}}),
        ns,
    );
    assert_eq!(m.ops[0].path, "/metadata/annotations");
    assert_eq!(out["metadata"]["name"], "x");
    let (_, out) = run(
        &json!({"metadata": {"name": "x", "annotations": null}, "spec": {"containers": [{"name": "a"}], "volumes": null}}),
        ns,
    );
    assert_eq!(
        out["metadata"]["annotations"]["forcebacklog/status"],
        "injected"
    );
    assert_eq!(out["spec"]["volumes"][0]["name"], "forcebacklog-shim");
}

#[test]
fn existing_arrays_are_appended_and_init_container_goes_first() {
    let pod = json!({"metadata": {"annotations": {"forcebacklog/value": "512", "other": "x"}},
    "spec": {
        "volumes": [{"name": "data", "emptyDir": {}}],
        "initContainers": [{"name": "migrate", "image": "m"}],
        "containers": [
            {"name": "web", "image": "w", "env": [{"name": "A", "value": "1"}],
             "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            {"name": "worker", "image": "k"}
        ]}});
    let (m, out) = run(&pod, ANNOTATED);
    assert!(m.ops.iter().any(|o| o.path == "/spec/initContainers/0"));
    assert!(m.ops.iter().any(|o| o.path == "/spec/volumes/-"));
    assert!(m.ops.iter().any(|o| o.path == "/spec/containers/0/env/-"));
    let init: Vec<&str> = out["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(init, ["forcebacklog-install", "migrate"]);
    let vols: Vec<&str> = out["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(vols, ["data", "forcebacklog-shim"]);
    assert_eq!(
        env_of(&out, "containers", 0),
        [
            ("A".into(), "1".into()),
            ("BACKLOG".into(), "512".into()),
            (
                "LD_PRELOAD".into(),
                "/opt/forcebacklog/libforcebacklog.so".into()
            )
        ]
    );
    assert_eq!(
        out["spec"]["containers"][0]["volumeMounts"][0]["name"],
        "data"
    );
    assert_eq!(
        out["spec"]["containers"][1]["volumeMounts"][0]["readOnly"],
        true
    );
    assert_eq!(out["metadata"]["annotations"]["other"], "x");
}

#[test]
fn native_sidecar_indices_are_taken_before_the_insert() {
    let pod = json!({"metadata": {"annotations": {"forcebacklog/value": "512",
                                                  "forcebacklog/containers": "proxy"}},
        "spec": {
            "initContainers": [{"name": "setup"}, {"name": "proxy", "restartPolicy": "Always"}],
            "containers": [{"name": "web"}]}});
    let (_, out) = run(&pod, ANNOTATED);
    let init = out["spec"]["initContainers"].as_array().unwrap();
    assert_eq!(init[0]["name"], "forcebacklog-install");
    assert_eq!(init[1]["name"], "setup");
    assert!(init[1].get("env").is_none());
    assert_eq!(init[2]["name"], "proxy");
    assert_eq!(
        env_of(&out, "initContainers", 2)[0],
        ("BACKLOG".into(), "512".into())
    );
    assert!(out["spec"]["containers"][0].get("env").is_none());
}

#[test]
fn reinvocation_never_moves_our_init_container() {
    // First injection: ours goes to index 0, before the named native
    // sidecar, so the sidecar starts after the shim is installed.
    let pod = json!({"metadata": {"annotations": {"forcebacklog/value": "512",
                                                  "forcebacklog/containers": "proxy,web"}},
        "spec": {
            "initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
            "containers": [{"name": "web"}]}});
    let (_, mut out) = run(&pod, ANNOTATED);
    let names = |pod: &Value| -> Vec<String> {
        pod["spec"]["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&out), ["forcebacklog-install", "proxy"]);
    // Another webhook then puts its own init container and a native
    // sidecar first. Re-invoked, forcebacklog changes nothing and does
    // not move its init container back to the front.
    let init = out["spec"]["initContainers"].as_array_mut().unwrap();
    init.insert(0, json!({"name": "mesh-init"}));
    init.insert(0, json!({"name": "mesh-proxy", "restartPolicy": "Always"}));
    let text = out.to_string();
    let view: PodView<'_> = serde_json::from_str(&text).unwrap();
    let again = mutate(&view, ANNOTATED, &Injector::default());
    assert_eq!(again.verdict, Verdict::AlreadyInjected);
    assert!(again.ops.is_empty(), "{:?}", again.ops);
    assert_eq!(
        names(&out),
        ["mesh-proxy", "mesh-init", "forcebacklog-install", "proxy"]
    );

    // A named sidecar that another webhook adds after the first call:
    // skipped then, injected on the re-invocation, ours first.
    let pod = json!({"metadata": {"annotations": {"forcebacklog/value": "512",
                                                  "forcebacklog/containers": "mesh-proxy"}},
        "spec": {"containers": [{"name": "web"}]}});
    let (first, mut out) = run(&pod, ANNOTATED);
    assert!(
        matches!(first.verdict, Verdict::Skip(_)),
        "{:?}",
        first.verdict
    );
    out["spec"]["initContainers"] = json!([{"name": "mesh-proxy", "restartPolicy": "Always"}]);
    let (second, out) = run(&out, ANNOTATED);
    assert_eq!(second.verdict, Verdict::Inject);
    assert_eq!(names(&out), ["forcebacklog-install", "mesh-proxy"]);
    assert_eq!(
        out["metadata"]["annotations"]["forcebacklog/status"],
        "injected"
    );
}

#[test]
fn ld_preload_merge_is_written_and_kept() {
    let pod = json!({"metadata": {"annotations": {"forcebacklog/value": "512"}},
    "spec": {"containers": [
        {"name": "a", "env": [{"name": "LD_PRELOAD", "value": "/lib/x.so /lib/y.so"}]},
        {"name": "b", "env": [{"name": "LD_PRELOAD"}]},
        {"name": "c", "env": [{"name": "LD_PRELOAD", "value": "/opt/forcebacklog/libforcebacklog.so:/lib/z.so"}]}
    ]}});
    let (m, out) = run(&pod, ANNOTATED);
    let shim = "/opt/forcebacklog/libforcebacklog.so";
    // The existing value is replaced by the merged list, the shim
    // first: an `add` on an existing member replaces it (RFC 6902 4.1).
    let set: Vec<(&str, Value)> = m
        .ops
        .iter()
        .filter(|o| o.path.ends_with("/value"))
        .map(|o| (o.path.as_str(), o.value().unwrap()))
        .collect();
    assert_eq!(
        set,
        [
            (
                "/spec/containers/0/env/0/value",
                json!(format!("{shim} /lib/x.so /lib/y.so"))
            ),
            ("/spec/containers/1/env/0/value", json!(shim)),
        ]
    );
    assert!(m.ops.iter().all(|o| o.op == "add"));
    assert_eq!(
        env_of(&out, "containers", 0),
        [
            ("LD_PRELOAD".into(), format!("{shim} /lib/x.so /lib/y.so")),
            ("BACKLOG".into(), "512".into())
        ]
    );
    assert_eq!(
        env_of(&out, "containers", 1)[0],
        ("LD_PRELOAD".into(), shim.into())
    );
    assert_eq!(
        env_of(&out, "containers", 2)[0],
        ("LD_PRELOAD".into(), format!("{shim}:/lib/z.so"))
    );
}

#[test]
fn unknown_fields_survive() {
    let pod = json!({"metadata": {"annotations": {"forcebacklog/value": "512"},
                                  "x-vendor": {"keep": [1, 2, 3]}},
        "spec": {"futureField": {"a": true},
                 "containers": [{"name": "a", "resizePolicy2": [{"z": 1}],
                                 "env": [{"name": "K", "value": "v", "newEnvField": 7}]}]},
        "status": {"phase": "Pending"}});
    let (_, out) = run(&pod, ANNOTATED);
    assert_eq!(out["metadata"]["x-vendor"], json!({"keep": [1, 2, 3]}));
    assert_eq!(out["spec"]["futureField"], json!({"a": true}));
    assert_eq!(
        out["spec"]["containers"][0]["resizePolicy2"],
        json!([{"z": 1}])
    );
    assert_eq!(out["spec"]["containers"][0]["env"][0]["newEnvField"], 7);
    assert_eq!(out["status"], json!({"phase": "Pending"}));
}

#[test]
fn image_pull_policy_and_resources_come_from_config() {
    let config = InjectConfig {
        image: parse_image("registry.local/fb:1").unwrap(),
        image_pull_policy: Some(PullPolicy::IfNotPresent),
        init_resources: crate::config::InitResources {
            cpu: parse_quantity("20m").unwrap(),
            memory: parse_memory("32Mi").unwrap(),
        },
        volume_size_limit: parse_memory("2Mi").unwrap(),
        ..InjectConfig::default()
    };
    let init = serde_json::to_value(init_container(
        &config,
        InitResources::RequestsEqualLimits,
        &INSTALL_COMMAND,
    ))
    .unwrap();
    assert_eq!(init["image"], "registry.local/fb:1");
    assert_eq!(init["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        init["resources"]["limits"],
        json!({"cpu": "20m", "memory": "32Mi"})
    );
    assert_eq!(
        serde_json::to_value(volume(config.volume_size_limit.as_str())).unwrap()["emptyDir"]["sizeLimit"],
        "2Mi"
    );
    let _: k8s_openapi::api::core::v1::Container =
        serde_json::from_value(init).expect("a Container");
}

#[test]
fn each_injector_renders_its_own_configuration() {
    let pod = json!({"metadata": {"annotations": {"forcebacklog/value": "5"}},
                     "spec": {"containers": [{"name": "a",
                         "resources": {"requests": {"memory": "64Mi"}}}]}});
    let text = pod.to_string();
    let view: PodView<'_> = serde_json::from_str(&text).unwrap();
    let init = |injector: &Injector| {
        let ops = mutate(&view, ANNOTATED, injector).ops;
        let last = ops.last().unwrap().value().unwrap();
        (
            last[0]["image"].clone(),
            last[0]["resources"]["limits"]["memory"].clone(),
        )
    };
    let default = Injector::default();
    let custom = Injector::new(InjectConfig {
        image: parse_image("registry.local/fb:2").unwrap(),
        init_resources: crate::config::InitResources {
            memory: parse_memory("8Mi").unwrap(),
            ..crate::config::InitResources::default()
        },
        ..InjectConfig::default()
    });
    let expected_default = (json!(crate::config::DEFAULT_IMAGE), json!("16Mi"));
    assert_eq!(init(&default), expected_default);
    assert_eq!(init(&custom), (json!("registry.local/fb:2"), json!("8Mi")));
    // Interleaved on one thread: nothing carries over between them.
    assert_eq!(init(&default), expected_default);
    assert_eq!(custom.config().image.as_str(), "registry.local/fb:2");
}

#[test]
fn invalid_values_leave_the_pod_unchanged_but_the_status() {
    for bad in ["abc", "0", "70000", "-1", ""] {
        let pod = json!({"metadata": {"annotations": {"forcebacklog/value": bad}},
                         "spec": {"containers": [{"name": "a"}]}});
        let (m, out) = run(&pod, ANNOTATED);
        assert_eq!(m.ops.len(), 1, "{bad}: {:?}", m.ops);
        let mut expected = pod.clone();
        expected["metadata"]["annotations"]["forcebacklog/status"] = json!(format!(
            "skipped: forcebacklog/value: {bad:?} is not a backlog: expected a decimal integer in 1..=65535"
        ));
        assert_eq!(out, expected);
        assert_eq!(m.warnings.len(), 1);
    }
    for (key, bad) in [
        ("forcebacklog/containers", "ghost"),
        ("forcebacklog/mode", "fast"),
        ("forcebacklog/ports", "80,http"),
        ("forcebacklog/containers", ""),
    ] {
        let pod = json!({"metadata": {"annotations": {"forcebacklog/value": "9", key: bad}},
                         "spec": {"containers": [{"name": "a"}]}});
        let (m, out) = run(&pod, ANNOTATED);
        assert!(matches!(
            m.verdict,
            Verdict::Skip(plan::SkipReason::Invalid(_))
        ));
        let status = out["metadata"]["annotations"]["forcebacklog/status"]
            .as_str()
            .unwrap();
        assert!(status.starts_with(&format!("skipped: {key}: ")), "{status}");
        assert!(out["spec"]["containers"][0].get("env").is_none());
        assert!(out["spec"].get("initContainers").is_none());
    }
}

#[test]
fn apply_rejects_bad_paths() {
    let mut doc = json!({"a": [1]});
    let op = |p: &str| Op::add(p.into(), &0);
    assert!(apply(&mut doc, &[op("/b/c")]).is_err());
    assert!(apply(&mut doc, &[op("/a/5")]).is_err());
    assert!(apply(&mut doc, &[op("/a/01")]).is_err());
    assert!(apply(&mut doc, &[op("a")]).is_err());
    assert!(apply(&mut doc, &[op("/a/1")]).is_ok());
    assert_eq!(doc, json!({"a": [1, 0]}));
    let mut bad = op("/x");
    bad.op = "remove";
    assert!(matches!(
        apply(&mut doc, &[bad]),
        Err(ApplyError::Unsupported { .. })
    ));
    assert!(apply(&mut doc, &[op("/k~1e~0y")]).is_ok());
    assert_eq!(doc["k/e~y"], 0);
}

#[test]
fn view_from_value_matches_view_from_bytes() {
    let pod = json!({"metadata": {"annotations": {"forcebacklog/value": "77"}},
                     "spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "é\"q"}]}]}});
    let injector = Injector::default();
    let from_value = mutate(&PodView::deserialize(&pod).unwrap(), ANNOTATED, &injector);
    let text = pod.to_string();
    let from_bytes = mutate(&serde_json::from_str(&text).unwrap(), ANNOTATED, &injector);
    assert_eq!(from_value.ops, from_bytes.ops);
}

#[test]
fn paths_are_joined_as_format_writes_them() {
    assert_eq!(
        STATUS_PATH,
        format!(
            "/metadata/annotations/{}",
            escape(crate::annotations::STATUS)
        )
    );
    for n in [0, 7, 10, 99, 1234, usize::MAX] {
        assert_eq!(decimal(n, &mut Digits::default()), n.to_string());
    }
    assert_eq!(
        path(&["/spec/", "containers", "/", "3"]),
        "/spec/containers/3"
    );
    assert_eq!(joined(&["/a", "/1"], &["/env/", "-"]), "/a/1/env/-");
}
