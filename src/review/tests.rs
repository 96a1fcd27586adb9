use super::*;
use base64::prelude::{BASE64_STANDARD, Engine as _};
use serde_json::{Value, json};

fn review(kind: Value, operation: &str, object: Value) -> Vec<u8> {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": kind,
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default",
            "operation": operation,
            "userInfo": {"username": "admin"},
            "object": object,
            "oldObject": null,
            "dryRun": false
        }
    })
    .to_string()
    .into_bytes()
}

fn pod_kind() -> Value {
    json!({"group": "", "version": "v1", "kind": "Pod"})
}

fn response(r: &Reviewed) -> Value {
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    assert_eq!(v["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    v["response"].clone()
}

const MUTATE: Endpoint = Endpoint::Mutate {
    namespace_opt_in: false,
};

#[test]
fn endpoints_have_one_path_label_and_index() {
    let paths = Endpoint::ALL.map(Endpoint::path);
    assert_eq!(paths, ["/mutate", "/mutate/namespace", "/validate"]);
    let labels = Endpoint::ALL.map(Endpoint::label);
    assert_eq!(labels, ["mutate", "mutate_namespace", "validate"]);
    for (i, endpoint) in Endpoint::ALL.into_iter().enumerate() {
        assert_eq!(endpoint.index(), i);
    }
}

#[test]
fn annotated_pod_gets_a_base64_patch() {
    let body = review(
        pod_kind(),
        "CREATE",
        json!({"metadata": {"annotations": {"forcebacklog/value": "234"}},
                   "spec": {"containers": [{"name": "a"}]}}),
    );
    let r = handle(&body, MUTATE, &Injector::default()).unwrap();
    assert_eq!(r.outcome, Outcome::Injected);
    let resp = response(&r);
    assert_eq!(resp["allowed"], true);
    assert_eq!(resp["patchType"], "JSONPatch");
    let patch = BASE64_STANDARD
        .decode(resp["patch"].as_str().unwrap())
        .unwrap();
    let ops: Vec<Value> = serde_json::from_slice(&patch).unwrap();
    assert_eq!(ops[0]["path"], "/metadata/annotations/forcebacklog~1status");
    assert!(resp.get("warnings").is_none());
}

#[test]
fn untargeted_pod_has_no_patch_fields() {
    let body = review(
        pod_kind(),
        "CREATE",
        json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "a"}]}}),
    );
    let r = handle(&body, MUTATE, &Injector::default()).unwrap();
    assert_eq!(r.outcome, Outcome::Untouched);
    let resp = response(&r);
    assert_eq!(
        resp,
        json!({"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": true, "status": {}})
    );
}

#[test]
fn namespace_opt_in_targets_unannotated_pods() {
    let body = review(
        pod_kind(),
        "CREATE",
        json!({"spec": {"containers": [{"name": "a"}]}}),
    );
    let r = handle(
        &body,
        Endpoint::Mutate {
            namespace_opt_in: true,
        },
        &Injector::default(),
    )
    .unwrap();
    assert_eq!(r.outcome, Outcome::Injected);
}

#[test]
fn mutate_ignores_other_kinds_operations_and_subresources() {
    let config = Injector::default();
    let annotated = json!({"metadata": {"annotations": {"forcebacklog/value": "234"}},
                               "spec": {"containers": [{"name": "a"}]}});
    for (kind, op) in [
        (pod_kind(), "UPDATE"),
        (pod_kind(), "DELETE"),
        (
            json!({"group": "apps", "version": "v1", "kind": "Deployment"}),
            "CREATE",
        ),
    ] {
        let r = handle(&review(kind, op, annotated.clone()), MUTATE, &config).unwrap();
        assert_eq!(r.outcome, Outcome::Untouched);
        assert!(response(&r).get("patch").is_none());
    }
    let mut body: Value = serde_json::from_slice(&review(pod_kind(), "CREATE", annotated)).unwrap();
    body["request"]["subResource"] = json!("ephemeralcontainers");
    let r = handle(body.to_string().as_bytes(), MUTATE, &config).unwrap();
    assert_eq!(r.outcome, Outcome::Untouched);
}

