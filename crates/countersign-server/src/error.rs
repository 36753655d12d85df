//! [`ApiError`]: every failure of a request, rendered as RFC 9457 `application/problem+json`.
//!
//! Client errors say precisely what was wrong; internal errors are logged with their cause
//! and answered with a bare 500, so no database or file detail leaves the server.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem details object.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token, an unknown, revoked or expired one.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid token whose principal or role may not do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The request is valid but conflicts with the current state (a stale head, a blocked
    /// proposal).
    #[error("{0}")]
    Conflict(String),
    /// A body or parameter that does not parse or does not make sense.
    #[error("{0}")]
    Invalid(String),
    /// A request body over the limit.
    #[error("{0}")]
    TooLarge(String),
    /// The caller did this too often to be heard again (refused evidence for one head).
    #[error("{0}")]
    TooMany(String),
    /// A dependency the request needs does not answer (the database, the issuer's keys).
    #[error("{0}")]
    Unavailable(String),
    /// A failure of the server itself; logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Invalid(_) => "invalid-request",
            ApiError::TooLarge(_) => "too-large",
            ApiError::TooMany(_) => "too-many-requests",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<countersign_store::Error> for ApiError {
    fn from(error: countersign_store::Error) -> Self {
        ApiError::Internal(format!("store: {error}"))
    }
}

/// A decision that could not be made: the proposer's input (an unknown revision, an empty
/// diff, a malformed catalog or policy at the base) is 422 with what to fix; anything else
/// (the repository missing or unreadable on this server, a corrupt object store, a bug) is
/// the server's, logged with its cause and answered as a bare 500, since its message names
/// the server's own paths.
impl From<countersign_decide::DecideError> for ApiError {
    fn from(error: countersign_decide::DecideError) -> Self {
        match error.kind() {
            countersign_decide::ErrorKind::Input => ApiError::Invalid(error.chain()),
            countersign_decide::ErrorKind::Internal => {
                ApiError::Internal(format!("deciding: {}", error.chain()))
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "request failed");
                "the server could not complete the request; the cause is in its log".to_owned()
            }
            other => other.to_string(),
        };
        problem(status, self.slug(), detail)
    }
}

const PROBLEM_JSON: &str = "application/problem+json";

/// A problem+json response.
fn problem(status: StatusCode, slug: &str, detail: String) -> Response {
    let problem = Problem {
        kind: format!("https://countersign.dev/problems/{slug}"),
        title: status.canonical_reason().unwrap_or("error").to_owned(),
        status: status.as_u16(),
        detail,
    };
    let mut response = (status, Json(problem)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// Middleware: an error answered by the framework rather than a handler (no route, a wrong
/// method, a body over the limit layer's size, an extractor's plain-text rejection) becomes
/// problem+json like every other error, with the same status.
pub async fn problem_for_bare_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path: String = request.uri().path().chars().take(200).collect();
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON));
    // The console's pages answer their errors as pages.
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_problem || is_page || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    // A framework rejection is one short line; more than that is not worth echoing.
    let text = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty());
    let (slug, detail) = match status {
        StatusCode::NOT_FOUND => ("not-found", format!("no route {method} {path}")),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            match allow.as_ref().and_then(|a| a.to_str().ok()) {
                Some(allowed) => format!("{path} does not answer {method} (it answers {allowed})"),
                None => format!("{path} does not answer {method}"),
            },
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("too-large", crate::body::TOO_LARGE.to_owned()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported-media-type",
            text.unwrap_or_else(|| "the request body's content type is not accepted".into()),
        ),
        StatusCode::BAD_REQUEST => (
            "bad-request",
            text.unwrap_or_else(|| "the request is malformed".into()),
        ),
        other if other.is_server_error() => {
            tracing::error!(status = %other, cause = text.as_deref().unwrap_or(""), "request failed");
            (
                "internal",
                "the server could not complete the request; the cause is in its log".into(),
            )
        }
        other => (
            "http-error",
            text.unwrap_or_else(|| other.canonical_reason().unwrap_or("error").to_owned()),
        ),
    };
    let mut response = problem(status, slug, detail);
    if let Some(allow) = allow {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    response
}
