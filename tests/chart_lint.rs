//! `helm lint --strict` of charts/forcebacklog with Helm's real engine, for
//! every certificate mode and the optional features, and the values schema
//! rejecting bad values with a message that names the key. A second engine,
//! helm-sdkpy's `libhelm_sdkpy.so`, lints the chart too.

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

/// The second engine, helm-sdkpy's build of Helm's Go library, lints the
/// chart clean (strict: no warning, no error) with its default values.
#[test]
fn lint_passes_with_helm_sdkpy() {
    if !support::sdkpy_available() {
        return;
    }
    let out = support::sdkpy_lint(&[&support::chart_dir().to_string_lossy()]);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "helm-sdkpy lint of charts/forcebacklog failed:\n{report}"
    );
    assert!(
        report.contains("linted 1 chart(s)"),
        "no lint summary:\n{report}"
    );
}

/// The helm-sdkpy check is not a no-op: a copy of the chart with a broken
/// Chart.yaml, or with a template that fails to render, is rejected.
#[test]
fn helm_sdkpy_lint_rejects_broken_charts() {
    if !support::sdkpy_available() {
        return;
    }
    let breaks: [(&str, &str, &str); 2] = [
        (
            "Chart.yaml",
            "apiVersion: v2\nname: [forcebacklog\n",
            "[ERROR] Chart.yaml",
        ),
        (
            "templates/broken.yaml",
            "{{ .Values.noSuchKey.deeper }}\n",
            "[ERROR] templates/",
        ),
    ];
    for (file, text, expected) in breaks {
        let dir = tempfile::tempdir().expect("temp dir");
        let chart = dir.path().join("forcebacklog");
        copy_dir(&support::chart_dir(), &chart);
        std::fs::write(chart.join(file), text).expect("write the broken file");
        let out = support::sdkpy_lint(&[&chart.to_string_lossy()]);
        let report = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "helm-sdkpy lint accepted a chart with a broken {file}:\n{report}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            report.contains(expected),
            "breaking {file}, the lint should report {expected}:\n{report}"
        );
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create the chart copy");
    for entry in std::fs::read_dir(from).expect("read the chart") {
        let entry = entry.expect("readable entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a chart file");
        }
    }
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
            json!({"certificates": {"certManager": {"caDuration": "10y"}}}),
            "/certificates/certManager/caDuration",
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