#[test]
fn objects_that_do_not_fit_the_pod_view_are_read_again() {
    let config = Injector::default();
    // Not a Pod, and not pod-shaped: allowed untouched, not an error.
    let body = review(
        json!({"group": "example.com", "version": "v1", "kind": "Widget"}),
        "CREATE",
        json!({"spec": {"containers": 5}, "metadata": {"annotations": ["x"]}}),
    );
    let r = handle(&body, MUTATE, &config).unwrap();
    assert_eq!(r.outcome, Outcome::Untouched);
    // The envelope is judged the same way on both paths.
    let mut wrong: Value = serde_json::from_slice(&review(
        pod_kind(),
        "CREATE",
        json!({"spec": {"containers": []}}),
    ))
    .unwrap();
    wrong["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let err = handle(wrong.to_string().as_bytes(), MUTATE, &config).unwrap_err();
    assert!(
        matches!(err, ReviewError::NotAdmissionReviewV1 { .. }),
        "{err}"
    );
}

#[test]
fn skipped_outcomes_carry_their_label() {
    let config = Injector::default();
    let cases = [
        (json!({"forcebacklog/value": "abc"}), json!({}), "invalid"),
        (
            json!({"forcebacklog/inject": "false"}),
            json!({}),
            "opted_out",
        ),
        (
            json!({"forcebacklog/value": "5"}),
            json!({"os": {"name": "windows"}}),
            "windows",
        ),
    ];
    for (annotations, extra, label) in cases {
        let mut spec = json!({"containers": [{"name": "a"}]});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let body = review(
            pod_kind(),
            "CREATE",
            json!({"metadata": {"annotations": annotations}, "spec": spec}),
        );
        let r = handle(&body, MUTATE, &config).unwrap();
        assert_eq!(r.outcome, Outcome::Skipped(label));
    }
}

#[test]
fn patch_json_is_what_serde_json_writes() {
    let pod = json!({"metadata": {"annotations": {"forcebacklog/value": "234"}},
                         "spec": {"containers": [{"name": "a", "env": [{"name": "LD_PRELOAD", "value": "x\"y"}]},
                                                 {"name": "b", "volumeMounts": []}],
                                  "volumes": []}});
    let text = pod.to_string();
    let view: PodView<'_> = serde_json::from_str(&text).unwrap();
    let defaults = Defaults {
        backlog: 4096,
        implicit: false,
    };
    let ops = patch::mutate(&view, defaults, &Injector::default()).ops;
    assert!(ops.len() > 4, "{ops:?}");
    assert_eq!(patch_json(&ops).unwrap(), serde_json::to_vec(&ops).unwrap());
    assert_eq!(patch_json(&[]).unwrap(), b"[]");
}

#[test]
fn untargeted_pods_are_answered_from_their_annotations() {
    let config = Injector::default();
    // The spec of a pod that asks for nothing is not read.
    let body = review(
        pod_kind(),
        "CREATE",
        json!({"metadata": {"annotations": {"forcebacklog/valu": "5", "a": "b"}},
                   "spec": {"containers": "not read"}}),
    );
    let r = handle(&body, MUTATE, &config).unwrap();
    assert_eq!(r.outcome, Outcome::Untouched);
    let resp = response(&r);
    assert!(
        resp["warnings"][0]
            .as_str()
            .unwrap()
            .contains("forcebacklog/valu")
    );
    let body = review(
        pod_kind(),
        "CREATE",
        json!({"metadata": {"annotations": {"forcebacklog/inject": "false"}}}),
    );
    let r = handle(&body, MUTATE, &config).unwrap();
    assert_eq!(r.outcome, Outcome::Skipped("opted_out"));
}

#[test]
fn a_pod_is_answered_the_same_whatever_its_members_order() {
    let config = Injector::default();
    let metadata = json!({"annotations": {"forcebacklog/value": "234"},
                              "ownerReferences": [{"kind": "ReplicaSet"}]});
    let spec =
        json!({"containers": [{"name": "a", "env": [{"name": "LD_PRELOAD", "value": "x"}]}]});
    let first = json!({"metadata": metadata.clone(), "spec": spec.clone(), "status": {}});
    let expected = handle(&review(pod_kind(), "CREATE", first), MUTATE, &config).unwrap();
    assert_eq!(expected.outcome, Outcome::Injected);
    for object in [
        json!({"spec": spec.clone(), "metadata": metadata.clone()}),
        json!({"status": {}, "spec": spec.clone(), "kind": "Pod", "metadata": metadata.clone()}),
        json!({"metadata": metadata.clone(), "kind": "Pod", "spec": spec.clone()}),
    ] {
        let r = handle(
            &review(pod_kind(), "CREATE", object.clone()),
            MUTATE,
            &config,
        )
        .unwrap();
        assert_eq!(r.body, expected.body, "{object}");
    }
    // A pod targeted by the namespace alone, without metadata.
    let bare = json!({"spec": spec});
    let opt_in = Endpoint::Mutate {
        namespace_opt_in: true,
    };
    let r = handle(&review(pod_kind(), "CREATE", bare), opt_in, &config).unwrap();
    assert_eq!(r.outcome, Outcome::Injected);
}

#[test]
fn what_the_scanner_does_not_follow_is_answered_the_same() {
    let config = Injector::default();
    let pod = json!({"metadata": {"annotations": {"forcebacklog/value": "234"}},
                         "spec": {"containers": [{"name": "a"}]}});
    let plain = String::from_utf8(review(pod_kind(), "CREATE", pod)).unwrap();
    let expected = handle(plain.as_bytes(), MUTATE, &config).unwrap();
    assert_eq!(expected.outcome, Outcome::Injected);
    // An escaped key, an escaped value, whitespace everywhere.
    for text in [
        plain.replacen("\"uid\"", "\"u\\u0069d\"", 1),
        plain.replacen("\"CREATE\"", "\"CR\\u0045ATE\"", 1),
        plain.replace(':', " :\n ").replace(',', " , "),
    ] {
        let r = handle(text.as_bytes(), MUTATE, &config).unwrap();
        assert_eq!(r.body, expected.body, "{text}");
    }
    // A duplicate uid is an error, as serde_json reads it.
    let dup = plain.replacen("\"uid\"", "\"uid\":\"x\",\"uid\"", 1);
    assert!(handle(dup.as_bytes(), MUTATE, &config).is_err());
}

#[test]
fn base64_is_the_standard_encoding() {
    let base64 = |bytes: &[u8]| {
        let mut out = b"x".to_vec();
        base64_into(&mut out, bytes);
        String::from_utf8(out).unwrap()
    };
    // Short tails and the lengths of several SIMD blocks (the patch is ~2 KB).
    for len in (0..100).chain(1000..1100).chain([2047, 2048, 4099]) {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
        assert_eq!(
            base64(&bytes),
            format!("x{}", BASE64_STANDARD.encode(&bytes)),
            "{len}"
        );
    }
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(base64(&all), format!("x{}", BASE64_STANDARD.encode(&all)));
}

#[test]
fn bad_envelopes_are_errors() {
    let config = Injector::default();
    let err = |body: &[u8]| handle(body, MUTATE, &config).unwrap_err().to_string();
    assert!(err(b"not json").starts_with("request body is not a valid AdmissionReview"));
    assert!(err(b"").contains("EOF"));
    assert!(
        err(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}"#)
            .contains("admission.k8s.io/v1beta1")
    );
    assert!(err(br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#).contains("\"Pod\""));
    assert_eq!(
        err(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#),
        "the AdmissionReview has no request"
    );
    assert!(err(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"kind":"Pod"}}}"#)
            .contains("request.uid is missing"));
    let body = review(
        pod_kind(),
        "CREATE",
        json!({"metadata": {"annotations": {"forcebacklog/value": "5"}},
                   "spec": {"containers": "nope"}}),
    );
    assert!(err(&body).starts_with("request.object is not a valid Pod: invalid type"));
    let body = review(pod_kind(), "CREATE", Value::Null);
    assert_eq!(err(&body), "request.object is not a valid Pod: missing");
}

fn deployment(annotations: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"template": {"metadata": {"annotations": annotations},
                                     "spec": {"containers": [{"name": "web"}]}}}})
}

