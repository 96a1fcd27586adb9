//! AdmissionReview requests as the apiserver sends them.

use serde_json::{Value, json};

/// A Pod with two app containers, existing env, a securityContext, and a
/// field this code does not know.
pub fn pod(annotations: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "web-7d9f8-",
            "namespace": "shop",
            "labels": { "app": "web" },
            "annotations": annotations
        },
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "python:3.13-slim",
                    "command": ["python", "-m", "http.server", "8080"],
                    "ports": [{ "containerPort": 8080, "protocol": "TCP" }],
                    "env": [{ "name": "PYTHONUNBUFFERED", "value": "1" }],
                    "securityContext": { "runAsNonRoot": true, "runAsUser": 1000 }
                },
                {
                    "name": "metrics",
                    "image": "prom/statsd-exporter:v0.28.0",
                    "ports": [{ "containerPort": 9102 }]
                }
            ],
            "restartPolicy": "Always",
            "futureSchedulingHint": { "x-vendor": true }
        }
    })
}

/// A Deployment whose pod template carries `annotations`.
pub fn deployment(annotations: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "web", "namespace": "shop" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" }, "annotations": annotations },
                "spec": {
                    "containers": [{ "name": "web", "image": "python:3.13-slim" }]
                }
            }
        }
    })
}

/// An `admission.k8s.io/v1` AdmissionReview request for `object`.
pub fn review(uid: &str, operation: &str, object: &Value) -> Vec<u8> {
    let kind = object["kind"].as_str().unwrap_or("Pod");
    let (group, version) = match object["apiVersion"]
        .as_str()
        .unwrap_or("v1")
        .split_once('/')
    {
        Some((group, version)) => (group.to_owned(), version.to_owned()),
        None => (String::new(), "v1".to_owned()),
    };
    let resource = format!("{}s", kind.to_lowercase());
    let gvk = json!({ "group": group, "version": version, "kind": kind });
    let gvr = json!({ "group": group, "version": version, "resource": resource });
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": object["metadata"]["name"],
            "namespace": "shop",
            "operation": operation,
            "userInfo": { "username": "alice", "groups": ["system:authenticated"] },
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": { "apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions" }
        }
    }))
    .expect("serialise review")
}
