use super::*;
use serde_json::json;

#[test]
fn views_read_objects_not_arrays() {
    for text in [
        r#"[]"#,
        r#"{"metadata": []}"#,
        r#"{"spec": [[{"name": "a"}]]}"#,
        r#"{"spec": {"containers": [["web"]]}}"#,
        r#"{"spec": {"containers": [{"env": [["LD_PRELOAD", "x"]]}]}}"#,
    ] {
        let err = serde_json::from_str::<PodView<'_>>(text).expect_err(text);
        assert!(
            err.to_string().contains("expected an object"),
            "{text}: {err}"
        );
        let value: serde_json::Value = serde_json::from_str(text).expect("JSON");
        assert!(PodView::deserialize(&value).is_err(), "{text}");
    }
    let err =
        serde_json::from_str::<PodView<'_>>(r#"{"spec": {}, "spec": {}}"#).expect_err("duplicate");
    assert!(err.to_string().contains("duplicate field `spec`"), "{err}");
    let pod: PodView<'_> = serde_json::from_str(
        r#"{"metadata": null, "spec": {"containers": [{"name": "a"}]}, "x": [1]}"#,
    )
    .expect("pod");
    assert!(pod.metadata.is_none());
    assert_eq!(pod.containers()[0].name, "a");
}

const ANNOTATED: Defaults = Defaults {
    backlog: 4096,
    implicit: false,
};
const NAMESPACE: Defaults = Defaults {
    backlog: 4096,
    implicit: true,
};

fn plan_of(pod: serde_json::Value, defaults: Defaults) -> Plan {
    let text = pod.to_string();
    let view: PodView<'_> = serde_json::from_str(&text).expect("pod view");
    let config = InjectConfig::default();
    let from_bytes = plan(&view, defaults, &config);
    // The same rules whether the view comes from bytes or from a Value.
    let view = PodView::deserialize(&pod).expect("pod view from Value");
    assert_eq!(plan(&view, defaults, &config), from_bytes);
    from_bytes
}

fn pod(annotations: serde_json::Value, spec: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "annotations": annotations}, "spec": spec})
}

fn skip_reason(p: &Plan) -> &SkipReason {
    match &p.verdict {
        Verdict::Skip(r) => r,
        other => panic!("expected a skip, got {other:?}"),
    }
}

#[test]
fn not_targeted_and_opted_out_are_left_alone() {
    let p = plan_of(
        pod(json!({}), json!({"containers": [{"name": "a"}]})),
        ANNOTATED,
    );
    assert_eq!(p.verdict, Verdict::NotTargeted);
    assert_eq!((p.status, p.work.is_empty()), (None, true));
    let p = plan_of(
        pod(
            json!({"forcebacklog/inject": "false"}),
            json!({"containers": [{"name": "a"}]}),
        ),
        NAMESPACE,
    );
    assert_eq!(p.verdict, Verdict::OptedOut);
    assert_eq!(p.status, None);
}

#[test]
fn simple_pod_gets_everything() {
    let p = plan_of(
        pod(
            json!({"forcebacklog/value": "234"}),
            json!({"containers": [{"name": "a"}]}),
        ),
        ANNOTATED,
    );
    assert_eq!(p.verdict, Verdict::Inject);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(
        p.status,
        Some(StatusEdit {
            value: "injected".into(),
            at: StatusAt::Annotations
        })
    );
    assert_eq!(p.work.volume, Add::Create);
    assert_eq!(p.work.init_container, Add::Create);
    assert_eq!(
        p.work.containers,
        vec![ContainerWork {
            list: List::Containers,
            index: 0,
            name: "a".into(),
            mount: Add::Create,
            env_present: false,
            env: vec![
                EnvEdit::Add {
                    name: "BACKLOG",
                    value: "234".into()
                },
                EnvEdit::Add {
                    name: "LD_PRELOAD",
                    value: SHIM_PATH.into()
                },
            ],
            command_prefix: None,
        }]
    );
}

