use super::*;

#[test]
fn every_user_key_has_its_field() {
    for (i, key) in USER_KEYS.into_iter().enumerate() {
        let mut a = Annotations::default();
        a.insert(key, Raw::Str(Cow::Borrowed("x")));
        let values = a.user_values();
        for (j, value) in values.iter().enumerate() {
            assert_eq!(value.is_some(), i == j, "{key}");
        }
        assert!(a.any_user_key() && a.unknown.is_empty() && a.status.is_none());
    }
    let mut a = Annotations::default();
    a.insert(STATUS, Raw::Str(Cow::Borrowed("injected")));
    assert!(!a.any_user_key());
    assert_eq!(a.status_str(), Some("injected"));
}

fn ann(pairs: &[(&str, &str)]) -> Annotations<'static> {
    let mut a = Annotations::default();
    for (k, v) in pairs {
        a.insert(k, Raw::Str(Cow::Owned((*v).to_owned())));
    }
    a
}

const NONE: Defaults = Defaults {
    backlog: 4096,
    implicit: false,
};
const NAMESPACE: Defaults = Defaults {
    backlog: 4096,
    implicit: true,
};

fn settings_of(t: Targeting) -> Settings {
    match t {
        Targeting::Targeted(s) => s,
        other => panic!("expected Targeted, got {other:?}"),
    }
}

#[test]
fn no_annotation_is_not_targeted_without_opt_in() {
    assert_eq!(targeting(&ann(&[]), NONE), Ok(Targeting::NotTargeted));
    // Only the status or unrelated keys: still not targeted.
    assert_eq!(
        targeting(&ann(&[(STATUS, "injected"), ("app", "x")]), NONE),
        Ok(Targeting::NotTargeted)
    );
    // Mode alone does not opt in.
    assert_eq!(
        targeting(&ann(&[(MODE, "set")]), NONE),
        Ok(Targeting::NotTargeted)
    );
}

#[test]
fn value_targets_with_that_backlog() {
    let s = settings_of(targeting(&ann(&[(VALUE, "234")]), NONE).unwrap());
    assert_eq!(
        s,
        Settings {
            backlog: 234,
            mode: None,
            ports: None,
            containers: Containers::AppContainers,
            metrics: None,
            method: Method::Shim,
        }
    );
    // The annotation wins over the namespace default.
    let s = settings_of(targeting(&ann(&[(VALUE, "65535")]), NAMESPACE).unwrap());
    assert_eq!(s.backlog, 65535);
    let s = settings_of(targeting(&ann(&[(VALUE, "1")]), NONE).unwrap());
    assert_eq!(s.backlog, 1);
    let s = settings_of(targeting(&ann(&[(VALUE, "0234")]), NONE).unwrap());
    assert_eq!(s.backlog, 234);
}

#[test]
fn namespace_opt_in_uses_the_default_backlog() {
    let s = settings_of(targeting(&ann(&[]), NAMESPACE).unwrap());
    assert_eq!(s.backlog, 4096);
    let forced = Defaults {
        backlog: 234,
        implicit: true,
    };
    assert_eq!(
        settings_of(targeting(&ann(&[]), forced).unwrap()).backlog,
        234
    );
}

#[test]
fn inject_true_or_enabled_opts_in_with_the_default() {
    for v in ["true", "enabled"] {
        let s = settings_of(targeting(&ann(&[(INJECT, v)]), NONE).unwrap());
        assert_eq!(s.backlog, 4096, "{v}");
    }
}

#[test]
fn inject_false_opts_out_and_wins() {
    for v in ["false", "disabled"] {
        assert_eq!(
            targeting(&ann(&[(INJECT, v), (VALUE, "234")]), NAMESPACE),
            Ok(Targeting::OptedOut),
            "{v}"
        );
        // Even with an invalid value next to it: the pod asked to be left alone.
        assert_eq!(
            targeting(&ann(&[(INJECT, v), (VALUE, "abc")]), NONE),
            Ok(Targeting::OptedOut)
        );
    }
}

