//! `forcebacklog inject`, run as the real binary: the shipped examples, stdin,
//! bad input, and the 34 real-world manifests of the Istio injection corpus
//! (`../shared/corpus/istio-inject`).

use crate::support;

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::{lines_kept, strip_injection};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_forcebacklog"))
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs `forcebacklog inject ARGS` with `stdin` piped in.
fn inject(args: &[&str], stdin: &str) -> Output {
    let mut child = bin()
        .arg("inject")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the forcebacklog binary runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "inject failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

/// Parses YAML the way Kubernetes does (YAML 1.1), skipping empty documents.
fn parse(yaml: &str) -> Vec<Value> {
    support::read(yaml)
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// The pod templates of a document, with a path for messages.
fn templates(doc: &Value, at: String, out: &mut Vec<(String, Value)>) {
    let kind = doc["kind"].as_str().unwrap_or("");
    if kind.ends_with("List") {
        for (i, item) in doc["items"].as_array().into_iter().flatten().enumerate() {
            templates(item, format!("{at}/items/{i}"), out);
        }
        return;
    }
    let pointer = match kind {
        "Pod" => "",
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job"
            if doc["apiVersion"] != "apps.openshift.io/v1" =>
        {
            "/spec/template"
        }
        "CronJob" => "/spec/jobTemplate/spec/template",
        _ => return,
    };
    if let Some(t) = doc.pointer(pointer) {
        out.push((format!("{at}{pointer}"), t.clone()));
    }
}

/// Every document deserialises as its k8s-openapi type.
fn typed(doc: &Value) {
    use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};
    fn is<T: serde::de::DeserializeOwned + k8s_openapi::Resource>(doc: &Value) {
        // Older served versions of a kind (batch/v2alpha1 CronJob) have the
        // same shape: read them as the current version.
        let mut doc = doc.clone();
        doc["apiVersion"] = T::API_VERSION.into();
        if let Err(e) = serde_json::from_value::<T>(doc.clone()) {
            panic!(
                "{} is not a valid {}: {e}",
                doc["kind"],
                std::any::type_name::<T>()
            );
        }
    }
    match doc["kind"].as_str().unwrap_or("") {
        "Pod" => is::<core::Pod>(doc),
        "Deployment" if doc["apiVersion"] == "apps/v1" => is::<apps::Deployment>(doc),
        "StatefulSet" => is::<apps::StatefulSet>(doc),
        "DaemonSet" => is::<apps::DaemonSet>(doc),
        "ReplicaSet" => is::<apps::ReplicaSet>(doc),
        "ReplicationController" => is::<core::ReplicationController>(doc),
        "Job" => is::<batch::Job>(doc),
        "CronJob" => is::<batch::CronJob>(doc),
        "Service" => is::<core::Service>(doc),
        "ConfigMap" => is::<core::ConfigMap>(doc),
        _ => {}
    }
    for item in doc["items"].as_array().into_iter().flatten() {
        typed(item);
    }
}

fn status(template: &Value) -> Option<&str> {
    template["metadata"]["annotations"]["forcebacklog/status"].as_str()
}

#[test]
fn example_deployment_is_injected_and_idempotent() {
    let out = bin()
        .args(["inject", "-f"])
        .arg(repo("examples/deployment.yaml"))
        .output()
        .expect("runs");
    let yaml = stdout(&out);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = parse(&yaml);
    assert_eq!(docs.len(), 1);
    typed(&docs[0]);
    let t = &docs[0]["spec"]["template"];
    assert_eq!(status(t), Some("injected"));
    let init = &t["spec"]["initContainers"][0];
    assert_eq!(init["name"], "forcebacklog-install");
    assert_eq!(init["securityContext"]["runAsUser"], 65532);
    let web = &t["spec"]["containers"][0];
    assert_eq!(web["env"][0]["name"], "BACKLOG");
    assert_eq!(web["env"][0]["value"], "1024");
    assert_eq!(
        web["env"][1]["value"],
        "/opt/forcebacklog/libforcebacklog.so"
    );
    assert_eq!(web["volumeMounts"][0]["readOnly"], true);
    // The user's container fields are all still there.
    assert_eq!(web["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(web["command"][2], "http.server");

    // inject of its own output (via stdin) changes nothing.
    let again = stdout(&inject(&["-f", "-"], &yaml));
    assert_eq!(again, yaml);
}

#[test]
fn example_multi_document_stream() {
    let input = std::fs::read_to_string(repo("examples/multi.yaml")).expect("example");
    let yaml = stdout(&inject(&["-f", "-"], &input));
    let docs = parse(&yaml);
    assert_eq!(docs.len(), 3, "CronJob, List, ConfigMap");
    docs.iter().for_each(typed);
    let mut found = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        templates(doc, format!("doc{i}"), &mut found);
    }
    assert_eq!(found.len(), 2, "{found:?}");
    for (at, t) in &found {
        assert_eq!(status(t), Some("injected"), "{at}");
    }
    let cron = &found[0].1["spec"]["containers"][0]["env"];
    assert_eq!(cron[2]["name"], "FORCEBACKLOG_MODE");
    assert_eq!(cron[2]["value"], "set");
    let sts = &found[1].1["spec"];
    assert_eq!(
        sts["containers"][0]["env"][0]["value"],
        "/opt/forcebacklog/libforcebacklog.so:/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
    );
    assert!(
        sts["containers"][1].get("env").is_none(),
        "metrics not selected"
    );
    // The ConfigMap and the Service pass through as they were.
    let original = parse(&input);
    assert_eq!(docs[2], original[2]);
    assert_eq!(docs[1]["items"][1], original[1]["items"][1]);
    assert_eq!(docs[2]["data"]["mode"], "0644");
    assert_eq!(stdout(&inject(&["-f", "-"], &yaml)), yaml);
}

#[test]
fn templates_without_annotation_need_backlog() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    image: x\n";
    let untouched = stdout(&inject(&["-f", "-"], pod));
    assert_eq!(parse(&untouched), parse(pod));
    let injected = stdout(&inject(&["-f", "-", "--backlog", "300"], pod));
    let docs = parse(&injected);
    assert_eq!(docs[0]["spec"]["containers"][0]["env"][0]["value"], "300");
    // --default-backlog is what `forcebacklog/inject: "true"` means.
    let opted = pod.replace(
        "name: p\n",
        "name: p\n  annotations:\n    forcebacklog/inject: \"true\"\n",
    );
    let docs = parse(&stdout(&inject(
        &["-f", "-", "--default-backlog", "999"],
        &opted,
    )));
    assert_eq!(docs[0]["spec"]["containers"][0]["env"][0]["value"], "999");
}

#[test]
fn warnings_go_to_stderr_and_skips_are_recorded() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    forcebacklog/value: \"abc\"\nspec:\n  containers:\n  - name: a\n";
    let out = inject(&["-f", "-"], pod);
    let docs = parse(&stdout(&out));
    assert_eq!(
        status(&docs[0]),
        Some(
            r#"skipped: forcebacklog/value: "abc" is not a backlog: expected a decimal integer in 1..=65535"#
        )
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "forcebacklog: warning: document 1 (Pod p): pod not injected: forcebacklog/value: \"abc\" is not a backlog: expected a decimal integer in 1..=65535\n"
    );
}

