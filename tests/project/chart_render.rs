//! charts/forcebacklog rendered by Helm's real engine: the fields the
//! webhook contract depends on (paths, selectors, policies, ports, flags,
//! certificates), and deploy/ agreeing with the chart.

use crate::support;

use serde_json::{Value, json};
use std::sync::Arc;

/// The `webhooks` entry called `name`.
fn entry<'a>(config: &'a Value, name: &str) -> &'a Value {
    config["webhooks"]
        .as_array()
        .and_then(|w| w.iter().find(|e| e["name"] == name))
        .unwrap_or_else(|| panic!("no webhook entry {name} in {config:#}"))
}

fn container(rendered: &support::Rendered, deployment: &str) -> Value {
    rendered.get(deployment)["spec"]["template"]["spec"]["containers"][0].clone()
}

fn args(container: &Value) -> Vec<String> {
    container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_owned())
        .collect()
}

fn namespace_expressions(entry: &Value) -> Vec<(String, String, Vec<String>)> {
    entry["namespaceSelector"]["matchExpressions"]
        .as_array()
        .expect("matchExpressions")
        .iter()
        .map(|e| {
            (
                e["key"].as_str().expect("key").to_owned(),
                e["operator"].as_str().expect("operator").to_owned(),
                e["values"]
                    .as_array()
                    .expect("values")
                    .iter()
                    .map(|v| v.as_str().expect("string").to_owned())
                    .collect(),
            )
        })
        .collect()
}

fn ns_name_not_in(namespaces: &[&str]) -> (String, String, Vec<String>) {
    (
        "kubernetes.io/metadata.name".to_owned(),
        "NotIn".to_owned(),
        namespaces.iter().map(|s| (*s).to_owned()).collect(),
    )
}

/// The namespaces of cert-manager and the CNIs, excluded by default.
const SYSTEM: [&str; 7] = [
    "cert-manager",
    "calico-system",
    "calico-apiserver",
    "tigera-operator",
    "kube-flannel",
    "cilium",
    "linkerd-cni",
];

/// kube-system, the release namespace, [`SYSTEM`], then `more`.
fn excluded(release: &str, more: &[&str]) -> (String, String, Vec<String>) {
    let mut all = vec!["kube-system", release];
    all.extend(SYSTEM);
    all.extend(more);
    ns_name_not_in(&all)
}

fn label(operator: &str, values: &[&str]) -> (String, String, Vec<String>) {
    (
        "forcebacklog/inject".to_owned(),
        operator.to_owned(),
        values.iter().map(|s| (*s).to_owned()).collect(),
    )
}

#[test]
fn mutating_webhook_has_two_disjoint_pod_entries() {
    if !support::engine_available() {
        return;
    }
    let r = support::render(&json!({}));
    let config = r.get("MutatingWebhookConfiguration/forcebacklog");
    assert_eq!(config["webhooks"].as_array().map(Vec::len), Some(2));
    let annotated = entry(config, "pods.forcebacklog.github.io");
    let labelled = entry(config, "namespace-pods.forcebacklog.github.io");

    for (e, path) in [(annotated, "/mutate"), (labelled, "/mutate/namespace")] {
        let service = &e["clientConfig"]["service"];
        assert_eq!(service["name"], "forcebacklog");
        assert_eq!(service["namespace"], "forcebacklog");
        assert_eq!(service["path"], path);
        assert_eq!(service["port"], 443);
        assert_eq!(
            e["rules"],
            json!([{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                    "resources": ["pods"], "scope": "Namespaced"}])
        );
        assert_eq!(e["failurePolicy"], "Ignore");
        assert_eq!(e["timeoutSeconds"], 5);
        assert_eq!(e["sideEffects"], "None");
        assert_eq!(e["reinvocationPolicy"], "IfNeeded");
        assert_eq!(e["admissionReviewVersions"], json!(["v1"]));
        assert!(
            e["objectSelector"].is_null(),
            "annotations cannot be selected"
        );
    }
    // Only pods with a forcebacklog/* annotation reach /mutate; every pod of
    // an opted-in namespace reaches /mutate/namespace.
    assert_eq!(
        annotated["matchConditions"],
        json!([{"name": "forcebacklog-annotated",
                "expression": "has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('forcebacklog/'))"}])
    );
    assert!(labelled["matchConditions"].is_null());
    // Disjoint: a namespace labelled `enabled` reaches only /mutate/namespace,
    // `disabled` reaches neither, kube-system and the release namespace neither.
    assert_eq!(
        namespace_expressions(annotated),
        vec![
            excluded("forcebacklog", &[]),
            label("NotIn", &["disabled", "enabled"]),
        ]
    );
    assert_eq!(
        namespace_expressions(labelled),
        vec![excluded("forcebacklog", &[]), label("In", &["enabled"]),]
    );
}

