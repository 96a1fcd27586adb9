//! AdmissionReview bytes in → AdmissionReview bytes out.
//!
//! Only the parts of the review the decision needs are read (`uid`, `kind`,
//! `operation`, `subResource`, and the object as a [`PodView`], which
//! borrows from the request bytes and skips every field it does not use).
//! On `/mutate` the scanner (`scan`) reads them in one pass: a
//! pod's metadata decides whether it is targeted, and only a targeted
//! pod's spec is read; anything the scanner does not follow is read again
//! with serde_json, which gives the same answer. The response is written
//! by hand, so what goes on the wire is exactly what the
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

mod validate;

use crate::annotations::{Annotations, Defaults};
use crate::patch::{self, Injector};
use crate::plan::{self, MetaView, Owners, Plan, PodView, SpecView, Verdict};
use crate::scan::{self, Scanner, Unexpected};
use serde::Deserialize;
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

impl Endpoint {
    /// Every endpoint, in the order of [`Endpoint::index`].
    pub const ALL: [Endpoint; 3] = [
        Endpoint::Mutate {
            namespace_opt_in: false,
        },
        Endpoint::Mutate {
            namespace_opt_in: true,
        },
        Endpoint::Validate,
    ];

    /// The HTTP path the API server posts to.
    pub const fn path(self) -> &'static str {
        match self {
            Endpoint::Mutate {
                namespace_opt_in: false,
            } => "/mutate",
            Endpoint::Mutate {
                namespace_opt_in: true,
            } => "/mutate/namespace",
            Endpoint::Validate => "/validate",
        }
    }

    /// The `endpoint` label of the metrics and logs.
    pub const fn label(self) -> &'static str {
        match self {
            Endpoint::Mutate {
                namespace_opt_in: false,
            } => "mutate",
            Endpoint::Mutate {
                namespace_opt_in: true,
            } => "mutate_namespace",
            Endpoint::Validate => "validate",
        }
    }

    /// The position in [`Endpoint::ALL`].
    pub const fn index(self) -> usize {
        match self {
            Endpoint::Mutate {
                namespace_opt_in: false,
            } => 0,
            Endpoint::Mutate {
                namespace_opt_in: true,
            } => 1,
            Endpoint::Validate => 2,
        }
    }
}

/// What the review decided, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The pod gets the shim.
    Injected,
    /// The pod was targeted but skipped; the label is a short, bounded
    /// reason class suitable as a metric label, from
    /// [`Verdict::skip_label`].
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