fn deployment_kind() -> Value {
    json!({"group": "apps", "version": "v1", "kind": "Deployment"})
}

#[test]
fn validate_denies_invalid_workload_templates() {
    let config = Injector::default();
    let body = review(
        deployment_kind(),
        "CREATE",
        deployment(json!({"forcebacklog/value": "70000"})),
    );
    let r = handle(&body, Endpoint::Validate, &config).unwrap();
    assert_eq!(r.outcome, Outcome::Denied);
    let resp = response(&r);
    assert_eq!(resp["allowed"], false);
    assert_eq!(resp["status"]["code"], 400);
    assert_eq!(
        resp["status"]["message"],
        "forcebacklog/value: \"70000\" is not a backlog: expected a decimal integer in 1..=65535"
    );
    // Unknown container names are judged against the template.
    let body = review(
        deployment_kind(),
        "UPDATE",
        deployment(json!({"forcebacklog/value": "7", "forcebacklog/containers": "api"})),
    );
    let r = handle(&body, Endpoint::Validate, &config).unwrap();
    assert_eq!(r.outcome, Outcome::Denied);
    assert!(
        response(&r)["status"]["message"]
            .as_str()
            .unwrap()
            .contains("\"api\"")
    );
}

#[test]
fn validate_allows_valid_owned_and_unrelated_objects() {
    let config = Injector::default();
    let ok = |body: Vec<u8>| {
        let r = handle(&body, Endpoint::Validate, &config).unwrap();
        assert_eq!(r.outcome, Outcome::Allowed);
        response(&r)
    };
    ok(review(
        deployment_kind(),
        "CREATE",
        deployment(json!({"forcebacklog/value": "234"})),
    ));
    ok(review(deployment_kind(), "CREATE", deployment(json!({}))));
    ok(review(
        deployment_kind(),
        "DELETE",
        deployment(json!({"forcebacklog/value": "x"})),
    ));
    let mut owned = deployment(json!({"forcebacklog/value": "x"}));
    owned["metadata"]["ownerReferences"] = json!([{"kind": "Something", "name": "o"}]);
    ok(review(
        json!({"group": "apps", "version": "v1", "kind": "ReplicaSet"}),
        "CREATE",
        owned,
    ));
    ok(review(
        json!({"group": "", "version": "v1", "kind": "ConfigMap"}),
        "CREATE",
        json!({"metadata": {"annotations": {"forcebacklog/value": "x"}}}),
    ));
    let pod = json!({"metadata": {"annotations": {"forcebacklog/value": "x"},
                                      "ownerReferences": [{"kind": "ReplicaSet"}]},
                         "spec": {"containers": [{"name": "a"}]}});
    ok(review(pod_kind(), "CREATE", pod));
    // A value above 4096 is allowed with the sysctl warning.
    let resp = ok(review(
        deployment_kind(),
        "CREATE",
        deployment(json!({"forcebacklog/value": "10000"})),
    ));
    assert!(
        resp["warnings"][0]
            .as_str()
            .unwrap()
            .contains("net.core.somaxconn")
    );
}

