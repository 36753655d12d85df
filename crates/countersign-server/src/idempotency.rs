//! Idempotency keys: a creating request sent again with the same `Idempotency-Key` gets the
//! first answer, not a second effect.
//!
//! A key is scoped to what it was first sent with: its principal, its route and the request
//! (a digest of the parsed body). The same key from another principal is another key; the
//! same key on another route or with another body is refused with 422, never answered with
//! the first request's response (which would tell the client that something happened that
//! did not).

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use countersign_store::{Idempotent, Store, Tx};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The `Idempotency-Key` of one request, with what it is bound to.
pub(crate) struct Key {
    key: String,
    principal: String,
    scope: String,
}

impl Key {
    /// The request's key, if it sent one: `route` is the request's method and path
    /// (`POST /v1/proposals/p-1/head`), `request` its parsed body.
    pub(crate) fn from_headers(
        headers: &HeaderMap,
        principal: &str,
        route: &str,
        request: &Value,
    ) -> Result<Option<Key>, ApiError> {
        let Some(value) = headers.get("idempotency-key") else {
            return Ok(None);
        };
        let key = value
            .to_str()
            .map_err(|_| ApiError::Invalid("Idempotency-Key is not visible ASCII".into()))?;
        if key.is_empty() || key.len() > 255 {
            return Err(ApiError::Invalid(
                "Idempotency-Key must be 1 to 255 characters".into(),
            ));
        }
        // `request` is built by the handler from the parsed body, its fields in one order, so
        // equal requests digest alike whatever order or spacing they were sent with.
        let digest = Sha256::digest(request.to_string().as_bytes());
        Ok(Some(Key {
            key: key.to_owned(),
            principal: principal.to_owned(),
            scope: format!("{route} sha256:{}", hex::encode(digest)),
        }))
    }

    /// The first answer to this request, if there was one.
    pub(crate) async fn replay(&self, store: &Store) -> Result<Option<Response>, ApiError> {
        let stored = store.idempotent(&self.key, &self.principal).await?;
        self.answer(stored)
    }

    /// [`Key::replay`] as `tx` sees it.
    pub(crate) async fn replay_in(&self, tx: &mut Tx) -> Result<Option<Response>, ApiError> {
        let stored = tx.idempotent(&self.key, &self.principal).await?;
        self.answer(stored)
    }

    fn answer(&self, stored: Option<Idempotent>) -> Result<Option<Response>, ApiError> {
        let Some(stored) = stored else {
            return Ok(None);
        };
        if stored.scope != self.scope {
            return Err(ApiError::Invalid(
                "Idempotency-Key: this key was first sent with another request (another route or body); use a new key for a new request".into(),
            ));
        }
        let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
        Ok(Some(
            (
                status,
                [("content-type", "application/json")],
                stored.response,
            )
                .into_response(),
        ))
    }

    /// Stores the answer in `tx`; `false` when another request with this key committed
    /// first (then [`Key::after_race`] answers).
    pub(crate) async fn remember(
        &self,
        tx: &mut Tx,
        status: StatusCode,
        response: &str,
    ) -> Result<bool, ApiError> {
        let stored = Idempotent {
            status: status.as_u16(),
            response: response.to_owned(),
            scope: self.scope.clone(),
        };
        Ok(tx
            .put_idempotent(&self.key, &self.principal, &stored)
            .await?)
    }

    /// The answer after losing a race for this key: the winner's, once it is visible.
    pub(crate) async fn after_race(&self, store: &Store) -> Result<Response, ApiError> {
        match self.replay(store).await? {
            Some(response) => Ok(response),
            None => Err(ApiError::Conflict(
                "a request with this Idempotency-Key is in flight".into(),
            )),
        }
    }
}
