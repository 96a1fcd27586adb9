//! `forcebacklog/method: supervise` through the whole webhook path
//! (AdmissionReview bytes → `review::handle` → base64 JSON Patch applied
//! with the json-patch crate, the result read back as a k8s-openapi Pod):
//! the wrapped command with the pod's `args` untouched, the init container
//! that also copies the binary, no `LD_PRELOAD`, the skip of a container
//! without `command`, idempotence, and bad values refused by `/validate`.

use forcebacklog::patch::Injector;
use forcebacklog::review::{Endpoint, Outcome, handle};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use support::Reviewed;

use crate::support;

fn review(pod: &Value) -> Reviewed {
    let reviewed = support::review_with(pod, &Injector::default());
    let _: Pod = serde_json::from_value(reviewed.pod.clone()).expect("the result is a Pod");
    reviewed
}

fn pod(annotations: Value, containers: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "static-server", "annotations": annotations},
        "spec": {"containers": containers},
    })
}

fn supervise(extra: &[(&str, &str)]) -> Value {
    let mut a = json!({"forcebacklog/value": "1024", "forcebacklog/method": "supervise"});
    for (k, v) in extra {
        a[*k] = json!(v);
    }
    a
}

fn status(pod: &Value) -> &str {
    pod["metadata"]["annotations"]["forcebacklog/status"]
        .as_str()
        .unwrap_or_default()
}

fn env_names(c: &Value) -> Vec<&str> {
    c["env"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["name"].as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn the_command_is_wrapped_and_args_are_kept() {
    let input = pod(
        supervise(&[]),
        json!([{"name": "server", "image": "registry.example/static-server:1",
                "command": ["/server", "--listen"], "args": ["8080", "--verbose"],
                "env": [{"name": "GREETING", "value": "kept"}]}]),
    );
    let r = review(&input);
    assert_eq!(r.outcome, Outcome::Injected);
    assert_eq!(status(&r.pod), "injected");
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let c = &r.pod["spec"]["containers"][0];
    assert_eq!(
        c["command"],
        json!([
            "/opt/forcebacklog/forcebacklog",
            "run",
            "--backlog",
            "1024",
            "--method",
            "supervise",
            "--",
            "/server",
            "--listen"
        ])
    );
    assert_eq!(c["args"], json!(["8080", "--verbose"]), "args untouched");
    // No preload and no BACKLOG: the settings are on the command line.
    assert_eq!(env_names(c), ["GREETING"]);
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "forcebacklog-shim", "mountPath": "/opt/forcebacklog", "readOnly": true}])
    );
    let init = &r.pod["spec"]["initContainers"][0];
    assert_eq!(init["name"], "forcebacklog-install");
    assert_eq!(
        init["command"],
        json!([
            "/forcebacklog",
            "install-shim",
            "/opt/forcebacklog",
            "--with-binary"
        ])
    );
    // Pod Security "restricted", as for the shim.
    let sc = &init["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    // The volume holds the whole binary (about 14 MB), not just the shim.
    assert_eq!(
        r.pod["spec"]["volumes"],
        json!([{"name": "forcebacklog-shim", "emptyDir": {"sizeLimit": "32Mi"}}])
    );

    // Idempotent: the output reviewed again gets nothing more.
    let again = review(&r.pod);
    assert!(!again.patched, "{:?}", again.pod);
    assert_eq!(again.outcome, Outcome::Untouched);
}

#[test]
fn mode_goes_on_the_command_line() {
    for mode in ["set", "raise"] {
        let input = pod(
            supervise(&[("forcebacklog/mode", mode)]),
            json!([{"name": "server", "image": "s:1", "command": ["/server"]}]),
        );
        let r = review(&input);
        assert_eq!(
            r.pod["spec"]["containers"][0]["command"],
            json!([
                "/opt/forcebacklog/forcebacklog",
                "run",
                "--backlog",
                "1024",
                "--mode",
                mode,
                "--method",
                "supervise",
                "--",
                "/server"
            ])
        );
        assert!(env_names(&r.pod["spec"]["containers"][0]).is_empty());
    }
}

#[test]
fn a_container_without_command_skips_the_pod_with_the_reason() {
    for containers in [
        json!([{"name": "server", "image": "s:1", "args": ["8080"]}]),
        json!([{"name": "server", "image": "s:1", "command": []}]),
        // One container with a command does not make up for the other.
        json!([{"name": "web", "image": "w:1", "command": ["/web"]},
               {"name": "server", "image": "s:1"}]),
    ] {
        let input = pod(supervise(&[]), containers);
        let r = review(&input);
        assert_eq!(r.outcome, Outcome::Skipped("no_command"), "{input}");
        let reason = "container server has no command: forcebacklog/method \"supervise\" wraps the container's command, and the image's entrypoint is not visible to forcebacklog; set command (the image's entrypoint) in the container, or leave the container out with forcebacklog/containers";
        assert_eq!(status(&r.pod), format!("skipped: {reason}"));
        assert_eq!(
            r.warnings,
            [format!("forcebacklog: pod not injected: {reason}")]
        );
        // Only the status is added.
        let mut expected = input.clone();
        expected["metadata"]["annotations"]["forcebacklog/status"] =
            json!(format!("skipped: {reason}"));
        assert_eq!(r.pod, expected);
    }
    // The fix the reason names: select only the container with a command.
    let input = pod(
        supervise(&[("forcebacklog/containers", "web")]),
        json!([{"name": "web", "image": "w:1", "command": ["/web"]},
               {"name": "server", "image": "s:1"}]),
    );
    let r = review(&input);
    assert_eq!(r.outcome, Outcome::Injected);
    assert_eq!(
        r.pod["spec"]["containers"][0]["command"][0],
        "/opt/forcebacklog/forcebacklog"
    );
    assert!(r.pod["spec"]["containers"][1]["command"].is_null());
    assert!(r.pod["spec"]["containers"][1]["volumeMounts"].is_null());
}

