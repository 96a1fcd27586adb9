//! Command-line errors of the real `forcebacklog` binary: one line on
//! stderr naming what was wrong, a non-zero exit; `--help` and `--version`
//! print on stdout and succeed.

use std::process::{Command, Output};

fn forcebacklog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_forcebacklog"))
        .args(args)
        .env_remove("FORCEBACKLOG_IMAGE")
        .env_remove("FORCEBACKLOG_IMAGE_PULL_POLICY")
        .env_remove("FORCEBACKLOG_INIT_CPU")
        .env_remove("FORCEBACKLOG_INIT_MEMORY")
        .output()
        .expect("the forcebacklog binary runs")
}

/// Runs `args`, expects a usage error, returns the one stderr line.
fn usage_error(args: &[&str]) -> String {
    let out = forcebacklog(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    let stderr = String::from_utf8(out.stderr).expect("UTF-8 stderr");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: exactly one line: {stderr:?}");
    assert!(stderr.ends_with('\n'), "{stderr:?}");
    let line = lines[0];
    assert!(line.starts_with("forcebacklog: "), "{line}");
    assert!(!line.contains("error:"), "{line}");
    assert!(line.ends_with(" (see --help)"), "{line}");
    line.to_owned()
}

#[test]
fn bad_values_are_named_on_one_line() {
    assert_eq!(
        usage_error(&["run", "--backlog", "0", "--", "true"]),
        "forcebacklog: invalid value '0' for '--backlog <BACKLOG>': 0 is not in 1..=65535 (see --help)"
    );
    let line = usage_error(&["run", "--backlog", "abc"]);
    assert!(
        line.contains("'abc'") && line.contains("--backlog"),
        "{line}"
    );
    let line = usage_error(&["run", "--backlog", "70000", "--", "true"]);
    assert!(line.contains("'70000'"), "{line}");
    let line = usage_error(&["inject", "-f", "-", "--backlog", "x"]);
    assert!(line.contains("'x'") && line.contains("--backlog"), "{line}");
    let line = usage_error(&[
        "serve",
        "--tls-cert",
        "c",
        "--tls-key",
        "k",
        "--addr",
        "nowhere",
    ]);
    assert!(
        line.contains("'nowhere'") && line.contains("--addr"),
        "{line}"
    );
}

#[test]
fn missing_arguments_are_listed_on_one_line() {
    assert_eq!(
        usage_error(&["inject"]),
        "forcebacklog: the following required arguments were not provided: --filename <FILE> (see --help)"
    );
    assert_eq!(
        usage_error(&["serve"]),
        "forcebacklog: the following required arguments were not provided: --tls-cert <TLS_CERT>, --tls-key <TLS_KEY> (see --help)"
    );
    let line = usage_error(&["run", "--backlog", "5"]);
    assert!(line.contains("<COMMAND>"), "{line}");
    let line = usage_error(&["run", "--backlog"]);
    assert!(line.contains("--backlog"), "{line}");
}

#[test]
fn unknown_commands_and_flags_are_named() {
    assert_eq!(
        usage_error(&["frobnicate"]),
        "forcebacklog: unrecognized subcommand 'frobnicate' (see --help)"
    );
    let line = usage_error(&["run", "--backlog", "5", "--bogus", "--", "true"]);
    assert!(line.contains("'--bogus'"), "{line}");
    assert_eq!(
        usage_error(&[]),
        "forcebacklog: no command given: expected one of serve, inject, run, install-shim, sockets, audit (see --help)"
    );
}

#[test]
fn help_and_version_print_on_stdout_and_succeed() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["run", "--help"],
        &["help", "inject"],
    ] {
        let out = forcebacklog(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert!(out.stderr.is_empty(), "{args:?}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage: forcebacklog"), "{args:?}: {text}");
    }
    let out = forcebacklog(&["--version"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("forcebacklog {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn run_time_errors_are_one_line_too() {
    let out = forcebacklog(&["inject", "-f", "/nonexistent/forcebacklog.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.starts_with("forcebacklog: ") && stderr.contains("/nonexistent/forcebacklog.yaml"),
        "{stderr}"
    );
}

/// A pod the injection targets, on stdin of `inject -f -` (it sets
/// resources, so the init container gets the configured ones).
const POD: &str = r#"{"apiVersion": "v1", "kind": "Pod",
  "metadata": {"name": "p", "annotations": {"forcebacklog/value": "234"}},
  "spec": {"containers": [{"name": "web", "image": "web:1",
                           "resources": {"requests": {"cpu": "100m"}}},
                          {"name": "istio-proxy", "image": "proxy:1"}]}}"#;

fn inject_stdin(args: &[&str], env: &[(&str, &str)]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_forcebacklog"));
    cmd.args(["inject", "-f", "-"])
        .args(args)
        .env_remove("FORCEBACKLOG_IMAGE")
        .env_remove("FORCEBACKLOG_IMAGE_PULL_POLICY")
        .env_remove("FORCEBACKLOG_INIT_CPU")
        .env_remove("FORCEBACKLOG_INIT_MEMORY")
        .env_remove("FORCEBACKLOG_IMAGE_PULL_SECRETS")
        .env_remove("FORCEBACKLOG_EXCLUDE_CONTAINERS")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the forcebacklog binary runs");
    // A refused option exits before reading stdin: a broken pipe is fine.
    let _ = child.stdin.take().expect("stdin").write_all(POD.as_bytes());
    child.wait_with_output().expect("wait")
}

fn one_error_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    stderr
}

#[test]
fn init_container_settings_are_checked_at_start_up() {
    for (args, needles) in [
        (
            &["--init-cpu", "10x"][..],
            &["'10x'", "--init-cpu", "not a Kubernetes quantity"][..],
        ),
        (
            &["--init-memory", "16mb"],
            &["'16mb'", "--init-memory", "16Mi"],
        ),
        (&["--init-memory=-1"], &["'-1'", "cannot be negative"]),
        (
            &["--init-memory", "10m"],
            &["'10m'", "--init-memory", "whole number of bytes"],
        ),
        (
            &["--image-pull-secret", "Reg_Cred"],
            &["'Reg_Cred'", "--image-pull-secret", "not a Kubernetes name"],
        ),
        (
            &["--exclude-container", "Istio.Proxy"],
            &[
                "'Istio.Proxy'",
                "--exclude-container",
                "not a Kubernetes name",
            ],
        ),
        (
            &["--image-pull-policy", "always"],
            &["'always'", "Always, IfNotPresent, Never"],
        ),
        (&["--image", ""], &["--image", "non-empty"]),
        (&["--image", "fb :1"], &["'fb :1'", "whitespace"]),
    ] {
        let stderr = one_error_line(&inject_stdin(args, &[]));
        for needle in needles {
            assert!(stderr.contains(needle), "{args:?}: {needle}: {stderr}");
        }
    }
    // The same checks apply to the environment variables `serve` reads.
    for (var, value) in [
        ("FORCEBACKLOG_INIT_CPU", "ten"),
        ("FORCEBACKLOG_INIT_MEMORY", "16MB"),
        ("FORCEBACKLOG_INIT_MEMORY", "0.5"),
        ("FORCEBACKLOG_IMAGE_PULL_SECRETS", "Not-OK"),
        ("FORCEBACKLOG_IMAGE_PULL_POLICY", "Sometimes"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_forcebacklog"))
            .args([
                "serve",
                "--tls-cert",
                "/nonexistent/c",
                "--tls-key",
                "/nonexistent/k",
            ])
            .env(var, value)
            .output()
            .expect("the forcebacklog binary runs");
        let stderr = one_error_line(&out);
        assert!(stderr.contains(&format!("'{value}'")), "{var}: {stderr}");
    }
}

#[test]
fn valid_init_container_settings_reach_the_pod() {
    let out = inject_stdin(
        &[
            "--init-cpu",
            "0.5",
            "--init-memory",
            "1e6",
            "--image-pull-policy",
            "IfNotPresent",
            "--image",
            "registry.local/fb:1",
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).expect("YAML");
    let init = &docs[0]["spec"]["initContainers"][0];
    assert_eq!(init["image"], "registry.local/fb:1");
    assert_eq!(init["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        init["resources"]["limits"],
        serde_json::json!({"cpu": "0.5", "memory": "1e6"})
    );
    let out = inject_stdin(&[], &[("FORCEBACKLOG_INIT_MEMORY", "32Mi")]);
    assert!(out.status.success(), "{out:?}");
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).expect("YAML");
    assert_eq!(
        docs[0]["spec"]["initContainers"][0]["resources"]["limits"]["memory"],
        "32Mi"
    );
}

/// The pod's containers that got `LD_PRELOAD`, and its imagePullSecrets.
fn injected(out: &Output) -> (Vec<String>, serde_json::Value) {
    assert!(out.status.success(), "{out:?}");
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).expect("YAML");
    let spec = &docs[0]["spec"];
    let names = spec["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter(|c| {
            c["env"]
                .as_array()
                .is_some_and(|env| env.iter().any(|e| e["name"] == "LD_PRELOAD"))
        })
        .map(|c| c["name"].as_str().expect("name").to_owned())
        .collect();
    (names, spec["imagePullSecrets"].clone())
}

#[test]
fn pull_secrets_and_excluded_containers_reach_the_pod() {
    use serde_json::json;
    // Defaults: the mesh proxy is left alone, no pull secret.
    let (names, secrets) = injected(&inject_stdin(&[], &[]));
    assert_eq!((names, secrets), (vec!["web".to_owned()], json!(null)));
    // Repeated flags, or a comma list in the environment.
    let (names, secrets) = injected(&inject_stdin(
        &[
            "--image-pull-secret",
            "regcred",
            "--image-pull-secret",
            "mirror",
            "--exclude-container",
            "web",
        ],
        &[],
    ));
    assert_eq!(names, ["istio-proxy"]);
    assert_eq!(secrets, json!([{"name": "regcred"}, {"name": "mirror"}]));
    let (names, secrets) = injected(&inject_stdin(
        &[],
        &[
            ("FORCEBACKLOG_IMAGE_PULL_SECRETS", "regcred,mirror"),
            ("FORCEBACKLOG_EXCLUDE_CONTAINERS", ""),
        ],
    ));
    assert_eq!(names, ["web", "istio-proxy"]);
    assert_eq!(secrets, json!([{"name": "regcred"}, {"name": "mirror"}]));
    // `--exclude-container ''`: nothing excluded.
    let (names, _) = injected(&inject_stdin(&["--exclude-container", ""], &[]));
    assert_eq!(names, ["web", "istio-proxy"]);
}

/// `audit` fails with exit 2 and one line: a usage error, or a cluster
/// configuration it cannot load (1 is kept for "a pod was missed").
#[test]
fn audit_errors_exit_2_on_one_line() {
    let line = usage_error(&["audit", "-n", "shop", "--all-namespaces"]);
    assert!(line.contains("--all-namespaces"), "{line}");
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-kubeconfig");
    let out = forcebacklog(&["audit", "--kubeconfig", &missing.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("forcebacklog: no cluster configuration: ")
            && stderr.contains("no-such-kubeconfig"),
        "{stderr}"
    );
}