#[test]
fn invalid_backlogs_name_key_value_and_range() {
    for bad in [
        "abc",
        "0",
        "70000",
        "-1",
        "",
        " 234",
        "+5",
        "1.5",
        "99999999999999999999",
    ] {
        let err = targeting(&ann(&[(VALUE, bad)]), NONE).unwrap_err();
        assert_eq!(err, AnnotationError::Backlog(bad.to_owned()));
        assert_eq!(err.key(), VALUE);
    }
    let msg = AnnotationError::Backlog("70000".into()).to_string();
    assert_eq!(
        msg,
        "forcebacklog/value: \"70000\" is not a backlog: expected a decimal integer in 1..=65535"
    );
}

#[test]
fn invalid_values_matter_only_when_targeted_but_check_sees_them() {
    let a = ann(&[(MODE, "fast")]);
    assert_eq!(targeting(&a, NONE), Ok(Targeting::NotTargeted));
    assert_eq!(check(&a), Err(AnnotationError::Mode("fast".into())));
    assert_eq!(
        targeting(&a, NAMESPACE),
        Err(AnnotationError::Mode("fast".into()))
    );
}

#[test]
fn inject_switch_validation() {
    let err = targeting(&ann(&[(INJECT, "yes")]), NONE).unwrap_err();
    assert_eq!(err, AnnotationError::Inject("yes".into()));
    assert!(
        err.to_string()
            .contains("\"true\", \"enabled\", \"false\" or \"disabled\"")
    );
    assert!(check(&ann(&[(INJECT, "False")])).is_err());
    assert!(check(&ann(&[(INJECT, "enabled")])).is_ok());
}

#[test]
fn mode_values() {
    let s = settings_of(targeting(&ann(&[(VALUE, "9"), (MODE, "set")]), NONE).unwrap());
    assert_eq!(s.mode, Some(Mode::Set));
    let s = settings_of(targeting(&ann(&[(VALUE, "9"), (MODE, "raise")]), NONE).unwrap());
    assert_eq!(s.mode, Some(Mode::Raise));
    for bad in ["", "SET", "max", "raise "] {
        assert_eq!(
            targeting(&ann(&[(VALUE, "9"), (MODE, bad)]), NONE),
            Err(AnnotationError::Mode(bad.into()))
        );
    }
}

#[test]
fn method_values() {
    let s = settings_of(targeting(&ann(&[(VALUE, "9")]), NONE).unwrap());
    assert_eq!(s.method, Method::Shim, "the shim by default");
    for (value, method) in [("shim", Method::Shim), ("supervise", Method::Supervise)] {
        let s = settings_of(targeting(&ann(&[(VALUE, "9"), (METHOD, value)]), NONE).unwrap());
        assert_eq!(s.method, method);
        assert_eq!(method.as_str(), value);
    }
    // Method alone does not opt in, but check sees a bad value.
    assert_eq!(
        targeting(&ann(&[(METHOD, "supervise")]), NONE),
        Ok(Targeting::NotTargeted)
    );
    for bad in ["", "Supervise", "ptrace", "supervise "] {
        let err = targeting(&ann(&[(VALUE, "9"), (METHOD, bad)]), NONE).unwrap_err();
        assert_eq!(err, AnnotationError::Method(bad.into()));
        assert_eq!(err.key(), METHOD);
        assert_eq!(check(&ann(&[(METHOD, bad)])), Err(err));
    }
    assert_eq!(
        AnnotationError::Method("ptrace".into()).to_string(),
        "forcebacklog/method: \"ptrace\" is not a method: expected \"shim\" or \"supervise\""
    );
}

#[test]
fn ports_cannot_go_with_supervise() {
    let a = ann(&[(VALUE, "9"), (METHOD, "supervise"), (PORTS, "8080")]);
    let err = targeting(&a, NONE).unwrap_err();
    assert_eq!(err, AnnotationError::PortsWithSupervise("8080".into()));
    assert_eq!(err.key(), PORTS);
    assert!(err.to_string().contains("forcebacklog/method"), "{err}");
    assert_eq!(check(&a), Err(err));
    // With the shim, ports are fine.
    let a = ann(&[(VALUE, "9"), (METHOD, "shim"), (PORTS, "8080")]);
    assert!(targeting(&a, NONE).is_ok());
}

