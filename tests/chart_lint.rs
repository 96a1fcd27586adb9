//! `helm lint --strict` of charts/forcebacklog with Helm's real engine, for
//! every certificate mode and the optional features, and the values schema
//! rejecting bad values with a message that names the key.

#[path = "helm/support.rs"]
mod support;

use serde_json::{Value, json};

fn assert_lints(values: Value) {
    if !support::engine_available() {
        return;
    }
    let (ok, report) = support::lint(&values);
    assert!(
        ok,
        "helm lint --strict failed with values {values}:\n{report}"
    );
}

#[test]
fn lint_default_values() {
    assert_lints(json!({}));
}

#[test]
fn lint_cert_manager_self_signed() {
    assert_lints(json!({"certificates": {"mode": "certManager"}}));
}

#[test]
fn lint_cert_manager_cluster_issuer() {
    assert_lints(json!({"certificates": {"mode": "certManager",
        "certManager": {"issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}}}));
}

#[test]
fn lint_user_supplied_secret() {
    assert_lints(json!({"certificates": {"mode": "secret",
        "secret": {"name": "my-webhook-tls", "caBundle": "TFMwdExTMUNSVWRKVGlCRFJWSlU="}}}));
}

#[test]
fn lint_every_option_set() {
    assert_lints(json!({
        "replicaCount": 3,
        "image": {"repository": "registry.example/forcebacklog", "tag": "dev",
                  "pullPolicy": "Always"},
        "defaultBacklog": 1024,
        "initContainer": {"imagePullPolicy": "IfNotPresent",
                          "resources": {"cpu": "20m", "memory": "8Mi"}},
        "webhook": {"failurePolicy": "Fail", "timeoutSeconds": 3,
                    "excludeNamespaces": ["monitoring", "istio-system"],
                    "validation": {"enabled": false}},
        "log": {"level": "forcebacklog=debug", "format": "text"},
        "metrics": {"serviceMonitor": {"enabled": true, "labels": {"release": "prom"}}},
        "priorityClassName": "system-cluster-critical",
        "podDisruptionBudget": {"minAvailable": "50%"},
        "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        "podAnnotations": {"example.com/team": "platform"},
        "__namespace": "webhooks",
        "__name": "fb"
    }));
}

#[test]
fn lint_single_replica_without_pdb() {
    assert_lints(json!({"replicaCount": 1, "metrics": {"enabled": false}}));
}

/// Each bad value is rejected by values.schema.json before anything
/// renders, and the message names the offending key.
#[test]
fn schema_rejects_bad_values_naming_the_key() {
    if !support::engine_available() {
        return;
    }
    let cases = [
        (json!({"defaultBacklog": 0}), "/defaultBacklog"),
        (json!({"defaultBacklog": 65536}), "/defaultBacklog"),
        (json!({"defaultBacklog": "234"}), "/defaultBacklog"),
        (
            json!({"webhook": {"failurePolicy": "Sometimes"}}),
            "/webhook/failurePolicy",
        ),
        (
            json!({"webhook": {"timeoutSeconds": 31}}),
            "/webhook/timeoutSeconds",
        ),
        (
            json!({"webhook": {"excludeNamespaces": ["Bad_NS"]}}),
            "/webhook/excludeNamespaces/0",
        ),
        (
            json!({"certificates": {"mode": "vault"}}),
            "/certificates/mode",
        ),
        (
            json!({"certificates": {"mode": "secret"}}),
            "/certificates/secret/name",
        ),
        (
            json!({"certificates": {"mode": "secret", "secret": {"name": "x", "caBundle": "not base64!"}}}),
            "/certificates/secret/caBundle",
        ),
        (
            json!({"initContainer": {"resources": {"cpu": "ten", "memory": "16Mi"}}}),
            "/initContainer/resources/cpu",
        ),
        (json!({"log": {"format": "yaml"}}), "/log/format"),
        (json!({"image": {"digest": "latest"}}), "/image/digest"),
        (json!({"replicas": 2}), "replicas"),
    ];
    for (values, key) in cases {
        match support::schema(&values) {
            Ok(()) => panic!("values {values} were accepted; the schema must reject {key}"),
            Err(message) => assert!(
                message.contains(key),
                "rejecting {values}, the message should name {key}:\n{message}"
            ),
        }
    }
}
