//! End to end against a real Kubernetes control plane: etcd, kube-apiserver
//! and kube-controller-manager built from their Go modules and started by
//! tests/e2e/cluster.sh, forcebacklog installed with the real `helm
//! install`, and the API server calling the webhook through the chart's own
//! webhook configurations. The API server applies the patch, validates the
//! Pod, runs Pod Security admission on it and stores it; this test reads
//! what it stored. The last mile (a kubelet running the stored pod) is the
//! Docker emulation of tests/e2e/kubelet.rs, with `ss` in the pod's network
//! namespace.
//!
//! Needs root, Go (first build only; binaries are cached outside the
//! repository), docker.io (daemon running), socat, openssl, curl,
//! util-linux, iproute2, gcc, musl-tools, python3. A missing tool fails
//! the test with what to install, unless FORCEBACKLOG_ALLOW_SKIP=1.
//!
//! The cluster is left running (`tests/e2e/cluster.sh down` stops it), so
//! a second run reuses it; every run works in namespaces of its own.

use crate::{images, kubelet};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config};
use kubelet::Cleanup;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The chart's `defaultBacklog`.
const CHART_DEFAULT_BACKLOG: &str = "4096";
/// The release as README.md installs it.
const RELEASE: &str = "forcebacklog";
const RELEASE_NAMESPACE: &str = "forcebacklog";
const GLIBC_PORT: u16 = 8080;
const MUSL_PORT: u16 = 8081;
const LATE_PORT: u16 = 8082;
const STATIC_PORT: u16 = 8083;
/// How long the API server may take for anything a test waits on.
const WAIT: Duration = Duration::from_secs(60);

/// What `tests/e2e/cluster.sh up` gave.
struct Cluster {
    kubeconfig: PathBuf,
    /// kubectl, helm, ... (tests/e2e/cluster/build.sh's cache directory).
    bin: PathBuf,
}

impl Cluster {
    /// Runs a command of the cluster's bin directory with its kubeconfig.
    fn tool(&self, tool: &str, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let mut cmd = Command::new(self.bin.join(tool));
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("running {tool}: {e}"))?;
        if let Some(text) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("piped stdin")
                .write_all(text.as_bytes())
                .map_err(|e| format!("writing to {tool}: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("running {tool}: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        self.tool("kubectl", args, stdin)
    }

    /// `kubectl apply` of [`deployment_yaml`].
    fn apply_deployment(&self, name: &str, ns: &str, value: &str) -> Result<String, String> {
        self.kubectl(
            &["apply", "-f", "-"],
            Some(&deployment_yaml(name, ns, value)),
        )
    }
}

fn script(args: &[&str]) -> Result<String, String> {
    let out = Command::new("bash")
        .arg(Path::new(ROOT).join("tests/e2e/cluster.sh"))
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running tests/e2e/cluster.sh: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        // The script's own one-line reason is its last line.
        let tail: Vec<&str> = stderr.lines().rev().take(25).collect();
        Err(tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
    }
}

/// Starts (or reuses) the cluster. `None` to skip, which only
/// FORCEBACKLOG_ALLOW_SKIP=1 allows.
fn cluster() -> Option<Cluster> {
    let started = Instant::now();
    match script(&["up"]) {
        Ok(out) => {
            let kubeconfig = out
                .lines()
                .last()
                .and_then(|l| l.strip_prefix("KUBECONFIG="))
                .unwrap_or_else(|| panic!("cluster.sh up printed no KUBECONFIG=: {out}"));
            let kubeconfig = PathBuf::from(kubeconfig);
            let bin = std::fs::read_to_string(kubeconfig.with_file_name("bin"))
                .expect("cluster.sh records its bin directory");
            eprintln!("cluster up in {:.1?}", started.elapsed());
            Some(Cluster {
                kubeconfig,
                bin: PathBuf::from(bin.trim()),
            })
        }
        Err(why) => {
            let why = format!("the real-API-server e2e could not start its cluster:\n{why}");
            if std::env::var("FORCEBACKLOG_ALLOW_SKIP").as_deref() == Ok("1") {
                eprintln!("SKIPPED (FORCEBACKLOG_ALLOW_SKIP=1): {why}");
                None
            } else {
                panic!("{why}\n(set FORCEBACKLOG_ALLOW_SKIP=1 to skip)");
            }
        }
    }
}

async fn client(cluster: &Cluster) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&cluster.kubeconfig).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("client config");
    Client::try_from(config).expect("client")
}

/// Names unique to this run.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{:x}",
        (std::process::id() as u64) << 20 ^ u64::from(nanos >> 10)
    )
}

async fn create_namespace(client: &Client, name: &str, labels: Value) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels}
    }))
    .expect("namespace");
    api.create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
}

/// Creates a Pod through the API server and returns the Pod it stored.
async fn create_pod(client: &Client, ns: &str, pod: Value) -> Result<Pod, kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod: Pod = serde_json::from_value(pod).expect("pod");
    api.create(&PostParams::default(), &pod).await
}

