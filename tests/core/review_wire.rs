//! The AdmissionReview wire format: requests built with kube-rs types are
//! answered, the response bytes are what the Kubernetes API requires
//! (base64 `patch` string, `patchType` only with a patch), and kube-rs's
//! own `AdmissionReview` type reads them back.

use base64::prelude::{BASE64_STANDARD, Engine as _};
use forcebacklog::patch::Injector;
use forcebacklog::review::{Endpoint, Outcome, handle};
use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::admission::{AdmissionRequest, AdmissionReview, Operation};
use kube::core::{DynamicObject, GroupVersionKind, GroupVersionResource, TypeMeta};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const UID: &str = "0c9a8d74-9cb7-44dd-b98e-09fd62def2f4";

fn kube_pod(annotations: &[(&str, &str)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web-7d9c".into()),
            namespace: Some("shop".into()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![
                Container {
                    name: "web".into(),
                    image: Some("python:3.12-slim".into()),
                    env: Some(vec![EnvVar {
                        name: "LD_PRELOAD".into(),
                        value: Some("/usr/lib/libjemalloc.so.2".into()),
                        value_from: None,
                    }]),
                    ..Container::default()
                },
                Container {
                    name: "metrics".into(),
                    image: Some("exporter:1".into()),
                    ..Container::default()
                },
            ],
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// A Pod CREATE review serialised by kube-rs.
fn kube_request(pod: Pod, operation: Operation) -> Vec<u8> {
    let request = AdmissionRequest::<Pod> {
        types: TypeMeta::default(),
        uid: UID.into(),
        kind: GroupVersionKind::gvk("", "v1", "Pod"),
        resource: GroupVersionResource::gvr("", "v1", "pods"),
        sub_resource: None,
        request_kind: Some(GroupVersionKind::gvk("", "v1", "Pod")),
        request_resource: Some(GroupVersionResource::gvr("", "v1", "pods")),
        request_sub_resource: None,
        name: String::new(),
        namespace: Some("shop".into()),
        operation,
        user_info: UserInfo {
            username: Some("system:serviceaccount:kube-system:replicaset-controller".into()),
            ..UserInfo::default()
        },
        object: Some(pod),
        old_object: None,
        dry_run: false,
        options: None,
    };
    let review = AdmissionReview {
        types: TypeMeta {
            api_version: "admission.k8s.io/v1".into(),
            kind: "AdmissionReview".into(),
        },
        request: Some(request),
        response: None,
    };
    serde_json::to_vec(&review).expect("kube serialises its review")
}

const MUTATE: Endpoint = Endpoint::Mutate {
    namespace_opt_in: false,
};

#[test]
fn kube_built_request_gets_a_base64_patch_that_yields_a_valid_pod() {
    let pod = kube_pod(&[("forcebacklog/value", "234")]);
    let body = kube_request(pod.clone(), Operation::Create);
    let reviewed = handle(&body, MUTATE, &Injector::default()).expect("answered");
    assert_eq!(reviewed.outcome, Outcome::Injected);

    // The wire bytes: field order, types, base64 string.
    let text = std::str::from_utf8(&reviewed.body).expect("utf-8");
    let prefix = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{{"uid":"{UID}","allowed":true,"status":{{}},"patchType":"JSONPatch","patch":""#
    );
    assert!(text.starts_with(&prefix), "{text}");
    let wire: Value = serde_json::from_slice(&reviewed.body).expect("JSON");
    let patch_b64 = wire["response"]["patch"]
        .as_str()
        .expect("patch is a string");
    assert!(
        patch_b64
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)),
        "standard base64: {patch_b64}"
    );
    assert!(wire["response"].get("warnings").is_none());

    // Decoded, it is a JSON Patch that turns the request's object into a valid Pod.
    let patch: json_patch::Patch =
        serde_json::from_slice(&BASE64_STANDARD.decode(patch_b64).expect("base64"))
            .expect("a JSON Patch array");
    let mut object = serde_json::to_value(&pod).expect("pod JSON");
    json_patch::patch(&mut object, &patch).expect("applies");
    let mutated: Pod = serde_json::from_value(object).expect("still a Pod");
    let spec = mutated.spec.expect("spec");
    let init = spec.init_containers.expect("init containers");
    assert_eq!(init[0].name, "forcebacklog-install");
    let web_env = spec.containers[0].env.as_ref().expect("env");
    assert_eq!(
        web_env[0].value.as_deref(),
        Some("/opt/forcebacklog/libforcebacklog.so:/usr/lib/libjemalloc.so.2")
    );
    assert!(
        web_env
            .iter()
            .any(|e| e.name == "BACKLOG" && e.value.as_deref() == Some("234"))
    );
    assert_eq!(
        mutated
            .metadata
            .annotations
            .expect("annotations")
            .get("forcebacklog/status")
            .map(String::as_str),
        Some("injected")
    );
}

#[test]
fn kube_reads_responses_without_a_patch() {
    let config = Injector::default();
    // Untouched pod.
    let body = kube_request(kube_pod(&[]), Operation::Create);
    let reviewed = handle(&body, MUTATE, &config).expect("answered");
    assert_eq!(
        std::str::from_utf8(&reviewed.body).expect("utf-8"),
        format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{{"uid":"{UID}","allowed":true,"status":{{}}}}}}"#
        )
    );
    let parsed: AdmissionReview<DynamicObject> =
        serde_json::from_slice(&reviewed.body).expect("kube reads it");
    let response = parsed.response.expect("response");
    assert_eq!(response.uid, UID);
    assert!(response.allowed);
    assert_eq!(response.patch, None);

    // A denial from /validate with its message, code and warnings.
    let body = kube_request(
        kube_pod(&[("forcebacklog/value", "70000")]),
        Operation::Create,
    );
    let reviewed = handle(&body, Endpoint::Validate, &config).expect("answered");
    assert_eq!(reviewed.outcome, Outcome::Denied);
    let parsed: AdmissionReview<DynamicObject> =
        serde_json::from_slice(&reviewed.body).expect("kube reads it");
    let response = parsed.response.expect("response");
    assert!(!response.allowed);
    assert_eq!(response.result.code, 400);
    assert_eq!(
        response.result.message,
        r#"forcebacklog/value: "70000" is not a backlog: expected a decimal integer in 1..=65535"#
    );

    // A skipped pod: warnings, and a patch that only writes the status.
    let body = kube_request(
        kube_pod(&[("forcebacklog/value", "abc")]),
        Operation::Create,
    );
    let reviewed = handle(&body, MUTATE, &config).expect("answered");
    assert_eq!(reviewed.outcome, Outcome::Skipped("invalid"));
    let mut wire: Value = serde_json::from_slice(&reviewed.body).expect("JSON");
    let warnings = wire["response"]["warnings"].clone();
    assert_eq!(
        warnings,
        json!([
            r#"forcebacklog: pod not injected: forcebacklog/value: "abc" is not a backlog: expected a decimal integer in 1..=65535"#
        ])
    );
    let ops: Value = serde_json::from_slice(
        &BASE64_STANDARD
            .decode(wire["response"]["patch"].as_str().expect("patch"))
            .expect("base64"),
    )
    .expect("JSON");
    assert_eq!(
        ops,
        json!([{"op": "add", "path": "/metadata/annotations/forcebacklog~1status",
                "value": r#"skipped: forcebacklog/value: "abc" is not a backlog: expected a decimal integer in 1..=65535"#}])
    );
    // kube-rs types `patch` as bytes and cannot read the base64 string the
    // API requires (kube-rs issue #1781); everything else it reads.
    assert!(serde_json::from_value::<AdmissionReview<DynamicObject>>(wire.clone()).is_err());
    wire["response"]
        .as_object_mut()
        .expect("object")
        .remove("patch");
    let parsed: AdmissionReview<DynamicObject> =
        serde_json::from_value(wire).expect("kube reads the rest");
    let response = parsed.response.expect("response");
    assert_eq!(response.uid, UID);
    assert_eq!(response.warnings.expect("warnings").len(), 1, "one warning");
}

#[test]
fn kube_request_update_is_untouched_by_mutate() {
    let body = kube_request(
        kube_pod(&[("forcebacklog/value", "234")]),
        Operation::Update,
    );
    let reviewed = handle(&body, MUTATE, &Injector::default()).expect("answered");
    assert_eq!(reviewed.outcome, Outcome::Untouched);
}

#[test]
fn a_real_apiserver_request_with_escapes_and_managed_fields() {
    // Shaped like what kube-apiserver sends: managedFields, a
    // last-applied annotation full of escapes, status, unknown fields.
    let body = json!({
      "kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
      "request": {
        "uid": UID,
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "name": "echo", "namespace": "shop", "operation": "CREATE",
        "userInfo": {"username": "admin", "groups": ["system:authenticated"]},
        "object": {
          "kind": "Pod", "apiVersion": "v1",
          "metadata": {"name": "echo", "namespace": "shop", "creationTimestamp": null,
            "annotations": {
              "kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"annotations\":{\"forcebacklog/value\":\"512\"}}}\n",
              "forcebacklog/value": "512",
              "forcebacklog/mode": "set"
            },
            "managedFields": [{"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1",
              "fieldsV1": {"f:metadata": {"f:annotations": {".": {}}}}}]},
          "spec": {"volumes": [{"name": "kube-api-access-x", "projected": {"sources": []}}],
            "containers": [{"name": "echo", "image": "jmalloc/echo-server",
              "volumeMounts": [{"name": "kube-api-access-x", "readOnly": true,
                                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
              "terminationMessagePolicy": "File", "imagePullPolicy": "Always"}],
            "restartPolicy": "Always", "schedulerName": "default-scheduler", "priority": 0},
          "status": {}
        },
        "oldObject": null, "dryRun": false,
        "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
      }
    });
    let bytes = body.to_string().into_bytes();
    let reviewed = handle(&bytes, MUTATE, &Injector::default()).expect("answered");
    assert_eq!(reviewed.outcome, Outcome::Injected);
    let wire: Value = serde_json::from_slice(&reviewed.body).expect("JSON");
    let patch: json_patch::Patch = serde_json::from_slice(
        &BASE64_STANDARD
            .decode(wire["response"]["patch"].as_str().expect("patch"))
            .expect("base64"),
    )
    .expect("JSON Patch");
    let mut object = body["request"]["object"].clone();
    json_patch::patch(&mut object, &patch).expect("applies");
    let pod: Pod = serde_json::from_value(object.clone()).expect("a Pod");
    let env = pod.spec.expect("spec").containers[0]
        .env
        .clone()
        .expect("env");
    let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["BACKLOG", "LD_PRELOAD", "FORCEBACKLOG_MODE"]);
    assert_eq!(
        object["metadata"]["managedFields"],
        body["request"]["object"]["metadata"]["managedFields"]
    );
}
