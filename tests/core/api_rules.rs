//! Pods the API server would refuse, or a kubelet would fail to start,
//! after a careless injection: through the whole webhook path
//! (AdmissionReview bytes → `review::handle` → base64 JSON Patch applied
//! with the json-patch crate). Each case is skipped with a reason, or the
//! injected pod keeps the rule the API server or the kubelet enforces.

use forcebacklog::config::InjectConfig;
use forcebacklog::patch::Injector;
use forcebacklog::review::Outcome;
use serde_json::{Value, json};
use std::collections::HashSet;
use support::Reviewed;

use crate::support;

fn review_with(pod: &Value, config: &Injector) -> Reviewed {
    let reviewed = support::review_with(pod, config);
    assert_unique_names(&reviewed.pod);
    reviewed
}

fn review(pod: &Value) -> Reviewed {
    review_with(pod, &Injector::default())
}

/// The API server's rule: container names are unique across
/// `containers`, `initContainers` and `ephemeralContainers`.
fn assert_unique_names(pod: &Value) {
    let mut seen = HashSet::new();
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for c in pod["spec"][list].as_array().into_iter().flatten() {
            let name = c["name"].as_str().expect("name");
            assert!(seen.insert(name.to_owned()), "Duplicate value: {name:?}");
        }
    }
}

fn pod(annotations: Value, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "namespace": "shop", "annotations": annotations},
           "spec": spec})
}

fn annotated(spec: Value) -> Value {
    pod(json!({"forcebacklog/value": "300"}), spec)
}

fn status(pod: &Value) -> &str {
    pod["metadata"]["annotations"]["forcebacklog/status"]
        .as_str()
        .unwrap_or_default()
}

fn env_names(container: &Value) -> Vec<&str> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["name"].as_str().expect("name"))
        .collect()
}

/// A skip leaves the pod as it was, with only the status added.
fn assert_skipped(input: &Value, r: &Reviewed, label: &str, reason: &str) {
    assert_eq!(r.outcome, Outcome::Skipped(label_static(label)), "{input}");
    assert_eq!(status(&r.pod), format!("skipped: {reason}"));
    let mut expected = input.clone();
    expected["metadata"]["annotations"]["forcebacklog/status"] =
        json!(format!("skipped: {reason}"));
    assert_eq!(r.pod, expected);
}

fn label_static(label: &str) -> &'static str {
    match label {
        "collision" => "collision",
        "mirror_pod" => "mirror_pod",
        "windows" => "windows",
        "no_containers" => "no_containers",
        other => panic!("unknown label {other}"),
    }
}

#[test]
fn an_app_container_named_like_our_init_container_is_a_collision() {
    let input = annotated(json!({"containers": [
        {"name": "forcebacklog-install", "image": "registry.example/tool:1"},
        {"name": "web", "image": "registry.example/web:1"}]}));
    let r = review(&input);
    assert_skipped(
        &input,
        &r,
        "collision",
        "container forcebacklog-install has the name of the init container forcebacklog adds",
    );
}

#[test]
fn a_native_sidecar_named_like_our_init_container_is_a_collision() {
    let input = annotated(json!({
        "initContainers": [{"name": "forcebacklog-install", "image": "registry.example/proxy:1",
                            "restartPolicy": "Always"}],
        "containers": [{"name": "web", "image": "registry.example/web:1"}]}));
    let r = review(&input);
    assert_skipped(
        &input,
        &r,
        "collision",
        "init container forcebacklog-install is not forcebacklog's (its command or volume differ)",
    );
}