/// Waits (on a watch) for `count` pods matching `selector` in `ns`.
async fn wait_for_pods(client: &Client, ns: &str, selector: &str, count: usize) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let config = watcher::Config::default().labels(selector);
    let mut seen: Vec<Pod> = Vec::new();
    let mut stream = watcher(api, config).applied_objects().boxed();
    let found = tokio::time::timeout(WAIT, async {
        while let Some(pod) = stream.try_next().await.expect("watch pods") {
            if !seen.iter().any(|p| p.metadata.uid == pod.metadata.uid) {
                seen.push(pod);
            }
            if seen.len() >= count {
                return;
            }
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "{count} pods {selector} in {ns} did not appear within {WAIT:?} (saw {})",
        seen.len()
    );
    seen
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn env_of(pod: &Pod, container: &str, name: &str) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let c = spec.containers.iter().find(|c| c.name == container)?;
    c.env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

/// The injection as the API server stored it: status, one init container
/// first, the volume, and env + read-only mount in `containers`.
fn assert_injected(pod: &Pod, backlog: &str, containers: &[&str]) {
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    assert_eq!(
        annotation(pod, "forcebacklog/status"),
        Some("injected"),
        "{name}: {:?}",
        pod.metadata.annotations
    );
    let spec = pod.spec.as_ref().expect("spec");
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    assert_eq!(
        inits
            .iter()
            .filter(|c| c.name == "forcebacklog-install")
            .count(),
        1,
        "{name}: exactly one init container of ours"
    );
    assert_eq!(inits[0].name, "forcebacklog-install", "{name}: ours first");
    assert!(
        spec.volumes
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|v| v.name == "forcebacklog-shim" && v.empty_dir.is_some()),
        "{name}: the emptyDir volume"
    );
    for c in containers {
        assert_eq!(
            env_of(pod, c, "BACKLOG").as_deref(),
            Some(backlog),
            "{name}/{c}: BACKLOG"
        );
        assert_eq!(
            env_of(pod, c, "LD_PRELOAD").as_deref(),
            Some("/opt/forcebacklog/libforcebacklog.so"),
            "{name}/{c}: LD_PRELOAD"
        );
        let container = spec.containers.iter().find(|x| x.name == *c).expect("c");
        assert!(
            container
                .volume_mounts
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|m| m.name == "forcebacklog-shim"
                    && m.mount_path == "/opt/forcebacklog"
                    && m.read_only == Some(true)),
            "{name}/{c}: the read-only mount"
        );
    }
}

fn assert_untouched(pod: &Pod) {
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let spec = pod.spec.as_ref().expect("spec");
    assert!(
        spec.init_containers
            .as_deref()
            .unwrap_or_default()
            .iter()
            .all(|c| c.name != "forcebacklog-install"),
        "{name}: no init container of ours"
    );
    assert!(
        spec.containers
            .iter()
            .all(|c| env_of(pod, &c.name, "LD_PRELOAD").is_none()),
        "{name}: no LD_PRELOAD"
    );
}

/// A restricted-compliant pod of the two app images (tests/e2e/images.rs).
fn app_pod(name: &str, annotations: Value, glibc: &str, musl: &str) -> Value {
    let hardened = json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                          "capabilities": {"drop": ["ALL"]}});
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": annotations},
        "spec": {
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {"name": "glibc", "image": glibc, "imagePullPolicy": "Never",
                 "args": [GLIBC_PORT.to_string()], "securityContext": hardened},
                {"name": "musl", "image": musl, "imagePullPolicy": "Never",
                 "args": [MUSL_PORT.to_string()], "securityContext": hardened}
            ]
        }
    })
}

fn simple_pod(name: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": annotations},
        "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]}
    })
}

fn deployment_yaml(name: &str, ns: &str, value: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {ns}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
      annotations:
        forcebacklog/value: \"{value}\"
    spec:
      containers:
        - name: web
          image: registry.invalid/web:1
"
    )
}

/// A restricted-compliant Deployment of the static server
/// (`build_static_image`) with `forcebacklog/method` set to `method`;
/// `command` says whether its container has an explicit `command`.
fn static_deployment_yaml(
    name: &str,
    ns: &str,
    image: &str,
    method: &str,
    command: bool,
) -> String {
    let command = if command {
        "          command: [\"/server\"]\n"
    } else {
        ""
    };
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {ns}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
      annotations:
        forcebacklog/value: \"1024\"
        forcebacklog/method: \"{method}\"
    spec:
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 1000
        runAsGroup: 1000
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: server
          image: {image}
          imagePullPolicy: Never
{command}          args: [\"{STATIC_PORT}\"]
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]
"
    )
}

/// `forcebacklog/method: supervise` on a Deployment in a namespace that
/// enforces Pod Security "restricted": the stored pod has the init
/// container that copies the binary and the wrapped command (its `args`
/// kept), and was admitted; a container without `command` is skipped with
/// the reason; a bad method is rejected at `kubectl apply`. Returns the
/// supervised pod for the last mile.
async fn supervise_in_restricted(cluster: &Cluster, client: &Client, ns: &str, image: &str) -> Pod {
    let apply = |name: &str, method: &str, command: bool| {
        cluster.kubectl(
            &["apply", "-f", "-"],
            Some(&static_deployment_yaml(name, ns, image, method, command)),
        )
    };
    apply("supervised", "supervise", true)
        .unwrap_or_else(|e| panic!("kubectl apply of the supervised Deployment: {e}"));
    let pods = wait_for_pods(client, ns, "app=supervised", 1).await;
    let pod = pods.into_iter().next().expect("one pod");
    assert_eq!(annotation(&pod, "forcebacklog/status"), Some("injected"));
    let spec = pod.spec.as_ref().expect("spec");
    let init = &spec.init_containers.as_deref().unwrap_or_default()[0];
    assert_eq!(init.name, "forcebacklog-install");
    assert_eq!(
        init.command.as_deref().unwrap_or_default(),
        [
            "/forcebacklog",
            "install-shim",
            "/opt/forcebacklog",
            "--with-binary"
        ]
    );
    let c = &spec.containers[0];
    assert_eq!(
        c.command.as_deref().unwrap_or_default(),
        [
            "/opt/forcebacklog/forcebacklog",
            "run",
            "--backlog",
            "1024",
            "--method",
            "supervise",
            "--",
            "/server"
        ]
    );
    assert_eq!(
        c.args.as_deref().unwrap_or_default(),
        [STATIC_PORT.to_string()],
        "args kept"
    );
    assert!(c.env.is_none(), "no LD_PRELOAD, no BACKLOG: {:?}", c.env);
    let volume = spec
        .volumes
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|v| v.name == "forcebacklog-shim")
        .and_then(|v| v.empty_dir.as_ref())
        .and_then(|e| e.size_limit.as_ref())
        .map(|q| q.0.clone());
    assert_eq!(volume.as_deref(), Some("32Mi"), "room for the binary");

    // Without command: admitted (restricted), skipped with the reason.
    apply("no-command", "supervise", false)
        .unwrap_or_else(|e| panic!("kubectl apply of the Deployment without command: {e}"));
    let pods = wait_for_pods(client, ns, "app=no-command", 1).await;
    let status = annotation(&pods[0], "forcebacklog/status").unwrap_or_default();
    assert!(
        status.starts_with("skipped: container server has no command")
            && status.contains("set command (the image's entrypoint)"),
        "{status}"
    );
    assert_untouched(&pods[0]);

    // A method that does not exist: rejected at apply, with key, value and choices.
    let err = apply("bad-method", "ptrace", true).expect_err("forcebacklog/method: ptrace");
    assert!(
        err.contains("denied the request")
            && err.contains("forcebacklog/method")
            && err.contains("\"ptrace\"")
            && err.contains("\"shim\" or \"supervise\""),
        "{err}"
    );
    pod
}

