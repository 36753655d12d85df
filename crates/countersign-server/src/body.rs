//! What every request must be before a handler sees it: [`Body`], a JSON request body whose
//! rejections are problem+json like every other error; [`refuse_unstorable_uri`], the same
//! rule for path and query; [`refuse_announced_oversize`], a body announced over every limit
//! refused before anything waits for it.
//!
//! Text a database cannot store is refused here, at the edge, with a 422, on both backends
//! alike: PostgreSQL's `text` holds no U+0000 (SQLite's does, and C strings then cut it), so
//! a NUL reaching a statement would be a 500 on one backend and a truncated value on the
//! other. JSON can only carry it escaped (`\u0000`) and a URI only percent-encoded (`%00`),
//! so both checks read the raw bytes, before decoding.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The detail of a 413. Routes may raise the default limit, so no number is promised here.
pub const TOO_LARGE: &str = "the request body is over this endpoint's size limit";

/// Why a text with U+0000 is refused, for both the body and the URI.
const NUL: &str = "a database cannot store U+0000 (NUL) in text";

/// A JSON body of type `T`; a body that is not JSON of that shape is a 422 (whether its
/// syntax or its shape is wrong, it holds a U+0000 anywhere, or it is not declared
/// `application/json`), one over the limit a 413.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if announced_length(&request).is_some_and(|length| length > crate::BODY_LIMIT as u64) {
            // Refused before reading: a client announcing more than it sends would otherwise
            // be waited for. `Body` is for routes under the server-wide limit.
            return Err(ApiError::TooLarge(TOO_LARGE.into()));
        }
        if !json_content_type(&request) {
            return Err(ApiError::Invalid(
                "expected a request body declared `Content-Type: application/json`".into(),
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                // The limit layer cuts a chunked body short while it is read: that is the
                // size, not the JSON, being wrong.
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::TooLarge(TOO_LARGE.into())
                } else {
                    ApiError::Invalid(rejection.body_text())
                }
            })?;
        refuse_nul(&bytes)?;
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(ApiError::Invalid(rejection.body_text())),
        }
    }
}

/// Refuses a JSON body that holds a U+0000 in a string: for the routes whose body is
/// optional and so read as bytes, what [`Body`] does itself.
pub fn refuse_nul(json: &[u8]) -> Result<(), ApiError> {
    if json_has_nul(json) {
        return Err(ApiError::Invalid(format!("the body: {NUL}")));
    }
    Ok(())
}

/// The body length the request announces, if it does.
fn announced_length(request: &Request) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Middleware: a body announced (`Content-Length`) over the largest limit of any route is a
/// 413 at once, whatever the route, before a handler waits for bytes that may never come.
/// Each route's own limit applies as the body is read.
pub async fn refuse_announced_oversize(request: Request, next: Next) -> Response {
    if let Some(length) = announced_length(&request)
        && length > crate::LARGEST_BODY_LIMIT as u64
    {
        return ApiError::TooLarge(format!(
            "the request body announces {length} bytes, over the largest limit of any route \
             ({} bytes)",
            crate::LARGEST_BODY_LIMIT
        ))
        .into_response();
    }
    next.run(request).await
}

/// `application/json`, or any `application/*+json`, parameters allowed (what axum's `Json`
/// accepts).
fn json_content_type(request: &Request) -> bool {
    let Some(value) = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Whether a JSON text holds the escape `\u0000` in a string. Valid JSON has a backslash only
/// inside strings, always starting a two-character escape or a `\uXXXX` one, so skipping the
/// character after each backslash keeps `\\u0000` (an escaped backslash, then text) apart.
/// A raw NUL byte is no valid JSON, and the parser refuses it.
fn json_has_nul(json: &[u8]) -> bool {
    let mut i = 0;
    while i < json.len() {
        if json[i] == b'\\' {
            if json[i + 1..].starts_with(b"u0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// Middleware: a path or query holding `%00` (a percent-encoded U+0000; hyper refuses a raw
/// one) is a 422 problem before any handler or extractor decodes it.
pub async fn refuse_unstorable_uri(request: Request, next: Next) -> Response {
    let uri = request.uri();
    let nul = |text: &str| text.as_bytes().windows(3).any(|w| w == b"%00");
    if nul(uri.path()) || uri.query().is_some_and(nul) {
        return ApiError::Invalid(format!("the path or query: {NUL}")).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::json_has_nul;

    #[test]
    fn nul_escapes_are_found_and_escaped_backslashes_are_not() {
        for (json, nul) in [
            (r#"{"title": "a\u0000b"}"#, true),
            (r#"{"title": "\u0000"}"#, true),
            (r#"{"t\u0000": 1}"#, true),
            (r#"{"title": "a\\u0000b"}"#, false),
            (r#"{"title": "a\\\u0000b"}"#, true),
            (r#"{"title": "\u00000"}"#, true),
            (r#"{"title": "\u0001"}"#, false),
            (r#"{"title": "a\"\\"}"#, false),
            ("\\", false),
        ] {
            assert_eq!(json_has_nul(json.as_bytes()), nul, "{json}");
        }
    }
}