#[test]
fn a_foreign_init_container_named_like_ours_is_not_taken_for_ours() {
    // Same name, someone else's command: no shim would ever be copied, so
    // the pod must not get LD_PRELOAD.
    for foreign in [
        json!({"name": "forcebacklog-install", "image": "busybox",
               "command": ["sh", "-c", "echo setup"]}),
        // Our command without our volume.
        json!({"name": "forcebacklog-install", "image": "registry.example/fb:1",
               "command": ["/forcebacklog", "install-shim", "/opt/forcebacklog"]}),
    ] {
        let input = annotated(json!({
            "initContainers": [foreign],
            "containers": [{"name": "web", "image": "registry.example/web:1"}]}));
        let r = review(&input);
        assert_skipped(
            &input,
            &r,
            "collision",
            "init container forcebacklog-install is not forcebacklog's (its command or volume differ)",
        );
        assert!(env_names(&r.pod["spec"]["containers"][0]).is_empty());
    }
    // Ours (from a first review) is recognised: a second review adds nothing.
    let input =
        annotated(json!({"containers": [{"name": "web", "image": "registry.example/web:1"}]}));
    let first = review(&input);
    assert_eq!(first.outcome, Outcome::Injected);
    let second = review(&first.pod);
    assert_eq!(second.outcome, Outcome::Untouched);
    assert_eq!(second.pod, first.pod);
}

#[test]
fn mirror_pods_are_skipped() {
    let input = pod(
        json!({"forcebacklog/value": "300", "kubernetes.io/config.mirror": "3c1b0e0f0f8d",
               "kubernetes.io/config.source": "file"}),
        json!({"nodeName": "node-1", "containers": [{"name": "web", "image": "registry.example/web:1"}]}),
    );
    let r = review(&input);
    assert_skipped(
        &input,
        &r,
        "mirror_pod",
        "mirror pod of a static pod (the kubelet runs the manifest on its node, not this object)",
    );
}

fn affinity(terms: Value) -> Value {
    json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": terms}}})
}

#[test]
fn windows_pods_selected_by_required_node_affinity_are_skipped() {
    let os = |operator: &str, values: Value| json!({"matchExpressions": [{"key": "kubernetes.io/os", "operator": operator, "values": values}]});
    for terms in [
        json!([os("In", json!(["windows"]))]),
        json!([os("NotIn", json!(["linux"]))]),
        // Every term excludes Linux.
        json!([os("In", json!(["windows"])),
               {"matchExpressions": [{"key": "node.kubernetes.io/instance-type", "operator": "Exists"},
                                     {"key": "kubernetes.io/os", "operator": "In", "values": ["windows"]}]}]),
    ] {
        let input = annotated(json!({"affinity": affinity(terms.clone()),
            "containers": [{"name": "web", "image": "registry.example/web:1"}]}));
        let r = review(&input);
        assert_skipped(
            &input,
            &r,
            "windows",
            "Windows pod (the shim is a Linux library)",
        );
    }
    // A term that allows Linux: the pod may run on Linux, and is injected.
    for terms in [
        json!([os("In", json!(["linux"]))]),
        json!([os("In", json!(["windows", "linux"]))]),
        json!([os("In", json!(["windows"])), os("In", json!(["linux"]))]),
        json!([{"matchExpressions": [{"key": "disktype", "operator": "In", "values": ["ssd"]}]}]),
        json!([os("NotIn", json!(["windows"]))]),
    ] {
        let input = annotated(json!({"affinity": affinity(terms.clone()),
            "containers": [{"name": "web", "image": "registry.example/web:1"}]}));
        assert_eq!(review(&input).outcome, Outcome::Injected, "{terms}");
    }
}