/// Why a request body could not be answered with an AdmissionReview: HTTP
/// 400, or 500 for the one that is ours ([`ReviewError::Write`]).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The body is not JSON, or not an AdmissionReview's shape.
    #[error("request body is not a valid AdmissionReview: {0}")]
    Malformed(#[source] serde_json::Error),
    /// A field every AdmissionReview request has is missing.
    #[error("request body is not a valid AdmissionReview: request.{0} is missing")]
    MissingField(&'static str),
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
    /// The answer could not be written (an internal error, not the request's fault).
    #[error("cannot write the AdmissionReview response: {0}")]
    Write(#[source] serde_json::Error),
    /// The object of a Pod or workload request does not have its kind's shape.
    #[error("request.object is not a valid {kind}: {source}")]
    BadObject {
        /// The kind of the request.
        kind: String,
        /// What is wrong with it.
        #[source]
        source: serde_json::Error,
    },
    /// A Pod CREATE without its object (`null` or absent).
    #[error("request.object is not a valid {kind}: missing")]
    MissingObject {
        /// The kind of the request.
        kind: String,
    },
}

impl ReviewError {
    /// True when the fault is ours, not the request's (HTTP 500, not 400).
    pub fn is_internal(&self) -> bool {
        matches!(self, ReviewError::Write(_))
    }
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
        Ok(Request {
            uid: r.uid.ok_or(ReviewError::MissingField("uid"))?,
            kind: r.kind.ok_or(ReviewError::MissingField("kind"))?,
            sub_resource: r.sub_resource,
            operation: r.operation.ok_or(ReviewError::MissingField("operation"))?,
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

/// The answer before it is serialised.
struct Answer {
    outcome: Outcome,
    denial: Option<String>,
    /// The JSON Patch array (base64-encoded into the answer).
    patch: Option<Vec<u8>>,
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
    injector: &Injector,
) -> Result<Reviewed, ReviewError> {
    if let Endpoint::Mutate { namespace_opt_in } = endpoint {
        // The hot path: the scanner finds the envelope's fields and the
        // pod's annotations, and steps over the rest; the pod is read
        // whole only when it is targeted. Anything the scanner does not
        // follow (escapes in keys, duplicates, nulls, malformed text) is
        // read again below with serde_json, to answer it or to say
        // precisely what is wrong.
        let defaults = Defaults {
            backlog: injector.config().default_backlog,
            implicit: namespace_opt_in,
        };
        if let Ok(review) = scan_review(body, defaults) {
            let request = Request::from(review)?;
            if let (true, Some(object)) = (request.is_pod_create(), request.object) {
                let answer = mutate_scanned(object, namespace_opt_in, injector)?;
                return respond(&request.uid, answer);
            }
        }
    }
    let review: ReviewIn<'_, &RawValue> =
        serde_json::from_slice(body).map_err(ReviewError::Malformed)?;
    let request = Request::from(review)?;
    let answer = match endpoint {
        Endpoint::Mutate { namespace_opt_in } => mutate(&request, namespace_opt_in, injector)?,
        Endpoint::Validate => validate::validate(&request, injector.config())?,
    };
    respond(&request.uid, answer)
}

/// The envelope as the scanner finds it. `defaults` decide whether a
/// Pod's spec is needed: the object of a targeted pod is read whole in
/// the same pass ([`PodScan`]), any other object only up to its
/// annotations and then stepped over.
fn scan_review(body: &[u8], defaults: Defaults) -> Result<ReviewIn<'_, Scanned<'_>>, Unexpected> {
    let mut s = Scanner::new(body);
    let (mut api_version, mut kind, mut request) = (None, None, None);
    s.object(|key, s| match key {
        b"apiVersion" => scan::once(&mut api_version, Cow::Borrowed(s.plain_string()?)),
        b"kind" => scan::once(&mut kind, Cow::Borrowed(s.plain_string()?)),
        b"request" => {
            let r = scan_request(s, defaults)?;
            scan::once(&mut request, r)
        }
        _ => s.value().map(drop),
    })?;
    if !s.at_end() {
        return Err(Unexpected);
    }
    Ok(ReviewIn {
        api_version,
        kind,
        request,
    })
}

fn scan_request<'a>(
    s: &mut Scanner<'a>,
    defaults: Defaults,
) -> Result<RequestIn<'a, Scanned<'a>>, Unexpected> {
    let mut r = RequestIn {
        uid: None,
        kind: None,
        sub_resource: None,
        operation: None,
        object: None,
        old_object: None,
    };
    let mut old_object = None;
    s.object(|key, s| match key {
        b"uid" => scan::once(&mut r.uid, Cow::Borrowed(s.plain_string()?)),
        b"kind" => {
            let kind = scan_group_kind(s)?;
            scan::once(&mut r.kind, kind)
        }
        b"subResource" => scan::once(&mut r.sub_resource, Cow::Borrowed(s.plain_string()?)),
        b"operation" => scan::once(&mut r.operation, Cow::Borrowed(s.plain_string()?)),
        // `null` is read by the fallback, which knows what it means.
        b"object" if s.null() => Err(Unexpected),
        b"object" => {
            let object = scan_object(s, defaults)?;
            scan::once(&mut r.object, object)
        }
        b"oldObject" => scan::once(&mut old_object, s.value()?),
        _ => s.value().map(drop),
    })?;
    Ok(r)
}

fn scan_group_kind<'a>(s: &mut Scanner<'a>) -> Result<GroupKind<'a>, Unexpected> {
    let (mut group, mut kind) = (None, None);
    s.object(|key, s| match key {
        b"group" => scan::once(&mut group, s.plain_string()?),
        b"kind" => scan::once(&mut kind, s.plain_string()?),
        _ => s.value().map(drop),
    })?;
    Ok(GroupKind {
        group: Cow::Borrowed(group.unwrap_or_default()),
        kind: Cow::Borrowed(kind.ok_or(Unexpected)?),
    })
}

/// An object as the scanner read it.
// Made once per review and moved once, into the answer: boxing either
// variant would cost an allocation per review.
#[allow(clippy::large_enum_variant)]
enum Scanned<'a> {
    /// Not targeted (by its annotations and the defaults): what the plan
    /// says without its spec.
    Untargeted(Plan),
    /// Targeted: read whole as a pod.
    Pod(PodView<'a>),
}

fn scan_object<'a>(s: &mut Scanner<'a>, defaults: Defaults) -> Result<Scanned<'a>, Unexpected> {
    let start = s.position();
    let mut pod = PodScan::default();
    s.object(|key, s| pod.member(key, s, defaults))?;
    match (pod.metadata, pod.untargeted) {
        (_, Some(plan)) => Ok(Scanned::Untargeted(plan)),
        // Targeted, and read whole in this pass.
        (Some(metadata), None) if !pod.spec_first => Ok(Scanned::Pod(PodView {
            metadata: Some(metadata),
            spec: pod.spec.flatten(),
        })),
        // No metadata: as an object without annotations.
        (None, None) if !pod.spec_first => {
            match plan::plan_untargeted(&Annotations::default(), defaults) {
                Some(plan) => Ok(Scanned::Untargeted(plan)),
                None => read_again(s, start),
            }
        }
        // The spec came before the metadata: read the object again, whole.
        _ => read_again(s, start),
    }
}

