//! A targeted pod's [`PodView`] read on the scanner directly. The pod,
//! its spec, its containers and their `env`, `volumeMounts` and
//! `resources` (most of what a pod's view holds) are matched key by key
//! on their bytes, without serde's layers (`Option`, `Vec`, `MapAccess`, the
//! derived field visitors); the smaller views (`metadata`, `volumes`,
//! `ports`, `command`, …) and the strings are read through the
//! scanner's serde `Deserializer` ([`super::de`]).
//!
//! It reads exactly what the views' own `Deserialize` impls read, field
//! names included. Anything those would refuse (a duplicate key, an
//! array where an object must be, `null` for a name, …) is
//! [`Unexpected`], and the caller reads the body again with serde_json,
//! which gives the exact answer or error.

use super::{Scanner, Unexpected, once};
use crate::annotations::Borrowed;
use crate::plan::{
    ContainerView, EnvView, MetaView, MountView, PodView, QuantitiesView, ResourcesView, SpecView,
};
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::borrow::Cow;

impl<'a> Scanner<'a> {
    /// Calls `element` for each element of the array at the current
    /// position; `element` must consume it.
    pub(crate) fn array(
        &mut self,
        mut element: impl FnMut(&mut Self) -> Result<(), Unexpected>,
    ) -> Result<(), Unexpected> {
        self.expect(b'[')?;
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            element(self)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Unexpected),
            }
        }
    }
}

/// The fields of one object already read: serde's derive refuses a
/// field given twice.
#[derive(Default)]
struct Seen(u32);

impl Seen {
    /// Field number `field`, read by `read` the first time it is seen.
    fn field<'a, T>(
        &mut self,
        field: u32,
        s: &mut Scanner<'a>,
        read: impl FnOnce(&mut Scanner<'a>) -> Result<T, Unexpected>,
    ) -> Result<T, Unexpected> {
        let bit = 1 << field;
        if self.0 & bit != 0 {
            return Err(Unexpected);
        }
        self.0 |= bit;
        read(s)
    }
}

/// `null` as `None`, anything else read by `read`.
fn optional<'a, T>(
    s: &mut Scanner<'a>,
    read: impl FnOnce(&mut Scanner<'a>) -> Result<T, Unexpected>,
) -> Result<Option<T>, Unexpected> {
    if s.null() {
        Ok(None)
    } else {
        read(s).map(Some)
    }
}

/// An array, each element read by `read`.
fn list<'a, T>(
    s: &mut Scanner<'a>,
    mut read: impl FnMut(&mut Scanner<'a>) -> Result<T, Unexpected>,
) -> Result<Vec<T>, Unexpected> {
    let mut items = Vec::new();
    s.array(|s| {
        items.push(read(s)?);
        Ok(())
    })?;
    Ok(items)
}

/// A value read by its own `Deserialize` impl, through the scanner.
fn serde<'a, T: Deserialize<'a>>(s: &mut Scanner<'a>) -> Result<T, Unexpected> {
    T::deserialize(s)
}

/// A string: borrowed, or decoded when it has escapes.
fn text<'a>(s: &mut Scanner<'a>) -> Result<Cow<'a, str>, Unexpected> {
    Borrowed::deserialize(s).map(|b| b.0)
}

/// Any value, not inspected.
fn ignored(s: &mut Scanner<'_>) -> Result<IgnoredAny, Unexpected> {
    s.value().map(|_| IgnoredAny)
}

/// The pod object at the current position (whose text was checked).
pub(crate) fn pod_view<'a>(s: &mut Scanner<'a>) -> Result<PodView<'a>, Unexpected> {
    let (mut metadata, mut spec) = (None, None);
    s.object(|key, s| match key {
        b"metadata" => once(&mut metadata, serde::<Option<MetaView<'a>>>(s)?),
        b"spec" => once(&mut spec, spec_view(s)?),
        _ => s.value().map(drop),
    })?;
    Ok(PodView {
        metadata: metadata.flatten(),
        spec: spec.flatten(),
    })
}

