//! End to end on a Docker engine, no cluster: build the forcebacklog image
//! (docker/build-local.sh, FROM scratch) and two app images FROM scratch
//! (a C server with a hard-coded `listen(fd, 20)`, linked dynamically
//! against glibc and against musl), run the real `forcebacklog serve` from
//! the image over HTTPS, send it AdmissionReviews, apply the JSONPatch it
//! returns, run the mutated pod the way a kubelet would (tests/e2e/kubelet.rs)
//! and read the listen queues with `ss` inside the pod's network namespace.
//! A static musl server in a pod annotated `forcebacklog/method: supervise`
//! runs under the wrapped command as a non-root user with no capability,
//! no-new-privileges and Docker's default seccomp profile.
//!
//! Needs root, docker.io (daemon running), gcc, musl-tools, iproute2,
//! util-linux, binutils and the Rust target x86_64-unknown-linux-musl.
//! Missing tools fail the test with the package to install, unless
//! FORCEBACKLOG_ALLOW_SKIP=1.

use crate::{images, kubelet};

use images::{build_app_images, build_static_image, run};
use kubelet::{Cleanup, docker, docker_str};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The backlog the namespace-label case must get: `serve --default-backlog`.
const DEFAULT_BACKLOG: u32 = 777;
/// The app's own hard-coded backlog (tests/e2e/fixtures/listen20.c).
const APP_BACKLOG: u32 = 20;
const GLIBC_PORT: u16 = 8080;
const MUSL_PORT: u16 = 8081;
const STATIC_PORT: u16 = 8082;

/// Returns false to skip (allowed by FORCEBACKLOG_ALLOW_SKIP=1); panics with
/// the missing package otherwise.
fn prerequisites() -> bool {
    let tools = [
        ("docker", "--version", "docker.io"),
        ("gcc", "--version", "gcc"),
        ("musl-gcc", "--version", "musl-tools"),
        ("ldd", "--version", "libc-bin"),
        ("readelf", "--version", "binutils"),
        ("nsenter", "--version", "util-linux"),
        ("ss", "--version", "iproute2"),
        ("cargo", "--version", "cargo (rustup)"),
    ];
    let mut missing: Vec<String> = tools
        .iter()
        .filter(|(tool, arg, _)| Command::new(tool).arg(arg).output().is_err())
        .map(|(tool, _, package)| format!("{tool} (Debian package {package})"))
        .collect();
    if missing.is_empty() && docker_str(&["info", "--format", "{{.ServerVersion}}"]).is_err() {
        missing.push("a running Docker daemon (start dockerd; Debian package docker.io)".into());
    }
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    if uid != "0" {
        missing.push("root (nsenter into a container's network namespace)".into());
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!("the Docker end-to-end test needs {}", missing.join(", "));
    if std::env::var("FORCEBACKLOG_ALLOW_SKIP").as_deref() == Ok("1") {
        eprintln!("SKIPPED (FORCEBACKLOG_ALLOW_SKIP=1): {why}");
        false
    } else {
        panic!("{why} (set FORCEBACKLOG_ALLOW_SKIP=1 to skip)");
    }
}

/// Names unique to this run: containers, images and directories.
fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("fbe2e-{}-{nanos:x}", std::process::id())
}

/// Builds the forcebacklog image with docker/build-local.sh; returns its size.
fn build_forcebacklog_image(tag: &str) -> u64 {
    let out = run(Command::new("bash")
        .arg(Path::new(ROOT).join("docker/build-local.sh"))
        .arg(tag));
    let last = out.lines().last().unwrap_or_default();
    last.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("build-local.sh printed no size: {out}"))
}