/// The pod object read again from `start`, whole.
fn read_again<'a>(s: &mut Scanner<'a>, start: usize) -> Result<Scanned<'a>, Unexpected> {
    s.rewind(start);
    s.check_text()?;
    scan::pod_view(s).map(Scanned::Pod)
}

/// A pod object as the scanner reads it, member by member: `metadata`
/// first decides whether the pod is targeted; a targeted pod's `spec`
/// that follows it (the API server's order) is read in the same pass.
#[derive(Default)]
struct PodScan<'a> {
    metadata: Option<MetaView<'a>>,
    /// Not targeted: the plan from the annotations alone.
    untargeted: Option<Plan>,
    spec: Option<Option<SpecView<'a>>>,
    /// A `spec` came before `metadata` (stepped over).
    spec_first: bool,
}

impl<'a> PodScan<'a> {
    fn member(
        &mut self,
        key: &[u8],
        s: &mut Scanner<'a>,
        defaults: Defaults,
    ) -> Result<(), Unexpected> {
        match key {
            b"metadata" => {
                let metadata = scan_metadata(s)?;
                let none = Annotations::default();
                let annotations = metadata.annotations.as_ref().unwrap_or(&none);
                self.untargeted = plan::plan_untargeted(annotations, defaults);
                if self.untargeted.is_none() {
                    // Every string from here on is a slice of checked text.
                    s.check_text()?;
                }
                scan::once(&mut self.metadata, metadata)
            }
            b"spec" if self.metadata.is_some() && self.untargeted.is_none() => {
                let spec = scan::spec_view(s)?;
                scan::once(&mut self.spec, spec)
            }
            b"spec" => {
                self.spec_first |= self.metadata.is_none();
                s.value().map(drop)
            }
            _ => s.value().map(drop),
        }
    }
}

/// `metadata` as [`MetaView`] reads it: the annotations and whether
/// ownerReferences names an owner; everything else stepped over.
fn scan_metadata<'a>(s: &mut Scanner<'a>) -> Result<MetaView<'a>, Unexpected> {
    let (mut annotations, mut owners) = (None, None);
    s.object(|key, s| match key {
        b"annotations" => {
            let read = Option::<Annotations<'a>>::deserialize(&mut *s)?;
            scan::once(&mut annotations, read)
        }
        b"ownerReferences" => {
            let read = Owners::deserialize(&mut *s)?;
            scan::once(&mut owners, read)
        }
        _ => s.value().map(drop),
    })?;
    Ok(MetaView {
        annotations: annotations.flatten(),
        owner_references: owners.unwrap_or_default(),
    })
}

/// `/mutate` for a Pod CREATE the scanner read.
fn mutate_scanned(
    object: Scanned<'_>,
    namespace_opt_in: bool,
    injector: &Injector,
) -> Result<Answer, ReviewError> {
    match object {
        Scanned::Untargeted(plan) => mutation_answer(patch::Mutation {
            verdict: plan.verdict,
            ops: Vec::new(),
            warnings: plan.warnings,
        }),
        Scanned::Pod(pod) => mutate_pod(&pod, namespace_opt_in, injector),
    }
}

