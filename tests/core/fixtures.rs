//! Realistic pods (`tests/fixtures/`) through the whole webhook path:
//! AdmissionReview bytes → `review::handle` → base64 JSON Patch, applied
//! with the json-patch crate; the result must be a valid k8s-openapi Pod,
//! a second review of it must change nothing, and no container field other
//! than `env` and `volumeMounts` may change.

use base64::prelude::{BASE64_STANDARD, Engine as _};
use forcebacklog::patch::Injector;
use forcebacklog::review::{Endpoint, Outcome, handle};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use std::path::Path;

const SHIM: &str = "/opt/forcebacklog/libforcebacklog.so";

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("fixture");
    serde_saphyr::from_str(&text).expect("fixture is YAML")
}

fn review_bytes(pod: &Value) -> Vec<u8> {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "d5d3e8c1-1111-4e2b-9c33-0123456789ab",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop", "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod, "oldObject": null, "dryRun": false
        }
    })
    .to_string()
    .into_bytes()
}

struct Result {
    outcome: Outcome,
    pod: Value,
    warnings: Vec<String>,
}

/// One review; the patch (if any) applied to the pod.
fn review(pod: &Value, namespace_opt_in: bool) -> Result {
    let reviewed = handle(
        &review_bytes(pod),
        Endpoint::Mutate { namespace_opt_in },
        &Injector::default(),
    )
    .expect("answered");
    let wire: Value = serde_json::from_slice(&reviewed.body).expect("JSON");
    let response = &wire["response"];
    assert_eq!(response["allowed"], true, "pods are never refused");
    let mut out = pod.clone();
    if let Some(patch) = response["patch"].as_str() {
        assert_eq!(response["patchType"], "JSONPatch");
        let patch: json_patch::Patch =
            serde_json::from_slice(&BASE64_STANDARD.decode(patch).expect("base64"))
                .expect("JSON Patch");
        json_patch::patch(&mut out, &patch).expect("patch applies");
    } else {
        assert!(response.get("patchType").is_none());
    }
    let warnings = response["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .map(|s| s.as_str().expect("string").to_owned())
                .collect()
        })
        .unwrap_or_default();
    Result {
        outcome: reviewed.outcome,
        pod: out,
        warnings,
    }
}

/// Reviews the fixture, checks the invariants, returns the result.
fn run(name: &str, namespace_opt_in: bool) -> (Value, Result) {
    let input = fixture(name);
    let _: Pod = serde_json::from_value(input.clone()).expect("fixture is a Pod");
    let first = review(&input, namespace_opt_in);
    let _: Pod = serde_json::from_value(first.pod.clone()).expect("result is a Pod");
    // Idempotent: reviewing the mutated pod changes nothing.
    let second = review(&first.pod, namespace_opt_in);
    assert_eq!(
        second.pod, first.pod,
        "{name}: second review changed the pod"
    );
    // Containers keep every field but env and volumeMounts, and their env
    // entries keep their positions.
    for list in ["containers", "initContainers"] {
        for before in input["spec"][list].as_array().into_iter().flatten() {
            let after = first.pod["spec"][list]
                .as_array()
                .expect("list")
                .iter()
                .find(|c| c["name"] == before["name"])
                .expect("container still there");
            let strip = |c: &Value| {
                let mut c = c.clone();
                let map = c.as_object_mut().expect("object");
                map.remove("env");
                map.remove("volumeMounts");
                c
            };
            assert_eq!(strip(after), strip(before), "{name}: {}", before["name"]);
            for (i, var) in before["env"].as_array().into_iter().flatten().enumerate() {
                let now = &after["env"][i];
                assert_eq!(now["name"], var["name"]);
                if var["name"] != "LD_PRELOAD" {
                    assert_eq!(now, var);
                }
            }
            for (i, mount) in before["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                assert_eq!(&after["volumeMounts"][i], mount);
            }
        }
    }
    (input, first)
}