#[test]
fn bad_input_is_one_line_and_a_failure() {
    let bad =
        "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: [x\n";
    let out = inject(&["-f", "-"], bad);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).expect("utf-8");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "forcebacklog: -: invalid YAML in document 2 (Pod), in metadata.name[0] at line 6, column "
        ),
        "{err}"
    );
    assert!(err.contains(", column "), "{err}");

    let out = bin()
        .args(["inject", "-f", "/nonexistent/manifest.yaml"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).expect("utf-8");
    assert_eq!(
        err,
        "forcebacklog: cannot read /nonexistent/manifest.yaml: No such file or directory (os error 2)\n"
    );

    let out = inject(
        &["-f", "-"],
        "kind: Deployment\napiVersion: apps/v1\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      containers: 5\n",
    );
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).expect("utf-8");
    assert!(
        err.starts_with(
            "forcebacklog: -: document 1 (Deployment d): spec.template.spec.containers (line 7): invalid type: integer `5`, expected a sequence"
        ),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn istio_corpus_with_backlog_234() {
    let dir = repo("../shared/corpus/istio-inject");
    if !dir.is_dir() {
        if std::env::var("FORCEBACKLOG_ALLOW_SKIP").as_deref() == Ok("1") {
            println!("SKIP: {} is missing", dir.display());
            return;
        }
        panic!(
            "the manifest corpus {} is missing (CI checks out shared/ beside the repository)",
            dir.display()
        );
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 34, "the corpus has 34 manifests");
    let mut injected_templates = 0;
    for file in &files {
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let input = std::fs::read_to_string(file).expect("read");
        let out = bin()
            .args(["inject", "--backlog", "234", "-f"])
            .arg(file)
            .output()
            .expect("runs");
        let yaml = stdout(&out);
        // A gateway is the mesh proxy alone, which is excluded by default.
        let proxy_only = name == "only-proxy-container.yaml";
        let stderr = String::from_utf8_lossy(&out.stderr);
        if proxy_only {
            assert!(
                stderr.contains("pod not injected: the pod has no container to inject"),
                "{name}: {stderr}"
            );
        } else {
            assert!(out.stderr.is_empty(), "{name}: {stderr}");
        }
        let docs = parse(&yaml);
        let original = parse(&input);
        assert_eq!(docs.len(), original.len(), "{name}");
        let mut found = Vec::new();
        for (i, doc) in docs.iter().enumerate() {
            typed(doc);
            templates(doc, format!("{name}#{i}"), &mut found);
        }
        if name == "deploymentconfig.yaml" {
            // An OpenShift DeploymentConfig is not a kind forcebacklog knows: untouched.
            assert!(found.is_empty());
            assert_eq!(docs, original, "{name}");
        } else {
            assert!(!found.is_empty(), "{name} has pod templates");
        }
        for (at, t) in &found {
            if proxy_only {
                assert_eq!(
                    status(t),
                    Some("skipped: the pod has no container to inject"),
                    "{at}"
                );
                continue;
            }
            assert_eq!(status(t), Some("injected"), "{at}");
            let spec = &t["spec"];
            assert_eq!(
                spec["initContainers"][0]["name"], "forcebacklog-install",
                "{at}"
            );
            for c in spec["containers"].as_array().expect("containers") {
                // The mesh proxy is excluded by default (--exclude-container).
                let proxy = c["name"] == "istio-proxy";
                let has_backlog = c["env"].as_array().is_some_and(|env| {
                    env.iter()
                        .any(|e| e["name"] == "BACKLOG" && e["value"] == "234")
                });
                assert_eq!(has_backlog, !proxy, "{at}: {c}");
            }
            // Native sidecars are not selected by default.
            for c in spec["initContainers"]
                .as_array()
                .expect("init")
                .iter()
                .skip(1)
            {
                assert!(
                    c.get("env")
                        .is_none_or(|env| !env.to_string().contains("BACKLOG")),
                    "{at}"
                );
            }
            injected_templates += 1;
        }
        // Nothing but the injection changed.
        let mut stripped = docs.clone();
        let mut expected = original.clone();
        stripped.iter_mut().for_each(strip_injection);
        expected.iter_mut().for_each(strip_injection);
        assert_eq!(stripped, expected, "{name}: only injection differs");
        // The input's text is all there: only lines were added.
        if let Err(e) = lines_kept(&input, &yaml) {
            panic!("{name}: {e}");
        }
        // Idempotent.
        let again = stdout(&inject(&["--backlog", "234", "-f", "-"], &yaml));
        assert_eq!(again, yaml, "{name}: inject of its own output");
    }
    assert_eq!(
        injected_templates, 33,
        "one template per file, two in hello-multi, none in deploymentconfig, \
         none in only-proxy-container"
    );
}

/// The stderr of a failed run: exactly one line.
fn one_error(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr.clone()).expect("utf-8");
    assert_eq!(err.lines().count(), 1, "{err}");
    err.trim_end().to_owned()
}

