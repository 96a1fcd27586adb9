//! The annotation contract: a pod's `forcebacklog/*` annotations (and the
//! opt-in that applies to it) → typed [`Settings`], or an
//! [`AnnotationError`] that names the key, the value and the allowed range.
//!
//! | key | values | default |
//! | --- | --- | --- |
//! | `forcebacklog/value` | decimal integer in 1..=65535 | the configured default backlog |
//! | `forcebacklog/inject` | `true`/`enabled` (opt in), `false`/`disabled` (opt out) | – |
//! | `forcebacklog/containers` | comma list of container names | every app container |
//! | `forcebacklog/mode` | `raise` or `set` | the shim's default (`raise`) |
//! | `forcebacklog/ports` | comma list of ports in 1..=65535 | every port |
//! | `forcebacklog/method` | `shim` (`LD_PRELOAD`) or `supervise` (`forcebacklog run --method supervise` wraps the command) | `shim` |
//! | `forcebacklog/status` | written by forcebacklog: `injected` or `skipped: <reason>` | – |
//!
//! Only keys under `forcebacklog/` are kept when annotations are read; the
//! values of every other annotation are skipped without being copied. The
//! one foreign key noted is `kubernetes.io/config.mirror` (its presence
//! only), which marks the mirror pod of a static pod.

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// The prefix of every annotation this project reads or writes.
pub const PREFIX: &str = "forcebacklog/";
/// Inject with this backlog.
pub const VALUE: &str = "forcebacklog/value";
/// `false`/`disabled` opts a pod out; `true`/`enabled` opts it in.
pub const INJECT: &str = "forcebacklog/inject";
/// Only these containers (regular containers or native sidecars).
pub const CONTAINERS: &str = "forcebacklog/containers";
/// `FORCEBACKLOG_MODE` of the shim.
pub const MODE: &str = "forcebacklog/mode";
/// `FORCEBACKLOG_PORTS` of the shim.
pub const PORTS: &str = "forcebacklog/ports";
/// `shim` (`LD_PRELOAD`) or `supervise` (the command is wrapped with
/// `forcebacklog run --method supervise`).
pub const METHOD: &str = "forcebacklog/method";
/// A port: add the metrics sidecar (`forcebacklog sockets --serve`) on it.
pub const METRICS: &str = "forcebacklog/metrics";
/// The keys a user writes (all but [`STATUS`]): the one list of them,
/// in the order of [`Annotations::user_values`].
pub const USER_KEYS: [&str; 7] = [VALUE, INJECT, CONTAINERS, MODE, PORTS, METRICS, METHOD];
/// Written by forcebacklog: `injected` or `skipped: <reason>`.
pub const STATUS: &str = "forcebacklog/status";
/// The status of a pod that got the shim.
pub const STATUS_INJECTED: &str = "injected";
/// Set by the kubelet on the mirror pod of a static pod.
pub const MIRROR: &str = "kubernetes.io/config.mirror";
/// The highest backlog the kernel accepts without a pod sysctl on kernels ≥ 5.4.
pub const DEFAULT_SOMAXCONN: u16 = 4096;

/// How many names a message lists at most.
pub const MAX_LISTED: usize = 8;
/// How many characters of a value a message quotes at most.
const MAX_QUOTED: usize = 64;

/// A value as quoted in messages: at most 64 characters, then `…`, so
/// hostile input cannot blow up warnings and status annotations.
pub fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED) {
        None => s.to_owned(),
        Some((cut, _)) => format!("{}…", &s[..cut]),
    }
}

/// The value of one of our annotations, as found in the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raw<'a> {
    /// A string, as Kubernetes requires.
    Str(Cow<'a, str>),
    /// Anything else (a YAML number, a boolean, null…), described for messages.
    NotString(String),
}

impl Raw<'_> {
    /// The string, or the error saying that `key` must be a string.
    fn as_str(&self, key: &'static str) -> Result<&str, AnnotationError> {
        match self {
            Raw::Str(s) => Ok(s),
            Raw::NotString(found) => Err(AnnotationError::NotAString {
                key,
                found: clip(found),
            }),
        }
    }
}