fn env(pod: &Value, list: &str, name: &str) -> Vec<(String, String)> {
    pod["spec"][list]
        .as_array()
        .expect("list")
        .iter()
        .find(|c| c["name"] == name)
        .expect("container")["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["name"].as_str().expect("name").to_owned(),
                e["value"].as_str().unwrap_or("<valueFrom>").to_owned(),
            )
        })
        .collect()
}

fn status(pod: &Value) -> Option<&str> {
    pod["metadata"]["annotations"]["forcebacklog/status"].as_str()
}

fn init_names(pod: &Value) -> Vec<&str> {
    pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["name"].as_str().expect("name"))
        .collect()
}

#[test]
fn multi_container_pod_selected_containers_only() {
    let (_, r) = run("pod-multi-container.yaml", false);
    assert_eq!(r.outcome, Outcome::Injected);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(status(&r.pod), Some("injected"));
    assert_eq!(
        env(&r.pod, "containers", "web"),
        [
            ("POD_IP".into(), "<valueFrom>".into()),
            ("LOG_LEVEL".into(), "info".into()),
            ("BACKLOG".into(), "1024".into()),
            ("LD_PRELOAD".into(), SHIM.into()),
        ]
    );
    assert_eq!(
        env(&r.pod, "containers", "api"),
        [
            ("BACKLOG".into(), "1024".into()),
            ("LD_PRELOAD".into(), SHIM.into())
        ]
    );
    assert_eq!(
        env(&r.pod, "containers", "log-shipper"),
        [(
            "FLUENT_ELASTICSEARCH_HOST".into(),
            "logs.example.com".into()
        )]
    );
    assert_eq!(init_names(&r.pod), ["forcebacklog-install"]);
    let mounts = r.pod["spec"]["containers"][0]["volumeMounts"]
        .as_array()
        .expect("mounts");
    assert_eq!(
        mounts.last(),
        Some(
            &json!({"name": "forcebacklog-shim", "mountPath": "/opt/forcebacklog", "readOnly": true})
        )
    );
    assert_eq!(
        r.pod["spec"]["volumes"].as_array().expect("volumes").len(),
        4
    );
}