/// A CA and a serving certificate for 127.0.0.1; (ca PEM, dir with
/// tls.crt/tls.key readable by the image's user 65532).
fn certificates(work: &Path) -> (String, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "forcebacklog e2e CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");

    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec![
        "127.0.0.1".to_owned(),
        "forcebacklog.forcebacklog.svc".to_owned(),
    ])
    .expect("params");
    let cert = params.signed_by(&key, &ca).expect("signed certificate");

    let dir = work.join("tls");
    std::fs::create_dir_all(&dir).expect("mkdir tls");
    std::fs::write(dir.join("tls.crt"), cert.pem()).expect("write cert");
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).expect("write key");
    use std::os::unix::fs::PermissionsExt;
    for (file, mode) in [("tls.crt", 0o444), ("tls.key", 0o444), ("", 0o755)] {
        std::fs::set_permissions(dir.join(file), std::fs::Permissions::from_mode(mode))
            .expect("chmod");
    }
    (ca.pem(), dir)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The webhook, running from the image.
struct Webhook {
    addr: SocketAddr,
    admin: SocketAddr,
    ca_pem: String,
    container: String,
}

fn start_webhook(image: &str, prefix: &str, work: &Path, cleanup: &Cleanup) -> Webhook {
    let (ca_pem, tls_dir) = certificates(work);
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let container = format!("{prefix}-webhook");
    cleanup.container(&container);
    // As the chart runs it: user 65532, read-only root, no capabilities,
    // the certificate mounted read-only.
    docker(&[
        "run".into(),
        "-d".into(),
        "--pull".into(),
        "never".into(),
        "--name".into(),
        container.clone(),
        "--network".into(),
        "host".into(),
        "--read-only".into(),
        "--cap-drop".into(),
        "ALL".into(),
        "--security-opt".into(),
        "no-new-privileges".into(),
        "-v".into(),
        format!("{}:/etc/forcebacklog/tls:ro", tls_dir.display()),
        image.into(),
        "serve".into(),
        "--tls-cert=/etc/forcebacklog/tls/tls.crt".into(),
        "--tls-key=/etc/forcebacklog/tls/tls.key".into(),
        format!("--addr={addr}"),
        format!("--admin-addr={admin}"),
        format!("--image={image}"),
        format!("--default-backlog={DEFAULT_BACKLOG}"),
        "--log-format=json".into(),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let webhook = Webhook {
        addr,
        admin,
        ca_pem,
        container,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready(webhook.admin) {
        if Instant::now() > deadline {
            let logs = docker_str(&["logs", &webhook.container]).unwrap_or_else(|e| e);
            panic!(
                "the webhook never became ready on {}/readyz:\n{logs}",
                webhook.admin
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    webhook
}

/// GET /readyz on the admin port answers 200.
fn ready(admin: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&admin, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}

/// POSTs `body` over HTTPS (TLS verified against the test CA); returns
/// (status, body).
fn post(webhook: &Webhook, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(webhook.ca_pem.as_bytes()).expect("CA PEM"))
        .expect("CA accepted");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::from(webhook.addr.ip());
    let connection = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let tcp = TcpStream::connect(webhook.addr).expect("connect to the webhook");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: forcebacklog.forcebacklog.svc\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).expect("send request head");
    tls.write_all(body).expect("send request body");
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // A peer that closes without close_notify after a complete answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => panic!("reading the webhook's answer: {e}"),
    }
    parse_http_response(&raw)
}

fn parse_http_response(raw: &[u8]) -> (u16, Vec<u8>) {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size");
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[..line_end])
                    .split(';')
                    .next()
                    .unwrap_or("0")
                    .trim(),
                16,
            )
            .expect("hex chunk size");
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest = &rest[line_end + 2 + size + 2..];
        }
        body = out;
    }
    (status, body)
}

/// A Pod as the apiserver would send it for CREATE.
fn pod(name: &str, annotations: Value, glibc: &str, musl: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "apps", "labels": {"app": name},
                     "annotations": annotations},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {"name": "glibc", "image": glibc, "args": [GLIBC_PORT.to_string()],
                 "ports": [{"containerPort": GLIBC_PORT, "protocol": "TCP"}],
                 "env": [{"name": "GREETING", "value": "kept"}],
                 "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                     "capabilities": {"drop": ["ALL"]}}},
                {"name": "musl", "image": musl, "args": [MUSL_PORT.to_string()],
                 "ports": [{"containerPort": MUSL_PORT, "protocol": "TCP"}],
                 "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                     "capabilities": {"drop": ["ALL"]}}}
            ]
        }
    })
}

