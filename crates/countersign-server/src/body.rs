//! [`Body`]: a JSON request body whose rejections are problem+json like every other error.
//!
//! axum's own `Json` answers a bad body with plain text; this wrapper keeps the decoding and
//! changes only how a refusal is reported.

use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The detail of a 413. Routes may raise the default limit, so no number is promised here.
pub const TOO_LARGE: &str = "the request body is over this endpoint's size limit";

/// A JSON body of type `T`; a body that is not JSON of that shape is a 422 (whether its
/// syntax or its shape is wrong, or it is not declared `application/json`), one over the
/// limit a 413.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            // The limit layer cuts a chunked body short while it is read: that is the size,
            // not the JSON, being wrong.
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::TooLarge(TOO_LARGE.into()))
            }
            Err(rejection) => Err(ApiError::Invalid(rejection.body_text())),
        }
    }
}
