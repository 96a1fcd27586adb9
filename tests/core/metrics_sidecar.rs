//! The metrics sidecar of `forcebacklog/metrics` through the whole
//! webhook path (AdmissionReview bytes → `review::handle` → base64 JSON
//! Patch applied with the json-patch crate, the result read back as a
//! k8s-openapi Pod): where it goes, what it runs, Pod Security
//! "restricted", idempotence, and the cases where it is left out.

use forcebacklog::config::InjectConfig;
use forcebacklog::patch::Injector;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use support::Reviewed;

use crate::support;

fn review_with(pod: &Value, config: &Injector) -> Reviewed {
    let reviewed = support::review_with(pod, config);
    let _: Pod = serde_json::from_value(reviewed.pod.clone()).expect("the result is a Pod");
    reviewed
}

fn review(pod: &Value) -> Reviewed {
    review_with(pod, &Injector::default())
}

fn pod(metrics: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "annotations": {
            "forcebacklog/value": "1024", "forcebacklog/metrics": metrics}},
        "spec": spec,
    })
}

fn init_names(pod: &Value) -> Vec<&str> {
    pod["spec"]["initContainers"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default()
}

fn status(pod: &Value) -> &str {
    pod["metadata"]["annotations"]["forcebacklog/status"]
        .as_str()
        .unwrap_or_default()
}

#[test]
fn the_sidecar_follows_our_init_container_and_is_restricted() {
    let input = pod(
        "9464",
        json!({"containers": [{"name": "web", "image": "web:1",
                               "resources": {"requests": {"cpu": "100m"}}}]}),
    );
    let r = review(&input);
    assert_eq!(status(&r.pod), "injected");
    assert_eq!(
        init_names(&r.pod),
        ["forcebacklog-install", "forcebacklog-metrics"]
    );
    let sidecar = &r.pod["spec"]["initContainers"][1];
    assert_eq!(
        sidecar,
        &json!({
            "name": "forcebacklog-metrics",
            "image": forcebacklog::config::DEFAULT_IMAGE,
            "command": ["/forcebacklog", "sockets", "--serve", "0.0.0.0:9464"],
            "restartPolicy": "Always",
            "ports": [{"name": "fb-metrics", "containerPort": 9464, "protocol": "TCP"}],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                          "limits": {"cpu": "10m", "memory": "16Mi"}},
            "securityContext": {
                "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"}
            },
            "terminationMessagePolicy": "FallbackToLogsOnError"
        })
    );
    // Re-invocation (reinvocationPolicy: IfNeeded) changes nothing.
    let again = review(&r.pod);
    assert!(!again.patched, "second review patched: {:?}", again.pod);
}

#[test]
fn other_init_containers_come_after_it_and_best_effort_stays_best_effort() {
    let input = pod(
        "9100",
        json!({
            "initContainers": [
                {"name": "migrate", "image": "migrate:1"},
                {"name": "proxy", "image": "proxy:1", "restartPolicy": "Always"}
            ],
            "containers": [{"name": "web", "image": "web:1"}]
        }),
    );
    let r = review(&input);
    assert_eq!(
        init_names(&r.pod),
        [
            "forcebacklog-install",
            "forcebacklog-metrics",
            "migrate",
            "proxy"
        ]
    );
    let sidecar = &r.pod["spec"]["initContainers"][1];
    assert_eq!(sidecar["command"][3], "0.0.0.0:9100");
    assert_eq!(sidecar["resources"], Value::Null, "a BestEffort pod");
    assert!(!review(&r.pod).patched);
}

#[test]
fn an_already_injected_pod_gets_the_sidecar_after_our_init_container() {
    // Injected earlier without metrics (e.g. by `inject`), annotated since.
    let plain = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "annotations": {"forcebacklog/value": "1024"}},
        "spec": {"initContainers": [{"name": "first", "image": "first:1"}],
                 "containers": [{"name": "web", "image": "web:1"}]},
    });
    let mut injected = review(&plain).pod;
    assert_eq!(init_names(&injected), ["forcebacklog-install", "first"]);
    // Our init container is not first any more (another webhook ran after us).
    let init = injected["spec"]["initContainers"]
        .as_array_mut()
        .expect("init containers");
    init.swap(0, 1);
    injected["metadata"]["annotations"]["forcebacklog/metrics"] = json!("9464");
    let r = review(&injected);
    assert_eq!(
        init_names(&r.pod),
        ["first", "forcebacklog-install", "forcebacklog-metrics"]
    );
}

#[test]
fn an_invalid_port_skips_the_pod_and_names_the_key() {
    for bad in ["0", "65536", "http", "", " 9464"] {
        let r = review(&pod(
            bad,
            json!({"containers": [{"name": "web", "image": "web:1"}]}),
        ));
        let expected = format!(
            "skipped: forcebacklog/metrics: {bad:?} is not a port: expected a decimal integer in 1..=65535"
        );
        assert_eq!(status(&r.pod), expected);
        assert!(init_names(&r.pod).is_empty(), "{bad}: {:?}", r.pod);
    }
}

#[test]
fn without_native_sidecars_the_shim_is_injected_with_a_warning() {
    let config = Injector::new(InjectConfig {
        native_sidecars: false,
        ..InjectConfig::default()
    });
    let r = review_with(
        &pod(
            "9464",
            json!({"containers": [{"name": "web", "image": "web:1"}]}),
        ),
        &config,
    );
    assert_eq!(status(&r.pod), "injected");
    assert_eq!(init_names(&r.pod), ["forcebacklog-install"]);
    assert!(
        r.warnings.iter().any(|w| w
            == "forcebacklog: forcebacklog/metrics: no metrics sidecar: it is a native sidecar, which needs Kubernetes 1.29 or later"),
        "{:?}",
        r.warnings
    );
}

#[test]
fn a_port_the_app_declares_is_left_to_the_app() {
    let r = review(&pod(
        "8080",
        json!({"containers": [{"name": "web", "image": "web:1",
                               "ports": [{"containerPort": 8080}]}]}),
    ));
    assert_eq!(status(&r.pod), "injected");
    assert_eq!(init_names(&r.pod), ["forcebacklog-install"]);
    assert!(
        r.warnings.iter().any(|w| w
            == "forcebacklog: forcebacklog/metrics: no metrics sidecar: port 8080 is already a port of container web"),
        "{:?}",
        r.warnings
    );
}

#[test]
fn a_container_named_like_the_sidecar_is_a_collision() {
    let r = review(&pod(
        "9464",
        json!({"containers": [{"name": "web", "image": "web:1"},
                              {"name": "forcebacklog-metrics", "image": "other:1"}]}),
    ));
    assert_eq!(
        status(&r.pod),
        "skipped: container forcebacklog-metrics has the name of the metrics sidecar forcebacklog adds"
    );
    let r = review(&pod(
        "9464",
        json!({"initContainers": [{"name": "forcebacklog-metrics", "image": "other:1"}],
               "containers": [{"name": "web", "image": "web:1"}]}),
    ));
    assert_eq!(
        status(&r.pod),
        "skipped: init container forcebacklog-metrics is not forcebacklog's metrics sidecar"
    );
}
