//! The whole webhook path for the core integration tests: a Pod in an
//! AdmissionReview → `review::handle` → the base64 JSON Patch applied with
//! the json-patch crate.

use base64::prelude::{BASE64_STANDARD, Engine as _};
use forcebacklog::patch::Injector;
use forcebacklog::review::{Endpoint, Outcome, handle};
use serde_json::{Value, json};

/// What one review did to a pod.
pub struct Reviewed {
    /// What the core decided.
    pub outcome: Outcome,
    /// The pod with the response's patch applied.
    pub pod: Value,
    /// Whether the response carried a patch.
    pub patched: bool,
    /// The response's admission warnings.
    pub warnings: Vec<String>,
}

/// Reviews `pod` on `/mutate` (no namespace opt-in) with `config`; pods
/// are never refused.
pub fn review_with(pod: &Value, config: &Injector) -> Reviewed {
    let body = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop", "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin"},
            "object": pod, "oldObject": null, "dryRun": false
        }
    })
    .to_string();
    let reviewed = handle(
        body.as_bytes(),
        Endpoint::Mutate {
            namespace_opt_in: false,
        },
        config,
    )
    .expect("answered");
    let wire: Value = serde_json::from_slice(&reviewed.body).expect("JSON");
    assert_eq!(wire["response"]["allowed"], true, "pods are never refused");
    let mut out = pod.clone();
    let patch = wire["response"]["patch"].as_str();
    if let Some(patch) = patch {
        let patch: json_patch::Patch =
            serde_json::from_slice(&BASE64_STANDARD.decode(patch).expect("base64"))
                .expect("JSON Patch");
        json_patch::patch(&mut out, &patch).expect("patch applies");
    }
    let warnings = wire["response"]["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Reviewed {
        outcome: reviewed.outcome,
        pod: out,
        patched: patch.is_some(),
        warnings,
    }
}