#[test]
fn a_final_block_scalar_keeps_its_value() {
    // No final line break: YAML, libyaml and kubectl read "line".
    for header in ["|", "|+", ">", "|-", ">+"] {
        let input = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: {header}\n    line"
        );
        let out = stdout(&inject(&["-f", "-"], &input));
        assert_eq!(out, input, "printed as read");
        assert_eq!(parse(&out)[0]["data"]["k"], "line", "{header}");
        let reformatted = stdout(&inject(&["--reformat", "-f", "-"], &input));
        assert_eq!(parse(&reformatted)[0]["data"]["k"], "line", "{header}");
    }
}

#[test]
fn duplicate_keys_name_the_document_key_and_lines() {
    let input = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: a\n        image: b\n";
    let err = one_error(&inject(&["-f", "-"], input));
    assert_eq!(
        err,
        "forcebacklog: -: document 2 (Deployment web): spec.template.spec.containers[0]: key \"image\" appears twice (lines 14 and 15); remove one (kubectl rejects duplicate fields too)"
    );
}

#[test]
fn a_value_of_the_wrong_type_names_the_field_and_the_fix() {
    let input = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        env: [{name: A, value: a}, {name: B, value: b}, {name: C, value: c}, {name: X, value: true}]\n";
    let err = one_error(&inject(&["-f", "-", "--backlog", "5"], input));
    assert_eq!(
        err,
        "forcebacklog: -: document 1 (Deployment web): spec.template.spec.containers[0].env[3].value (line 10): invalid type: boolean `true`, expected a string; quote it: value: \"true\""
    );
    let err = one_error(&inject(
        &["-f", "-"],
        "kind: Pod\napiVersion: v1\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    volumeMounts: {}\n",
    ));
    assert!(
        err.starts_with("forcebacklog: -: document 1 (Pod p): spec.containers[0].volumeMounts (line 7): invalid type: map"),
        "{err}"
    );
    let err = one_error(&inject(
        &["-f", "-"],
        "kind: ConfigMap\nmetadata: {name: c}\ndata:\n  a: .inf\n",
    ));
    assert_eq!(
        err,
        "forcebacklog: -: document 1 (ConfigMap c): data.a (line 4): .inf is not a number JSON can hold (kubectl rejects it too); quote it: \".inf\""
    );
}