#[test]
fn validating_webhook_covers_workloads_and_pods() {
    if !support::engine_available() {
        return;
    }
    let r = support::render(&json!({}));
    let config = r.get("ValidatingWebhookConfiguration/forcebacklog");
    let e = entry(config, "workloads.forcebacklog.github.io");
    assert_eq!(e["clientConfig"]["service"]["path"], "/validate");
    assert_eq!(e["failurePolicy"], "Ignore");
    assert_eq!(e["sideEffects"], "None");
    assert_eq!(e["admissionReviewVersions"], json!(["v1"]));
    let mut covered = Vec::new();
    for rule in e["rules"].as_array().expect("rules") {
        assert_eq!(rule["operations"], json!(["CREATE", "UPDATE"]));
        for group in rule["apiGroups"].as_array().expect("groups") {
            for resource in rule["resources"].as_array().expect("resources") {
                covered.push(format!(
                    "{}/{}/{}",
                    group.as_str().expect("group"),
                    rule["apiVersions"][0].as_str().expect("version"),
                    resource.as_str().expect("resource")
                ));
            }
        }
    }
    covered.sort();
    assert_eq!(
        covered,
        [
            "/v1/pods",
            "/v1/replicationcontrollers",
            "apps/v1/daemonsets",
            "apps/v1/deployments",
            "apps/v1/replicasets",
            "apps/v1/statefulsets",
            "batch/v1/cronjobs",
            "batch/v1/jobs",
        ]
    );
    assert_eq!(
        namespace_expressions(e),
        vec![excluded("forcebacklog", &[]), label("NotIn", &["disabled"]),]
    );
}

#[test]
fn deployment_is_hardened_and_passes_the_values_to_serve() {
    if !support::engine_available() {
        return;
    }
    let r = support::render(&json!({}));
    let deployment = r.get("Deployment/forcebacklog");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert!(pod["topologySpreadConstraints"].is_array());
    assert!(pod["affinity"]["podAntiAffinity"].is_object());

    let c = container(&r, "Deployment/forcebacklog");
    let image = format!(
        "ghcr.io/forcebacklog/forcebacklog:{}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(c["image"], image.as_str());
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["runAsUser"], 65532);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                c["resources"][kind][resource].is_string(),
                "{kind}.{resource}"
            );
        }
    }
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "admin"})
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "admin"})
    );
    assert_eq!(
        c["ports"],
        json!([{"name": "https", "containerPort": 8443, "protocol": "TCP"},
               {"name": "admin", "containerPort": 8080, "protocol": "TCP"}])
    );
    // The injected image is the chart's own image.
    assert_eq!(
        args(&c),
        [
            "serve",
            "--tls-cert=/etc/forcebacklog/tls/tls.crt",
            "--tls-key=/etc/forcebacklog/tls/tls.key",
            "--addr=0.0.0.0:8443",
            "--admin-addr=0.0.0.0:8080",
            &format!("--image={image}"),
            "--default-backlog=4096",
            "--init-cpu=10m",
            "--init-memory=16Mi",
            "--exclude-container=istio-proxy",
            "--exclude-container=linkerd-proxy",
            "--log-format=json",
            "--log-level=info",
            "--max-connections=1000",
            "--shutdown-delay=5s",
        ]
    );
    // The TLS Secret is a whole-Secret volume (reloadable), at the flags' path.
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/etc/forcebacklog/tls");
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"],
        "forcebacklog-tls"
    );
    assert!(c["volumeMounts"][0]["subPath"].is_null());

    let service = r.get("Service/forcebacklog");
    assert_eq!(service["spec"]["ports"][0]["port"], 443);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "https");
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    let pdb = r.get("PodDisruptionBudget/forcebacklog");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert!(r.of_kind("ServiceMonitor").is_empty());
    for line in [
        "kubectl label namespace",
        "forcebacklog/value",
        "--image=ghcr.io/forcebacklog/forcebacklog:",
        "--profile=restricted -- /forcebacklog sockets",
        "forcebacklog audit --all-namespaces",
    ] {
        assert!(r.notes.contains(line), "NOTES.txt should mention {line}");
    }
    assert!(!r.notes.contains("netshoot"), "{}", r.notes);
}

