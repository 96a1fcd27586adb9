//! `/validate`: the pod template of a Pod or workload is judged by its
//! `forcebacklog/*` annotations, the way the mutation core would judge the
//! pods made from it.
//!
//! Pods and workloads are read the same way, in one pass: [`TemplateAt`]
//! walks the object to the template's JSON Pointer
//! ([`plan::pod_template_pointer`]), notes whether the object has
//! `metadata.ownerReferences`, reads the template as a [`PodView`] and
//! steps over everything else.

use super::{Answer, GroupKind, Outcome, Request, ReviewError, bad_object, has_sub_resource};
use crate::annotations::{self, Annotations, Defaults};
use crate::config::InjectConfig;
use crate::plan::{self, Owners, PodView, SkipReason, Verdict};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Answers `/validate`.
pub(super) fn validate(
    request: &Request<'_, &RawValue>,
    config: &InjectConfig,
) -> Result<Answer, ReviewError> {
    let Some((pointer, object)) = judged(request) else {
        return Ok(Answer::allow(Outcome::Allowed));
    };
    let workload =
        Workload::read(object.get(), pointer).map_err(|e| bad_object(&request.kind, e))?;
    if workload.owned {
        // A controller made it; its owner's template was judged.
        return Ok(Answer::allow(Outcome::Allowed));
    }
    let empty = Annotations::default();
    let annotations = workload.template.annotations().unwrap_or(&empty);
    let warnings = match judge(&workload.template, annotations, &request.kind, config) {
        Judgement::Fine(warnings) => warnings,
        Judgement::Invalid(message, mut warnings)
            if kept_from_old(request, pointer, annotations) =>
        {
            warnings.push(no_shim_warning(&request.kind, &message));
            warnings
        }
        Judgement::Invalid(message, warnings) => {
            return Ok(Answer {
                outcome: Outcome::Denied,
                denial: Some(message),
                patch: None,
                warnings,
            });
        }
    };
    Ok(Answer {
        warnings,
        ..Answer::allow(Outcome::Allowed)
    })
}

/// The template's pointer and the object, when the request is one
/// `/validate` judges: CREATE or UPDATE (not of a subresource) of a kind
/// with a pod template, with an object.
fn judged<'r>(request: &'r Request<'_, &'r RawValue>) -> Option<(&'static str, &'r RawValue)> {
    let operation = request.operation.as_ref();
    if !matches!(operation, "CREATE" | "UPDATE") || has_sub_resource(request) {
        return None;
    }
    let pointer = plan::pod_template_pointer(&request.kind.group, &request.kind.kind)?;
    Some((pointer, request.object?))
}

/// What the annotations of a template come to.
enum Judgement {
    /// Valid (or asking for nothing): the answer's warnings.
    Fine(Vec<String>),
    /// Invalid: why, and the warnings so far.
    Invalid(String, Vec<String>),
}

/// Judges a template's annotations: when they ask for something, they
/// must be valid, and the plan for its pods must not be skipped as invalid.
fn judge(
    template: &PodView<'_>,
    annotations: &Annotations<'_>,
    kind: &GroupKind<'_>,
    config: &InjectConfig,
) -> Judgement {
    let mut warnings: Vec<String> = annotations.unknown_key_warnings().collect();
    if !annotations.any_user_key() {
        return Judgement::Fine(warnings);
    }
    if let Err(err) = annotations::check(annotations) {
        return Judgement::Invalid(err.to_string(), warnings);
    }
    let defaults = Defaults {
        backlog: config.default_backlog,
        implicit: true,
    };
    let planned = plan::plan(template, defaults, config);
    match planned.verdict {
        Verdict::Skip(SkipReason::Invalid(err)) => Judgement::Invalid(err.to_string(), warnings),
        Verdict::Skip(reason) => {
            warnings.push(no_shim_warning(kind, &reason.to_string()));
            Judgement::Fine(warnings)
        }
        // The plan's warnings (the unknown keys, then the sysctl or a
        // BACKLOG kept) are about the pods to come.
        Verdict::Inject => Judgement::Fine(planned.warnings),
        Verdict::NotTargeted | Verdict::OptedOut | Verdict::AlreadyInjected => {
            Judgement::Fine(warnings)
        }
    }
}

fn no_shim_warning(kind: &GroupKind<'_>, why: &str) -> String {
    format!(
        "forcebacklog: pods of this {} will not get the shim: {why}",
        kind.kind
    )
}

/// True for an UPDATE whose old object's template carries the same
/// `forcebacklog/*` annotations: the update does not touch them, so it is
/// not judged (a controller's work never stalls because of us).
fn kept_from_old(request: &Request<'_, &RawValue>, pointer: &str, new: &Annotations<'_>) -> bool {
    if request.operation != "UPDATE" {
        return false;
    }
    let Some(old) = request.old_object else {
        return false;
    };
    let Ok(old) = Workload::read(old.get(), pointer) else {
        return false;
    };
    let empty = Annotations::default();
    old.template.annotations().unwrap_or(&empty).user_values() == new.user_values()
}