/// The chart's generated certificate survives `helm upgrade`.
async fn helm_upgrade_keeps_the_certificate(cluster: &Cluster, client: &Client) {
    let webhooks: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), RELEASE_NAMESPACE);
    let ca_bundle = |c: &MutatingWebhookConfiguration| {
        c.webhooks.as_ref().expect("webhooks")[0]
            .client_config
            .ca_bundle
            .clone()
            .expect("caBundle")
    };
    let before = webhooks.get(RELEASE).await.expect("webhook configuration");
    let tls_data = || async {
        let list = secrets.list(&ListParams::default()).await.expect("secrets");
        list.items
            .into_iter()
            .find(|s| s.type_.as_deref() == Some("kubernetes.io/tls"))
            .expect("the chart's TLS Secret")
            .data
    };
    let secret_before = tls_data().await;
    let out = cluster
        .tool(
            "helm",
            &[
                "upgrade",
                RELEASE,
                &format!("{ROOT}/charts/forcebacklog"),
                "--namespace",
                RELEASE_NAMESPACE,
                "--reset-values",
            ],
            None,
        )
        .unwrap_or_else(|e| panic!("helm upgrade failed: {e}"));
    assert!(out.contains("has been upgraded"), "helm upgrade: {out}");
    let after = webhooks.get(RELEASE).await.expect("webhook configuration");
    assert_eq!(
        ca_bundle(&before).0,
        ca_bundle(&after).0,
        "helm upgrade changed the caBundle"
    );
    assert_eq!(
        secret_before,
        tls_data().await,
        "helm upgrade changed the TLS Secret"
    );
    // Every webhook of the chart carries the same bundle.
    for w in after.webhooks.as_deref().unwrap_or_default() {
        assert_eq!(
            w.client_config.ca_bundle,
            after.webhooks.as_ref().expect("w")[0]
                .client_config
                .ca_bundle
        );
        let service = w
            .client_config
            .service
            .as_ref()
            .expect("a service reference");
        assert_eq!(
            (service.namespace.as_str(), service.name.as_str()),
            (RELEASE_NAMESPACE, RELEASE)
        );
    }
}

/// kubectl apply of an annotated Deployment → ReplicaSet (controller-manager)
/// → a stored Pod with the injection.
async fn deployment_pods_are_injected(cluster: &Cluster, client: &Client, ns: &str) {
    cluster
        .apply_deployment("web", ns, "1024")
        .unwrap_or_else(|e| panic!("kubectl apply: {e}"));
    let pods = wait_for_pods(client, ns, "app=web", 1).await;
    assert_injected(&pods[0], "1024", &["web"]);
    assert!(
        pods[0]
            .metadata
            .owner_references
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|o| o.kind == "ReplicaSet"),
        "the pod was made by the Deployment's ReplicaSet"
    );
}

