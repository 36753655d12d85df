//! [`Body`]: a JSON request body whose rejections are problem+json like every other error.
//!
//! axum's own `Json` answers a bad body with plain text; this wrapper keeps the decoding and
//! changes only how a refusal is reported.

use axum::Json;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body of type `T`; a body that is not JSON of that shape is a 422.
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
            Err(rejection) => Err(ApiError::Invalid(rejection.body_text())),
        }
    }
}