#[test]
fn connection_limit_shutdown_delay_and_alerts_reach_the_rendered_objects() {
    if !support::engine_available() {
        return;
    }
    // Defaults: the grace period covers the delay and the 20 s drain; no
    // PrometheusRule unless asked for.
    let r = support::render(&json!({}));
    let pod = &r.get("Deployment/forcebacklog")["spec"]["template"]["spec"];
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert!(r.of_kind("PrometheusRule").is_empty());

    let r = support::render(&json!({
        "server": {"maxConnections": 250, "shutdownDelay": "10s"},
        "terminationGracePeriodSeconds": 40,
        "metrics": {"prometheusRule": {"enabled": true, "certificateExpiryDays": 7,
                                       "labels": {"release": "kube-prometheus"}}},
    }));
    let a = args(&container(&r, "Deployment/forcebacklog"));
    for flag in ["--max-connections=250", "--shutdown-delay=10s"] {
        assert!(a.iter().any(|x| x == flag), "{flag} missing from {a:?}");
    }
    let pod = &r.get("Deployment/forcebacklog")["spec"]["template"]["spec"];
    assert_eq!(pod["terminationGracePeriodSeconds"], 40);
    let rule = r.get("PrometheusRule/forcebacklog");
    assert_eq!(rule["metadata"]["labels"]["release"], "kube-prometheus");
    let rules = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .expect("rules");
    let alert = |name: &str| {
        rules
            .iter()
            .find(|r| r["alert"] == name)
            .unwrap_or_else(|| panic!("no alert {name} in {rules:#?}"))
    };
    let expiry = alert("ForcebacklogCertificateExpiresSoon")["expr"]
        .as_str()
        .expect("expr")
        .to_owned();
    assert!(
        expiry.contains(
            r#"forcebacklog_tls_certificate_not_after_seconds{namespace="forcebacklog", service="forcebacklog"}"#
        ) && expiry.contains("< 7 * 86400"),
        "{expiry}"
    );
    let refused = alert("ForcebacklogConnectionsRefused")["expr"]
        .as_str()
        .expect("expr");
    assert!(
        refused.contains("forcebacklog_connections_refused_total{namespace="),
        "{refused}"
    );
    // Prometheus templating is left for Prometheus.
    let description = alert("ForcebacklogCertificateExpiresSoon")["annotations"]["description"]
        .as_str()
        .expect("description");
    assert!(
        description.contains("{{ $value | humanizeDuration }}"),
        "{description}"
    );

    // Metrics off: no rule, whatever it says.
    let r = support::render(&json!({
        "metrics": {"enabled": false, "prometheusRule": {"enabled": true}},
    }));
    assert!(r.of_kind("PrometheusRule").is_empty());
}

#[test]
fn values_reach_the_rendered_objects() {
    if !support::engine_available() {
        return;
    }
    let r = support::render(&json!({
        "__name": "fb", "__namespace": "webhooks",
        "replicaCount": 1,
        "image": {"repository": "registry.example/fb", "tag": "v9", "pullPolicy": "Always"},
        "defaultBacklog": 1000,
        "initContainer": {"imagePullPolicy": "Never", "resources": {"cpu": "5m", "memory": "8Mi"}},
        "webhook": {"failurePolicy": "Fail", "timeoutSeconds": 2, "excludeNamespaces": ["monitoring"],
                    "validation": {"failurePolicy": "Fail"}},
        "log": {"level": "debug", "format": "text"},
        "metrics": {"serviceMonitor": {"enabled": true}},
        "priorityClassName": "critical-webhooks",
    }));
    let c = container(&r, "Deployment/fb-forcebacklog");
    assert_eq!(c["image"], "registry.example/fb:v9");
    assert_eq!(c["imagePullPolicy"], "Always");
    let a = args(&c);
    for flag in [
        "--image=registry.example/fb:v9",
        "--image-pull-policy=Never",
        "--default-backlog=1000",
        "--init-cpu=5m",
        "--init-memory=8Mi",
        "--log-format=text",
        "--log-level=debug",
    ] {
        assert!(a.iter().any(|x| x == flag), "{flag} missing from {a:?}");
    }
    let pod = &r.get("Deployment/fb-forcebacklog")["spec"]["template"]["spec"];
    assert_eq!(pod["priorityClassName"], "critical-webhooks");
    assert!(
        r.of_kind("PodDisruptionBudget").is_empty(),
        "no PDB for one replica"
    );

    let mutating = r.get("MutatingWebhookConfiguration/fb-forcebacklog");
    for e in mutating["webhooks"].as_array().expect("webhooks") {
        assert_eq!(e["failurePolicy"], "Fail");
        assert_eq!(e["timeoutSeconds"], 2);
        assert_eq!(e["clientConfig"]["service"]["namespace"], "webhooks");
        assert_eq!(e["clientConfig"]["service"]["name"], "fb-forcebacklog");
        assert_eq!(
            namespace_expressions(e)[0],
            excluded("webhooks", &["monitoring"])
        );
    }
    let validating = r.get("ValidatingWebhookConfiguration/fb-forcebacklog");
    assert_eq!(validating["webhooks"][0]["failurePolicy"], "Fail");

    let monitor = r.get("ServiceMonitor/fb-forcebacklog");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    let service = r.get("Service/fb-forcebacklog");
    assert_eq!(service["spec"]["ports"][1]["name"], "metrics");
    assert_eq!(service["spec"]["ports"][1]["targetPort"], "admin");
}

/// Decodes one base64 field.
fn b64(value: &Value) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(value.as_str().expect("base64 string"))
        .expect("valid base64")
}