/// A Pod or workload as `/validate` reads it.
#[derive(Debug, Default)]
struct Workload<'a> {
    /// `metadata.ownerReferences` is a non-empty list.
    owned: bool,
    /// The pod template (a Pod is its own); empty when there is none.
    template: PodView<'a>,
}

impl<'a> Workload<'a> {
    /// Reads the object `text` with its pod template at `pointer`.
    fn read(text: &'a str, pointer: &str) -> Result<Self, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let workload = TemplateAt { pointer, top: true }.deserialize(&mut de)?;
        de.end()?;
        Ok(workload)
    }
}

/// The pod template at `pointer` inside the value being read.
struct TemplateAt<'p> {
    /// What is left of the JSON Pointer (`""`: the value is the template).
    pointer: &'p str,
    /// The value is the object itself, whose `metadata` tells its owners.
    top: bool,
}

impl<'de> DeserializeSeed<'de> for TemplateAt<'_> {
    type Value = Workload<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Workload<'de>, D::Error> {
        if self.pointer.is_empty() {
            // `null` is no template.
            let template = Option::<PodView<'de>>::deserialize(d)?.unwrap_or_default();
            let owned = self.top && template.has_owner();
            return Ok(Workload { owned, template });
        }
        d.deserialize_any(self)
    }
}

/// Anything but a map has no members: what is looked for is not there
/// (as with a JSON Pointer into a `serde_json::Value`).
macro_rules! nothing_but_maps {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Default::default())
        }
    };
}

impl<'de> Visitor<'de> for TemplateAt<'_> {
    type Value = Workload<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Workload<'de>, A::Error> {
        let rest = self.pointer.strip_prefix('/').unwrap_or(self.pointer);
        let (segment, rest) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        let mut found = Workload::default();
        let mut owned = false;
        // A repeated key: the last one counts, as in a `serde_json::Value`.
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == segment {
                let inner = TemplateAt {
                    pointer: rest,
                    top: false,
                };
                found = map.next_value_seed(inner)?;
            } else if self.top && key == "metadata" {
                owned = map.next_value::<Owned>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Workload {
            owned,
            template: found.template,
        })
    }

    nothing_but_maps!();
}

/// `metadata` read for its `ownerReferences` only ([`Owners`]).
#[derive(Default)]
struct Owned(bool);

impl<'de> Deserialize<'de> for Owned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OwnedVisitor)
    }
}

struct OwnedVisitor;

impl<'de> Visitor<'de> for OwnedVisitor {
    type Value = Owned;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Owned, A::Error> {
        let mut owned = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "ownerReferences" {
                owned = map.next_value::<Owners>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Owned(owned))
    }

    nothing_but_maps!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// `Workload::read` against what a `serde_json::Value` and a JSON
    /// Pointer give.
    fn agrees(object: Value, pointer: &str) {
        let text = object.to_string();
        let read = Workload::read(&text, pointer).expect("read");
        let owned = object
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|r| !r.is_empty());
        let owned = if pointer.is_empty() {
            PodView::deserialize(&object).expect("pod").has_owner()
        } else {
            owned
        };
        assert_eq!(read.owned, owned, "{text}");
        let template = match object.pointer(pointer) {
            None | Some(Value::Null) => PodView::default(),
            Some(t) => PodView::deserialize(t).expect("template"),
        };
        assert_eq!(
            format!("{:?}", read.template),
            format!("{template:?}"),
            "{text}"
        );
    }

    #[test]
    fn templates_are_found_as_a_json_pointer_finds_them() {
        let template = json!({"metadata": {"annotations": {"forcebacklog/value": "5"}},
                              "spec": {"containers": [{"name": "a"}]}});
        let owners = json!([{"kind": "X", "name": "x"}]);
        for (object, pointer) in [
            (json!({"spec": {"template": template}}), "/spec/template"),
            (
                json!({"metadata": {"ownerReferences": owners}, "spec": {"template": template}}),
                "/spec/template",
            ),
            (
                json!({"metadata": {"ownerReferences": "x"}, "spec": {"template": null}}),
                "/spec/template",
            ),
            (json!({"metadata": [], "spec": 5}), "/spec/template"),
            (
                json!({"spec": {"template": [1]}}),
                "/spec/jobTemplate/spec/template",
            ),
            (
                json!({"spec": {"jobTemplate": {"spec": {"template": template}}}}),
                "/spec/jobTemplate/spec/template",
            ),
            (json!({"template": template}), "/template"),
            (template.clone(), ""),
            (json!({"metadata": {"ownerReferences": owners}}), ""),
        ] {
            agrees(object, pointer);
        }
    }

    #[test]
    fn the_last_of_a_repeated_key_counts() {
        let text = r#"{"spec":{"template":{"metadata":{"annotations":{"forcebacklog/value":"5"}}}},"spec":{}}"#;
        let read = Workload::read(text, "/spec/template").expect("read");
        assert!(read.template.annotations().is_none());
    }

    #[test]
    fn a_template_that_is_not_a_pod_is_an_error() {
        let text = r#"{"spec":{"template":{"spec":{"containers":5}}}}"#;
        let err = Workload::read(text, "/spec/template").expect_err("not a pod");
        assert!(
            err.to_string().starts_with("invalid type: integer `5`"),
            "{err}"
        );
    }
}