/// An invalid value is rejected at kubectl apply; a scale-up of an existing
/// Deployment (with that invalid value, created while the webhook was
/// away) is never blocked, and its pods are admitted with a reason.
async fn invalid_values_rejected_scale_never_blocked(cluster: &Cluster, client: &Client, ns: &str) {
    let err = cluster
        .apply_deployment("bad", ns, "abc")
        .expect_err("kubectl apply of forcebacklog/value: abc must fail");
    assert!(
        err.contains("denied the request")
            && err.contains("forcebacklog/value")
            && err.contains("\"abc\"")
            && err.contains("1..=65535"),
        "kubectl's error names the key, the value and the range: {err}"
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    assert!(deployments.get_opt("bad").await.expect("get").is_none());

    // The same Deployment, created while the webhook is stopped
    // (failurePolicy: Ignore), then scaled up once it is back.
    script(&["webhook", "stop"]).expect("webhook stop");
    let created = cluster.apply_deployment("legacy", ns, "abc");
    script(&["webhook", "start"]).expect("webhook start");
    created.unwrap_or_else(|e| panic!("with the webhook stopped, apply must pass: {e}"));
    wait_for_pods(client, ns, "app=legacy", 1).await;
    cluster
        .kubectl(
            &["-n", ns, "scale", "deployment/legacy", "--replicas=2"],
            None,
        )
        .unwrap_or_else(|e| panic!("scale-up blocked: {e}"));
    let pods = wait_for_pods(client, ns, "app=legacy", 2).await;
    let skipped: Vec<_> = pods
        .iter()
        .filter_map(|p| annotation(p, "forcebacklog/status"))
        .collect();
    assert!(
        skipped
            .iter()
            .any(|s| s.starts_with("skipped: forcebacklog/value")),
        "the new pod is admitted, skipped with the reason: {skipped:?}"
    );
    for p in &pods {
        assert_untouched(p);
    }
}

/// Namespace opt-in, pod opt-out, and the namespaces never touched.
async fn namespace_label_and_exclusions(client: &Client, ns_enabled: &str) {
    let pod = create_pod(client, ns_enabled, simple_pod("plain", json!({})))
        .await
        .expect("create");
    assert_injected(&pod, CHART_DEFAULT_BACKLOG, &["web"]);
    let pod = create_pod(
        client,
        ns_enabled,
        simple_pod("optout", json!({"forcebacklog/inject": "false"})),
    )
    .await
    .expect("create");
    assert_untouched(&pod);
    let pod = create_pod(
        client,
        ns_enabled,
        simple_pod("own", json!({"forcebacklog/value": "300"})),
    )
    .await
    .expect("create");
    assert_injected(&pod, "300", &["web"]);

    for ns in ["kube-system", RELEASE_NAMESPACE] {
        let name = format!("e2e-{}", run_id());
        let pod = create_pod(
            client,
            ns,
            simple_pod(&name, json!({"forcebacklog/value": "1024"})),
        )
        .await
        .expect("create");
        assert_untouched(&pod);
        assert_eq!(
            annotation(&pod, "forcebacklog/status"),
            None,
            "{ns}: never called"
        );
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        let _ = api.delete(&name, &DeleteParams::default()).await;
    }
}

/// Pod Security "restricted" judges the mutated pod, and admits it.
async fn restricted_namespace_admits_the_mutated_pod(
    client: &Client,
    ns: &str,
    glibc: &str,
    musl: &str,
) -> Pod {
    let pod = create_pod(
        client,
        ns,
        app_pod("app", json!({"forcebacklog/value": "1024"}), glibc, musl),
    )
    .await
    .unwrap_or_else(|e| panic!("Pod Security restricted rejected the mutated pod: {e}"));
    assert_injected(&pod, "1024", &["glibc", "musl"]);
    // Pod Security is enforced here: a root pod is refused.
    let err = create_pod(client, ns, simple_pod("root", json!({})))
        .await
        .expect_err("a non-compliant pod is rejected in a restricted namespace");
    assert!(err.to_string().contains("PodSecurity"), "{err}");
    pod
}

/// The metrics sidecar (`forcebacklog/metrics`) is a native sidecar the
/// API server accepts, and Pod Security "restricted" admits it.
async fn metrics_sidecar_admitted_in_restricted(
    client: &Client,
    ns: &str,
    glibc: &str,
    musl: &str,
) {
    let pod = create_pod(
        client,
        ns,
        app_pod(
            "metrics",
            json!({"forcebacklog/value": "1024", "forcebacklog/metrics": "9464"}),
            glibc,
            musl,
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("the pod with the metrics sidecar was refused: {e}"));
    assert_injected(&pod, "1024", &["glibc", "musl"]);
    let inits = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.clone())
        .unwrap_or_default();
    let names: Vec<&str> = inits.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["forcebacklog-install", "forcebacklog-metrics"],
        "init containers"
    );
    let sidecar = &inits[1];
    assert_eq!(
        sidecar.restart_policy.as_deref(),
        Some("Always"),
        "a native sidecar"
    );
    let args: Vec<&str> = sidecar
        .command
        .iter()
        .chain(sidecar.args.iter())
        .flatten()
        .map(String::as_str)
        .collect();
    assert!(
        args.contains(&"sockets") && args.iter().any(|a| a.contains("9464")),
        "{args:?}"
    );
}

/// failurePolicy: Ignore while the webhook is down; injection once it is back.
async fn webhook_down_then_back(client: &Client, ns: &str) {
    script(&["webhook", "stop"]).expect("webhook stop");
    let missed = create_pod(
        client,
        ns,
        simple_pod("missed", json!({"forcebacklog/value": "512"})),
    )
    .await;
    script(&["webhook", "start"]).expect("webhook start");
    let missed = missed.expect("failurePolicy Ignore admits the pod while the webhook is down");
    assert_untouched(&missed);
    assert_eq!(annotation(&missed, "forcebacklog/status"), None);
    let pod = create_pod(
        client,
        ns,
        simple_pod("back", json!({"forcebacklog/value": "512"})),
    )
    .await
    .expect("create");
    assert_injected(&pod, "512", &["web"]);
}