#[test]
fn validate_bare_pods_and_cronjobs() {
    let config = Injector::default();
    let pod = json!({"metadata": {"annotations": {"forcebacklog/mode": "fast"}},
                         "spec": {"containers": [{"name": "a"}]}});
    let r = handle(
        &review(pod_kind(), "CREATE", pod),
        Endpoint::Validate,
        &config,
    )
    .unwrap();
    assert_eq!(r.outcome, Outcome::Denied);
    let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {
                "metadata": {"annotations": {"forcebacklog/ports": "http"}},
                "spec": {"containers": [{"name": "a"}]}}}}}});
    let r = handle(
        &review(
            json!({"group": "batch", "version": "v1", "kind": "CronJob"}),
            "CREATE",
            cron,
        ),
        Endpoint::Validate,
        &config,
    )
    .unwrap();
    assert_eq!(r.outcome, Outcome::Denied);
    assert!(
        response(&r)["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("forcebacklog/ports: \"http\"")
    );
}

#[test]
fn validate_lets_updates_that_keep_an_old_invalid_value_through() {
    let config = Injector::default();
    let invalid = deployment(json!({"forcebacklog/value": "abc"}));
    let mut body: Value =
        serde_json::from_slice(&review(deployment_kind(), "UPDATE", invalid.clone())).unwrap();
    body["request"]["oldObject"] = invalid;
    let r = handle(body.to_string().as_bytes(), Endpoint::Validate, &config).unwrap();
    assert_eq!(r.outcome, Outcome::Allowed);
    assert!(
        response(&r)["warnings"][0]
            .as_str()
            .unwrap()
            .contains("\"abc\"")
    );
    // Changing it to another invalid value is judged.
    body["request"]["oldObject"] = deployment(json!({"forcebacklog/value": "abd"}));
    let r = handle(body.to_string().as_bytes(), Endpoint::Validate, &config).unwrap();
    assert_eq!(r.outcome, Outcome::Denied);
    // So is adding any other user key, forcebacklog/method included.
    body["request"]["oldObject"] = body["request"]["object"].clone();
    body["request"]["object"] = deployment(json!({"forcebacklog/value": "abc",
                                                      "forcebacklog/method": "ptrace"}));
    let r = handle(body.to_string().as_bytes(), Endpoint::Validate, &config).unwrap();
    assert_eq!(r.outcome, Outcome::Denied);
    // Status updates are never judged.
    body["request"]["subResource"] = json!("status");
    let r = handle(body.to_string().as_bytes(), Endpoint::Validate, &config).unwrap();
    assert_eq!(r.outcome, Outcome::Allowed);
}