/// What the webhook answered, with the patch applied.
struct Admitted {
    pod: Value,
    patched: bool,
    warnings: Vec<String>,
}

/// Sends `pod` to `path` as an AdmissionReview and applies the answer.
fn admit(webhook: &Webhook, path: &str, pod: &Value) -> Admitted {
    let uid = format!("e2e-{}", unique_prefix());
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "apps",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    });
    let (status, body) = post(webhook, path, review.to_string().as_bytes());
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "POST {path} answered {status}: {text}");
    let answer: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("POST {path}: not JSON ({e}): {text}"));
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1", "{answer}");
    assert_eq!(answer["kind"], "AdmissionReview", "{answer}");
    let response = &answer["response"];
    assert_eq!(response["uid"], uid.as_str(), "the uid is echoed");
    assert_eq!(
        response["allowed"], true,
        "pods are never refused: {response}"
    );
    let warnings = response["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w.as_str().map(str::to_owned))
        .collect();
    let mut mutated = pod.clone();
    let patched = match response["patch"].as_str() {
        None => false,
        Some(encoded) => {
            use base64::Engine as _;
            assert_eq!(response["patchType"], "JSONPatch", "{response}");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .expect("the patch is base64");
            let patch: json_patch::Patch =
                serde_json::from_slice(&bytes).expect("the patch is an RFC 6902 JSON Patch");
            json_patch::patch(&mut mutated, &patch)
                .unwrap_or_else(|e| panic!("the patch does not apply to the pod: {e}"));
            true
        }
    };
    Admitted {
        pod: mutated,
        patched,
        warnings,
    }
}

/// Runs the pod and returns the Send-Q of its two listeners (glibc, musl).
fn run_and_measure(
    pod: &Value,
    prefix: &str,
    pause: &str,
    work: &Path,
    cleanup: &Cleanup,
) -> (u32, u32) {
    let running = kubelet::run_pod(pod, prefix, pause, &work.join("volumes"), cleanup)
        .unwrap_or_else(|e| panic!("running pod {prefix}: {e}"));
    let found = kubelet::wait_for_listeners(&running, &[GLIBC_PORT, MUSL_PORT])
        .unwrap_or_else(|e| panic!("pod {prefix}: {e}"));
    let backlog = |port| {
        found
            .iter()
            .find(|(p, _)| *p == port)
            .map(|(_, q)| *q)
            .expect("listener")
    };
    let result = (backlog(GLIBC_PORT), backlog(MUSL_PORT));
    // Stop this pod's containers now: the next pod reuses the ports only in
    // its own sandbox, but there is no reason to keep these running.
    let mut names = vec!["rm".to_owned(), "-f".to_owned(), running.sandbox.clone()];
    names.extend(running.containers.iter().map(|(_, n)| n.clone()));
    let _ = docker(&names);
    result
}

/// A Pod with one container running the static server, as the restricted
/// Pod Security level requires it: non-root, no capability, no privilege
/// escalation (no-new-privileges), the runtime's default seccomp profile.
fn static_pod(name: &str, annotations: Value, image: &str, command: bool) -> Value {
    let mut container = json!({
        "name": "static", "image": image, "args": [STATIC_PORT.to_string()],
        "ports": [{"containerPort": STATIC_PORT, "protocol": "TCP"}],
        // Resources make the init container's requests = limits (16Mi of
        // memory): the binary's copy must fit in them.
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"},
                      "limits": {"cpu": "100m", "memory": "64Mi"}},
        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]}}
    });
    if command {
        container["command"] = json!(["/server"]);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "apps", "labels": {"app": name},
                     "annotations": annotations},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container]
        }
    })
}