/// `containers` or `initContainers`.
fn containers<'a>(s: &mut Scanner<'a>) -> Result<Option<Vec<ContainerView<'a>>>, Unexpected> {
    optional(s, |s| list(s, container_view))
}

/// A pod's `spec` (`null` as `None`), at the current position (whose
/// text was checked).
pub(crate) fn spec_view<'a>(s: &mut Scanner<'a>) -> Result<Option<SpecView<'a>>, Unexpected> {
    optional(s, spec)
}

fn spec<'a>(s: &mut Scanner<'a>) -> Result<SpecView<'a>, Unexpected> {
    let (mut v, mut seen) = (SpecView::default(), Seen::default());
    s.object(|key, s| {
        match key {
            b"containers" => v.containers = seen.field(0, s, containers)?,
            b"initContainers" => v.init_containers = seen.field(1, s, containers)?,
            b"volumes" => v.volumes = seen.field(2, s, serde)?,
            b"os" => v.os = seen.field(3, s, serde)?,
            b"nodeSelector" => v.node_selector = seen.field(4, s, serde)?,
            b"securityContext" => v.security_context = seen.field(5, s, serde)?,
            b"affinity" => v.affinity = seen.field(6, s, serde)?,
            b"imagePullSecrets" => v.image_pull_secrets = seen.field(7, s, serde)?,
            b"resources" => v.resources = seen.field(8, s, |s| optional(s, resources_view))?,
            _ => drop(s.value()?),
        }
        Ok(())
    })?;
    Ok(v)
}

fn container_view<'a>(s: &mut Scanner<'a>) -> Result<ContainerView<'a>, Unexpected> {
    let (mut c, mut seen) = (ContainerView::default(), Seen::default());
    s.object(|key, s| {
        match key {
            b"name" => c.name = seen.field(0, s, text)?,
            b"env" => c.env = seen.field(1, s, |s| optional(s, |s| list(s, env_view)))?,
            b"envFrom" => c.env_from = seen.field(2, s, |s| optional(s, |s| list(s, ignored)))?,
            b"volumeMounts" => {
                c.volume_mounts = seen.field(3, s, |s| optional(s, |s| list(s, mount_view)))?;
            }
            b"restartPolicy" => c.restart_policy = seen.field(4, s, |s| optional(s, text))?,
            b"command" => c.command = seen.field(5, s, serde)?,
            b"resources" => c.resources = seen.field(6, s, |s| optional(s, resources_view))?,
            b"ports" => c.ports = seen.field(7, s, serde)?,
            _ => drop(s.value()?),
        }
        Ok(())
    })?;
    Ok(c)
}

fn env_view<'a>(s: &mut Scanner<'a>) -> Result<EnvView<'a>, Unexpected> {
    let (mut e, mut seen) = (EnvView::default(), Seen::default());
    s.object(|key, s| {
        match key {
            b"name" => e.name = seen.field(0, s, text)?,
            b"value" => e.value = seen.field(1, s, |s| optional(s, text))?,
            b"valueFrom" => e.value_from = seen.field(2, s, |s| optional(s, ignored))?,
            _ => drop(s.value()?),
        }
        Ok(())
    })?;
    Ok(e)
}

fn mount_view<'a>(s: &mut Scanner<'a>) -> Result<MountView<'a>, Unexpected> {
    let (mut m, mut seen) = (MountView::default(), Seen::default());
    s.object(|key, s| {
        match key {
            b"name" => m.name = seen.field(0, s, text)?,
            b"mountPath" => m.mount_path = seen.field(1, s, text)?,
            b"readOnly" => m.read_only = seen.field(2, s, serde)?,
            _ => drop(s.value()?),
        }
        Ok(())
    })?;
    Ok(m)
}