/// `forcebacklog audit` against the API server: a Deployment's pod made
/// while the webhook runs is injected; a Deployment's pod and a bare pod
/// made while it is stopped are missed (exit 1), grouped under their
/// owners (the Deployment found through its ReplicaSet) with the fix; the
/// rollout restart it prints, and recreating the bare pod, bring it to 0.
async fn audit_reports_missed_pods_until_restarted(cluster: &Cluster, client: &Client, ns: &str) {
    /// Starts the webhook again however the step ends.
    struct StartWebhook;
    impl Drop for StartWebhook {
        fn drop(&mut self) {
            let _ = script(&["webhook", "start"]);
        }
    }
    let audit = || {
        let out = Command::new(env!("CARGO_BIN_EXE_forcebacklog"))
            .args([
                "audit",
                "--namespace",
                ns,
                "--output",
                "json",
                "--kubeconfig",
            ])
            .arg(&cluster.kubeconfig)
            .output()
            .expect("running forcebacklog audit");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let report: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("audit printed no JSON ({e}): {stdout}{stderr}"));
        (out.status.code(), report, stderr)
    };
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), ns);
    create_namespace(client, ns, json!({})).await;

    cluster
        .apply_deployment("served", ns, "1024")
        .unwrap_or_else(|e| panic!("kubectl apply: {e}"));
    let served = wait_for_pods(client, ns, "app=served", 1).await;
    assert_injected(&served[0], "1024", &["web"]);

    // Made while the webhook is stopped: the ReplicaSet's pod (waited for
    // before the webhook comes back) and a bare pod.
    script(&["webhook", "stop"]).expect("webhook stop");
    let started = StartWebhook;
    cluster
        .apply_deployment("late", ns, "1024")
        .unwrap_or_else(|e| panic!("with the webhook stopped, apply must pass: {e}"));
    let late = wait_for_pods(client, ns, "app=late", 1).await;
    let bare = create_pod(
        client,
        ns,
        simple_pod("bare", json!({"forcebacklog/value": "512"})),
    )
    .await
    .expect("failurePolicy Ignore admits the bare pod");
    drop(started);
    for pod in [&late[0], &bare] {
        assert_untouched(pod);
        assert_eq!(annotation(pod, "forcebacklog/status"), None);
    }
    let late_pod = late[0].metadata.name.clone().expect("name");
    assert!(
        late[0]
            .metadata
            .owner_references
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|o| o.kind == "ReplicaSet"),
        "the late pod is owned by a ReplicaSet"
    );

    let (code, report, stderr) = audit();
    assert_eq!(code, Some(1), "something is missed: {report:#} {stderr}");
    let state_of = |report: &Value, name: &str| {
        report["pods"]
            .as_array()
            .expect("pods")
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| (p["state"].clone(), p["owner"].clone()))
    };
    let served_pod = served[0].metadata.name.as_deref().expect("name");
    assert_eq!(
        state_of(&report, served_pod),
        Some((
            json!("injected"),
            json!({"kind": "Deployment", "name": "served"})
        )),
        "{report:#}"
    );
    assert_eq!(
        state_of(&report, &late_pod),
        Some((
            json!("missed"),
            json!({"kind": "Deployment", "name": "late"})
        )),
        "the Deployment, found through the ReplicaSet: {report:#}"
    );
    assert_eq!(
        state_of(&report, "bare"),
        Some((json!("missed"), json!({"kind": "Pod", "name": "bare"}))),
        "{report:#}"
    );
    assert_eq!(
        report["summary"],
        json!({"injected": 1, "skipped": 0, "missed": 2}),
        "{report:#}"
    );
    let owner = |kind: &str, name: &str| {
        report["owners"]
            .as_array()
            .expect("owners")
            .iter()
            .find(|o| o["kind"] == kind && o["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no owner {kind}/{name}: {report:#}"))
    };
    let late_owner = owner("Deployment", "late");
    assert_eq!(late_owner["missed_pods"], json!([late_pod]));
    let restart = format!("kubectl -n {ns} rollout restart deployment/late");
    assert_eq!(late_owner["fix"], restart.as_str());
    assert!(owner("Deployment", "served").get("fix").is_none());
    let bare_fix = owner("Pod", "bare")["fix"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        bare_fix.contains("delete and recreate pod/bare"),
        "{bare_fix}"
    );

    // The fix it printed, then the old pods gone.
    let args: Vec<&str> = restart.split_whitespace().skip(1).collect();
    cluster
        .kubectl(&args, None)
        .unwrap_or_else(|e| panic!("{restart}: {e}"));
    let pods = wait_for_pods(client, ns, "app=late", 2).await;
    let new = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() != Some(late_pod.as_str()))
        .expect("a new pod");
    assert_injected(new, "1024", &["web"]);
    let now = DeleteParams::default().grace_period(0);
    for name in [late_pod.as_str(), "bare"] {
        pods_api
            .delete(name, &now)
            .await
            .unwrap_or_else(|e| panic!("deleting {name}: {e}"));
    }
    let (code, report, stderr) = audit();
    assert_eq!(
        code,
        Some(0),
        "nothing missed any more: {report:#} {stderr}"
    );
    assert_eq!(report["summary"]["missed"], 0, "{report:#}");
    assert!(state_of(&report, &late_pod).is_none(), "{report:#}");
    assert_eq!(
        state_of(&report, new.metadata.name.as_deref().expect("name")),
        Some((
            json!("injected"),
            json!({"kind": "Deployment", "name": "late"})
        )),
        "{report:#}"
    );

    // As a ServiceAccount with nothing granted: exit 2 and the API
    // server's "forbidden"; with the chart's audit ClusterRole bound to it:
    // the same report. Its own context (the namespace comes from it).
    cluster
        .kubectl(&["-n", ns, "create", "serviceaccount", "auditor"], None)
        .unwrap_or_else(|e| panic!("create serviceaccount: {e}"));
    let token = cluster
        .kubectl(&["-n", ns, "create", "token", "auditor"], None)
        .unwrap_or_else(|e| panic!("create token: {e}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::copy(&cluster.kubeconfig, &kubeconfig).expect("copy kubeconfig");
    let kubeconfig_arg = kubeconfig.to_string_lossy().into_owned();
    let config = |args: &[&str]| {
        let mut all = vec!["config", "--kubeconfig", &kubeconfig_arg];
        all.extend_from_slice(args);
        Command::new(cluster.bin.join("kubectl"))
            .args(&all)
            .output()
            .map(|o| assert!(o.status.success(), "kubectl config {args:?}: {o:?}"))
            .expect("kubectl config");
    };
    config(&[
        "set-credentials",
        "auditor",
        &format!("--token={}", token.trim()),
    ]);
    config(&[
        "set-context",
        "auditor",
        "--cluster=forcebacklog",
        "--user=auditor",
        &format!("--namespace={ns}"),
    ]);
    let as_auditor = || {
        Command::new(env!("CARGO_BIN_EXE_forcebacklog"))
            .args([
                "audit",
                "-o",
                "json",
                "--context",
                "auditor",
                "--kubeconfig",
            ])
            .arg(&kubeconfig)
            .output()
            .expect("running forcebacklog audit")
    };
    let out = as_auditor();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("forbidden")
            && stderr.contains(&format!("system:serviceaccount:{ns}:auditor"))
            && stderr.contains("audit needs to list pods and namespaces"),
        "{stderr}"
    );
    let release = format!("audit-{}", run_id());
    let subjects = format!(
        r#"audit.rbac.subjects=[{{"kind":"ServiceAccount","name":"auditor","namespace":"{ns}"}}]"#
    );
    let rbac = cluster
        .tool(
            "helm",
            &[
                "template",
                &release,
                &format!("{ROOT}/charts/forcebacklog"),
                "--set",
                "audit.rbac.create=true",
                "--set-json",
                &subjects,
                "--show-only",
                "templates/audit-rbac.yaml",
            ],
            None,
        )
        .unwrap_or_else(|e| panic!("helm template: {e}"));
    cluster
        .kubectl(&["apply", "-f", "-"], Some(&rbac))
        .unwrap_or_else(|e| panic!("kubectl apply the audit ClusterRole: {e}"));
    // RBAC changes reach the authorizer within moments.
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = as_auditor();
        if out.status.code() != Some(2) || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let _ = cluster.kubectl(&["delete", "-f", "-"], Some(&rbac));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "with the chart's ClusterRole: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["summary"]["missed"], 0, "{report:#}");
    assert_eq!(
        state_of(&report, served_pod),
        Some((
            json!("injected"),
            json!({"kind": "Deployment", "name": "served"})
        )),
        "{report:#}"
    );
    assert_eq!(report["scope"], format!("namespace {ns}").as_str());

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(ns, &DeleteParams::default()).await;
}

/// A second mutating webhook adds a container after ours; the API server
/// re-invokes ours, which injects the late container; ours stays once.
async fn reinvocation_injects_a_late_container(client: &Client, ns: &str, musl: &str) -> Pod {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("cert params");
    params.subject_alt_names = vec![rcgen::SanType::IpAddress([127, 0, 0, 1].into())];
    let cert = params.self_signed(&key).expect("self-signed");
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_file, cert.pem()).expect("write cert");
    std::fs::write(&key_file, key.serialize_pem()).expect("write key");
    let port = "9443";
    let mut server = Command::new("bash")
        .arg(Path::new(ROOT).join("tests/e2e/cluster.sh"))
        .args(["exec", "python3"])
        .arg(Path::new(ROOT).join("tests/e2e/cluster/late_sidecar_webhook.py"))
        .args([port])
        .arg(&cert_file)
        .arg(&key_file)
        .arg(musl)
        .stdout(Stdio::null())
        .spawn()
        .expect("start the late-sidecar webhook");
    let name = format!("zz-e2e-late-sidecar-{ns}");
    let config: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": name},
        "webhooks": [{
            "name": "late-sidecar.e2e.forcebacklog.test",
            "clientConfig": {
                "url": format!("https://127.0.0.1:{port}/mutate"),
                "caBundle": k8s_openapi::ByteString(cert.pem().into_bytes()),
            },
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["pods"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "objectSelector": {"matchLabels": {"e2e-late-sidecar": "yes"}},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "reinvocationPolicy": "Never",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5
        }]
    }))
    .expect("webhook configuration");
    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    configs
        .create(&PostParams::default(), &config)
        .await
        .expect("create the second webhook");
    let mut pod = None;
    let deadline = Instant::now() + WAIT;
    // The webhook configuration and the python server take a moment.
    while pod.is_none() {
        let mut spec = app_pod("late", json!({"forcebacklog/value": "1024"}), musl, musl);
        spec["metadata"]["labels"]["e2e-late-sidecar"] = json!("yes");
        match create_pod(client, ns, spec).await {
            Ok(p)
                if p.spec
                    .as_ref()
                    .is_some_and(|s| s.containers.iter().any(|c| c.name == "late")) =>
            {
                pod = Some(p)
            }
            Ok(p) => {
                let api: Api<Pod> = Api::namespaced(client.clone(), ns);
                let _ = api.delete("late", &DeleteParams::default()).await;
                assert!(
                    Instant::now() < deadline,
                    "the second webhook never ran: {p:?}"
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "creating the pod: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
    let _ = configs.delete(&name, &DeleteParams::default()).await;
    let _ = server.kill();
    let _ = server.wait();
    let pod = pod.expect("pod");
    assert_injected(&pod, "1024", &["glibc", "musl", "late"]);
    pod
}

/// With failurePolicy Fail everywhere and the webhook down, the chart's
/// matchConditions decide who is called: what does not ask for
/// forcebacklog is created; what asks is refused by the right webhook.
async fn match_conditions_spare_pods_that_do_not_ask(
    cluster: &Cluster,
    client: &Client,
    ns: &str,
    ns_enabled: &str,
) {
    let chart = format!("{ROOT}/charts/forcebacklog");
    let helm = |extra: &[&str]| {
        // --reset-values: Helm 3 reuses the last release's values otherwise.
        let mut args = vec![
            "upgrade",
            RELEASE,
            &chart,
            "--namespace",
            RELEASE_NAMESPACE,
            "--reset-values",
        ];
        args.extend_from_slice(extra);
        cluster
            .tool("helm", &args, None)
            .unwrap_or_else(|e| panic!("helm upgrade {extra:?}: {e}"));
    };
    helm(&[
        "--set",
        "webhook.failurePolicy=Fail",
        "--set",
        "webhook.validation.failurePolicy=Fail",
    ]);
    script(&["webhook", "stop"]).expect("webhook stop");
    let plain = create_pod(client, ns, simple_pod("fail-plain", json!({"team": "a"}))).await;
    let asks = create_pod(
        client,
        ns,
        simple_pod("fail-asks", json!({"forcebacklog/value": "300"})),
    )
    .await;
    let in_enabled = create_pod(client, ns_enabled, simple_pod("fail-ns", json!({}))).await;
    let workload = cluster.apply_deployment("fail-deploy", ns, "300");
    // And without matchConditions (clusters older than 1.30), every pod of
    // a watched namespace reaches the webhook.
    helm(&[
        "--set",
        "webhook.failurePolicy=Fail",
        "--set",
        "webhook.matchConditions=false",
    ]);
    let plain_without =
        create_pod(client, ns, simple_pod("fail-plain-2", json!({"team": "a"}))).await;
    helm(&[]);
    script(&["webhook", "start"]).expect("webhook start");

    plain.expect("a pod without forcebacklog annotations never reaches the webhook");
    let err = asks.expect_err("an annotated pod is refused while the webhook is down (Fail)");
    assert!(
        err.to_string().contains("pods.forcebacklog.github.io"),
        "{err}"
    );
    let err = in_enabled.expect_err("a pod of an opted-in namespace is refused (Fail)");
    assert!(
        err.to_string()
            .contains("namespace-pods.forcebacklog.github.io"),
        "{err}"
    );
    let err = workload.expect_err("an annotated Deployment is refused (Fail)");
    assert!(err.contains("workloads.forcebacklog.github.io"), "{err}");
    let err =
        plain_without.expect_err("without matchConditions the plain pod is sent, and refused");
    assert!(
        err.to_string().contains("pods.forcebacklog.github.io"),
        "{err}"
    );
}

/// The QoS class the API server computes is the same with and without
/// the injection; a LimitRange minimum above the init container's
/// resources refuses the pod (the documented case).
async fn qos_class_is_kept(client: &Client, ns: &str) {
    let shapes = [
        ("besteffort", json!({}), "BestEffort"),
        (
            "guaranteed",
            json!({"requests": {"cpu": "500m", "memory": "256Mi"},
                              "limits": {"cpu": "500m", "memory": "256Mi"}}),
            "Guaranteed",
        ),
        (
            "limits-only",
            json!({"limits": {"cpu": "1", "memory": "1Gi"}}),
            "Guaranteed",
        ),
        (
            "burstable",
            json!({"requests": {"cpu": "100m"}}),
            "Burstable",
        ),
    ];
    for (name, resources, class) in shapes {
        for (suffix, annotations) in [
            ("plain", json!({})),
            ("injected", json!({"forcebacklog/value": "1024"})),
        ] {
            let mut spec = simple_pod(&format!("qos-{name}-{suffix}"), annotations);
            spec["spec"]["containers"][0]["resources"] = resources.clone();
            let pod = create_pod(client, ns, spec).await.expect("create");
            let got = pod.status.as_ref().and_then(|s| s.qos_class.clone());
            assert_eq!(got.as_deref(), Some(class), "qos-{name}-{suffix}");
            if suffix == "injected" {
                assert_injected(&pod, "1024", &["web"]);
            }
        }
    }
}

async fn limit_range_minimum_refuses_a_burstable_pod(client: &Client, ns: &str) {
    let ranges: Api<k8s_openapi::api::core::v1::LimitRange> = Api::namespaced(client.clone(), ns);
    let range = serde_json::from_value(json!({
        "metadata": {"name": "min-cpu"},
        "spec": {"limits": [{"type": "Container", "min": {"cpu": "50m"}}]}
    }))
    .expect("limit range");
    ranges
        .create(&PostParams::default(), &range)
        .await
        .expect("create LimitRange");
    let mut spec = simple_pod("lr-burstable", json!({"forcebacklog/value": "1024"}));
    spec["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "100m"}});
    let err = create_pod(client, ns, spec)
        .await
        .expect_err("the init container's 10m is below the minimum");
    assert!(
        err.to_string().contains("minimum cpu usage per Container"),
        "{err}"
    );
    let _ = ranges.delete("min-cpu", &DeleteParams::default()).await;
}

/// Name collisions, foreign init containers, read-only parents of the
/// mount point, Windows by node affinity: each admitted, skipped with a
/// reason, never a `Duplicate value`.
async fn collisions_are_skipped_not_rejected(client: &Client, ns: &str) {
    let asks = json!({"forcebacklog/value": "1024"});
    let mut cases = Vec::new();
    let mut p = simple_pod("col-app", asks.clone());
    p["spec"]["containers"][0]["name"] = json!("forcebacklog-install");
    cases.push(p);
    let mut p = simple_pod("col-init", asks.clone());
    p["spec"]["initContainers"] = json!([{"name": "forcebacklog-install", "image": "registry.invalid/setup:1",
                                          "command": ["/setup"]}]);
    cases.push(p);
    let mut p = simple_pod("col-ro-opt", asks.clone());
    p["spec"]["volumes"] = json!([{"name": "opt", "emptyDir": {}}]);
    p["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "opt", "mountPath": "/opt", "readOnly": true}]);
    cases.push(p);
    let mut p = simple_pod("col-windows", asks.clone());
    p["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/os", "operator": "In", "values": ["windows"]}]}]}}});
    cases.push(p);
    for case in cases {
        let name = case["metadata"]["name"].as_str().unwrap_or("?").to_owned();
        let pod = create_pod(client, ns, case)
            .await
            .unwrap_or_else(|e| panic!("{name}: the API server refused the pod: {e}"));
        let status = annotation(&pod, "forcebacklog/status").unwrap_or_default();
        assert!(status.starts_with("skipped: "), "{name}: {status:?}");
        assert!(
            pod.spec
                .as_ref()
                .expect("spec")
                .containers
                .iter()
                .all(|c| env_of(&pod, &c.name, "LD_PRELOAD").is_none()),
            "{name}: nothing injected"
        );
    }
}

