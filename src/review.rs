//! AdmissionReview bytes in → AdmissionReview bytes out.
//!
//! Only the parts of the review the decision needs are read (`uid`, `kind`,
//! `operation`, `subResource`, and the object, first kept as raw JSON and
//! then read through [`PodView`], which borrows from the request bytes and
//! skips every field it does not use). The response is written with
//! serde_json directly, so what goes on the wire is exactly what the
//! Kubernetes API requires: `patch` is a base64 string of the JSON Patch
//! array, with `patchType: JSONPatch`, present only when there are
//! operations.
//!
//! - `/mutate` (and `/mutate/namespace`): Pod CREATE runs the mutation
//!   core ([`crate::patch::mutate`]); every other request is allowed untouched.
//! - `/validate`: CREATE/UPDATE of Pods without ownerReferences and of
//!   workloads with a pod template (Deployment, StatefulSet, DaemonSet,
//!   ReplicaSet, ReplicationController, Job, CronJob, PodTemplate) is denied
//!   when the template's `forcebacklog/*` annotations are invalid. Objects
//!   with ownerReferences, subresources (`status`, `scale`…), and an UPDATE
//!   that leaves an already invalid annotation as it was are allowed, so a
//!   controller's work never stalls because of us.

use crate::annotations::{self, Annotations, Defaults};
use crate::config::InjectConfig;
use crate::patch;
use crate::plan::{self, PodView, SkipReason, Verdict};
use base64::prelude::{BASE64_STANDARD, Engine as _};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Which webhook entry a review arrived through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /mutate`: Pod CREATE. `namespace_opt_in` is true when the
    /// apiserver called the entry whose namespaceSelector matches
    /// `forcebacklog/inject: enabled` (path `/mutate/namespace`).
    Mutate {
        /// The pod's namespace is labelled `forcebacklog/inject: enabled`.
        namespace_opt_in: bool,
    },
    /// `POST /validate`: workloads and Pods, CREATE/UPDATE.
    Validate,
}

/// What the review decided, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The pod gets the shim.
    Injected,
    /// The pod was targeted but skipped; the label is a short, bounded
    /// reason class suitable as a metric label: `invalid`, `opted_out`,
    /// `windows`, `ld_preload_value_from`, `collision`, `no_containers`.
    Skipped(&'static str),
    /// Not targeted (no annotation, no namespace opt-in, or already injected).
    Untouched,
    /// `/validate` allowed the object.
    Allowed,
    /// `/validate` denied the object.
    Denied,
}

/// A review answered: the response body to send and what was decided.
#[derive(Debug, Clone)]
pub struct Reviewed {
    /// The serialised `admission.k8s.io/v1` AdmissionReview response.
    pub body: Vec<u8>,
    /// The decision, for metrics.
    pub outcome: Outcome,
}

/// Why a request body could not be answered with an AdmissionReview (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The body is not JSON, or not an AdmissionReview's shape.
    #[error("request body is not a valid AdmissionReview: {0}")]
    Malformed(String),
    /// The body is an object, but not an `admission.k8s.io/v1` AdmissionReview.
    #[error(
        "expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got apiVersion {api_version:?} and kind {kind:?}"
    )]
    NotAdmissionReviewV1 {
        /// The `apiVersion` found (empty when missing).
        api_version: String,
        /// The `kind` found (empty when missing).
        kind: String,
    },
    /// The AdmissionReview carries no `request`.
    #[error("the AdmissionReview has no request")]
    NoRequest,
    /// The object of a Pod or workload request does not have its kind's shape.
    #[error("request.object is not a valid {kind}: {message}")]
    BadObject {
        /// The kind of the request.
        kind: String,
        /// What is wrong with it.
        message: String,
    },
}

const API_VERSION: &str = "admission.k8s.io/v1";
const KIND: &str = "AdmissionReview";

/// The envelope; `O` is how the object is read: as raw JSON, or for Pod
/// CREATE on `/mutate` directly as a [`PodView`] (one pass over the bytes).
#[derive(Deserialize)]
struct ReviewIn<'a, O> {
    #[serde(borrow, default, rename = "apiVersion")]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default = "none")]
    request: Option<RequestIn<'a, O>>,
}

/// The request's fields are optional here so that a wrong `apiVersion`
/// is reported as such; [`Request::from`] then requires them.
#[derive(Deserialize)]
struct RequestIn<'a, O> {
    #[serde(borrow, default)]
    uid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kind: Option<GroupKind<'a>>,
    #[serde(borrow, default, rename = "subResource")]
    sub_resource: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    operation: Option<Cow<'a, str>>,
    #[serde(default = "none")]
    object: Option<O>,
    #[serde(borrow, default, rename = "oldObject")]
    old_object: Option<&'a RawValue>,
}

fn none<O>() -> Option<O> {
    None
}

/// A request with its required fields.
struct Request<'a, O> {
    uid: Cow<'a, str>,
    kind: GroupKind<'a>,
    sub_resource: Option<Cow<'a, str>>,
    operation: Cow<'a, str>,
    object: Option<O>,
    old_object: Option<&'a RawValue>,
}

impl<'a, O> Request<'a, O> {
    /// Checks the envelope and the request's required fields.
    fn from(review: ReviewIn<'a, O>) -> Result<Self, ReviewError> {
        if review.api_version.as_deref() != Some(API_VERSION)
            || review.kind.as_deref() != Some(KIND)
        {
            return Err(ReviewError::NotAdmissionReviewV1 {
                api_version: review.api_version.unwrap_or_default().into_owned(),
                kind: review.kind.unwrap_or_default().into_owned(),
            });
        }
        let r = review.request.ok_or(ReviewError::NoRequest)?;
        let missing = |field: &str| ReviewError::Malformed(format!("request.{field} is missing"));
        Ok(Request {
            uid: r.uid.ok_or_else(|| missing("uid"))?,
            kind: r.kind.ok_or_else(|| missing("kind"))?,
            sub_resource: r.sub_resource,
            operation: r.operation.ok_or_else(|| missing("operation"))?,
            object: r.object,
            old_object: r.old_object,
        })
    }

    /// A Pod CREATE (not a subresource): what `/mutate` acts on.
    fn is_pod_create(&self) -> bool {
        is_pod(&self.kind) && self.operation == "CREATE" && !has_sub_resource(self)
    }
}

#[derive(Deserialize)]
struct GroupKind<'a> {
    #[serde(borrow, default)]
    group: Cow<'a, str>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
}

#[derive(Serialize)]
struct ReviewOut<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
struct ResponseOut<'a> {
    uid: &'a str,
    allowed: bool,
    /// Always present: Kubernetes ignores it when `allowed` is true, and
    /// clients with a required `status` field (kube-rs) can read the response.
    status: StatusOut<'a>,
    #[serde(rename = "patchType", skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    /// The base64 JSON Patch, as a JSON string (see [`base64_json_string`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
}

#[derive(Serialize, Default)]
struct StatusOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

/// The answer before it is serialised.
struct Answer {
    outcome: Outcome,
    denial: Option<String>,
    patch: Option<Box<RawValue>>,
    warnings: Vec<String>,
}

impl Answer {
    fn allow(outcome: Outcome) -> Self {
        Answer {
            outcome,
            denial: None,
            patch: None,
            warnings: Vec::new(),
        }
    }
}

/// Answers one AdmissionReview.
pub fn handle(
    body: &[u8],
    endpoint: Endpoint,
    config: &InjectConfig,
) -> Result<Reviewed, ReviewError> {
    if let Endpoint::Mutate { namespace_opt_in } = endpoint {
        // The hot path: the pod is read in the same pass as the envelope.
        // Anything this does not fit (another kind, a malformed object) is
        // read again below, to answer it or to say precisely what is wrong.
        // Valid UTF-8 (every review the API server sends) is checked once
        // here instead of string by string while parsing.
        let review = match std::str::from_utf8(body) {
            Ok(text) => serde_json::from_str::<ReviewIn<'_, PodView<'_>>>(text),
            Err(_) => serde_json::from_slice::<ReviewIn<'_, PodView<'_>>>(body),
        };
        if let Ok(review) = review {
            let request = Request::from(review)?;
            if let (true, Some(pod)) = (request.is_pod_create(), &request.object) {
                let answer = mutate_pod(pod, namespace_opt_in, config)?;
                return respond(&request.uid, answer);
            }
        }
    }
    let review: ReviewIn<'_, &RawValue> =
        serde_json::from_slice(body).map_err(|e| ReviewError::Malformed(e.to_string()))?;
    let request = Request::from(review)?;
    let answer = match endpoint {
        Endpoint::Mutate { namespace_opt_in } => mutate(&request, namespace_opt_in, config)?,
        Endpoint::Validate => validate(&request, config)?,
    };
    respond(&request.uid, answer)
}

fn respond(uid: &str, answer: Answer) -> Result<Reviewed, ReviewError> {
    // Room for everything, so the buffer is not grown while writing.
    let capacity = 256
        + uid.len()
        + answer.patch.as_ref().map_or(0, |p| p.get().len())
        + answer.denial.as_ref().map_or(0, String::len)
        + answer.warnings.iter().map(|w| w.len() + 8).sum::<usize>();
    let out = ReviewOut {
        api_version: API_VERSION,
        kind: KIND,
        response: ResponseOut {
            uid,
            allowed: answer.denial.is_none(),
            status: match &answer.denial {
                None => StatusOut::default(),
                Some(message) => StatusOut {
                    status: Some("Failure"),
                    code: Some(400),
                    reason: Some("BadRequest"),
                    message: Some(message),
                },
            },
            patch_type: answer.patch.as_ref().map(|_| "JSONPatch"),
            patch: answer.patch,
            warnings: &answer.warnings,
        },
    };
    let mut body = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut body, &out).map_err(|e| ReviewError::Malformed(e.to_string()))?;
    Ok(Reviewed {
        body,
        outcome: answer.outcome,
    })
}

fn is_pod(kind: &GroupKind<'_>) -> bool {
    kind.group.is_empty() && kind.kind == "Pod"
}

fn bad_object(kind: &GroupKind<'_>, message: impl ToString) -> ReviewError {
    ReviewError::BadObject {
        kind: kind.kind.to_string(),
        message: message.to_string(),
    }
}

fn mutate(
    request: &Request<'_, &RawValue>,
    namespace_opt_in: bool,
    config: &InjectConfig,
) -> Result<Answer, ReviewError> {
    if !request.is_pod_create() {
        return Ok(Answer::allow(Outcome::Untouched));
    }
    let object = request
        .object
        .ok_or_else(|| bad_object(&request.kind, "missing"))?;
    let pod: PodView<'_> =
        serde_json::from_str(object.get()).map_err(|e| bad_object(&request.kind, e))?;
    mutate_pod(&pod, namespace_opt_in, config)
}

fn mutate_pod(
    pod: &PodView<'_>,
    namespace_opt_in: bool,
    config: &InjectConfig,
) -> Result<Answer, ReviewError> {
    let defaults = Defaults {
        backlog: config.default_backlog,
        implicit: namespace_opt_in,
    };
    let mutation = patch::mutate(pod, defaults, config);
    let outcome = match &mutation.verdict {
        Verdict::Inject => Outcome::Injected,
        Verdict::NotTargeted | Verdict::AlreadyInjected => Outcome::Untouched,
        Verdict::OptedOut => Outcome::Skipped("opted_out"),
        Verdict::Skip(reason) => Outcome::Skipped(reason.label()),
    };
    let patch = if mutation.ops.is_empty() {
        None
    } else {
        let json = patch_json(&mutation.ops).map_err(|e| ReviewError::Malformed(e.to_string()))?;
        Some(base64_json_string(&json)?)
    };
    Ok(Answer {
        outcome,
        denial: None,
        patch,
        warnings: mutation.warnings,
    })
}

/// The JSON Patch array: the same text serde_json writes for `ops`, with
/// the values (already JSON text) copied as they are into a buffer sized
/// up front.
fn patch_json(ops: &[patch::Op]) -> Result<Vec<u8>, serde_json::Error> {
    const OP: &[u8] = br#"{"op":"#;
    const PATH: &[u8] = br#","path":"#;
    const VALUE: &[u8] = br#","value":"#;
    let capacity = 2 + ops
        .iter()
        .map(|op| {
            OP.len()
                + PATH.len()
                + VALUE.len()
                + 8
                + op.op.len()
                + op.path.len()
                + op.value.get().len()
        })
        .sum::<usize>();
    let mut json = Vec::with_capacity(capacity);
    json.push(b'[');
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        json.extend_from_slice(OP);
        serde_json::to_writer(&mut json, op.op)?;
        json.extend_from_slice(PATH);
        serde_json::to_writer(&mut json, &op.path)?;
        json.extend_from_slice(VALUE);
        json.extend_from_slice(op.value.get().as_bytes());
        json.push(b'}');
    }
    json.push(b']');
    Ok(json)
}

/// `bytes` in base64, as JSON text (a quoted string). The base64 alphabet
/// needs no escaping, so the response writes it as it is instead of
/// serde_json scanning every byte of it for characters to escape (the
/// largest single cost of serialising an injection's response).
fn base64_json_string(bytes: &[u8]) -> Result<Box<RawValue>, ReviewError> {
    let mut quoted = String::with_capacity(bytes.len().div_ceil(3) * 4 + 2);
    quoted.push('"');
    BASE64_STANDARD.encode_string(bytes, &mut quoted);
    quoted.push('"');
    RawValue::from_string(quoted).map_err(|e| ReviewError::Malformed(e.to_string()))
}

fn has_sub_resource<O>(request: &Request<'_, O>) -> bool {
    request
        .sub_resource
        .as_deref()
        .is_some_and(|s| !s.is_empty())
}

/// The user-written `forcebacklog/*` annotations, for comparing old and new objects.
fn user_keys<'x>(a: &'x Annotations<'_>) -> [Option<&'x annotations::Raw<'x>>; 5] {
    [
        a.value.as_ref(),
        a.inject.as_ref(),
        a.containers.as_ref(),
        a.mode.as_ref(),
        a.ports.as_ref(),
    ]
}

fn validate(
    request: &Request<'_, &RawValue>,
    config: &InjectConfig,
) -> Result<Answer, ReviewError> {
    let operation = request.operation.as_ref();
    if !matches!(operation, "CREATE" | "UPDATE") || has_sub_resource(request) {
        return Ok(Answer::allow(Outcome::Allowed));
    }
    let kind = &request.kind;
    let Some(pointer) = plan::pod_template_pointer(&kind.group, &kind.kind) else {
        return Ok(Answer::allow(Outcome::Allowed));
    };
    let Some(object) = request.object else {
        return Ok(Answer::allow(Outcome::Allowed));
    };
    // Pods (the common case) are read straight from the bytes; workloads,
    // rarer, through a Value to reach their template.
    let owned: serde_json::Value;
    let (owner, template): (bool, PodView<'_>) = if pointer.is_empty() {
        let pod: PodView<'_> =
            serde_json::from_str(object.get()).map_err(|e| bad_object(kind, e))?;
        (pod.has_owner(), pod)
    } else {
        owned = serde_json::from_str(object.get()).map_err(|e| bad_object(kind, e))?;
        let owner = owned
            .pointer("/metadata/ownerReferences")
            .and_then(|r| r.as_array())
            .is_some_and(|r| !r.is_empty());
        let template = match owned.pointer(pointer) {
            None | Some(serde_json::Value::Null) => PodView::default(),
            Some(t) => PodView::deserialize(t).map_err(|e| bad_object(kind, e))?,
        };
        (owner, template)
    };
    if owner {
        return Ok(Answer::allow(Outcome::Allowed));
    }
    let empty = Annotations::default();
    let annotations = template.annotations().unwrap_or(&empty);
    let mut warnings: Vec<String> = annotations.unknown_key_warnings().collect();
    if !annotations.any_user_key() {
        return Ok(Answer {
            warnings,
            ..Answer::allow(Outcome::Allowed)
        });
    }
    let defaults = Defaults {
        backlog: config.default_backlog,
        implicit: true,
    };
    let error = match annotations::check(annotations) {
        Err(err) => Some(err.to_string()),
        Ok(()) => {
            let planned = plan::plan(&template, defaults, config);
            match planned.verdict {
                Verdict::Skip(SkipReason::Invalid(err)) => Some(err.to_string()),
                Verdict::Skip(reason) => {
                    warnings.push(format!(
                        "forcebacklog: pods of this {} will not get the shim: {reason}",
                        kind.kind
                    ));
                    None
                }
                Verdict::Inject => {
                    // Warnings about the pods to come (sysctl, BACKLOG kept).
                    warnings = planned.warnings;
                    None
                }
                Verdict::NotTargeted | Verdict::OptedOut | Verdict::AlreadyInjected => None,
            }
        }
    };
    let Some(message) = error else {
        return Ok(Answer {
            warnings,
            ..Answer::allow(Outcome::Allowed)
        });
    };
    if operation == "UPDATE" && unchanged_in_old(request, pointer, annotations) {
        warnings.push(format!(
            "forcebacklog: pods of this {} will not get the shim: {message}",
            kind.kind
        ));
        return Ok(Answer {
            warnings,
            ..Answer::allow(Outcome::Allowed)
        });
    }
    Ok(Answer {
        outcome: Outcome::Denied,
        denial: Some(message),
        patch: None,
        warnings,
    })
}

/// True when the old object's template carries the same `forcebacklog/*`
/// annotations: the update does not touch them, so it is not judged.
fn unchanged_in_old(
    request: &Request<'_, &RawValue>,
    pointer: &str,
    new: &Annotations<'_>,
) -> bool {
    let Some(old) = request.old_object else {
        return false;
    };
    let Ok(old) = serde_json::from_str::<serde_json::Value>(old.get()) else {
        return false;
    };
    let Some(template) = old.pointer(pointer) else {
        return false;
    };
    let Ok(view) = PodView::deserialize(template) else {
        return false;
    };
    let empty = Annotations::default();
    user_keys(view.annotations().unwrap_or(&empty)) == user_keys(new)
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn annotated_pod_gets_a_base64_patch() {
        let body = review(
            pod_kind(),
            "CREATE",
            json!({"metadata": {"annotations": {"forcebacklog/value": "234"}},
                   "spec": {"containers": [{"name": "a"}]}}),
        );
        let r = handle(&body, MUTATE, &InjectConfig::default()).unwrap();
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
        let r = handle(&body, MUTATE, &InjectConfig::default()).unwrap();
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
            &InjectConfig::default(),
        )
        .unwrap();
        assert_eq!(r.outcome, Outcome::Injected);
    }

    #[test]
    fn mutate_ignores_other_kinds_operations_and_subresources() {
        let config = InjectConfig::default();
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
        let mut body: Value =
            serde_json::from_slice(&review(pod_kind(), "CREATE", annotated)).unwrap();
        body["request"]["subResource"] = json!("ephemeralcontainers");
        let r = handle(body.to_string().as_bytes(), MUTATE, &config).unwrap();
        assert_eq!(r.outcome, Outcome::Untouched);
    }

    #[test]
    fn objects_that_do_not_fit_the_pod_view_are_read_again() {
        let config = InjectConfig::default();
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
        let config = InjectConfig::default();
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
        let ops = patch::mutate(&view, defaults, &InjectConfig::default()).ops;
        assert!(ops.len() > 4, "{ops:?}");
        assert_eq!(patch_json(&ops).unwrap(), serde_json::to_vec(&ops).unwrap());
        assert_eq!(patch_json(&[]).unwrap(), b"[]");
    }

    #[test]
    fn bad_envelopes_are_errors() {
        let config = InjectConfig::default();
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
            json!({"spec": {"containers": "nope"}}),
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
        let config = InjectConfig::default();
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
        let config = InjectConfig::default();
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
        let config = InjectConfig::default();
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
        let config = InjectConfig::default();
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
        // Status updates are never judged.
        body["request"]["subResource"] = json!("status");
        let r = handle(body.to_string().as_bytes(), Endpoint::Validate, &config).unwrap();
        assert_eq!(r.outcome, Outcome::Allowed);
    }
}