#[test]
fn mode_and_ports_become_env() {
    let p = plan_of(
        pod(
            json!({"forcebacklog/value": "234", "forcebacklog/mode": "set", "forcebacklog/ports": "80, 90"}),
            json!({"containers": [{"name": "a", "env": []}]}),
        ),
        ANNOTATED,
    );
    let names: Vec<_> = p.work.containers[0]
        .env
        .iter()
        .map(|e| match e {
            EnvEdit::Add { name, value } => format!("{name}={value}"),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "BACKLOG=234",
            &format!("LD_PRELOAD={SHIM_PATH}"),
            "FORCEBACKLOG_MODE=set",
            "FORCEBACKLOG_PORTS=80,90"
        ]
    );
    assert!(p.work.containers[0].env_present);
}

#[test]
fn native_sidecars_only_when_named() {
    let spec = json!({
        "initContainers": [
            {"name": "setup"},
            {"name": "proxy", "restartPolicy": "Always"}
        ],
        "containers": [{"name": "web"}, {"name": "api"}]
    });
    let p = plan_of(
        pod(json!({"forcebacklog/value": "300"}), spec.clone()),
        ANNOTATED,
    );
    let picked: Vec<_> = p
        .work
        .containers
        .iter()
        .map(|c| (c.list, c.index))
        .collect();
    assert_eq!(picked, [(List::Containers, 0), (List::Containers, 1)]);
    assert_eq!(p.work.init_container, Add::Into);

    let p = plan_of(
        pod(
            json!({"forcebacklog/value": "300", "forcebacklog/containers": "proxy,api"}),
            spec.clone(),
        ),
        ANNOTATED,
    );
    let picked: Vec<_> = p
        .work
        .containers
        .iter()
        .map(|c| (c.list, c.index))
        .collect();
    assert_eq!(picked, [(List::InitContainers, 1), (List::Containers, 1)]);

    // A plain init container is not a valid target.
    let p = plan_of(
        pod(
            json!({"forcebacklog/value": "300", "forcebacklog/containers": "setup,ghost"}),
            spec,
        ),
        ANNOTATED,
    );
    let SkipReason::Invalid(err) = skip_reason(&p) else {
        panic!("{p:?}")
    };
    assert_eq!(
        err,
        &AnnotationError::UnknownContainers {
            value: "setup,ghost".into(),
            unknown: vec!["setup".into(), "ghost".into()],
            known: vec!["web".into(), "api".into(), "proxy".into()],
        }
    );
    assert!(
        p.status
            .as_ref()
            .unwrap()
            .value
            .starts_with("skipped: forcebacklog/containers: \"setup,ghost\"")
    );
    assert_eq!(skip_reason(&p).label(), "invalid");
}

#[test]
fn windows_pods_are_skipped() {
    for spec in [
        json!({"os": {"name": "windows"}, "containers": [{"name": "a"}]}),
        json!({"nodeSelector": {"kubernetes.io/os": "windows", "x": "y"}, "containers": [{"name": "a"}]}),
    ] {
        let p = plan_of(pod(json!({"forcebacklog/value": "300"}), spec), ANNOTATED);
        assert_eq!(skip_reason(&p), &SkipReason::Windows);
        assert_eq!(skip_reason(&p).label(), "windows");
        assert!(p.warnings.iter().any(|w| w.contains("Windows")));
    }
    let linux = json!({"os": {"name": "linux"}, "nodeSelector": {"kubernetes.io/os": "linux"}, "containers": [{"name": "a"}]});
    let p = plan_of(pod(json!({"forcebacklog/value": "300"}), linux), ANNOTATED);
    assert_eq!(p.verdict, Verdict::Inject);
}

