//! The webhook's HTTP surface: `POST /mutate`, `POST /mutate/namespace`,
//! `POST /validate`, each answered by [`crate::review::handle`].
//!
//! Per request: the body is read up to [`super::Tuning::max_body_bytes`]
//! (413 beyond, checked against `Content-Length` before reading), within
//! [`super::Tuning::request_timeout`] (408 after), then handed to the core
//! as bytes. Errors are JSON `{"error": "..."}`; nothing here panics on
//! what a client sends.

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::sync::Arc;
use std::time::Instant;

use super::Shared;
use super::metrics::Status;
use crate::review::{self, Endpoint};

const MUTATE: Endpoint = Endpoint::Mutate {
    namespace_opt_in: false,
};
const MUTATE_NAMESPACE: Endpoint = Endpoint::Mutate {
    namespace_opt_in: true,
};

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// The webhook router (served over TLS).
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(MUTATE.path(), post(mutate).fallback(method_not_allowed))
        .route(
            MUTATE_NAMESPACE.path(),
            post(mutate_namespace).fallback(method_not_allowed),
        )
        .route(
            Endpoint::Validate.path(),
            post(validate).fallback(method_not_allowed),
        )
        .fallback(not_found)
        .with_state(shared)
}

async fn mutate(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    admit(&shared, MUTATE, request).await
}

async fn mutate_namespace(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    admit(&shared, MUTATE_NAMESPACE, request).await
}

async fn validate(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    admit(&shared, Endpoint::Validate, request).await
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not found: this webhook serves POST /mutate, POST /mutate/namespace and POST /validate",
    )
}

async fn method_not_allowed() -> Response {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed: use POST",
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("POST"));
    response
}

/// One admission request, timed and counted.
async fn admit(shared: &Shared, endpoint: Endpoint, request: Request) -> Response {
    let started = Instant::now();
    let timeout = shared.tuning.request_timeout;
    let (status, response) =
        match tokio::time::timeout(timeout, answer(shared, endpoint, request)).await {
            Ok(answered) => answered,
            Err(_) => {
                let message = format!(
                    "request body not received within {} ms",
                    timeout.as_millis()
                );
                tracing::warn!(endpoint = endpoint.label(), "{message}");
                (
                    Status::ReadFailed,
                    error(StatusCode::REQUEST_TIMEOUT, &message),
                )
            }
        };
    shared.metrics.request(endpoint, status, started.elapsed());
    response
}

async fn answer(shared: &Shared, endpoint: Endpoint, request: Request) -> (Status, Response) {
    let limit = shared.tuning.max_body_bytes;
    if declared_length(request.headers()).is_some_and(|len| len > limit as u64) {
        return too_large(endpoint, limit);
    }
    let body = match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
            return too_large(endpoint, limit);
        }
        Err(err) => {
            let message = format!(
                "cannot read the request body: {}",
                crate::error_chain(err.as_ref())
            );
            tracing::warn!(endpoint = endpoint.label(), "{message}");
            return (Status::ReadFailed, error(StatusCode::BAD_REQUEST, &message));
        }
    };
    match review::handle(&body, endpoint, &shared.inject) {
        Ok(reviewed) => {
            shared.metrics.outcome(&reviewed.outcome);
            tracing::debug!(
                endpoint = endpoint.label(),
                outcome = ?reviewed.outcome,
                bytes_in = body.len(),
                bytes_out = reviewed.body.len(),
                "admission decision"
            );
            let mut response = Response::new(Body::from(reviewed.body));
            response.headers_mut().insert(CONTENT_TYPE, JSON);
            (Status::of(&reviewed.outcome), response)
        }
        Err(err) => {
            let message = crate::error_chain(&err);
            tracing::warn!(endpoint = endpoint.label(), error = %message, "bad admission request");
            let code = if err.is_internal() {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::BAD_REQUEST
            };
            (Status::Malformed, error(code, &message))
        }
    }
}

/// The `Content-Length` the client announced, when it is a number.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn too_large(endpoint: Endpoint, limit: usize) -> (Status, Response) {
    let message = format!("request body larger than {limit} bytes");
    tracing::warn!(endpoint = endpoint.label(), "{message}");
    (
        Status::TooLarge,
        error(StatusCode::PAYLOAD_TOO_LARGE, &message),
    )
}

/// A JSON error response: `{"error": message}`.
pub fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, JSON);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_numeric_content_length_counts() {
        let mut headers = HeaderMap::new();
        assert_eq!(declared_length(&headers), None);
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("12"));
        assert_eq!(declared_length(&headers), Some(12));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("twelve"));
        assert_eq!(declared_length(&headers), None);
    }
}