/// Runs a pod of [`static_pod`] and returns the Send-Q of its listener.
fn run_static(pod: &Value, prefix: &str, pause: &str, work: &Path, cleanup: &Cleanup) -> u32 {
    let running = kubelet::run_pod(pod, prefix, pause, &work.join("volumes"), cleanup)
        .unwrap_or_else(|e| panic!("running pod {prefix}: {e}"));
    let found = kubelet::wait_for_listeners(&running, &[STATIC_PORT])
        .unwrap_or_else(|e| panic!("pod {prefix}: {e}"));
    let mut names = vec!["rm".to_owned(), "-f".to_owned(), running.sandbox.clone()];
    names.extend(running.containers.iter().map(|(_, n)| n.clone()));
    let _ = docker(&names);
    found
        .iter()
        .find(|(p, _)| *p == STATIC_PORT)
        .map(|(_, q)| *q)
        .expect("listener")
}

fn annotation<'a>(pod: &'a Value, key: &str) -> Option<&'a str> {
    pod["metadata"]["annotations"][key].as_str()
}

#[test]
fn mutated_pods_get_the_backlog_in_docker() {
    if !prerequisites() {
        return;
    }
    let _serial = crate::one_at_a_time();
    let started = Instant::now();
    let prefix = unique_prefix();
    let cleanup = Cleanup::default();
    let work = tempfile::tempdir().expect("temp dir");

    let image = format!("{prefix}/forcebacklog:e2e");
    cleanup.image(&image);
    let size = build_forcebacklog_image(&image);
    let image_built = started.elapsed();
    eprintln!("e2e: forcebacklog image {image}: {size} bytes, built in {image_built:.1?}");
    assert!(
        size <= 15 * 1024 * 1024,
        "the image is {size} bytes, over 15 MiB"
    );
    assert_eq!(
        docker_str(&[
            "image",
            "inspect",
            "-f",
            "{{.Config.User}} {{json .Config.Entrypoint}}",
            &image
        ])
        .expect("inspect"),
        "65532:65532 [\"/forcebacklog\"]"
    );

    let (glibc, musl, pause) = build_app_images(work.path(), &prefix, &cleanup);
    let static_image = build_static_image(work.path(), &prefix, &cleanup);
    let webhook = start_webhook(&image, &prefix, work.path(), &cleanup);
    let setup = started.elapsed();
    eprintln!("e2e: app images and webhook ready after {setup:.1?}");

    // 1. Annotated pod: both apps get 234, whatever libc they use.
    let admitted = admit(
        &webhook,
        "/mutate",
        &pod(
            "annotated",
            json!({"forcebacklog/value": "234"}),
            &glibc,
            &musl,
        ),
    );
    assert!(admitted.patched, "an annotated pod is patched");
    let p = &admitted.pod;
    assert_eq!(annotation(p, "forcebacklog/status"), Some("injected"));
    let init = &p["spec"]["initContainers"][0];
    assert_eq!(init["name"], "forcebacklog-install");
    assert_eq!(
        init["image"],
        image.as_str(),
        "the init container uses the webhook's image"
    );
    assert_eq!(
        init["command"],
        json!(["/forcebacklog", "install-shim", "/opt/forcebacklog"])
    );
    for c in p["spec"]["containers"].as_array().expect("containers") {
        let env = c["env"].as_array().expect("env");
        let get = |k: &str| {
            env.iter()
                .find(|e| e["name"] == k)
                .map(|e| e["value"].clone())
        };
        assert_eq!(get("BACKLOG"), Some(json!("234")), "{c}");
        assert_eq!(
            get("LD_PRELOAD"),
            Some(json!("/opt/forcebacklog/libforcebacklog.so"))
        );
    }
    let (g, m) = run_and_measure(
        p,
        &format!("{prefix}-annotated"),
        &pause,
        work.path(),
        &cleanup,
    );
    eprintln!("e2e: annotated pod: glibc Send-Q {g}, musl Send-Q {m}");
    assert_eq!(
        (g, m),
        (234, 234),
        "Send-Q of the annotated pod's listeners"
    );

    // 2. Control: no annotation through /mutate → untouched, the app's 20.
    let admitted = admit(
        &webhook,
        "/mutate",
        &pod("control", json!({}), &glibc, &musl),
    );
    assert!(
        admitted.pod["spec"]["initContainers"].is_null(),
        "control pod not injected"
    );
    let (g, m) = run_and_measure(
        &admitted.pod,
        &format!("{prefix}-control"),
        &pause,
        work.path(),
        &cleanup,
    );
    eprintln!("e2e: control pod: glibc Send-Q {g}, musl Send-Q {m}");
    assert_eq!((g, m), (APP_BACKLOG, APP_BACKLOG));

    // 3. Namespace opt-in: the entry for labelled namespaces calls
    //    /mutate/namespace; no annotation → the default backlog.
    let admitted = admit(
        &webhook,
        "/mutate/namespace",
        &pod("labelled", json!({}), &glibc, &musl),
    );
    assert!(admitted.patched);
    assert_eq!(
        annotation(&admitted.pod, "forcebacklog/status"),
        Some("injected")
    );
    let (g, m) = run_and_measure(
        &admitted.pod,
        &format!("{prefix}-labelled"),
        &pause,
        work.path(),
        &cleanup,
    );
    eprintln!("e2e: namespace-labelled pod: glibc Send-Q {g}, musl Send-Q {m}");
    assert_eq!((g, m), (DEFAULT_BACKLOG, DEFAULT_BACKLOG));

    // 4. Invalid value: admitted unchanged but for the status, with a warning.
    let admitted = admit(
        &webhook,
        "/mutate",
        &pod(
            "invalid",
            json!({"forcebacklog/value": "70000"}),
            &glibc,
            &musl,
        ),
    );
    let status = annotation(&admitted.pod, "forcebacklog/status").unwrap_or_default();
    assert!(
        status.starts_with("skipped: "),
        "status of an invalid value: {status:?}"
    );
    assert!(
        admitted
            .warnings
            .iter()
            .any(|w| w.contains("forcebacklog/value") && w.contains("70000")),
        "a warning names the key and the value: {:?}",
        admitted.warnings
    );
    assert!(admitted.pod["spec"]["initContainers"].is_null());
    let (g, m) = run_and_measure(
        &admitted.pod,
        &format!("{prefix}-invalid"),
        &pause,
        work.path(),
        &cleanup,
    );
    eprintln!("e2e: invalid-value pod: glibc Send-Q {g}, musl Send-Q {m}");
    assert_eq!((g, m), (APP_BACKLOG, APP_BACKLOG));

    // 5. A static server: the shim cannot reach it (no loader), it keeps 20.
    let admitted = admit(
        &webhook,
        "/mutate",
        &static_pod(
            "static-shim",
            json!({"forcebacklog/value": "234"}),
            &static_image,
            true,
        ),
    );
    assert_eq!(
        annotation(&admitted.pod, "forcebacklog/status"),
        Some("injected")
    );
    let q = run_static(
        &admitted.pod,
        &format!("{prefix}-static-shim"),
        &pause,
        work.path(),
        &cleanup,
    );
    eprintln!("e2e: static server with the shim: Send-Q {q}");
    assert_eq!(q, APP_BACKLOG, "LD_PRELOAD does not reach a static program");

    // 6. The same pod with forcebacklog/method: supervise: the init
    //    container copies the binary, the command is wrapped, and the
    //    supervisor gives the static server 234 as user 1000 with no
    //    capability, no-new-privileges and Docker's default seccomp profile.
    let admitted = admit(
        &webhook,
        "/mutate",
        &static_pod(
            "static-supervise",
            json!({"forcebacklog/value": "234", "forcebacklog/method": "supervise"}),
            &static_image,
            true,
        ),
    );
    let p = &admitted.pod;
    assert_eq!(annotation(p, "forcebacklog/status"), Some("injected"));
    assert_eq!(
        p["spec"]["initContainers"][0]["resources"]["limits"]["memory"],
        "16Mi"
    );
    assert_eq!(
        p["spec"]["initContainers"][0]["command"],
        json!([
            "/forcebacklog",
            "install-shim",
            "/opt/forcebacklog",
            "--with-binary"
        ])
    );
    let c = &p["spec"]["containers"][0];
    assert_eq!(
        c["command"],
        json!([
            "/opt/forcebacklog/forcebacklog",
            "run",
            "--backlog",
            "234",
            "--method",
            "supervise",
            "--",
            "/server"
        ])
    );
    assert_eq!(c["args"], json!([STATIC_PORT.to_string()]), "args kept");
    assert!(c["env"].is_null(), "no LD_PRELOAD, no BACKLOG: {c}");
    let q = run_static(
        p,
        &format!("{prefix}-static-supervise"),
        &pause,
        work.path(),
        &cleanup,
    );
    eprintln!("e2e: static server under supervise: Send-Q {q}");
    assert_eq!(q, 234, "the supervisor reaches the static server");
    let copied = work
        .path()
        .join("volumes")
        .join(format!("{prefix}-static-supervise"))
        .join("forcebacklog-shim/forcebacklog");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&copied).expect("the binary in the emptyDir");
    assert_eq!(meta.mode() & 0o7777, 0o555, "r-x for every user of the pod");
    assert_eq!(meta.uid(), 65532, "written by the init container's user");

    // 7. Without command: skipped with the reason, runs with its own 20.
    let admitted = admit(
        &webhook,
        "/mutate",
        &static_pod(
            "static-no-command",
            json!({"forcebacklog/value": "234", "forcebacklog/method": "supervise"}),
            &static_image,
            false,
        ),
    );
    let status = annotation(&admitted.pod, "forcebacklog/status").unwrap_or_default();
    assert!(
        status.starts_with("skipped: container static has no command"),
        "{status}"
    );
    assert!(
        admitted.warnings.iter().any(|w| w.contains("set command")),
        "{:?}",
        admitted.warnings
    );
    assert!(admitted.pod["spec"]["initContainers"].is_null());
    let q = run_static(
        &admitted.pod,
        &format!("{prefix}-static-no-command"),
        &pause,
        work.path(),
        &cleanup,
    );
    assert_eq!(q, APP_BACKLOG);

    eprintln!(
        "e2e: done in {:.1?} (image {image_built:.1?}, setup {setup:.1?}, 7 pods {:.1?})",
        started.elapsed(),
        started.elapsed() - setup
    );
}

