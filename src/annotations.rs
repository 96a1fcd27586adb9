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
mod tests;