#[test]
fn a_read_only_volume_above_our_mount_point_is_skipped() {
    let mounted = |volume: Value, mount: Value| {
        annotated(json!({"volumes": [volume],
            "containers": [{"name": "web", "image": "registry.example/web:1",
                            "volumeMounts": [mount]}]}))
    };
    for (volume, mount, shown) in [
        (
            json!({"name": "cache", "emptyDir": {}}),
            json!({"name": "cache", "mountPath": "/opt", "readOnly": true}),
            "volume cache read-only at /opt",
        ),
        (
            json!({"name": "data", "persistentVolumeClaim": {"claimName": "data"}}),
            json!({"name": "data", "mountPath": "/", "readOnly": true}),
            "volume data read-only at /",
        ),
        (
            json!({"name": "data", "persistentVolumeClaim": {"claimName": "data", "readOnly": true}}),
            json!({"name": "data", "mountPath": "/opt/"}),
            "volume data read-only at /opt/",
        ),
    ] {
        let input = mounted(volume, mount);
        let r = review(&input);
        assert_skipped(
            &input,
            &r,
            "collision",
            &format!(
                "container web mounts {shown}, above /opt/forcebacklog: the mount point cannot be created"
            ),
        );
    }
    // ConfigMap and Secret volumes (the kubelet creates nested mount
    // points in them), writable mounts and mounts beside ours are fine.
    for (volume, mount) in [
        (
            json!({"name": "conf", "configMap": {"name": "conf"}}),
            json!({"name": "conf", "mountPath": "/opt", "readOnly": true}),
        ),
        (
            json!({"name": "conf", "secret": {"secretName": "conf"}}),
            json!({"name": "conf", "mountPath": "/opt", "readOnly": true}),
        ),
        (
            json!({"name": "cache", "emptyDir": {}}),
            json!({"name": "cache", "mountPath": "/opt"}),
        ),
        (
            json!({"name": "cache", "emptyDir": {}}),
            json!({"name": "cache", "mountPath": "/opt/other", "readOnly": true}),
        ),
    ] {
        let input = mounted(volume, mount);
        assert_eq!(review(&input).outcome, Outcome::Injected, "{input}");
    }
}