#[test]
fn existing_ld_preload_and_backlog() {
    let (_, r) = run("pod-existing-env.yaml", false);
    assert_eq!(r.outcome, Outcome::Injected);
    assert_eq!(
        env(&r.pod, "containers", "app"),
        [
            (
                "LD_PRELOAD".into(),
                format!("{SHIM}:/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
            ),
            ("BACKLOG".into(), "128".into()),
            ("MALLOC_CONF".into(), "background_thread:true".into()),
        ]
    );
    assert_eq!(
        env(&r.pod, "containers", "worker"),
        [
            (
                "LD_PRELOAD".into(),
                format!("{SHIM} /usr/lib/libtcmalloc.so /usr/lib/libtrace.so")
            ),
            ("BACKLOG".into(), "2000".into()),
        ]
    );
    assert_eq!(
        r.warnings,
        ["forcebacklog: container app: BACKLOG=128 set by the pod is kept (2000 not applied)"]
    );
}

#[test]
fn init_containers_and_native_sidecars() {
    let (_, r) = run("pod-init-and-sidecars.yaml", false);
    assert_eq!(r.outcome, Outcome::Injected);
    assert_eq!(
        init_names(&r.pod),
        ["forcebacklog-install", "wait-for-db", "envoy", "log-agent"]
    );
    assert_eq!(env(&r.pod, "initContainers", "envoy")[0].1, "512");
    assert!(env(&r.pod, "initContainers", "log-agent").is_empty());
    assert!(env(&r.pod, "initContainers", "wait-for-db").is_empty());
    assert_eq!(env(&r.pod, "containers", "app")[0].1, "512");
    let envoy = &r.pod["spec"]["initContainers"][2];
    assert_eq!(envoy["volumeMounts"][1]["name"], "forcebacklog-shim");
}

#[test]
fn unknown_fields_survive_and_mode_ports_are_passed() {
    let (input, r) = run("pod-unknown-fields.yaml", false);
    assert_eq!(r.outcome, Outcome::Injected);
    for pointer in [
        "/metadata/x-vendor-metadata",
        "/spec/someFutureField",
        "/spec/hostUsers",
        "/spec/resourceClaims",
        "/spec/containers/0/futureContainerField",
        "/spec/containers/0/env/0/futureEnvField",
        "/spec/containers/0/volumeMounts/0/futureMountField",
        "/spec/volumes/0/emptyDir/futureEmptyDirField",
        "/status",
    ] {
        assert_eq!(r.pod.pointer(pointer), input.pointer(pointer), "{pointer}");
        assert!(r.pod.pointer(pointer).is_some(), "{pointer}");
    }
    assert_eq!(
        env(&r.pod, "containers", "app"),
        [
            ("A".into(), "1".into()),
            ("BACKLOG".into(), "300".into()),
            ("LD_PRELOAD".into(), SHIM.into()),
            ("FORCEBACKLOG_MODE".into(), "set".into()),
            ("FORCEBACKLOG_PORTS".into(), "8080,9090".into()),
        ]
    );
}

#[test]
fn high_backlogs_and_the_sysctl() {
    let (_, r) = run("pod-high-backlog-sysctl.yaml", false);
    assert_eq!(r.outcome, Outcome::Injected);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let (_, r) = run("pod-high-backlog.yaml", false);
    assert_eq!(r.outcome, Outcome::Injected);
    assert_eq!(r.warnings.len(), 1);
    assert!(
        r.warnings[0].contains("backlog 8192 is above 4096"),
        "{:?}",
        r.warnings
    );
    assert!(r.warnings[0].contains("net.core.somaxconn"));
}

#[test]
fn skipped_pods_only_get_the_status() {
    for (name, label, reason) in [
        (
            "pod-windows.yaml",
            "windows",
            "skipped: Windows pod (the shim is a Linux library)",
        ),
        (
            "pod-ld-preload-valuefrom.yaml",
            "ld_preload_value_from",
            "skipped: container legacy takes LD_PRELOAD from valueFrom, which cannot be merged",
        ),
        (
            "pod-collision.yaml",
            "collision",
            "skipped: volume forcebacklog-shim already exists and is not an emptyDir",
        ),
    ] {
        let (input, r) = run(name, false);
        assert_eq!(r.outcome, Outcome::Skipped(label), "{name}");
        assert_eq!(status(&r.pod), Some(reason), "{name}");
        let mut expected = input.clone();
        expected["metadata"]["annotations"]["forcebacklog/status"] = json!(reason);
        assert_eq!(r.pod, expected, "{name}: nothing but the status");
        assert_eq!(
            r.warnings,
            [format!(
                "forcebacklog: pod not injected: {}",
                reason.trim_start_matches("skipped: ")
            )]
        );
    }
}

#[test]
fn opted_out_pod_in_an_opted_in_namespace() {
    let (input, r) = run("pod-opted-out.yaml", true);
    assert_eq!(r.outcome, Outcome::Skipped("opted_out"));
    assert_eq!(r.pod, input);
    // Without the opt-out the namespace opt-in injects the default backlog.
    let mut pod = input.clone();
    pod["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("annotations");
    let r = review(&pod, true);
    assert_eq!(r.outcome, Outcome::Injected);
    assert_eq!(env(&r.pod, "containers", "batch")[0].1, "4096");
    // And without any opt-in nothing happens.
    let r = review(&pod, false);
    assert_eq!((r.outcome, r.pod), (Outcome::Untouched, pod));
}

#[test]
fn every_fixture_is_a_valid_pod_after_review() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).expect("fixtures") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .to_string();
        if name.starts_with("pod-") && name.ends_with(".yaml") {
            for opt_in in [false, true] {
                run(&name, opt_in);
            }
            count += 1;
        }
    }
    assert!(count >= 10, "{count} fixtures");
}