/// The final stage of the root Dockerfile and docker/Dockerfile.local are
/// the same image: scratch, the binary, user 65532, the entrypoint.
#[test]
fn both_dockerfiles_build_the_same_final_stage() {
    let read = |p: &str| std::fs::read_to_string(Path::new(ROOT).join(p)).expect(p);
    let instructions = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    let main = read("Dockerfile");
    let final_stage = &main[main
        .rfind("FROM scratch")
        .expect("FROM scratch final stage")..];
    let main_stage = instructions(final_stage);
    let local = instructions(&read("docker/Dockerfile.local"));
    assert_eq!(main_stage.len(), local.len(), "{main_stage:?} vs {local:?}");
    for (a, b) in main_stage.iter().zip(&local) {
        let normalise = |s: &str| s.replace("--from=build /out/forcebacklog", "forcebacklog");
        assert_eq!(normalise(a), normalise(b));
    }
    assert!(main_stage.contains(&"USER 65532:65532".to_owned()));
    assert!(main_stage.contains(&"ENTRYPOINT [\"/forcebacklog\"]".to_owned()));
    assert!(main.contains("x86_64-unknown-linux-musl") || main.contains("unknown-linux-musl"));
    assert!(
        main.contains("TARGETARCH"),
        "multi-arch via buildx's TARGETARCH"
    );
}