#[test]
fn removed_api_groups_are_left_unchanged_with_a_warning() {
    for (api, kind) in [
        ("extensions/v1beta1", "Deployment"),
        ("extensions/v1beta1", "DaemonSet"),
        ("extensions/v1beta1", "ReplicaSet"),
        ("apps/v1beta1", "Deployment"),
        ("apps/v1beta2", "DaemonSet"),
        ("apps/v1beta2", "StatefulSet"),
    ] {
        let input = format!(
            "apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: old\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        image: x\n"
        );
        let out = inject(&["-f", "-", "--backlog", "300"], &input);
        assert_eq!(stdout(&out), input, "unchanged");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!(
                "forcebacklog: warning: document 1 ({kind} old): apiVersion {api} for {kind} was removed in Kubernetes 1.16 and no cluster serves it; left unchanged: change apiVersion to apps/v1 (which requires spec.selector) and run inject again\n"
            )
        );
    }
}

#[test]
fn yaml_1_1_is_read_as_kubectl_reads_it() {
    // kubectl reads YAML 1.1: the plain keys and values on/off/yes/no/y/n
    // are booleans (keys become "true"/"false"); quoted ones are strings.
    let input = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec:\n  on: 1\n  off: 2\n  flags: [yes, no, y, n, On, OFF, 'yes', \"on\"]\n  mode: 0644\n";
    let docs = parse(&stdout(&inject(&["-f", "-"], input)));
    assert_eq!(
        docs[0]["spec"],
        serde_json::json!({"true": 1, "false": 2,
                           "flags": [true, false, true, false, true, false, "yes", "on"], "mode": 420})
    );
    // The normalised output says the same thing in a way no reader can misread.
    let reformatted = stdout(&inject(&["--reformat", "-f", "-"], input));
    assert_eq!(parse(&reformatted), docs);
    assert!(
        reformatted.contains("'true': 1") || reformatted.contains("\"true\": 1"),
        "{reformatted}"
    );
    // An annotation written `yes` is a boolean, not the string "true": not injected.
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    forcebacklog/inject: yes\nspec:\n  containers:\n  - name: a\n";
    let out = inject(&["-f", "-"], pod);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("forcebacklog/inject"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Deployment as people commit them: comments, anchors, quoting, flow
/// style, an odd indentation.
const COMMENTED: &str = r#"# The web tier.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web # the name
  labels: &labels
    app: web
spec:
  selector:
    matchLabels: *labels
  template:
    metadata:
      labels: *labels
      annotations:
        forcebacklog/value: '512'   # raised for the burst
    spec:
      containers:
          # the app
          - name: web
            image: 'python:3.12-slim'
            args: ["-m", "http.server"]
            env:
              - {name: MODE, value: "fast"}  # flow style
            resources: {}
          - name: side
            image: busybox
            command:
              - sh
              - -c
              - |
                while true; do
                  sleep 5
                done
      # the end
---
# A config.
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data:
  on: "x"   # a key kubectl reads as "true"
  mode: 0644
"#;

#[test]
fn comments_and_formatting_are_kept() {
    for eol in ["\n", "\r\n"] {
        let input = COMMENTED.replace('\n', eol);
        let out = inject(&["-f", "-"], &input);
        let yaml = stdout(&out);
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let added = lines_kept(&input, &yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert!(added > 20, "{added} lines added");
        // Every added line is in the file's indentation and line endings.
        assert!(
            !yaml.replace("\r\n", "").contains('\n') || eol == "\n",
            "{yaml:?}"
        );
        assert!(
            yaml.contains(&format!("          - name: BACKLOG{eol}")),
            "{yaml}"
        );
        assert!(
            yaml.contains(&format!("            volumeMounts:{eol}")),
            "{yaml}"
        );
        // The values are those of the normalised output.
        let reformatted = stdout(&inject(&["--reformat", "-f", "-"], &input));
        assert!(!reformatted.contains('#'));
        assert_eq!(parse(&yaml), parse(&reformatted));
        let docs = parse(&yaml);
        let t = &docs[0]["spec"]["template"];
        assert_eq!(status(t), Some("injected"));
        assert_eq!(t["spec"]["containers"][0]["env"][1]["value"], "512");
        // Nothing else changed.
        let mut stripped = docs.clone();
        let mut original = parse(&input);
        stripped.iter_mut().for_each(strip_injection);
        original.iter_mut().for_each(strip_injection);
        assert_eq!(stripped, original);
        // The ConfigMap is printed byte for byte, and everything is idempotent.
        assert!(yaml.ends_with(&input[input.find("---").expect("two documents")..]));
        assert_eq!(stdout(&inject(&["-f", "-"], &yaml)), yaml);
    }
}

#[test]
fn anchors_shared_with_the_template_fall_back_to_normalised_output() {
    // The containers are an alias: adding to them would change the anchor's
    // other use too. The document is written normalised, with a warning.
    let input = "x-containers: &c\n- name: a\n  image: x\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p}\n  spec:\n    containers: &c2\n    - name: a\n      image: x\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: q}\n  spec:\n    containers: *c2\n";
    let out = inject(&["-f", "-", "--backlog", "7"], input);
    let yaml = stdout(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("document 2 (List): written normalised, without its comments: the injection cannot be spliced into the text"),
        "{err}"
    );
    let docs = parse(&yaml);
    for item in docs[1]["items"].as_array().expect("items") {
        assert_eq!(status(item), Some("injected"));
        assert_eq!(item["spec"]["containers"][0]["env"][0]["value"], "7");
    }
    assert!(
        yaml.starts_with("x-containers: &c\n- name: a\n  image: x\n---\n"),
        "{yaml}"
    );
    assert_eq!(stdout(&inject(&["-f", "-", "--backlog", "7"], &yaml)), yaml);
    // In the file's line endings.
    let crlf = input.replace('\n', "\r\n");
    let yaml = stdout(&inject(&["-f", "-", "--backlog", "7"], &crlf));
    assert!(!yaml.replace("\r\n", "").contains('\n'), "{yaml:?}");
    assert_eq!(parse(&yaml), docs);
}

#[test]
fn json_input_stays_json() {
    // `kubectl get -o json | forcebacklog inject -f -`: JSON is YAML; the
    // additions are written as JSON so that the output is JSON too.
    let yaml = std::fs::read_to_string(repo("examples/deployment.yaml")).expect("example");
    let json = serde_json::to_string_pretty(&parse(&yaml)[0]).expect("JSON") + "\n";
    let out = stdout(&inject(&["-f", "-"], &json));
    let value: Value = serde_json::from_str(&out).expect("the output is JSON");
    assert_eq!(status(&value["spec"]["template"]), Some("injected"));
    let reformatted = stdout(&inject(&["--reformat", "-f", "-"], &json));
    assert_eq!(vec![value], parse(&reformatted));
    lines_kept(&json, &out).expect("only additions, line by line");
    assert_eq!(stdout(&inject(&["-f", "-"], &out)), out);
}

#[test]
fn the_metrics_sidecar_is_spliced_too() {
    for init in [
        "",
        "  initContainers:\n  # migrations first\n  - name: migrate\n    image: m\n",
    ] {
        let input = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    forcebacklog/value: \"100\" # burst\n    forcebacklog/metrics: \"9464\"\nspec:\n{init}  containers:\n  - name: web # the app\n    image: w\n"
        );
        let out = inject(&["-f", "-"], &input);
        let yaml = stdout(&out);
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines_kept(&input, &yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let reformatted = stdout(&inject(&["--reformat", "-f", "-"], &input));
        assert_eq!(parse(&yaml), parse(&reformatted));
        let names: Vec<String> = parse(&yaml)[0]["spec"]["initContainers"]
            .as_array()
            .expect("init containers")
            .iter()
            .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(names[0], "forcebacklog-install", "{yaml}");
        assert_eq!(names.len(), if init.is_empty() { 2 } else { 3 }, "{yaml}");
        assert_eq!(stdout(&inject(&["-f", "-"], &yaml)), yaml);
    }
}

#[test]
fn supervise_wraps_the_command_in_the_text() {
    for command in [
        "        command: [\"/server\", \"--port\"] # static, musl\n",
        "        command:\n        - /server\n        - --port\n",
    ] {
        let input = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  selector:\n    matchLabels: {{app: d}}\n  template:\n    metadata:\n      labels: {{app: d}}\n      annotations:\n        forcebacklog/value: \"512\"\n        forcebacklog/method: supervise\n    spec:\n      containers:\n      - name: server # the app\n        image: s\n{}        args: [\"8080\"]\n",
            command
        );
        let out = inject(&["-f", "-"], &input);
        let yaml = stdout(&out);
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reformatted = stdout(&inject(&["--reformat", "-f", "-"], &input));
        assert_eq!(parse(&yaml), parse(&reformatted));
        let doc = &parse(&yaml)[0];
        typed(doc);
        let spec = &doc["spec"]["template"]["spec"];
        assert_eq!(
            spec["containers"][0]["command"],
            serde_json::json!([
                "/opt/forcebacklog/forcebacklog",
                "run",
                "--backlog",
                "512",
                "--method",
                "supervise",
                "--",
                "/server",
                "--port"
            ]),
            "{yaml}"
        );
        assert_eq!(spec["containers"][0]["args"], serde_json::json!(["8080"]));
        assert!(
            spec["containers"][0]["env"].is_null(),
            "no LD_PRELOAD: {yaml}"
        );
        assert_eq!(
            spec["initContainers"][0]["command"][3], "--with-binary",
            "{yaml}"
        );
        assert!(yaml.contains("# the app"), "comments kept: {yaml}");
        assert_eq!(stdout(&inject(&["-f", "-"], &yaml)), yaml, "idempotent");
    }
    // Without a command: skipped, and the warning says how to fix it.
    let input = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    forcebacklog/value: \"512\"\n    forcebacklog/method: supervise\nspec:\n  containers:\n  - name: a\n    image: a\n";
    let out = inject(&["-f", "-"], input);
    let docs = parse(&stdout(&out));
    let status = status(&docs[0]).unwrap_or_default();
    assert!(
        status.starts_with("skipped: container a has no command"),
        "{status}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("set command (the image's entrypoint) in the container"),
        "{stderr}"
    );
}
