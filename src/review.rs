//! AdmissionReview bytes in → AdmissionReview bytes out.
//!
//! (Interface fixed; the implementation is filled in by the mutation-core work.)

use crate::config::InjectConfig;

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
    /// reason class suitable as a metric label (e.g. `invalid`, `windows`).
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
}

/// Answers one AdmissionReview.
pub fn handle(
    body: &[u8],
    endpoint: Endpoint,
    config: &InjectConfig,
) -> Result<Reviewed, ReviewError> {
    let _ = (body, endpoint, config);
    Err(ReviewError::Malformed("not implemented yet".to_owned()))
}