/// The pod's QoS class by Kubernetes' rules (`GetPodQOS`): BestEffort when
/// no container sets a non-zero CPU or memory request or limit; Guaranteed
/// when every container has CPU and memory limits and its requests (when
/// set) equal them; Burstable otherwise. Quantities compared as written.
fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .flat_map(|list| pod["spec"][*list].as_array().into_iter().flatten())
        .collect();
    let non_zero = |q: &Value| match q {
        Value::String(s) => s
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .any(|b| (b'1'..=b'9').contains(&b)),
        Value::Number(n) => n.as_f64() != Some(0.0),
        _ => false,
    };
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        for resource in ["cpu", "memory"] {
            let request = &c["resources"]["requests"][resource];
            let limit = &c["resources"]["limits"][resource];
            any |= non_zero(request) || non_zero(limit);
            if !non_zero(limit) || (!request.is_null() && request != limit) {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

#[test]
fn the_init_container_keeps_the_pods_qos_class() {
    let web = |resources: Value| {
        annotated(
            json!({"containers": [{"name": "web", "image": "registry.example/web:1",
                                         "resources": resources}]}),
        )
    };
    let both = json!({"cpu": "500m", "memory": "256Mi"});
    for (resources, class) in [
        (json!({}), "BestEffort"),
        (
            json!({"requests": {"cpu": "0", "memory": "0Mi"}}),
            "BestEffort",
        ),
        (
            json!({"requests": {"ephemeral-storage": "1Gi"}}),
            "BestEffort",
        ),
        (json!({"requests": both, "limits": both}), "Guaranteed"),
        (json!({"limits": both}), "Guaranteed"),
        (json!({"requests": {"cpu": "100m"}}), "Burstable"),
        (json!({"limits": {"memory": "1Gi"}}), "Burstable"),
    ] {
        let input = web(resources.clone());
        assert_eq!(qos_class(&input), class, "{resources}");
        let r = review(&input);
        assert_eq!(r.outcome, Outcome::Injected);
        assert_eq!(
            qos_class(&r.pod),
            class,
            "{resources}: {}",
            r.pod["spec"]["initContainers"][0]
        );
        let init = &r.pod["spec"]["initContainers"][0];
        if class == "BestEffort" {
            assert!(init.get("resources").is_none(), "{init}");
        } else {
            let tiny = json!({"cpu": "10m", "memory": "16Mi"});
            assert_eq!(init["resources"], json!({"requests": tiny, "limits": tiny}));
        }
    }
    // An init container or a native sidecar with resources counts too.
    let input = annotated(json!({
        "initContainers": [{"name": "setup", "image": "registry.example/setup:1",
                            "resources": {"requests": {"memory": "8Mi"}}}],
        "containers": [{"name": "web", "image": "registry.example/web:1"}]}));
    let r = review(&input);
    assert_eq!(qos_class(&r.pod), "Burstable");
    assert!(r.pod["spec"]["initContainers"][0]["resources"].is_object());
}

#[test]
fn configured_image_pull_secrets_are_added_when_missing() {
    let config = Injector::new(InjectConfig {
        image_pull_secrets: vec!["regcred".into(), "mirror-cred".into()],
        ..InjectConfig::default()
    });
    let web = json!({"name": "web", "image": "registry.example/web:1"});
    // No list: created with both.
    let r = review_with(&annotated(json!({"containers": [web]})), &config);
    assert_eq!(
        r.pod["spec"]["imagePullSecrets"],
        json!([{"name": "regcred"}, {"name": "mirror-cred"}])
    );
    // One of them already there: the other is appended, the pod's own kept first.
    let input = annotated(
        json!({"imagePullSecrets": [{"name": "own"}, {"name": "regcred"}],
                                 "containers": [web]}),
    );
    let r = review_with(&input, &config);
    assert_eq!(
        r.pod["spec"]["imagePullSecrets"],
        json!([{"name": "own"}, {"name": "regcred"}, {"name": "mirror-cred"}])
    );
    // A second review adds nothing.
    let again = review_with(&r.pod, &config);
    assert_eq!((again.outcome, &again.pod), (Outcome::Untouched, &r.pod));
    // Without configured secrets, the pod's list is not touched.
    let r = review(&input);
    assert_eq!(
        r.pod["spec"]["imagePullSecrets"],
        input["spec"]["imagePullSecrets"]
    );
    // A skipped pod gets no secret.
    let mirror = pod(
        json!({"forcebacklog/value": "300", "kubernetes.io/config.mirror": "x"}),
        json!({"containers": [web]}),
    );
    assert!(
        review_with(&mirror, &config).pod["spec"]
            .get("imagePullSecrets")
            .is_none()
    );
}

#[test]
fn mesh_proxies_are_left_alone_unless_named() {
    let spec = json!({"containers": [
        {"name": "web", "image": "registry.example/web:1"},
        {"name": "istio-proxy", "image": "istio/proxyv2:1.22"},
        {"name": "linkerd-proxy", "image": "cr.l5d.io/linkerd/proxy:stable"}]});
    let r = review(&annotated(spec.clone()));
    assert_eq!(r.outcome, Outcome::Injected);
    let injected: Vec<bool> = (0..3)
        .map(|i| env_names(&r.pod["spec"]["containers"][i]).contains(&"LD_PRELOAD"))
        .collect();
    assert_eq!(injected, [true, false, false]);
    // Named: injected like any other container.
    let named = pod(
        json!({"forcebacklog/value": "300", "forcebacklog/containers": "web,istio-proxy"}),
        spec.clone(),
    );
    let r = review(&named);
    let injected: Vec<bool> = (0..3)
        .map(|i| env_names(&r.pod["spec"]["containers"][i]).contains(&"LD_PRELOAD"))
        .collect();
    assert_eq!(injected, [true, true, false]);
    // The list is configurable; empty, every app container is injected.
    let config = Injector::new(InjectConfig {
        exclude_containers: vec![],
        ..InjectConfig::default()
    });
    let r = review_with(&annotated(spec.clone()), &config);
    assert!((0..3).all(|i| env_names(&r.pod["spec"]["containers"][i]).contains(&"LD_PRELOAD")));
    // A pod of proxies only: nothing to inject, skipped with the reason.
    let proxies =
        annotated(json!({"containers": [{"name": "istio-proxy", "image": "istio/proxyv2:1.22"}]}));
    let r = review(&proxies);
    assert_skipped(
        &proxies,
        &r,
        "no_containers",
        "the pod has no container to inject",
    );
}