#[test]
fn ports_are_normalised_and_validated() {
    let s =
        settings_of(targeting(&ann(&[(VALUE, "9"), (PORTS, " 80, 8080 ,65535")]), NONE).unwrap());
    assert_eq!(s.ports.as_deref(), Some("80,8080,65535"));
    for (bad, elem) in [
        ("", ""),
        ("80,", ""),
        ("80,x", "x"),
        ("0", "0"),
        ("70000", "70000"),
        ("80;90", "80;90"),
        ("-1", "-1"),
    ] {
        let err = targeting(&ann(&[(VALUE, "9"), (PORTS, bad)]), NONE).unwrap_err();
        assert_eq!(
            err,
            AnnotationError::Ports {
                value: bad.into(),
                bad: elem.into()
            }
        );
        assert!(err.to_string().starts_with("forcebacklog/ports: "));
        assert!(err.to_string().contains("1..=65535"));
    }
}

#[test]
fn container_lists() {
    let s =
        settings_of(targeting(&ann(&[(VALUE, "9"), (CONTAINERS, "web, api,web")]), NONE).unwrap());
    assert_eq!(
        s.containers,
        Containers::Named(vec!["web".into(), "api".into()])
    );
    for bad in ["", " ", "web,,api", ",web"] {
        assert_eq!(
            targeting(&ann(&[(VALUE, "9"), (CONTAINERS, bad)]), NONE),
            Err(AnnotationError::ContainerList(bad.into()))
        );
    }
}

#[test]
fn unknown_container_message() {
    let err = AnnotationError::UnknownContainers {
        value: "web,foo".into(),
        unknown: vec!["foo".into()],
        known: vec!["web".into(), "api".into()],
    };
    assert_eq!(
        err.to_string(),
        "forcebacklog/containers: \"web,foo\" names \"foo\" which is not an app container or native sidecar of this pod: expected names among [web, api]"
    );
}

#[test]
fn messages_quote_at_most_64_characters() {
    let long = "9".repeat(10_000);
    let err = targeting(&ann(&[(VALUE, &long)]), NONE).unwrap_err();
    assert_eq!(err, AnnotationError::Backlog(format!("{}…", &long[..64])));
    assert!(err.to_string().len() < 200);
    assert_eq!(clip("é".repeat(70).as_str()).chars().count(), 65);
    assert_eq!(clip("short"), "short");
    // Many distinct unknown keys: a bounded list.
    let mut a = Annotations::default();
    for i in 0..10_000 {
        a.insert(&format!("forcebacklog/k{i}"), Raw::Str(Cow::Borrowed("x")));
    }
    assert_eq!(a.unknown.len(), MAX_LISTED);
    // A long container list parses in linear time.
    let names: Vec<String> = (0..100_000).map(|i| format!("c{i}")).collect();
    let joined = names.join(",");
    let s = settings_of(targeting(&ann(&[(VALUE, "9"), (CONTAINERS, &joined)]), NONE).unwrap());
    assert_eq!(s.containers, Containers::Named(names));
}

#[test]
fn non_string_values_are_errors() {
    let mut a = Annotations::default();
    a.insert(VALUE, Raw::NotString("234".into()));
    let err = targeting(&a, NONE).unwrap_err();
    assert_eq!(
        err.to_string(),
        "forcebacklog/value: 234 is not a string: annotation values must be quoted strings"
    );
}

#[test]
fn deserialises_only_our_keys_and_borrows() {
    let json = r#"{"a":"b","forcebacklog/value":"234","forcebacklog/mode":7,
            "forcebacklog/backlog":"1","big":{"x":[1,2]},"forcebacklog/status":"injected"}"#;
    let a: Annotations<'_> = serde_json::from_str(json).unwrap();
    assert!(matches!(a.value, Some(Raw::Str(Cow::Borrowed("234")))));
    assert_eq!(a.mode, Some(Raw::NotString("7".into())));
    assert_eq!(a.status_str(), Some("injected"));
    assert_eq!(a.unknown, vec!["forcebacklog/backlog".to_owned()]);
    assert!(a.any_user_key());
    let w: Vec<String> = a.unknown_key_warnings().collect();
    assert!(w[0].contains("forcebacklog/backlog"), "{w:?}");
    // Escaped strings are owned but equal.
    let a: Annotations<'_> = serde_json::from_str(r#"{"forcebacklog/value":"2\u0033"}"#).unwrap();
    assert_eq!(a.value, Some(Raw::Str(Cow::Owned("23".into()))));
    // null annotations map.
    let a: Annotations<'_> = serde_json::from_str("null").unwrap();
    assert_eq!(a, Annotations::default());
}