/// A real TLS 1.3 handshake in memory: a server with `cert_pem`/`key_pem`,
/// a client trusting only `ca_pem` and asking for `server_name`.
fn handshake(cert_pem: &[u8], key_pem: &[u8], ca_pem: &[u8], server_name: &str) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .expect("PEM certificate");
    let key = PrivateKeyDer::from_pem_slice(key_pem).expect("PEM private key");
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("certificate matches key");
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(ca.expect("PEM CA")).expect("CA accepted");
    }
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_owned()).expect("DNS name");
    let mut c = rustls::ClientConnection::new(Arc::new(client), name).expect("client");
    let mut s = rustls::ServerConnection::new(Arc::new(server)).expect("server");
    for _ in 0..10 {
        let mut buf = Vec::new();
        c.write_tls(&mut buf).expect("client writes");
        s.read_tls(&mut buf.as_slice()).expect("server reads");
        s.process_new_packets()
            .unwrap_or_else(|e| panic!("server rejected the handshake: {e}"));
        let mut buf = Vec::new();
        s.write_tls(&mut buf).expect("server writes");
        c.read_tls(&mut buf.as_slice()).expect("client reads");
        c.process_new_packets()
            .unwrap_or_else(|e| panic!("client rejected {server_name}: {e}"));
        if !c.is_handshaking() && !s.is_handshaking() {
            return;
        }
    }
    panic!("TLS handshake did not finish");
}

#[test]
fn generated_certificate_is_consistent_and_valid_for_the_service() {
    if !support::engine_available() {
        return;
    }
    let r = support::render(&json!({}));
    let secret = r.get("Secret/forcebacklog-tls");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let ca = b64(&secret["data"]["ca.crt"]);
    // One CA, rendered once: the Secret and all three entries agree.
    for config in [
        "MutatingWebhookConfiguration/forcebacklog",
        "ValidatingWebhookConfiguration/forcebacklog",
    ] {
        for e in r.get(config)["webhooks"].as_array().expect("webhooks") {
            assert_eq!(b64(&e["clientConfig"]["caBundle"]), ca, "{config} caBundle");
        }
    }
    // The apiserver calls https://forcebacklog.forcebacklog.svc:443.
    let crt = b64(&secret["data"]["tls.crt"]);
    let key = b64(&secret["data"]["tls.key"]);
    handshake(&crt, &key, &ca, "forcebacklog.forcebacklog.svc");
    handshake(
        &crt,
        &key,
        &ca,
        "forcebacklog.forcebacklog.svc.cluster.local",
    );
    assert!(r.of_kind("Certificate").is_empty());
}

/// The certificate of a rendered generate-mode chart: (tls.crt, tls.key,
/// ca.crt) of its Secret, and the caBundle of every webhook entry.
fn generated(r: &support::Rendered, release: &str) -> ([Vec<u8>; 3], Vec<Vec<u8>>) {
    let secret = r.get(&format!("Secret/{release}-tls"));
    let data = &secret["data"];
    let bundles = [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ]
    .iter()
    .flat_map(|kind| {
        r.get(&format!("{kind}/{release}"))["webhooks"]
            .as_array()
            .expect("webhooks")
            .iter()
            .map(|e| b64(&e["clientConfig"]["caBundle"]))
            .collect::<Vec<_>>()
    })
    .collect::<Vec<_>>();
    assert_eq!(bundles.len(), 3, "three webhook entries");
    (
        [
            b64(&data["tls.crt"]),
            b64(&data["tls.key"]),
            b64(&data["ca.crt"]),
        ],
        bundles,
    )
}

/// `helm upgrade` in generate mode: Helm's `lookup` runs for real (Helm's
/// Kubernetes client against a minimal API server on loopback that holds
/// the release's Secret), and the chart reuses that Secret's certificate
/// and CA instead of generating new ones, so the caBundle does not change.
#[test]
fn generate_mode_reuses_the_existing_secret_on_upgrade() {
    if !support::engine_available() {
        return;
    }
    let values = json!({"__name": "fb", "__namespace": "webhooks"});
    let lookup_path = "/api/v1/namespaces/webhooks/secrets/fb-forcebacklog-tls";

    // First install: the lookup finds nothing (404), a certificate is made.
    let install = support::render_cluster(&values, &json!([]));
    assert!(
        install
            .requests
            .iter()
            .any(|p| p.split('?').next() == Some(lookup_path)),
        "the chart must look the Secret up at {lookup_path}; requests: {:?}",
        install.requests
    );
    let ([crt, key, ca], bundles) = generated(&install.rendered, "fb-forcebacklog");
    assert!(bundles.iter().all(|b| *b == ca));
    handshake(&crt, &key, &ca, "fb-forcebacklog.webhooks.svc");

    // Upgrade: the Secret of the install is in the cluster; it is reused,
    // byte for byte, and every caBundle is its ca.crt.
    let secret = install.rendered.get("Secret/fb-forcebacklog-tls").clone();
    let upgrade = support::render_cluster(&values, &json!([secret]));
    assert!(
        upgrade
            .requests
            .iter()
            .any(|p| p.split('?').next() == Some(lookup_path)),
        "requests: {:?}",
        upgrade.requests
    );
    let (reused, bundles) = generated(&upgrade.rendered, "fb-forcebacklog");
    assert_eq!(
        reused,
        [crt.clone(), key.clone(), ca.clone()],
        "the upgrade must keep the Secret's certificate, key and CA"
    );
    assert!(
        bundles.iter().all(|b| *b == ca),
        "the upgrade must keep the caBundle"
    );
    assert_eq!(
        upgrade.rendered.get("Secret/fb-forcebacklog-tls")["data"],
        secret["data"]
    );

    // Not a coincidence: without the Secret, every render makes a new CA.
    let again = support::render_cluster(&values, &json!([]));
    let ([_, _, other_ca], _) = generated(&again.rendered, "fb-forcebacklog");
    assert_ne!(other_ca, ca, "a fresh install generates a new CA");

    // A Secret that lacks ca.crt (replaced by hand, say) is not reused:
    // the chart makes a complete new certificate rather than a caBundle
    // that does not match.
    let mut partial = secret.clone();
    partial["data"]
        .as_object_mut()
        .expect("Secret data")
        .remove("ca.crt");
    let repaired = support::render_cluster(&values, &json!([partial]));
    let ([crt2, key2, ca2], bundles) = generated(&repaired.rendered, "fb-forcebacklog");
    assert_ne!(ca2, ca);
    assert_ne!(crt2, crt);
    assert!(bundles.iter().all(|b| *b == ca2));
    handshake(&crt2, &key2, &ca2, "fb-forcebacklog.webhooks.svc");
}