/// Writes the AdmissionReview response. Written by hand: the strings that
/// can need escaping (uid, message, warnings) go through serde_json; the
/// rest, the base64 patch included, needs none and is copied as it is.
fn respond(uid: &str, answer: Answer) -> Result<Reviewed, ReviewError> {
    // Room for everything, so the buffer is not grown while writing.
    let capacity = 256
        + uid.len()
        + answer.patch.as_ref().map_or(0, |p| p.len().div_ceil(3) * 4)
        + answer.denial.as_ref().map_or(0, String::len)
        + answer.warnings.iter().map(|w| w.len() + 8).sum::<usize>();
    let mut body = Vec::with_capacity(capacity);
    body.extend_from_slice(br#"{"apiVersion":""#);
    body.extend_from_slice(API_VERSION.as_bytes());
    body.extend_from_slice(br#"","kind":""#);
    body.extend_from_slice(KIND.as_bytes());
    body.extend_from_slice(br#"","response":{"uid":"#);
    write_str(&mut body, uid)?;
    // `status` is always present: Kubernetes ignores it when `allowed` is
    // true, and clients with a required `status` field (kube-rs) can read
    // the response.
    match &answer.denial {
        None => body.extend_from_slice(br#","allowed":true,"status":{}"#),
        Some(message) => {
            body.extend_from_slice(
                br#","allowed":false,"status":{"status":"Failure","code":400,"reason":"BadRequest","message":"#,
            );
            write_str(&mut body, message)?;
            body.push(b'}');
        }
    }
    if let Some(patch) = &answer.patch {
        body.extend_from_slice(br#","patchType":"JSONPatch","patch":""#);
        base64_into(&mut body, patch);
        body.push(b'"');
    }
    if !answer.warnings.is_empty() {
        body.extend_from_slice(br#","warnings":["#);
        for (i, warning) in answer.warnings.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            write_str(&mut body, warning)?;
        }
        body.push(b']');
    }
    body.extend_from_slice(b"}}");
    Ok(Reviewed {
        body,
        outcome: answer.outcome,
    })
}

fn write_str(body: &mut Vec<u8>, s: &str) -> Result<(), ReviewError> {
    write_json_str(body, s).map_err(ReviewError::Write)
}

/// `s` as a JSON string, as serde_json writes it; copied as it is when
/// nothing in it needs escaping (no `"`, `\` or control character).
fn write_json_str(out: &mut Vec<u8>, s: &str) -> Result<(), serde_json::Error> {
    // Without an early exit, so the compiler checks many bytes at a time.
    if s.bytes().fold(false, |bad, b| {
        bad | (b < 0x20) | (b == b'"') | (b == b'\\')
    }) {
        return serde_json::to_writer(out, s);
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
    Ok(())
}

fn is_pod(kind: &GroupKind<'_>) -> bool {
    kind.group.is_empty() && kind.kind == "Pod"
}

fn bad_object(kind: &GroupKind<'_>, source: serde_json::Error) -> ReviewError {
    ReviewError::BadObject {
        kind: kind.kind.to_string(),
        source,
    }
}

fn mutate(
    request: &Request<'_, &RawValue>,
    namespace_opt_in: bool,
    injector: &Injector,
) -> Result<Answer, ReviewError> {
    if !request.is_pod_create() {
        return Ok(Answer::allow(Outcome::Untouched));
    }
    let object = request.object.ok_or_else(|| ReviewError::MissingObject {
        kind: request.kind.kind.to_string(),
    })?;
    let pod: PodView<'_> =
        serde_json::from_str(object.get()).map_err(|e| bad_object(&request.kind, e))?;
    mutate_pod(&pod, namespace_opt_in, injector)
}

fn mutate_pod(
    pod: &PodView<'_>,
    namespace_opt_in: bool,
    injector: &Injector,
) -> Result<Answer, ReviewError> {
    let defaults = Defaults {
        backlog: injector.config().default_backlog,
        implicit: namespace_opt_in,
    };
    mutation_answer(patch::mutate(pod, defaults, injector))
}

fn mutation_answer(mutation: patch::Mutation) -> Result<Answer, ReviewError> {
    let outcome = match (&mutation.verdict, mutation.verdict.skip_label()) {
        (Verdict::Inject, _) => Outcome::Injected,
        (_, Some(label)) => Outcome::Skipped(label),
        (_, None) => Outcome::Untouched,
    };
    let patch = if mutation.ops.is_empty() {
        None
    } else {
        Some(patch_json(&mutation.ops).map_err(ReviewError::Write)?)
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
        write_json_str(&mut json, op.op)?;
        json.extend_from_slice(PATH);
        write_json_str(&mut json, &op.path)?;
        json.extend_from_slice(VALUE);
        json.extend_from_slice(op.value.get().as_bytes());
        json.push(b'}');
    }
    json.push(b']');
    Ok(json)
}

/// `bytes` in base64 (standard alphabet, padded) appended to `out`, as
/// the API requires for `patch`; it needs no JSON escaping. `base64-simd`
/// picks its SIMD encoder (AVX2, SSSE3) at run time, a scalar one
/// elsewhere.
fn base64_into(out: &mut Vec<u8>, bytes: &[u8]) {
    base64_simd::STANDARD.encode_append(bytes, out);
}

fn has_sub_resource<O>(request: &Request<'_, O>) -> bool {
    request
        .sub_resource
        .as_deref()
        .is_some_and(|s| !s.is_empty())
}

#[cfg(test)]
mod tests;