/// The `forcebacklog/*` annotations of one object (other keys are skipped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations<'a> {
    /// `forcebacklog/value`.
    pub value: Option<Raw<'a>>,
    /// `forcebacklog/inject`.
    pub inject: Option<Raw<'a>>,
    /// `forcebacklog/containers`.
    pub containers: Option<Raw<'a>>,
    /// `forcebacklog/mode`.
    pub mode: Option<Raw<'a>>,
    /// `forcebacklog/ports`.
    pub ports: Option<Raw<'a>>,
    /// `forcebacklog/metrics`.
    pub metrics: Option<Raw<'a>>,
    /// `forcebacklog/method`.
    pub method: Option<Raw<'a>>,
    /// `forcebacklog/status`.
    pub status: Option<Raw<'a>>,
    /// Keys under `forcebacklog/` that mean nothing (typos such as `forcebacklog/backlog`).
    pub unknown: Vec<String>,
    /// `kubernetes.io/config.mirror` is present: the object is the mirror
    /// pod of a static pod (its value is not kept).
    pub mirror: bool,
}

impl<'a> Annotations<'a> {
    /// Records one annotation; keys outside `forcebacklog/` are ignored.
    pub fn insert(&mut self, key: &str, value: Raw<'a>) {
        if key == STATUS {
            self.status = Some(value);
        } else if let Some(i) = USER_KEYS.iter().position(|k| *k == key) {
            if let Some(slot) = self.user_slots_mut().into_iter().nth(i) {
                *slot = Some(value);
            }
        } else if key.starts_with(PREFIX)
            && self.unknown.len() < MAX_LISTED
            && !self.unknown.iter().any(|k| k == key)
        {
            // A few are enough to point at the typo; the list stays bounded.
            self.unknown.push(clip(key));
        }
    }

    /// The values of [`USER_KEYS`], in that order.
    pub fn user_values(&self) -> [Option<&Raw<'a>>; USER_KEYS.len()] {
        [
            self.value.as_ref(),
            self.inject.as_ref(),
            self.containers.as_ref(),
            self.mode.as_ref(),
            self.ports.as_ref(),
            self.metrics.as_ref(),
            self.method.as_ref(),
        ]
    }

    /// The fields of [`USER_KEYS`], in that order.
    fn user_slots_mut(&mut self) -> [&mut Option<Raw<'a>>; USER_KEYS.len()] {
        [
            &mut self.value,
            &mut self.inject,
            &mut self.containers,
            &mut self.mode,
            &mut self.ports,
            &mut self.metrics,
            &mut self.method,
        ]
    }

    /// True when any key a user writes ([`USER_KEYS`]) is present.
    pub fn any_user_key(&self) -> bool {
        self.user_values().iter().any(Option::is_some)
    }

    /// The `forcebacklog/status` value when it is a string.
    pub fn status_str(&self) -> Option<&str> {
        match &self.status {
            Some(Raw::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// Warnings for keys under `forcebacklog/` that mean nothing.
    pub fn unknown_key_warnings(&self) -> impl Iterator<Item = String> + '_ {
        self.unknown.iter().map(|key| {
            let known = USER_KEYS.map(|k| k.strip_prefix(PREFIX).unwrap_or(k));
            format!(
                "forcebacklog: unknown annotation {key} ignored (known: {})",
                known.join(", ")
            )
        })
    }
}

/// What applies to a pod besides its annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// The backlog when `forcebacklog/value` is absent.
    pub backlog: u16,
    /// The pod is targeted without any annotation: its namespace carries
    /// `forcebacklog/inject: enabled`, or `inject --backlog N` was given.
    pub implicit: bool,
}

/// The shim's `FORCEBACKLOG_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The backlog becomes max(app's value, BACKLOG).
    Raise,
    /// The backlog becomes exactly BACKLOG.
    Set,
}

impl Mode {
    /// Reads a mode: `raise` or `set`, exactly (the rule for
    /// `forcebacklog/mode` and for `forcebacklog run --mode`).
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "raise" => Some(Mode::Raise),
            "set" => Some(Mode::Set),
            _ => None,
        }
    }

    /// The env value.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Raise => "raise",
            Mode::Set => "set",
        }
    }
}