/// The last mile: a pod as the API server stored it, run by the Docker
/// kubelet emulation; `ss` in its network namespace shows the backlog.
fn run_stored_pod(
    pod: &Pod,
    ports: &[u16],
    prefix: &str,
    pause: &str,
    work: &Path,
    cleanup: &Cleanup,
) -> Vec<(u16, u32)> {
    let json = serde_json::to_value(pod).expect("pod json");
    let running = kubelet::run_pod(&json, prefix, pause, &work.join("volumes"), cleanup)
        .unwrap_or_else(|e| panic!("running the stored pod: {e}"));
    kubelet::wait_for_listeners(&running, ports).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn real_api_server_end_to_end() {
    let _serial = crate::one_at_a_time();
    let Some(cluster) = cluster() else { return };
    let started = Instant::now();
    let id = run_id();
    let work = tempfile::tempdir().expect("tempdir");
    let cleanup = Cleanup::default();
    let prefix = format!("fbcluster-{id}");
    let (glibc, musl, pause) = images::build_app_images(work.path(), &prefix, &cleanup);
    let static_image = images::build_static_image(work.path(), &prefix, &cleanup);

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let client = client(&cluster).await;
        let step = |what: &str| eprintln!("[{:>5.1?}] {what}", started.elapsed());
        let ns = |s: &str| format!("e2e-{id}-{s}");
        create_namespace(&client, &ns("apps"), json!({})).await;
        create_namespace(
            &client,
            &ns("enabled"),
            json!({"forcebacklog/inject": "enabled"}),
        )
        .await;
        create_namespace(
            &client,
            &ns("restricted"),
            json!({"pod-security.kubernetes.io/enforce": "restricted",
                   "pod-security.kubernetes.io/enforce-version": "latest"}),
        )
        .await;

        step("helm upgrade keeps the generated certificate");
        helm_upgrade_keeps_the_certificate(&cluster, &client).await;
        step("a Deployment's pods are injected");
        deployment_pods_are_injected(&cluster, &client, &ns("apps")).await;
        step("namespace label, opt-out, excluded namespaces");
        namespace_label_and_exclusions(&client, &ns("enabled")).await;
        step("Pod Security restricted admits the mutated pod");
        let app =
            restricted_namespace_admits_the_mutated_pod(&client, &ns("restricted"), &glibc, &musl)
                .await;
        metrics_sidecar_admitted_in_restricted(&client, &ns("restricted"), &glibc, &musl).await;
        step("invalid values rejected at apply; scale-up never blocked");
        invalid_values_rejected_scale_never_blocked(&cluster, &client, &ns("apps")).await;
        step("webhook down: Ignore; back: injected");
        webhook_down_then_back(&client, &ns("apps")).await;
        step("audit: missed pods, then fixed by the rollout restart it prints");
        audit_reports_missed_pods_until_restarted(&cluster, &client, &ns("audit")).await;
        step("QoS class kept; LimitRange minimum");
        qos_class_is_kept(&client, &ns("apps")).await;
        limit_range_minimum_refuses_a_burstable_pod(&client, &ns("enabled")).await;
        step("collisions skipped, never rejected");
        collisions_are_skipped_not_rejected(&client, &ns("apps")).await;
        step("matchConditions with failurePolicy Fail");
        match_conditions_spare_pods_that_do_not_ask(&cluster, &client, &ns("apps"), &ns("enabled"))
            .await;
        step("reinvocation injects a container added after ours");
        let late = reinvocation_injects_a_late_container(&client, &ns("restricted"), &musl).await;
        step("method supervise: wrapped command, binary copied, restricted");
        let supervised =
            supervise_in_restricted(&cluster, &client, &ns("restricted"), &static_image).await;

        step("the last mile: stored pods run, ss shows the backlog");
        let found = run_stored_pod(
            &app,
            &[GLIBC_PORT, MUSL_PORT],
            &format!("{prefix}-app"),
            &pause,
            work.path(),
            &cleanup,
        );
        assert_eq!(
            found,
            vec![(GLIBC_PORT, 1024), (MUSL_PORT, 1024)],
            "glibc and musl apps"
        );
        let found = run_stored_pod(
            &late,
            &[GLIBC_PORT, MUSL_PORT, LATE_PORT],
            &format!("{prefix}-late"),
            &pause,
            work.path(),
            &cleanup,
        );
        assert_eq!(
            found,
            vec![(GLIBC_PORT, 1024), (MUSL_PORT, 1024), (LATE_PORT, 1024)],
            "the late container too"
        );
        let found = run_stored_pod(
            &supervised,
            &[STATIC_PORT],
            &format!("{prefix}-supervised"),
            &pause,
            work.path(),
            &cleanup,
        );
        assert_eq!(
            found,
            vec![(STATIC_PORT, 1024)],
            "the static server under the supervisor"
        );

        let namespaces: Api<Namespace> = Api::all(client.clone());
        for s in ["apps", "enabled", "restricted"] {
            let _ = namespaces.delete(&ns(s), &DeleteParams::default()).await;
        }
        step("done");
    });
}
