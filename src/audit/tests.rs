use super::*;
use serde_json::json;

fn meta(value: serde_json::Value) -> ObjectMeta {
    serde_json::from_value(value).expect("ObjectMeta")
}

fn owned_by(kind: &str, api_version: &str, name: &str) -> serde_json::Value {
    json!([{"apiVersion": api_version, "kind": kind, "name": name,
                "uid": format!("uid-{name}"), "controller": true}])
}

fn pod(name: &str, annotations: serde_json::Value) -> ObjectMeta {
    meta(json!({"name": name, "namespace": "shop", "annotations": annotations}))
}

#[test]
fn a_pod_asks_by_annotation_or_by_its_namespace() {
    use NamespaceOptIn::{Disabled, Enabled, None};
    let value = pod("a", json!({"forcebacklog/value": "1024"}));
    let inject = pod("b", json!({"forcebacklog/inject": "true"}));
    let plain = pod("c", json!({"other/key": "x"}));
    let opted_out = pod("d", json!({"forcebacklog/inject": "false"}));
    let only_mode = pod("e", json!({"forcebacklog/mode": "set"}));
    let invalid = pod("f", json!({"forcebacklog/value": "abc"}));
    assert!(asks(&value, None));
    assert!(asks(&inject, None));
    assert!(!asks(&plain, None));
    assert!(!asks(&only_mode, None));
    // Invalid but targeted: the webhook answers with a skip reason.
    assert!(asks(&invalid, None));
    assert!(asks(&plain, Enabled));
    assert!(!asks(&opted_out, Enabled));
    // A namespace labelled disabled is never sent to the webhook.
    assert!(!asks(&value, Disabled));
}

#[test]
fn namespace_labels_read_like_the_webhook_selectors() {
    let ns =
        |label: serde_json::Value| NamespaceOptIn::of(&meta(json!({"name": "n", "labels": label})));
    assert_eq!(
        ns(json!({"forcebacklog/inject": "enabled"})),
        NamespaceOptIn::Enabled
    );
    assert_eq!(
        ns(json!({"forcebacklog/inject": "disabled"})),
        NamespaceOptIn::Disabled
    );
    assert_eq!(
        ns(json!({"forcebacklog/inject": "yes"})),
        NamespaceOptIn::None
    );
    assert_eq!(ns(json!({})), NamespaceOptIn::None);
}

#[test]
fn classify_reads_the_status_the_webhook_wrote() {
    assert_eq!(
        classify(&pod(
            "a",
            json!({"forcebacklog/value": "1", "forcebacklog/status": "injected"})
        )),
        State::Injected
    );
    let skipped = classify(&pod(
        "b",
        json!({"forcebacklog/value": "abc",
                   "forcebacklog/status": "skipped: forcebacklog/value: \"abc\" is not a backlog"}),
    ));
    assert_eq!(
        skipped,
        State::Skipped("forcebacklog/value: \"abc\" is not a backlog".to_owned())
    );
    assert_eq!(skipped.as_str(), "skipped");
    assert_eq!(
        classify(&pod("c", json!({"forcebacklog/value": "1"}))),
        State::Missed
    );
    let mirror = classify(&pod(
        "d",
        json!({"forcebacklog/value": "1", "kubernetes.io/config.mirror": "abc"}),
    ));
    assert!(matches!(mirror, State::Skipped(ref r) if r.contains("static pod")));
}

#[test]
fn owners_are_followed_through_replicasets_and_jobs() {
    let rs_pod = meta(json!({"name": "web-5d-x", "ownerReferences":
            owned_by("ReplicaSet", "apps/v1", "web-5d")}));
    let rs = meta(json!({"name": "web-5d", "ownerReferences":
            owned_by("Deployment", "apps/v1", "web")}));
    let first = controller(&rs_pod);
    assert_eq!(
        Intermediate::of(first.expect("owner")),
        Some(Intermediate::ReplicaSet)
    );
    assert_eq!(
        owner_through(&rs_pod, first, Some(&rs)),
        Owner {
            kind: "Deployment".into(),
            name: "web".into()
        }
    );
    // A ReplicaSet of its own, or one that is gone.
    let lone = meta(json!({"name": "web-5d"}));
    assert_eq!(
        owner_through(&rs_pod, first, Some(&lone)).kind,
        "ReplicaSet"
    );
    assert_eq!(owner_through(&rs_pod, first, None).kind, "ReplicaSet");

    let job_pod = meta(json!({"name": "nightly-28-x", "ownerReferences":
            owned_by("Job", "batch/v1", "nightly-28")}));
    let job = meta(json!({"name": "nightly-28", "ownerReferences":
            owned_by("CronJob", "batch/v1", "nightly")}));
    let first = controller(&job_pod);
    assert_eq!(
        Intermediate::of(first.expect("owner")),
        Some(Intermediate::Job)
    );
    assert_eq!(
        owner_through(&job_pod, first, Some(&job)),
        Owner {
            kind: "CronJob".into(),
            name: "nightly".into()
        }
    );

    for (kind, api) in [("StatefulSet", "apps/v1"), ("DaemonSet", "apps/v1")] {
        let p = meta(json!({"name": "p", "ownerReferences": owned_by(kind, api, "db")}));
        let first = controller(&p);
        assert_eq!(Intermediate::of(first.expect("owner")), None);
        assert_eq!(
            owner_through(&p, first, None),
            Owner {
                kind: kind.into(),
                name: "db".into()
            }
        );
    }
    // Another group's kind named ReplicaSet is not followed.
    let foreign = meta(json!({"name": "p", "ownerReferences":
            owned_by("ReplicaSet", "example.com/v1", "x")}));
    assert_eq!(Intermediate::of(controller(&foreign).expect("owner")), None);

    let bare = meta(json!({"name": "debug"}));
    assert_eq!(
        owner_through(&bare, controller(&bare), None),
        Owner {
            kind: "Pod".into(),
            name: "debug".into()
        }
    );
}