/// How the backlog of a selected container's program is raised
/// (`forcebacklog/method`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Method {
    /// `LD_PRELOAD` of the shim: every dynamically linked program, the
    /// command left as it is.
    #[default]
    Shim,
    /// The container's command wrapped with `forcebacklog run --method
    /// supervise`: statically linked programs and raw system calls too;
    /// only containers with an explicit `command`.
    Supervise,
}

impl Method {
    /// Reads a method: `shim` or `supervise`, exactly.
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "shim" => Some(Method::Shim),
            "supervise" => Some(Method::Supervise),
            _ => None,
        }
    }

    /// The annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Shim => "shim",
            Method::Supervise => "supervise",
        }
    }
}

/// Which containers get the shim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Containers {
    /// Every regular container (native sidecars are left alone).
    AppContainers,
    /// Exactly these (regular containers or native sidecars), in annotation order.
    Named(Vec<String>),
}

/// What a targeted pod gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `BACKLOG`.
    pub backlog: u16,
    /// `FORCEBACKLOG_MODE`, only when annotated.
    pub mode: Option<Mode>,
    /// `FORCEBACKLOG_PORTS`, only when annotated (normalised: `80,8080`).
    pub ports: Option<String>,
    /// The containers to inject.
    pub containers: Containers,
    /// The metrics sidecar's port (`forcebacklog/metrics`), when annotated.
    pub metrics: Option<u16>,
    /// `forcebacklog/method` (the shim when absent).
    pub method: Method,
}

/// Whether and how a pod is targeted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targeting {
    /// No annotation asks for the shim and no opt-in applies.
    NotTargeted,
    /// `forcebacklog/inject: "false"` (wins over every opt-in).
    OptedOut,
    /// The pod gets the shim with these settings.
    Targeted(Settings),
}

/// An annotation value that breaks the contract. The message names the key,
/// the value and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// `forcebacklog/value` is not a decimal integer in 1..=65535.
    #[error("forcebacklog/value: {0:?} is not a backlog: expected a decimal integer in 1..=65535")]
    Backlog(String),
    /// `forcebacklog/inject` is none of the known switches.
    #[error(
        "forcebacklog/inject: {0:?} is not an inject switch: expected \"true\", \"enabled\", \"false\" or \"disabled\""
    )]
    Inject(String),
    /// `forcebacklog/mode` is neither `raise` nor `set`.
    #[error("forcebacklog/mode: {0:?} is not a mode: expected \"raise\" or \"set\"")]
    Mode(String),
    /// `forcebacklog/ports` is not a comma list of ports.
    #[error(
        "forcebacklog/ports: {value:?} is not a port list ({bad:?} is not a port): expected a comma-separated list of ports in 1..=65535"
    )]
    Ports {
        /// The annotation value.
        value: String,
        /// The first element that is not a port.
        bad: String,
    },
    /// `forcebacklog/method` is neither `shim` nor `supervise`.
    #[error("forcebacklog/method: {0:?} is not a method: expected \"shim\" or \"supervise\"")]
    Method(String),
    /// `forcebacklog/ports` with `forcebacklog/method: supervise`: the
    /// supervisor does not read a socket's address, so it cannot choose by port.
    #[error(
        "forcebacklog/ports: {0:?} cannot be used with forcebacklog/method: \"supervise\" (the supervisor changes every listener): expected no forcebacklog/ports, or forcebacklog/method: \"shim\""
    )]
    PortsWithSupervise(String),
    /// `forcebacklog/metrics` is not a port.
    #[error("forcebacklog/metrics: {0:?} is not a port: expected a decimal integer in 1..=65535")]
    Metrics(String),
    /// `forcebacklog/containers` is empty or has an empty element.
    #[error(
        "forcebacklog/containers: {0:?} is not a container list: expected a comma-separated list of container names"
    )]
    ContainerList(String),
    /// `forcebacklog/containers` names containers the pod does not have.
    #[error(
        "forcebacklog/containers: {value:?} names {unknown} which {verb} not an app container or native sidecar of this pod: expected names among [{known}]",
        unknown = quoted_list(.unknown),
        verb = if .unknown.len() == 1 { "is" } else { "are" },
        known = .known.join(", ")
    )]
    UnknownContainers {
        /// The annotation value.
        value: String,
        /// The names that match no container.
        unknown: Vec<String>,
        /// The names that may be used.
        known: Vec<String>,
    },
    /// An annotation value that is not a string (an unquoted YAML number…).
    #[error("{key}: {found} is not a string: annotation values must be quoted strings")]
    NotAString {
        /// The annotation key.
        key: &'static str,
        /// What was found instead.
        found: String,
    },
}

