use super::*;

fn inject(input: &str, backlog: Option<u16>) -> Injected {
    inject_str(input, "test.yaml", backlog, &Injector::default()).expect("injects")
}

fn docs(yaml: &str) -> Vec<Value> {
    read(yaml, "out").expect("output parses")
}

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
      annotations:
        forcebacklog/value: \"234\"
    spec:
      containers:
      - name: web
        image: python:3.12-slim
        ports:
        - containerPort: 8000
      volumes:
      - name: cfg
        configMap:
          name: cfg
          defaultMode: 0644
";

#[test]
fn annotated_deployment_is_injected_and_idempotent() {
    let out = inject(DEPLOYMENT, None);
    let d = &docs(&out.yaml)[0];
    let t = &d["spec"]["template"];
    assert_eq!(
        t["metadata"]["annotations"]["forcebacklog/status"],
        "injected"
    );
    assert_eq!(
        t["spec"]["initContainers"][0]["name"],
        "forcebacklog-install"
    );
    assert_eq!(t["spec"]["containers"][0]["env"][0]["value"], "234");
    // YAML 1.1 octal, as Kubernetes reads it.
    assert_eq!(t["spec"]["volumes"][0]["configMap"]["defaultMode"], 420);
    // Key order of the input is kept.
    let keys: Vec<&String> = d.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["apiVersion", "kind", "metadata", "spec"]);
    let again = inject(&out.yaml, None);
    assert_eq!(again.yaml, out.yaml);
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
}

#[test]
fn unannotated_templates_need_backlog() {
    let plain = DEPLOYMENT.replace("forcebacklog/value: \"234\"", "x: y");
    let out = inject(&plain, None);
    assert_eq!(docs(&out.yaml), docs(&plain));
    let out = inject(&plain, Some(77));
    let t = &docs(&out.yaml)[0]["spec"]["template"];
    assert_eq!(t["spec"]["containers"][0]["env"][0]["value"], "77");
    // The template's own value wins over --backlog.
    let out = inject(DEPLOYMENT, Some(77));
    let t = &docs(&out.yaml)[0]["spec"]["template"];
    assert_eq!(t["spec"]["containers"][0]["env"][0]["value"], "234");
}

#[test]
fn lists_cronjobs_and_unknown_kinds() {
    let input = "\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: a}
  spec:
    containers: [{name: a, image: x}]
- apiVersion: v1
  kind: Service
  metadata: {name: s}
  spec: {ports: [{port: 80}]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: c}
spec:
  schedule: '*/5 * * * *'
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: c, image: y}]
---
apiVersion: example.com/v1
kind: Widget
spec:
  template:
    spec:
      containers: [{name: w}]
";
    let out = inject(input, Some(500));
    let d = docs(&out.yaml);
    assert_eq!(d.len(), 3);
    assert_eq!(
        d[0]["items"][0]["metadata"]["annotations"]["forcebacklog/status"],
        "injected"
    );
    assert_eq!(d[0]["items"][1], docs(input)[0]["items"][1]);
    let job = &d[1]["spec"]["jobTemplate"]["spec"]["template"];
    assert_eq!(
        job["spec"]["initContainers"][0]["name"],
        "forcebacklog-install"
    );
    assert_eq!(d[2], docs(input)[2]);
    assert!(out.yaml.contains("\n---\n"));
    assert_eq!(inject(&out.yaml, Some(500)).yaml, out.yaml);
}

#[test]
fn skipped_templates_get_a_status_and_a_warning() {
    let input = DEPLOYMENT.replace("\"234\"", "\"70000\"");
    let out = inject(&input, None);
    let t = &docs(&out.yaml)[0]["spec"]["template"];
    assert_eq!(
        t["metadata"]["annotations"]["forcebacklog/status"],
        "skipped: forcebacklog/value: \"70000\" is not a backlog: expected a decimal integer in 1..=65535"
    );
    assert!(t["spec"].get("initContainers").is_none());
    assert_eq!(
        out.warnings,
        [
            "document 1 (Deployment web): pod not injected: forcebacklog/value: \"70000\" is not a backlog: expected a decimal integer in 1..=65535"
        ]
    );
}

#[test]
fn unquoted_numbers_in_annotations_are_reported() {
    let input = DEPLOYMENT.replace("\"234\"", "234");
    let out = inject(&input, None);
    assert!(
        out.warnings[0].contains("forcebacklog/value: 234 is not a string"),
        "{:?}",
        out.warnings
    );
}

#[test]
fn bad_yaml_names_document_line_and_column() {
    let input = "a: 1\n---\nkind: Pod\nmetadata: {name: x\n";
    let err = inject_str(input, "in.yaml", None, &Injector::default()).unwrap_err();
    let ManifestError::Yaml { document, line, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!((*document, *line > 2), (2, true), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("in.yaml: invalid YAML in document 2 (Pod), in metadata at line "),
        "{text}"
    );
    assert!(!text.contains('\n'), "one line: {text}");
}

#[test]
fn bad_template_shape_names_the_object() {
    let input = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\nspec:\n  template:\n    spec:\n      containers: nope\n";
    let err = inject_str(input, "in.yaml", Some(5), &Injector::default()).unwrap_err();
    let text = err.to_string();
    assert!(
            text.starts_with(
                "in.yaml: document 1 (Deployment w): spec.template.spec.containers (line 7): invalid type: string \"nope\", expected a sequence"
            ),
            "{text}"
        );
}

#[test]
fn unknown_kinds_asking_for_the_shim_get_a_warning() {
    let input = "apiVersion: apps.openshift.io/v1\nkind: DeploymentConfig\nmetadata: {name: d}\nspec:\n  template:\n    metadata:\n      annotations: {forcebacklog/value: \"5\"}\n    spec:\n      containers: [{name: a}]\n";
    let out = inject(input, None);
    assert_eq!(docs(&out.yaml), docs(input));
    assert_eq!(
        out.warnings,
        [
            "document 1 (DeploymentConfig d): apps.openshift.io/v1 DeploymentConfig is not a kind forcebacklog injects; left as it is"
        ]
    );
}

#[test]
fn empty_input_gives_empty_output() {
    assert_eq!(inject("", None).yaml, "");
    // Documents with nothing to change are printed as they were read.
    assert_eq!(
        inject("# only a comment\n---\n", None).yaml,
        "# only a comment\n---\n"
    );
    let reformat = |s| {
        super::inject(s, "t", None, &Injector::default(), Output::Reformat)
            .expect("injects")
            .yaml
    };
    assert_eq!(reformat("# only a comment\n---\n"), "");
}