fn resources_view<'a>(s: &mut Scanner<'a>) -> Result<ResourcesView<'a>, Unexpected> {
    let (mut r, mut seen) = (ResourcesView::default(), Seen::default());
    s.object(|key, s| {
        match key {
            b"requests" => r.requests = seen.field(0, s, |s| optional(s, quantities_view))?,
            b"limits" => r.limits = seen.field(1, s, |s| optional(s, quantities_view))?,
            _ => drop(s.value()?),
        }
        Ok(())
    })?;
    Ok(r)
}

fn quantities_view<'a>(s: &mut Scanner<'a>) -> Result<QuantitiesView<'a>, Unexpected> {
    let (mut q, mut seen) = (QuantitiesView::default(), Seen::default());
    s.object(|key, s| {
        match key {
            b"cpu" => q.cpu = seen.field(0, s, serde)?,
            b"memory" => q.memory = seen.field(1, s, serde)?,
            _ => drop(s.value()?),
        }
        Ok(())
    })?;
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the scanner reads, and what serde_json reads (as `Debug` text).
    fn both(text: &str) -> (Option<String>, Option<String>) {
        let mut s = Scanner::new(text.as_bytes());
        let scanned = s
            .check_text()
            .and_then(|()| pod_view(&mut s))
            .ok()
            .filter(|_| s.at_end());
        let parsed = serde_json::from_str::<PodView<'_>>(text).ok();
        (
            scanned.map(|p| format!("{p:?}")),
            parsed.map(|p| format!("{p:?}")),
        )
    }

    #[test]
    fn reads_what_the_views_read() {
        let fixture = include_str!("../../bench/webhook/fixtures/pod-create-3c.json");
        let review: serde_json::Value = serde_json::from_str(fixture).unwrap();
        let pod = review["request"]["object"].to_string();
        let full = r#"{"metadata":{"annotations":{"forcebacklog/value":"5"},"ownerReferences":[{}]},
            "spec":{"containers":[{"name":"a\u00e9","env":[{"name":"X","value":null},{"name":"Y","valueFrom":{"a":1}}],
            "envFrom":[{},{}],"volumeMounts":[{"name":"v","mountPath":"/m","readOnly":true}],
            "restartPolicy":"Always","command":["a",1],"resources":{"limits":{"cpu":"1","memory":null},"requests":null,"claims":[]},
            "ports":[{"containerPort":80}]}],
            "initContainers":null,"volumes":[{"name":"v","emptyDir":{}}],"os":{"name":"linux"},
            "nodeSelector":{"kubernetes.io/os":"linux"},"securityContext":{"sysctls":[{"name":"n","value":"1"}]},
            "affinity":{},"imagePullSecrets":[{"name":"s"}],"resources":null,"other":[1,2]}}"#;
        for text in [pod.as_str(), full, "{}", r#"{"spec":null,"metadata":null}"#] {
            let (scanned, parsed) = both(text);
            assert!(parsed.is_some(), "{text}");
            assert_eq!(scanned, parsed, "{text}");
        }
    }

    #[test]
    fn what_the_views_refuse_is_unexpected() {
        for text in [
            r#"{"spec":{"containers":[{"name":"a","name":"b"}]}}"#,
            r#"{"spec":{"containers":[["a"]]}}"#,
            r#"{"spec":{"containers":[{"name":null}]}}"#,
            r#"{"spec":{"containers":[{"env":[{"value":5}]}]}}"#,
            r#"{"spec":{"containers":[{"volumeMounts":[{"readOnly":"yes"}]}]}}"#,
            r#"{"spec":{"containers":{}}}"#,
            r#"{"spec":[],"metadata":{}}"#,
            r#"{"spec":{},"spec":{}}"#,
            r#"{"spec":{"volumes":[],"volumes":[]}}"#,
            r#"{"spec":{"containers":[{"resources":{"limits":[]}}]}}"#,
            r#"{"spec":{"containers":[{"resources":{"limits":{"cpu":"1","cpu":"2"}}}]}}"#,
            r#"{"spec":{"containers":[{"resources":{"requests":{},"requests":{}}}]}}"#,
        ] {
            let (scanned, parsed) = both(text);
            assert_eq!((scanned, parsed), (None, None), "{text}");
        }
    }
}