fn quoted_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl AnnotationError {
    /// The annotation key the error is about.
    pub fn key(&self) -> &'static str {
        match self {
            AnnotationError::Backlog(_) => VALUE,
            AnnotationError::Inject(_) => INJECT,
            AnnotationError::Mode(_) => MODE,
            AnnotationError::Ports { .. } | AnnotationError::PortsWithSupervise(_) => PORTS,
            AnnotationError::Method(_) => METHOD,
            AnnotationError::Metrics(_) => METRICS,
            AnnotationError::ContainerList(_) | AnnotationError::UnknownContainers { .. } => {
                CONTAINERS
            }
            AnnotationError::NotAString { key, .. } => key,
        }
    }
}

/// Parses a backlog: a decimal integer in 1..=65535 (the shim's own rule).
pub fn parse_backlog(s: &str) -> Result<u16, AnnotationError> {
    parse_u16_nonzero(s).ok_or_else(|| AnnotationError::Backlog(clip(s)))
}

fn parse_u16_nonzero(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|&n| n != 0)
}

/// The inject switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Switch {
    On,
    Off,
}

fn parse_switch(s: &str) -> Result<Switch, AnnotationError> {
    match s {
        "true" | "enabled" => Ok(Switch::On),
        "false" | "disabled" => Ok(Switch::Off),
        other => Err(AnnotationError::Inject(clip(other))),
    }
}

fn parse_method(s: &str) -> Result<Method, AnnotationError> {
    Method::parse(s).ok_or_else(|| AnnotationError::Method(clip(s)))
}

fn parse_mode(s: &str) -> Result<Mode, AnnotationError> {
    Mode::parse(s).ok_or_else(|| AnnotationError::Mode(clip(s)))
}

/// Normalises a port list to the form the shim reads (`FORCEBACKLOG_PORTS`):
/// ` 80, 8080` becomes `80,8080`. Items are decimal ports in 1..=65535,
/// separated by commas, with optional spaces around them; no empty items.
/// The rule for `forcebacklog/ports` and for `forcebacklog run --ports`.
/// The error is the first item that is not a port (trimmed).
pub fn normalise_ports(s: &str) -> Result<String, &str> {
    let mut out = String::with_capacity(s.len());
    for item in s.split(',') {
        let item = item.trim();
        let port = parse_u16_nonzero(item).ok_or(item)?;
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&port.to_string());
    }
    Ok(out)
}

fn parse_ports(s: &str) -> Result<String, AnnotationError> {
    normalise_ports(s).map_err(|bad| AnnotationError::Ports {
        value: clip(s),
        bad: clip(bad),
    })
}

fn parse_containers(s: &str) -> Result<Vec<String>, AnnotationError> {
    let mut names: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for item in s.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(AnnotationError::ContainerList(clip(s)));
        }
        if seen.insert(item) {
            names.push(item.to_owned());
        }
    }
    Ok(names)
}

/// Checks the syntax of every annotation a user writes, whether or not the
/// pod is targeted (`/validate`). Container names are checked against the
/// pod by [`crate::plan`].
pub fn check(a: &Annotations<'_>) -> Result<(), AnnotationError> {
    if let Some(raw) = &a.inject {
        parse_switch(raw.as_str(INJECT)?)?;
    }
    settings(a, 1).map(|_| ())
}

