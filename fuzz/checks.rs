//! The properties the fuzz targets check on every input. Shared: this is
//! the fuzz crate's library (`checks`, which both targets call), and
//! `tests/core/prop_fuzz.rs` (part of the root's `cargo test`) includes it
//! to run the same checks over the committed corpus and generated inputs.
//!
//! A failed property panics, which is what libFuzzer reports as a crash.

use base64::prelude::{BASE64_STANDARD, Engine as _};
use forcebacklog::manifest::inject_str;
use forcebacklog::patch::Injector;
use forcebacklog::review::{self, Endpoint};
use serde_json::Value;

/// The endpoint a fuzz input's first byte selects.
pub fn endpoint(selector: u8) -> Endpoint {
    match selector % 3 {
        0 => Endpoint::Mutate {
            namespace_opt_in: false,
        },
        1 => Endpoint::Mutate {
            namespace_opt_in: true,
        },
        _ => Endpoint::Validate,
    }
}

/// `data` = one selector byte, then a request body.
///
/// - `review::handle` returns (an answer or an error), never panics;
/// - an answer is an `admission.k8s.io/v1` AdmissionReview with a string
///   `uid` and a boolean `allowed`; a patch comes with `patchType:
///   JSONPatch`, is base64 of a JSON Patch, and only on `/mutate`;
/// - when the body is plain JSON (no duplicate keys or invalid UTF-8 that
///   the review never read), the uid is the request's, the patch applies
///   to `request.object`, and reviewing the patched object again yields no
///   patch (one injection, never two).
pub fn review(data: &[u8]) {
    let (selector, body) = match data.split_first() {
        Some((selector, body)) => (*selector, body),
        None => (0, data),
    };
    let endpoint = endpoint(selector);
    let config = Injector::default();
    let Ok(reviewed) = review::handle(body, endpoint, &config) else {
        return;
    };
    let out: Value = serde_json::from_slice(&reviewed.body).expect("the answer is JSON");
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(out["kind"], "AdmissionReview");
    let response = &out["response"];
    let uid = response["uid"]
        .as_str()
        .expect("the answer has a string uid");
    assert!(response["allowed"].is_boolean(), "allowed: {response}");
    let patch = response.get("patch").map(|patch| {
        assert_eq!(response["patchType"], "JSONPatch");
        assert!(
            matches!(endpoint, Endpoint::Mutate { .. }),
            "a patch from /validate"
        );
        let bytes = BASE64_STANDARD
            .decode(patch.as_str().expect("the patch is a string"))
            .expect("the patch is base64");
        serde_json::from_slice::<json_patch::Patch>(&bytes).expect("the patch is a JSON Patch")
    });

    let Some(input) = plain_json(body) else {
        return;
    };
    assert_eq!(
        input["request"]["uid"].as_str(),
        Some(uid),
        "the uid is echoed"
    );
    let Some(patch) = patch else {
        return;
    };
    let mut object = input["request"]["object"].clone();
    json_patch::patch(&mut object, &patch).expect("the patch applies to request.object");
    let mut again = input;
    again["request"]["object"] = object;
    let again = serde_json::to_vec(&again).expect("JSON");
    let reviewed = review::handle(&again, endpoint, &config).expect("the patched pod is reviewed");
    let out: Value = serde_json::from_slice(&reviewed.body).expect("the answer is JSON");
    assert!(
        out["response"].get("patch").is_none(),
        "a second patch for an injected pod: {out}"
    );
}

/// The body as a JSON tree, when reading it as one loses nothing: valid
/// UTF-8, numbers that survive a round trip, no duplicate keys.
fn plain_json(body: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(body).ok()?;
    let value: Value = serde_json::from_str(text).ok()?;
    // Duplicate keys collapse in the tree: the serialised tree is then
    // shorter in keys than the input. Count keys to detect that.
    let keys_in = count_keys(text)?;
    let keys_tree = count_tree_keys(&value);
    (keys_in == keys_tree).then_some(value)
}

fn count_tree_keys(v: &Value) -> usize {
    match v {
        Value::Object(map) => map.len() + map.values().map(count_tree_keys).sum::<usize>(),
        Value::Array(items) => items.iter().map(count_tree_keys).sum(),
        _ => 0,
    }
}

/// Object members in JSON text (counted by walking it with serde_json's
/// own reader, so strings are handled exactly).
fn count_keys(text: &str) -> Option<usize> {
    struct Count(usize);
    impl<'de> serde::de::Visitor<'de> for &mut Count {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(&mut *self)?.is_some() {}
            Ok(())
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
                self.0 += 1;
                map.next_value_seed(&mut *self)?;
            }
            Ok(())
        }
    }
    impl<'de> serde::de::DeserializeSeed<'de> for &mut Count {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    let mut count = Count(0);
    let mut de = serde_json::Deserializer::from_str(text);
    serde::de::DeserializeSeed::deserialize(&mut count, &mut de).ok()?;
    de.end().ok()?;
    Some(count.0)
}

/// `data` = YAML text (inputs that are not UTF-8 are skipped: `inject`
/// reads text). Its length's parity picks `--backlog 100` or none.
///
/// - `inject_str` returns, never panics;
/// - its output is read again by `inject_str`, and changes nothing the
///   second time (running `inject` on its own output is a no-op).
pub fn inject(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let backlog = (data.len() % 2 == 1).then_some(100);
    let config = Injector::default();
    let Ok(first) = inject_str(text, "fuzz.yaml", backlog, &config) else {
        return;
    };
    let second = inject_str(&first.yaml, "fuzz.yaml", backlog, &config)
        .unwrap_or_else(|e| panic!("inject cannot read its own output: {e}\n{}", first.yaml));
    assert_eq!(
        second.yaml, first.yaml,
        "inject of its own output changed it; input:\n{text}"
    );
}
