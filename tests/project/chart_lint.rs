//! `helm lint --strict` of charts/forcebacklog with Helm's real engine, for
//! every certificate mode and the optional features, and the values schema
//! rejecting bad values with a message that names the key. A second engine,
//! helm-sdkpy's `libhelm_sdkpy.so`, lints the chart too.

use crate::support;

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
        "metrics": {"serviceMonitor": {"enabled": true, "labels": {"release": "prom"}},
                    "prometheusRule": {"enabled": true, "certificateExpiryDays": 7}},
        "server": {"maxConnections": 200, "shutdownDelay": "8s"},
        "terminationGracePeriodSeconds": 45,
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
        (
            json!({"initContainer": {"resources": {"cpu": "10m", "memory": "10m"}}}),
            "/initContainer/resources/memory",
        ),
        (
            json!({"certificates": {"mode": "certManager",
                "certManager": {"issuerRef": {"kind": "ClusterIssuer"}}}}),
            "missing property 'name'",
        ),
        (
            json!({"initContainer": {"imagePullSecrets": [{"name": "regcred"}]}}),
            "/initContainer/imagePullSecrets/0",
        ),
        (
            json!({"injection": {"excludeContainers": ["Istio_Proxy"]}}),
            "/injection/excludeContainers/0",
        ),
        (
            json!({"webhook": {"mutate": {"failurePolicy": "Never"}}}),
            "/webhook/mutate/failurePolicy",
        ),
        (
            json!({"webhook": {"matchConditions": "yes"}}),
            "/webhook/matchConditions",
        ),
        (
            json!({"webhook": {"objectSelector": {"matchExpressions": [{"key": "a", "operator": "Equals"}]}}}),
            "/webhook/objectSelector/matchExpressions/0/operator",
        ),
        (json!({"log": {"format": "yaml"}}), "/log/format"),
        (json!({"image": {"digest": "latest"}}), "/image/digest"),
        (json!({"replicas": 2}), "replicas"),
        (
            json!({"server": {"shutdownDelay": "5"}}),
            "/server/shutdownDelay",
        ),
        (
            json!({"server": {"maxConnections": 0}}),
            "/server/maxConnections",
        ),
        (
            json!({"terminationGracePeriodSeconds": "30s"}),
            "/terminationGracePeriodSeconds",
        ),
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

/// The schema's quantities and the binary's (`--init-cpu`, `--init-memory`)
/// follow Kubernetes' rules and agree: 1Ti and the n/u suffixes are
/// quantities, memory is a whole number of bytes (10m is refused for
/// memory, fine for CPU). The schema's memory pattern accepts binary-suffix
/// fractions in eighths only (1.5Gi, 0.125Ti): it is never looser than the
/// binary, and the few whole values it refuses are listed below.
#[test]
fn schema_and_binary_agree_on_quantities() {
    use forcebacklog::config::{parse_memory, parse_quantity};
    if !support::engine_available() {
        return;
    }
    let corpus = [
        "10m",
        "0",
        "1",
        "0.5",
        "5.",
        ".5",
        "+1",
        "100k",
        "16Mi",
        "1Gi",
        "2G",
        "1.5Gi",
        "64Ki",
        "1Ti",
        "1Pi",
        "1Ei",
        "1T",
        "1P",
        "1E",
        "1M",
        "1e3",
        "1E3",
        "5e-1",
        "2e+2",
        "100n",
        "250u",
        "1.5k",
        "1.500k",
        "1.001k",
        "1.0001k",
        "2000m",
        "1500m",
        "0.5Ki",
        "0.125Ki",
        "0.1Ki",
        "1.1Gi",
        "0.25Mi",
        ".5Gi",
        "1.",
        "1.0",
        "0.000001M",
        "0.0000001M",
        "16mb",
        "16MB",
        "16mi",
        "1K",
        "10 m",
        "",
        "-1",
        "-10m",
        "1e",
        "e3",
        "1.2.3",
        "Mi",
        ".Ki",
    ];
    // Whole bytes the schema's memory pattern does not list (written
    // without the fraction instead: 2Mi + 64Ki = 2112Ki).
    let schema_stricter = ["1.5e3", "2.0625Mi"];
    let mut values = Vec::new();
    for q in corpus.iter().chain(&schema_stricter) {
        values.push(json!({"initContainer": {"resources": {"cpu": q, "memory": "16Mi"}}}));
        values.push(json!({"initContainer": {"resources": {"cpu": "10m", "memory": q}}}));
    }
    let verdicts = support::schema_many(&values);
    for (i, q) in corpus.iter().chain(&schema_stricter).enumerate() {
        let (cpu, memory) = (&verdicts[2 * i], &verdicts[2 * i + 1]);
        assert_eq!(
            cpu.is_none(),
            parse_quantity(q).is_ok(),
            "cpu {q:?}: schema {cpu:?}, binary {:?}",
            parse_quantity(q)
        );
        let binary = parse_memory(q).is_ok();
        if schema_stricter.contains(q) {
            assert!(binary && memory.is_some(), "memory {q:?}: {memory:?}");
        } else {
            assert_eq!(
                memory.is_none(),
                binary,
                "memory {q:?}: schema {memory:?}, binary {:?}",
                parse_memory(q)
            );
        }
    }
    // The cases the issue names.
    assert!(parse_memory("1Ti").is_ok() && parse_memory("10m").is_err());
    assert!(parse_quantity("10m").is_ok());
}