#[test]
fn the_controller_reference_wins_over_others() {
    let p = meta(json!({"name": "p", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "1"},
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "2",
             "controller": true}]}));
    assert_eq!(controller(&p).map(|r| r.name.as_str()), Some("db"));
}

fn report(ns: &str, kind: &str, owner: &str, name: &str, state: State) -> PodReport {
    PodReport {
        namespace: ns.into(),
        name: name.into(),
        owner: Owner {
            kind: kind.into(),
            name: owner.into(),
        },
        state,
    }
}

#[test]
fn pods_are_grouped_by_owner_with_a_fix_for_missed_ones() {
    let owners = group(vec![
        report("shop", "Deployment", "web", "web-2", State::Missed),
        report("shop", "Pod", "debug", "debug", State::Missed),
        report("shop", "Deployment", "web", "web-1", State::Injected),
        report(
            "db",
            "StatefulSet",
            "pg",
            "pg-0",
            State::Skipped("windows pod".into()),
        ),
        report("shop", "ReplicaSet", "lone", "lone-a", State::Missed),
        report("shop", "ReplicaSet", "lone", "lone-b", State::Missed),
    ]);
    let keys: Vec<(&str, &str)> = owners
        .iter()
        .map(|o| (o.namespace.as_str(), o.owner.name.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("db", "pg"),
            ("shop", "web"),
            ("shop", "debug"),
            ("shop", "lone")
        ]
    );
    let web = &owners[1];
    assert_eq!(
        web.pods.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["web-1", "web-2"]
    );
    assert_eq!((web.count("injected"), web.count("missed")), (1, 1));
    assert_eq!(
        web.fix.as_deref(),
        Some("kubectl -n shop rollout restart deployment/web")
    );
    assert_eq!(owners[0].fix, None, "skipped pods need no fix");
    assert_eq!(
        owners[3].fix.as_deref(),
        Some("kubectl -n shop delete pod lone-a lone-b (replicaset/lone recreates them)")
    );
    let bare = owners[2].fix.as_deref().expect("fix");
    assert!(bare.contains("delete and recreate pod/debug"), "{bare}");
    assert!(bare.contains("kubectl -n shop delete pod debug"), "{bare}");
}

#[test]
fn fixes_per_kind() {
    let owner = |kind: &str| Owner {
        kind: kind.into(),
        name: "x".into(),
    };
    assert_eq!(
        fix("ns", &owner("StatefulSet"), &["x-0"]),
        "kubectl -n ns rollout restart statefulset/x"
    );
    assert_eq!(
        fix("ns", &owner("DaemonSet"), &["x-a"]),
        "kubectl -n ns rollout restart daemonset/x"
    );
    assert!(fix("ns", &owner("CronJob"), &["x-1-a"]).contains("create job --from=cronjob/x"));
    assert!(fix("ns", &owner("Job"), &["x-a"]).contains("delete job x"));
}

#[test]
fn report_as_json_and_table() {
    let report = Report {
        scope: "namespace shop".into(),
        owners: group(vec![
            report("shop", "Deployment", "web", "web-1", State::Injected),
            report("shop", "Deployment", "web", "web-2", State::Missed),
            report(
                "shop",
                "Pod",
                "odd",
                "odd",
                State::Skipped("windows pod".into()),
            ),
        ]),
    };
    assert!(report.has_missed());
    let json = report.to_json();
    assert_eq!(
        json["summary"],
        json!({"injected": 1, "skipped": 1, "missed": 1})
    );
    assert_eq!(json["pods"][2]["name"], "odd");
    assert_eq!(json["pods"][2]["reason"], "windows pod");
    assert_eq!(
        json["pods"][1]["owner"],
        json!({"kind": "Deployment", "name": "web"})
    );
    assert!(json["pods"][1].get("reason").is_none());
    assert_eq!(json["owners"][0]["missed_pods"], json!(["web-2"]));
    assert_eq!(
        json["owners"][0]["fix"],
        "kubectl -n shop rollout restart deployment/web"
    );
    let table = report.to_table();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAMESPACE  OWNER"), "{table}");
    assert!(lines[3].ends_with("skipped   windows pod"), "{table}");
    assert!(
        lines[2].contains("web-2") && lines[2].ends_with("missed"),
        "{table}"
    );
    assert!(table.contains(
        "3 pods ask for forcebacklog in namespace shop: 1 injected, 1 skipped, 1 missed"
    ));
    assert!(table.contains("\n  kubectl -n shop rollout restart deployment/web\n"));

    let empty = Report {
        scope: "all namespaces".into(),
        owners: vec![],
    };
    assert!(!empty.has_missed());
    assert_eq!(
        empty.to_table(),
        "no pods ask for forcebacklog in all namespaces\n"
    );
}