/// Without an issuerRef: a self-signed Issuer signs the chart's CA
/// Certificate, a CA Issuer backed by its Secret issues the serving
/// Certificate, and the cainjector fills the caBundle from the serving
/// Certificate's Secret (whose `ca.crt` is that CA, which renewals of the
/// serving certificate do not change).
#[test]
fn cert_manager_mode_issues_from_a_stable_ca() {
    if !support::engine_available() {
        return;
    }
    let r = support::render(&json!({"certificates": {"mode": "certManager"}}));
    assert!(
        r.of_kind("Secret").is_empty(),
        "cert-manager writes the Secrets"
    );
    let keys: Vec<_> = r
        .objects
        .keys()
        .filter(|k| k.starts_with("Issuer/") || k.starts_with("Certificate/"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "Certificate/forcebacklog",
            "Certificate/forcebacklog-ca",
            "Issuer/forcebacklog-ca",
            "Issuer/forcebacklog-selfsigned",
        ]
    );
    let issuer = |name: &str| json!({"name": name, "kind": "Issuer", "group": "cert-manager.io"});

    // 1. The self-signed Issuer only signs the CA.
    let selfsigned = r.get("Issuer/forcebacklog-selfsigned");
    assert_eq!(selfsigned["spec"], json!({"selfSigned": {}}));
    // 2. The CA: isCA, long-lived, its own Secret, a key kept across renewals.
    let ca = &r.get("Certificate/forcebacklog-ca")["spec"];
    assert_eq!(ca["isCA"], true);
    assert_eq!(ca["secretName"], "forcebacklog-ca");
    assert_eq!(ca["duration"], "87600h");
    assert_eq!(ca["commonName"], "forcebacklog-ca");
    assert_eq!(ca["privateKey"]["rotationPolicy"], "Never");
    assert_eq!(ca["issuerRef"], issuer("forcebacklog-selfsigned"));
    // 3. The CA Issuer reads the CA's Secret.
    let ca_issuer = r.get("Issuer/forcebacklog-ca");
    assert_eq!(
        ca_issuer["spec"],
        json!({"ca": {"secretName": "forcebacklog-ca"}})
    );
    // 4. The serving Certificate: not a CA, issued by the CA Issuer, into
    // the Secret the server mounts; its key is new at each renewal.
    let serving = &r.get("Certificate/forcebacklog")["spec"];
    assert!(serving["isCA"].is_null());
    assert_eq!(serving["issuerRef"], issuer("forcebacklog-ca"));
    assert_eq!(serving["secretName"], "forcebacklog-tls");
    assert_eq!(serving["duration"], "8760h");
    assert_eq!(serving["renewBefore"], "720h");
    assert_eq!(serving["privateKey"]["rotationPolicy"], "Always");
    let names = serving["dnsNames"].as_array().expect("dnsNames");
    assert!(names.contains(&json!("forcebacklog.forcebacklog.svc")));
    let pod = &r.get("Deployment/forcebacklog")["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"],
        "forcebacklog-tls"
    );
    assert_ne!(ca["secretName"], serving["secretName"]);

    // 5. The cainjector reads the serving Certificate (namespace/name):
    // its Secret's ca.crt is the CA above.
    for config in [
        "MutatingWebhookConfiguration/forcebacklog",
        "ValidatingWebhookConfiguration/forcebacklog",
    ] {
        let object = r.get(config);
        assert_eq!(
            object["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "forcebacklog/forcebacklog"
        );
        for e in object["webhooks"].as_array().expect("webhooks") {
            assert!(
                e["clientConfig"]["caBundle"].is_null(),
                "cainjector fills it"
            );
        }
    }
}