/// Decides whether the pod is targeted, and with which settings. An
/// invalid value is an error only when the pod is targeted (by
/// `forcebacklog/value`, `forcebacklog/inject` other than an opt-out, or
/// the implicit opt-in).
pub fn targeting(a: &Annotations<'_>, defaults: Defaults) -> Result<Targeting, AnnotationError> {
    let switch = match &a.inject {
        None => None,
        Some(raw) => Some(parse_switch(raw.as_str(INJECT)?)?),
    };
    if switch == Some(Switch::Off) {
        return Ok(Targeting::OptedOut);
    }
    let targeted = defaults.implicit || switch == Some(Switch::On) || a.value.is_some();
    if !targeted {
        return Ok(Targeting::NotTargeted);
    }
    settings(a, defaults.backlog).map(Targeting::Targeted)
}

fn settings(a: &Annotations<'_>, default_backlog: u16) -> Result<Settings, AnnotationError> {
    let backlog = match &a.value {
        None => default_backlog,
        Some(raw) => parse_backlog(raw.as_str(VALUE)?)?,
    };
    let mode = match &a.mode {
        None => None,
        Some(raw) => Some(parse_mode(raw.as_str(MODE)?)?),
    };
    let ports = match &a.ports {
        None => None,
        Some(raw) => Some(parse_ports(raw.as_str(PORTS)?)?),
    };
    let metrics = match &a.metrics {
        None => None,
        Some(raw) => Some(parse_metrics_port(raw.as_str(METRICS)?)?),
    };
    let containers = match &a.containers {
        None => Containers::AppContainers,
        Some(raw) => Containers::Named(parse_containers(raw.as_str(CONTAINERS)?)?),
    };
    let method = match &a.method {
        None => Method::Shim,
        Some(raw) => parse_method(raw.as_str(METHOD)?)?,
    };
    if let (Method::Supervise, Some(raw)) = (method, &a.ports) {
        return Err(AnnotationError::PortsWithSupervise(clip(
            raw.as_str(PORTS)?,
        )));
    }
    Ok(Settings {
        backlog,
        mode,
        ports,
        containers,
        metrics,
        method,
    })
}

/// Parses the metrics sidecar's port: a decimal integer in 1..=65535.
fn parse_metrics_port(s: &str) -> Result<u16, AnnotationError> {
    parse_u16_nonzero(s).ok_or_else(|| AnnotationError::Metrics(clip(s)))
}

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for RawVisitor<'a> {
            type Value = Raw<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an annotation value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Raw::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Raw::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Raw::Str(Cow::Owned(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Raw::NotString(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Raw::NotString(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Raw::NotString(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Raw::NotString(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Raw::NotString("null".to_owned()))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Raw::NotString("null".to_owned()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Raw::NotString("a list".to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Raw::NotString("a map".to_owned()))
            }
        }
        deserializer.deserialize_any(RawVisitor(std::marker::PhantomData))
    }
}

/// A string borrowed from the input when it needs no decoding (serde's
/// `borrow` reaches a `Cow<str>` field, but not a key, nor a string
/// inside `Option` or `Vec`).
#[derive(serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct Borrowed<'a>(#[serde(borrow)] pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Annotations<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for MapVisitor<'a> {
            type Value = Annotations<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of annotations")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Annotations::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Annotations::default();
                while let Some(Borrowed(key)) = map.next_key::<Borrowed<'de>>()? {
                    if key.starts_with(PREFIX) {
                        let value = map.next_value::<Raw<'a>>()?;
                        out.insert(&key, value);
                    } else if key == MIRROR {
                        map.next_value::<IgnoredAny>()?;
                        out.mirror = true;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(out)
            }
        }
        deserializer.deserialize_any(MapVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
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
        let s = settings_of(
            targeting(&ann(&[(VALUE, "9"), (PORTS, " 80, 8080 ,65535")]), NONE).unwrap(),
        );
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
        let s = settings_of(
            targeting(&ann(&[(VALUE, "9"), (CONTAINERS, "web, api,web")]), NONE).unwrap(),
        );
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
        let a: Annotations<'_> =
            serde_json::from_str(r#"{"forcebacklog/value":"2\u0033"}"#).unwrap();
        assert_eq!(a.value, Some(Raw::Str(Cow::Owned("23".into()))));
        // null annotations map.
        let a: Annotations<'_> = serde_json::from_str("null").unwrap();
        assert_eq!(a, Annotations::default());
    }
}