#[test]
fn ld_preload_from_value_from_is_skipped() {
    let spec = json!({"containers": [{"name": "a", "env": [
        {"name": "LD_PRELOAD", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}
    ]}]});
    let p = plan_of(pod(json!({"forcebacklog/value": "300"}), spec), ANNOTATED);
    assert_eq!(
        skip_reason(&p),
        &SkipReason::LdPreloadValueFrom {
            container: "a".into()
        }
    );
    assert_eq!(
        p.status.unwrap().value,
        "skipped: container a takes LD_PRELOAD from valueFrom, which cannot be merged"
    );
}

#[test]
fn ld_preload_in_an_unselected_container_does_not_matter() {
    let spec = json!({"containers": [
        {"name": "a", "env": [{"name": "LD_PRELOAD", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]},
        {"name": "b"}
    ]});
    let p = plan_of(
        pod(
            json!({"forcebacklog/value": "300", "forcebacklog/containers": "b"}),
            spec,
        ),
        ANNOTATED,
    );
    assert_eq!(p.verdict, Verdict::Inject);
}

#[test]
fn collisions_are_skipped() {
    let spec = json!({"volumes": [{"name": "forcebacklog-shim", "configMap": {"name": "x"}}],
                      "containers": [{"name": "a"}]});
    let p = plan_of(pod(json!({"forcebacklog/value": "300"}), spec), ANNOTATED);
    assert_eq!(skip_reason(&p).label(), "collision");
    assert!(skip_reason(&p).to_string().contains("not an emptyDir"));

    let spec = json!({"volumes": [{"name": "tools", "emptyDir": {}}],
                      "containers": [{"name": "a", "volumeMounts": [{"name": "tools", "mountPath": "/opt/forcebacklog/"}]}]});
    let p = plan_of(pod(json!({"forcebacklog/value": "300"}), spec), ANNOTATED);
    assert_eq!(
        skip_reason(&p),
        &SkipReason::Collision(
            "container a already mounts volume tools at /opt/forcebacklog".into()
        )
    );
}

#[test]
fn mounts_below_ours_collide() {
    let with_mount = |name: &str, path: &str| {
        json!({"volumes": [{"name": "conf", "configMap": {"name": "x"}}],
               "containers": [{"name": "a", "volumeMounts": [{"name": name, "mountPath": path}]}]})
    };
    for path in [
        "/opt/forcebacklog/conf",
        "/opt/forcebacklog/conf/",
        "/opt/forcebacklog/a/b",
        "/opt//forcebacklog/./conf",
    ] {
        let p = plan_of(
            pod(
                json!({"forcebacklog/value": "300"}),
                with_mount("conf", path),
            ),
            ANNOTATED,
        );
        assert_eq!(
            skip_reason(&p),
            &SkipReason::Collision(format!(
                "container a already mounts volume conf at {path}, below /opt/forcebacklog"
            )),
            "{path}"
        );
        // Our own volume name does not make a mount below ours ours.
        let p = plan_of(
            pod(
                json!({"forcebacklog/value": "300"}),
                with_mount(VOLUME_NAME, path),
            ),
            ANNOTATED,
        );
        assert_eq!(skip_reason(&p).label(), "collision", "{path}");
    }
    // Above ours (ours goes on top) or beside it: injected.
    for path in [
        "/opt",
        "/opt/",
        "/",
        "/opt/forcebacklog2",
        "/opt/forcebacklog.d/x",
    ] {
        let p = plan_of(
            pod(
                json!({"forcebacklog/value": "300"}),
                with_mount("conf", path),
            ),
            ANNOTATED,
        );
        assert_eq!(p.verdict, Verdict::Inject, "{path}");
        assert_eq!(p.work.containers[0].mount, Add::Into, "{path}");
    }
    // Ours, however written: nothing to add.
    for path in [
        "/opt/forcebacklog",
        "/opt/forcebacklog/",
        "//opt/forcebacklog",
    ] {
        let p = plan_of(
            pod(
                json!({"forcebacklog/value": "300"}),
                with_mount(VOLUME_NAME, path),
            ),
            ANNOTATED,
        );
        assert_eq!(p.verdict, Verdict::Inject, "{path}");
        assert_eq!(p.work.containers[0].mount, Add::Nothing, "{path}");
    }
    // A named native sidecar is checked; an unselected container is not.
    let spec = json!({
        "initContainers": [{"name": "proxy", "restartPolicy": "Always",
            "volumeMounts": [{"name": "conf", "mountPath": "/opt/forcebacklog/conf"}]}],
        "containers": [{"name": "web"},
            {"name": "other", "volumeMounts": [{"name": "conf", "mountPath": "/opt/forcebacklog/x"}]}]});
    let p = plan_of(
        pod(
            json!({"forcebacklog/value": "300", "forcebacklog/containers": "proxy"}),
            spec.clone(),
        ),
        ANNOTATED,
    );
    assert_eq!(
        skip_reason(&p),
        &SkipReason::Collision(
            "container proxy already mounts volume conf at /opt/forcebacklog/conf, below /opt/forcebacklog"
                .into()
        )
    );
    let p = plan_of(
        pod(
            json!({"forcebacklog/value": "300", "forcebacklog/containers": "web"}),
            spec,
        ),
        ANNOTATED,
    );
    assert_eq!(p.verdict, Verdict::Inject);
}

#[test]
fn existing_backlog_is_kept_with_a_warning() {
    let spec = json!({"containers": [{"name": "a", "env": [{"name": "BACKLOG", "value": "100"}]},
                                     {"name": "b", "env": [{"name": "BACKLOG", "value": "300"}]},
                                     {"name": "c", "env": [{"name": "BACKLOG", "valueFrom": {"fieldRef": {}}}]}]});
    let p = plan_of(pod(json!({"forcebacklog/value": "300"}), spec), ANNOTATED);
    assert_eq!(p.verdict, Verdict::Inject);
    for c in &p.work.containers {
        assert!(
            !c.env.iter().any(|e| matches!(
                e,
                EnvEdit::Add {
                    name: "BACKLOG",
                    ..
                }
            )),
            "{c:?}"
        );
    }
    assert_eq!(
        p.warnings,
        [
            "forcebacklog: container a: BACKLOG=100 set by the pod is kept (300 not applied)",
            "forcebacklog: container c: BACKLOG from valueFrom is kept (300 not applied)"
        ]
    );
}

#[test]
fn env_from_injects_with_a_warning() {
    let env_from = json!([{"configMapRef": {"name": "settings"}}]);
    let spec = json!({"containers": [
        {"name": "web", "envFrom": env_from},
        {"name": "api", "envFrom": env_from,
         "env": [{"name": "BACKLOG", "value": "300"}]},
        {"name": "plain", "envFrom": []},
        {"name": "full", "envFrom": env_from, "env": [
            {"name": "BACKLOG", "value": "300"},
            {"name": "LD_PRELOAD", "value": SHIM_PATH}]}
    ]});
    let p = plan_of(pod(json!({"forcebacklog/value": "300"}), spec), ANNOTATED);
    assert_eq!(p.verdict, Verdict::Inject);
    // Every container still gets the shim.
    let names: Vec<&str> = p.work.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["web", "api", "plain", "full"]);
    assert_eq!(
        p.warnings,
        [
            "forcebacklog: container web uses envFrom: a value it provides for BACKLOG or LD_PRELOAD is overridden by the injected env",
            "forcebacklog: container api uses envFrom: a value it provides for LD_PRELOAD is overridden by the injected env",
        ]
    );

    // Mode and ports are named too; a second pass warns no more.
    let spec = json!({"containers": [{"name": "web", "envFrom": env_from}]});
    let annotated = json!({"forcebacklog/value": "300", "forcebacklog/mode": "set",
                           "forcebacklog/ports": "80"});
    let p = plan_of(pod(annotated.clone(), spec), ANNOTATED);
    assert_eq!(
        p.warnings,
        [
            "forcebacklog: container web uses envFrom: a value it provides for BACKLOG, LD_PRELOAD, FORCEBACKLOG_MODE or FORCEBACKLOG_PORTS is overridden by the injected env"
        ]
    );
    let injected = json!({"containers": [{"name": "web", "envFrom": env_from,
        "volumeMounts": [{"name": VOLUME_NAME, "mountPath": MOUNT_PATH, "readOnly": true}],
        "env": [{"name": "BACKLOG", "value": "300"}, {"name": "LD_PRELOAD", "value": SHIM_PATH},
                {"name": "FORCEBACKLOG_MODE", "value": "set"}, {"name": "FORCEBACKLOG_PORTS", "value": "80"}]}],
        "initContainers": [{"name": INIT_CONTAINER_NAME, "command": INSTALL_COMMAND,
            "volumeMounts": [{"name": VOLUME_NAME, "mountPath": MOUNT_PATH}]}],
        "volumes": [{"name": VOLUME_NAME, "emptyDir": {}}]});
    let p = plan_of(pod(annotated, injected), ANNOTATED);
    assert_eq!(p.verdict, Verdict::AlreadyInjected);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn ld_preload_merging() {
    assert_eq!(merge_ld_preload(""), Some(SHIM_PATH.to_owned()));
    assert_eq!(merge_ld_preload("  "), Some(SHIM_PATH.to_owned()));
    assert_eq!(merge_ld_preload(":"), Some(SHIM_PATH.to_owned()));
    assert_eq!(
        merge_ld_preload("/lib/a.so"),
        Some(format!("{SHIM_PATH}:/lib/a.so"))
    );
    assert_eq!(
        merge_ld_preload("/lib/a.so:/lib/b.so"),
        Some(format!("{SHIM_PATH}:/lib/a.so:/lib/b.so"))
    );
    assert_eq!(
        merge_ld_preload("/lib/a.so /lib/b.so"),
        Some(format!("{SHIM_PATH} /lib/a.so /lib/b.so"))
    );
    assert_eq!(
        merge_ld_preload("/lib/a.so:"),
        Some(format!("{SHIM_PATH}:/lib/a.so"))
    );
    assert_eq!(
        merge_ld_preload(" /lib/a.so "),
        Some(format!("{SHIM_PATH}:/lib/a.so"))
    );
    // Mixed separators: the list is kept as it is, ours joins with `:`.
    assert_eq!(
        merge_ld_preload("/lib/a.so /lib/b.so:/lib/c.so"),
        Some(format!("{SHIM_PATH}:/lib/a.so /lib/b.so:/lib/c.so"))
    );
    assert_eq!(merge_ld_preload(SHIM_PATH), None);
    assert_eq!(merge_ld_preload(&format!("/x.so {SHIM_PATH}")), None);
    assert_eq!(merge_ld_preload(&format!("{SHIM_PATH}:/x.so")), None);
    assert_eq!(merge_ld_preload(&format!("/x.so:{SHIM_PATH}:/y.so")), None);
    // A longer path that merely contains ours is not ours.
    assert_eq!(
        merge_ld_preload(&format!("{SHIM_PATH}.bak")),
        Some(format!("{SHIM_PATH}:{SHIM_PATH}.bak"))
    );
}

#[test]
fn preload_merging_works_on_bytes() {
    // `forcebacklog run` passes its cache path and an inherited value
    // that need not be UTF-8.
    assert_eq!(
        preload_with_shim(b"/c/s.so", b"/l/\xff.so"),
        Some(b"/c/s.so:/l/\xff.so".to_vec())
    );
    assert_eq!(preload_with_shim(b"/c/s.so", b"/l/\xff.so /c/s.so"), None);
    assert_eq!(
        preload_with_shim(b"/c/s.so", b""),
        Some(b"/c/s.so".to_vec())
    );
}

#[test]
fn existing_ld_preload_gets_a_set_value_edit() {
    let spec = json!({"containers": [{"name": "a", "env": [
        {"name": "X", "value": "1"}, {"name": "LD_PRELOAD", "value": "/usr/lib/libjemalloc.so"}]}]});
    let p = plan_of(pod(json!({"forcebacklog/value": "300"}), spec), ANNOTATED);
    assert_eq!(
        p.work.containers[0].env,
        [
            EnvEdit::Add {
                name: "BACKLOG",
                value: "300".into()
            },
            EnvEdit::SetValue {
                index: 1,
                value: format!("{SHIM_PATH}:/usr/lib/libjemalloc.so")
            }
        ]
    );
}

#[test]
fn somaxconn_warning() {
    let warn = |spec: serde_json::Value, value: &str| {
        plan_of(pod(json!({"forcebacklog/value": value}), spec), ANNOTATED)
            .warnings
            .iter()
            .any(|w| w.contains("net.core.somaxconn"))
    };
    let c = json!([{"name": "a"}]);
    assert!(!warn(json!({"containers": c}), "4096"));
    assert!(warn(json!({"containers": c}), "4097"));
    let sysctl = |v: &str| json!({"containers": c, "securityContext": {"sysctls": [{"name": "net.core.somaxconn", "value": v}]}});
    assert!(!warn(sysctl("10000"), "10000"));
    assert!(!warn(sysctl("65535"), "10000"));
    assert!(warn(sysctl("8192"), "10000"));
    assert!(warn(sysctl("lots"), "10000"));
}

#[test]
fn invalid_values_skip_with_status() {
    for bad in ["abc", "0", "70000", "-1", ""] {
        let p = plan_of(
            pod(
                json!({"forcebacklog/value": bad}),
                json!({"containers": [{"name": "a"}]}),
            ),
            ANNOTATED,
        );
        assert_eq!(
            skip_reason(&p),
            &SkipReason::Invalid(AnnotationError::Backlog(bad.into()))
        );
        assert!(p.work.is_empty());
        let status = p.status.unwrap().value;
        assert!(
            status.starts_with("skipped: forcebacklog/value: "),
            "{status}"
        );
        assert!(p.warnings[0].contains("1..=65535"));
    }
}

#[test]
fn no_containers_is_skipped() {
    let p = plan_of(
        json!({"metadata": {"annotations": {"forcebacklog/value": "5"}}}),
        ANNOTATED,
    );
    assert_eq!(skip_reason(&p), &SkipReason::NoContainers);
    let p = plan_of(json!({"spec": {"containers": []}}), NAMESPACE);
    assert_eq!(skip_reason(&p), &SkipReason::NoContainers);
    assert_eq!(p.status.unwrap().at, StatusAt::NoMetadata);
}

#[test]
fn status_locations() {
    let c = json!({"containers": [{"name": "a"}]});
    let at = |pod: serde_json::Value| plan_of(pod, NAMESPACE).status.map(|s| s.at);
    assert_eq!(at(json!({"spec": c})), Some(StatusAt::NoMetadata));
    assert_eq!(
        at(json!({"metadata": null, "spec": c})),
        Some(StatusAt::NoMetadata)
    );
    assert_eq!(
        at(json!({"metadata": {}, "spec": c})),
        Some(StatusAt::NoAnnotations)
    );
    assert_eq!(
        at(json!({"metadata": {"annotations": null}, "spec": c})),
        Some(StatusAt::NoAnnotations)
    );
    assert_eq!(
        at(json!({"metadata": {"annotations": {}}, "spec": c})),
        Some(StatusAt::Annotations)
    );
}

#[test]
fn unknown_keys_warn_even_when_not_targeted() {
    let p = plan_of(
        pod(
            json!({"forcebacklog/backlog": "234"}),
            json!({"containers": [{"name": "a"}]}),
        ),
        ANNOTATED,
    );
    assert_eq!(p.verdict, Verdict::NotTargeted);
    assert_eq!(p.warnings.len(), 1);
    assert!(p.warnings[0].contains("forcebacklog/backlog"));
}

#[test]
fn large_pods_give_bounded_messages() {
    let containers: Vec<_> = (0..1000)
        .map(|i| json!({"name": format!("c{i}"), "env": [{"name": "BACKLOG", "value": "1"}]}))
        .collect();
    let p = plan_of(
        pod(
            json!({"forcebacklog/value": "300"}),
            json!({"containers": containers}),
        ),
        ANNOTATED,
    );
    assert_eq!(p.verdict, Verdict::Inject);
    assert_eq!(p.work.containers.len(), 1000);
    assert_eq!(p.warnings.len(), annotations::MAX_LISTED);
    assert_eq!(
        p.warnings.last().unwrap(),
        "forcebacklog: … and 993 more warnings"
    );

    let names: Vec<String> = (0..5000).map(|i| format!("ghost{i}")).collect();
    let p = plan_of(
        pod(
            json!({"forcebacklog/value": "300", "forcebacklog/containers": names.join(",")}),
            json!({"containers": containers}),
        ),
        ANNOTATED,
    );
    let status = p.status.unwrap().value;
    assert!(status.len() < 600, "{} bytes: {status}", status.len());
}

#[test]
fn paths_above_ours() {
    for above in ["/", "/opt", "/opt/", "//opt", "/./opt"] {
        assert!(is_above_mount_path(above), "{above}");
    }
    for not in [
        "/opt/forcebacklog",
        "/opt/forcebacklog/x",
        "/op",
        "/var",
        "/opt/f",
    ] {
        assert!(!is_above_mount_path(not), "{not}");
    }
}

#[test]
fn zero_quantities_do_not_count() {
    let raw = |s: &str| Raw::Str(Cow::Owned(s.to_owned()));
    for zero in ["0", "0.0", "0Mi", "0m", "0e3", "+0", ".0"] {
        assert!(!is_non_zero_quantity(&raw(zero)), "{zero}");
    }
    for set in ["1", "0.5", "10m", "1Gi", "bogus", ""] {
        assert!(is_non_zero_quantity(&raw(set)), "{set:?}");
    }
    assert!(is_non_zero_quantity(&Raw::NotString("2".into())));
    assert!(!is_non_zero_quantity(&Raw::NotString("0".into())));
    assert!(!is_non_zero_quantity(&Raw::NotString("null".into())));
}

#[test]
fn owner_references() {
    let v: PodView<'_> =
        serde_json::from_str(r#"{"metadata":{"ownerReferences":[{"kind":"ReplicaSet"}]}}"#)
            .unwrap();
    assert!(v.has_owner());
    let v: PodView<'_> = serde_json::from_str(r#"{"metadata":{"ownerReferences":[]}}"#).unwrap();
    assert!(!v.has_owner());
    assert!(!PodView::default().has_owner());
    for not_a_list in ["null", "\"x\"", "{\"kind\":\"ReplicaSet\"}", "5", "true"] {
        let text = format!(r#"{{"metadata":{{"ownerReferences":{not_a_list}}}}}"#);
        let v: PodView<'_> = serde_json::from_str(&text).expect(&text);
        assert!(!v.has_owner(), "{text}");
    }
}

#[test]
fn skip_labels_come_from_the_verdict() {
    assert_eq!(Verdict::OptedOut.skip_label(), Some("opted_out"));
    assert_eq!(
        Verdict::Skip(SkipReason::Windows).skip_label(),
        Some(SkipReason::Windows.label())
    );
    for not_skipped in [
        Verdict::NotTargeted,
        Verdict::AlreadyInjected,
        Verdict::Inject,
    ] {
        assert_eq!(not_skipped.skip_label(), None);
    }
}