#[test]
fn cert_manager_values_reach_the_chain() {
    if !support::engine_available() {
        return;
    }
    let r = support::render(&json!({"__name": "fb", "__namespace": "webhooks",
        "certificates": {"mode": "certManager", "certManager":
            {"duration": "2160h", "renewBefore": "360h", "caDuration": "43800h"}}}));
    let ca = &r.get("Certificate/fb-forcebacklog-ca")["spec"];
    assert_eq!(ca["duration"], "43800h");
    assert_eq!(ca["secretName"], "fb-forcebacklog-ca");
    assert_eq!(ca["issuerRef"]["name"], "fb-forcebacklog-selfsigned");
    assert_eq!(
        r.get("Issuer/fb-forcebacklog-ca")["spec"]["ca"]["secretName"],
        "fb-forcebacklog-ca"
    );
    let serving = &r.get("Certificate/fb-forcebacklog")["spec"];
    assert_eq!(serving["duration"], "2160h");
    assert_eq!(serving["renewBefore"], "360h");
    assert_eq!(serving["issuerRef"]["name"], "fb-forcebacklog-ca");
    assert_eq!(serving["secretName"], "fb-forcebacklog-tls");
    assert_eq!(
        r.get("MutatingWebhookConfiguration/fb-forcebacklog")["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        "webhooks/fb-forcebacklog"
    );
}

/// With the user's issuer: no chain of the chart's own, the serving
/// Certificate is issued by that issuer, and the caBundle still comes from
/// the serving Certificate's Secret (there is no other Certificate).
#[test]
fn cert_manager_mode_with_an_issuer_ref_creates_no_chain() {
    if !support::engine_available() {
        return;
    }
    let r = support::render(&json!({"certificates": {"mode": "certManager",
        "certManager": {"issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}}}));
    assert!(r.of_kind("Issuer").is_empty());
    assert_eq!(
        r.of_kind("Certificate").len(),
        1,
        "only the serving Certificate"
    );
    let serving = &r.get("Certificate/forcebacklog")["spec"];
    assert_eq!(
        serving["issuerRef"],
        json!({"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"})
    );
    assert_eq!(serving["secretName"], "forcebacklog-tls");
    for config in [
        "MutatingWebhookConfiguration/forcebacklog",
        "ValidatingWebhookConfiguration/forcebacklog",
    ] {
        assert_eq!(
            r.get(config)["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "forcebacklog/forcebacklog"
        );
    }
    // An Issuer of the user's in the release namespace: kind defaults to Issuer.
    let r = support::render(&json!({"certificates": {"mode": "certManager",
        "certManager": {"issuerRef": {"name": "team-ca"}}}}));
    assert_eq!(
        r.get("Certificate/forcebacklog")["spec"]["issuerRef"],
        json!({"name": "team-ca", "kind": "Issuer", "group": "cert-manager.io"})
    );
}

#[test]
fn user_supplied_secret_mode_uses_the_given_secret_and_ca() {
    if !support::engine_available() {
        return;
    }
    let ca = "TFMwdExTMUNSVWRKVGlCRFJWSlU=";
    let r = support::render(&json!({"certificates": {"mode": "secret",
        "secret": {"name": "my-tls", "caBundle": ca}}}));
    assert!(r.of_kind("Secret").is_empty());
    assert!(r.of_kind("Certificate").is_empty());
    let pod = &r.get("Deployment/forcebacklog")["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], "my-tls");
    for e in r.get("MutatingWebhookConfiguration/forcebacklog")["webhooks"]
        .as_array()
        .expect("webhooks")
    {
        assert_eq!(e["clientConfig"]["caBundle"], ca);
    }
}

/// Drops what only Helm adds, so deploy/ and the chart compare equal.
fn without_helm_labels(mut object: Value) -> Value {
    if let Some(labels) = object["metadata"]["labels"].as_object_mut() {
        labels.remove("helm.sh/chart");
        labels.remove("app.kubernetes.io/managed-by");
    }
    object
}

/// The first path where two JSON values differ.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<_> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                first_difference(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    &format!("{path}.{k}"),
                )
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: deploy/ has {a}, the chart renders {b}")),
    }
}

#[test]
fn deploy_manifests_agree_with_the_chart() {
    if !support::engine_available() {
        return;
    }
    let deploy = support::load_dir(&support::root().join("deploy"));
    let chart = support::render(&json!({"certificates": {"mode": "certManager"}}));

    let namespace = deploy
        .get("Namespace/forcebacklog")
        .expect("deploy/ creates its namespace");
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    let deploy_keys: Vec<_> = deploy
        .keys()
        .filter(|k| *k != "Namespace/forcebacklog")
        .collect();
    let chart_keys: Vec<_> = chart.objects.keys().collect();
    assert_eq!(
        deploy_keys, chart_keys,
        "deploy/ must hold the chart's objects"
    );

    for (key, rendered) in &chart.objects {
        let expected = without_helm_labels(rendered.clone());
        if let Some(diff) = first_difference(&deploy[key], &expected, key) {
            panic!("deploy/ and charts/forcebacklog disagree: {diff}");
        }
    }
    // The key fields, spelled out.
    let c = &deploy["Deployment/forcebacklog"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], forcebacklog::config::DEFAULT_IMAGE);
    assert!(args(c).contains(&format!("--image={}", forcebacklog::config::DEFAULT_IMAGE)));
    let paths: Vec<_> = [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ]
    .iter()
    .flat_map(|kind| {
        deploy[&format!("{kind}/forcebacklog")]["webhooks"]
            .as_array()
            .expect("webhooks")
            .iter()
            .map(|e| e["clientConfig"]["service"]["path"].clone())
            .collect::<Vec<_>>()
    })
    .collect();
    assert_eq!(
        paths,
        [
            json!("/mutate"),
            json!("/mutate/namespace"),
            json!("/validate")
        ]
    );
}

#[test]
fn chart_version_follows_the_crate() {
    let chart =
        std::fs::read_to_string(support::chart_dir().join("Chart.yaml")).expect("Chart.yaml");
    let chart: Value = serde_saphyr::from_str(&chart).expect("Chart.yaml is YAML");
    assert_eq!(chart["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn kind_cluster_config_has_workers_for_two_replicas() {
    let text = std::fs::read_to_string(support::root().join("deploy/kind/cluster.yaml"))
        .expect("deploy/kind/cluster.yaml");
    let cluster: Value = serde_saphyr::from_str(&text).expect("YAML");
    assert_eq!(cluster["kind"], "Cluster");
    let workers = cluster["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["role"] == "worker")
        .count();
    assert!(
        workers >= 2,
        "two workers let the two webhook replicas spread"
    );
}

#[test]
fn match_conditions_on_validate_and_off_for_old_clusters() {
    if !support::engine_available() {
        return;
    }
    let r = support::render(&json!({}));
    let validate = entry(
        r.get("ValidatingWebhookConfiguration/forcebacklog"),
        "workloads.forcebacklog.github.io",
    );
    let conditions = validate["matchConditions"]
        .as_array()
        .expect("matchConditions");
    let names: Vec<&str> = conditions
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["not-controller-created", "forcebacklog-annotated"]);
    let annotated = conditions[1]["expression"].as_str().expect("expression");
    // Pods, pod templates and CronJobs' job templates, every step guarded.
    for path in [
        "object.metadata.annotations",
        "object.spec.template.metadata.annotations",
        "object.spec.jobTemplate.spec.template.metadata.annotations",
    ] {
        assert!(
            annotated.contains(&format!(
                "has({path}) && {path}.exists(k, k.startsWith('forcebacklog/'))"
            )),
            "{path}: {annotated}"
        );
    }
    let r = support::render(&json!({"webhook": {"matchConditions": false}}));
    let mutating = r.get("MutatingWebhookConfiguration/forcebacklog");
    let validating = r.get("ValidatingWebhookConfiguration/forcebacklog");
    for e in mutating["webhooks"]
        .as_array()
        .into_iter()
        .chain(validating["webhooks"].as_array())
        .flatten()
    {
        assert!(e["matchConditions"].is_null(), "{}", e["name"]);
    }
}

#[test]
fn failure_policy_per_webhook() {
    if !support::engine_available() {
        return;
    }
    let policies = |values: Value| {
        let r = support::render(&values);
        let mutating = r.get("MutatingWebhookConfiguration/forcebacklog");
        let validating = r.get("ValidatingWebhookConfiguration/forcebacklog");
        [
            entry(mutating, "pods.forcebacklog.github.io")["failurePolicy"].clone(),
            entry(mutating, "namespace-pods.forcebacklog.github.io")["failurePolicy"].clone(),
            entry(validating, "workloads.forcebacklog.github.io")["failurePolicy"].clone(),
        ]
    };
    assert_eq!(policies(json!({})), ["Ignore", "Ignore", "Ignore"]);
    assert_eq!(
        policies(json!({"webhook": {"mutate": {"failurePolicy": "Fail"}}})),
        ["Fail", "Ignore", "Ignore"]
    );
    assert_eq!(
        policies(json!({"webhook": {"namespace": {"failurePolicy": "Fail"}}})),
        ["Ignore", "Fail", "Ignore"]
    );
    assert_eq!(
        policies(json!({"webhook": {"validation": {"failurePolicy": "Fail"}}})),
        ["Ignore", "Ignore", "Fail"]
    );
    // webhook.failurePolicy is the default of both mutating webhooks.
    assert_eq!(
        policies(json!({"webhook": {"failurePolicy": "Fail",
                                    "namespace": {"failurePolicy": "Ignore"}}})),
        ["Fail", "Ignore", "Ignore"]
    );
}

#[test]
fn namespace_and_object_selectors_are_added_to_every_webhook() {
    if !support::engine_available() {
        return;
    }
    let team = json!({"key": "team", "operator": "In", "values": ["web"]});
    let skip =
        json!({"matchExpressions": [{"key": "forcebacklog.io/skip", "operator": "DoesNotExist"}]});
    let r = support::render(&json!({"webhook": {
        "namespaceSelector": {"matchLabels": {"env": "prod"}, "matchExpressions": [team]},
        "objectSelector": skip,
        "systemNamespaces": [],
        "excludeNamespaces": ["monitoring"]}}));
    let mutating = r.get("MutatingWebhookConfiguration/forcebacklog");
    let validating = r.get("ValidatingWebhookConfiguration/forcebacklog");
    let entries: Vec<&Value> = mutating["webhooks"]
        .as_array()
        .into_iter()
        .chain(validating["webhooks"].as_array())
        .flatten()
        .collect();
    assert_eq!(entries.len(), 3);
    for e in entries {
        let selector = &e["namespaceSelector"];
        assert_eq!(
            selector["matchLabels"],
            json!({"env": "prod"}),
            "{}",
            e["name"]
        );
        let expressions = selector["matchExpressions"]
            .as_array()
            .expect("expressions");
        assert_eq!(expressions.len(), 3);
        assert_eq!(
            namespace_expressions(e)[0],
            ns_name_not_in(&["kube-system", "forcebacklog", "monitoring"]),
            "systemNamespaces: [] watches cert-manager and the CNIs"
        );
        assert_eq!(expressions[1]["key"], "forcebacklog/inject");
        assert_eq!(expressions[2], team);
        assert_eq!(e["objectSelector"], skip);
    }
}

#[test]
fn injection_values_become_serve_flags_the_binary_accepts() {
    if !support::engine_available() {
        return;
    }
    let flags = |values: Value| -> Vec<String> {
        let r = support::render(&values);
        args(&container(&r, "Deployment/forcebacklog"))
    };
    let a = flags(
        json!({"initContainer": {"imagePullSecrets": ["regcred", "mirror"],
                                           "resources": {"cpu": "1", "memory": "1Ti"}},
                         "injection": {"excludeContainers": ["envoy"]}}),
    );
    for flag in [
        "--image-pull-secret=regcred",
        "--image-pull-secret=mirror",
        "--exclude-container=envoy",
        "--init-memory=1Ti",
    ] {
        assert!(a.iter().any(|x| x == flag), "{flag} missing from {a:?}");
    }
    assert!(!a.iter().any(|x| x.contains("istio-proxy")), "{a:?}");
    // An empty list excludes nothing (the binary's default would exclude the proxies).
    let none = flags(json!({"injection": {"excludeContainers": []}}));
    assert!(none.iter().any(|x| x == "--exclude-container="), "{none:?}");
    // The binary parses every rendered flag: it gets as far as reading the
    // (missing) certificate, exit 1, never a usage error (exit 2).
    for rendered in [a, none, flags(json!({}))] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_forcebacklog"))
            .args(
                rendered
                    .iter()
                    .map(|flag| flag.replace("/etc/forcebacklog/tls/", "/nonexistent/")),
            )
            .env("FORCEBACKLOG_ADDR", "127.0.0.1:0")
            .output()
            .expect("the forcebacklog binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{rendered:?}: {stderr}");
        assert!(stderr.contains("/nonexistent/"), "{rendered:?}: {stderr}");
    }
}

/// `audit.rbac`: nothing by default; the ClusterRole holds exactly what
/// `forcebacklog audit` reads, read-only; the binding only with subjects.
#[test]
fn audit_cluster_role_is_read_only_and_off_by_default() {
    if !support::engine_available() {
        return;
    }
    let r = support::render(&json!({}));
    assert!(r.of_kind("ClusterRole").is_empty());
    assert!(r.of_kind("ClusterRoleBinding").is_empty());

    let r = support::render(&json!({"audit": {"rbac": {"create": true}}}));
    let role = r.get("ClusterRole/forcebacklog-audit");
    let mut granted: Vec<(String, String, String)> = Vec::new();
    for rule in role["rules"].as_array().expect("rules") {
        let list = |key: &str| -> Vec<String> {
            rule[key]
                .as_array()
                .unwrap_or_else(|| panic!("{key} in {rule}"))
                .iter()
                .map(|v| v.as_str().expect("string").to_owned())
                .collect()
        };
        for group in list("apiGroups") {
            for resource in list("resources") {
                for verb in list("verbs") {
                    granted.push((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    granted.sort();
    let expected: Vec<(String, String, String)> = [
        ("", "namespaces", "list"),
        ("", "pods", "list"),
        ("apps", "replicasets", "get"),
        ("batch", "jobs", "get"),
    ]
    .iter()
    .map(|(g, r, v)| ((*g).to_owned(), (*r).to_owned(), (*v).to_owned()))
    .collect();
    assert_eq!(granted, expected);
    assert!(
        r.of_kind("ClusterRoleBinding").is_empty(),
        "no subjects, no binding"
    );

    let subjects = json!([{"kind": "ServiceAccount", "name": "auditor", "namespace": "ops"},
                          {"kind": "Group", "name": "sre", "apiGroup": "rbac.authorization.k8s.io"}]);
    let r = support::render(&json!({"audit": {"rbac": {"create": true, "subjects": subjects}}}));
    let binding = r.get("ClusterRoleBinding/forcebacklog-audit");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
               "name": "forcebacklog-audit"})
    );
    assert_eq!(binding["subjects"], subjects);

    let bad = json!({"audit": {"rbac": {"subjects": [{"kind": "Robot", "name": "x"}]}}});
    assert!(
        support::schema(&bad).is_err(),
        "the schema refuses kind Robot"
    );
}