#[test]
fn a_pod_injected_with_the_shim_gets_the_binary_flag_appended() {
    // The shim's injection, then the method changed to supervise (an
    // `inject` output edited and applied again).
    let shim = review(&pod(
        json!({"forcebacklog/value": "1024"}),
        json!([{"name": "server", "image": "s:1", "command": ["/server"]}]),
    ));
    assert_eq!(shim.outcome, Outcome::Injected);
    let mut edited = shim.pod.clone();
    edited["metadata"]["annotations"]["forcebacklog/method"] = json!("supervise");
    let r = review(&edited);
    assert_eq!(r.outcome, Outcome::Injected);
    assert_eq!(
        r.pod["spec"]["initContainers"][0]["command"],
        json!([
            "/forcebacklog",
            "install-shim",
            "/opt/forcebacklog",
            "--with-binary"
        ])
    );
    assert_eq!(
        r.pod["spec"]["initContainers"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        r.pod["spec"]["containers"][0]["command"],
        json!([
            "/opt/forcebacklog/forcebacklog",
            "run",
            "--backlog",
            "1024",
            "--method",
            "supervise",
            "--",
            "/server"
        ])
    );
    assert!(!review(&r.pod).patched, "nothing more the second time");
}

#[test]
fn a_backlog_the_container_sets_is_named_in_a_warning() {
    let input = pod(
        supervise(&[]),
        json!([{"name": "server", "image": "s:1", "command": ["/server"],
                "env": [{"name": "BACKLOG", "value": "50"}]}]),
    );
    let r = review(&input);
    assert_eq!(r.outcome, Outcome::Injected);
    assert_eq!(
        r.warnings,
        [
            "forcebacklog: container server: BACKLOG set by the pod is not read under forcebacklog/method \"supervise\" (backlog 1024 applies)"
        ]
    );
}

/// A Deployment through `/validate`.
fn validate(annotations: Value) -> (Outcome, Value) {
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "static-server", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "s"}}, "template": {
            "metadata": {"labels": {"app": "s"}, "annotations": annotations},
            "spec": {"containers": [{"name": "server", "image": "s:1", "command": ["/server"]}]}}}
    });
    let body = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "5e0b1c2d-3e4f-4a6b-8c7d-9e0f1a2b3c4d",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "namespace": "shop", "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin"},
            "object": deployment, "oldObject": null, "dryRun": false
        }
    })
    .to_string();
    let reviewed =
        handle(body.as_bytes(), Endpoint::Validate, &Injector::default()).expect("answered");
    let wire: Value = serde_json::from_slice(&reviewed.body).expect("JSON");
    (reviewed.outcome, wire["response"].clone())
}

#[test]
fn bad_values_are_refused_by_validate_and_skip_pods() {
    let (outcome, response) = validate(supervise(&[]));
    assert_eq!(outcome, Outcome::Allowed, "{response}");
    for (annotations, message) in [
        (
            json!({"forcebacklog/value": "1024", "forcebacklog/method": "ptrace"}),
            r#"forcebacklog/method: "ptrace" is not a method: expected "shim" or "supervise""#,
        ),
        // Not targeted by itself, still judged.
        (
            json!({"forcebacklog/method": "Supervise"}),
            r#"forcebacklog/method: "Supervise" is not a method: expected "shim" or "supervise""#,
        ),
        (
            supervise(&[("forcebacklog/ports", "8080")]),
            r#"forcebacklog/ports: "8080" cannot be used with forcebacklog/method: "supervise" (the supervisor changes every listener): expected no forcebacklog/ports, or forcebacklog/method: "shim""#,
        ),
    ] {
        let (outcome, response) = validate(annotations.clone());
        assert_eq!(outcome, Outcome::Denied, "{annotations}");
        assert_eq!(response["allowed"], false);
        assert_eq!(response["status"]["message"], message, "{response}");
        // A pod with the same annotations is admitted, skipped with the reason.
        let input = pod(
            annotations.clone(),
            json!([{"name": "server", "image": "s:1", "command": ["/server"]}]),
        );
        let r = review(&input);
        if annotations.get("forcebacklog/value").is_some() {
            assert_eq!(r.outcome, Outcome::Skipped("invalid"));
            assert_eq!(status(&r.pod), format!("skipped: {message}"));
        } else {
            assert!(!r.patched);
        }
    }
}
