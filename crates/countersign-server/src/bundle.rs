//! `GET /v1/proposals/{id}/bundle`: a proposal's audit bundle, byte for byte what
//! `countersign bundle export ID` writes (both are `Store::export_bundle`), so `countersign
//! bundle verify FILE --log-key KEY` checks it offline and re-derives the decision.
//!
//! Any valid token may export, auditors included: a bundle holds what the proposal view
//! shows plus the governed files the decision read and the proofs.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(export))
}

/// The proposal's bundle (format `https://countersign.dev/bundle/v1`): its log entries with
/// inclusion proofs under a signed checkpoint covering them, and every blob they refer to.
#[utoipa::path(
    get, path = "/v1/proposals/{id}/bundle",
    params(("id" = String, Path, description = "Proposal id")),
    responses(
        (status = 200, content_type = "application/json", body = Object, description = "The bundle, as `countersign bundle export` writes it"),
        (status = 401, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn export(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if state.store.proposal(&id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no proposal {id}")));
    }
    let bundle = match state
        .store
        .export_bundle(&id, state.log_signer.as_deref())
        .await
    {
        Ok(bundle) => bundle,
        Err(countersign_store::Error::NoCheckpoint { index }) => {
            return Err(ApiError::Unavailable(format!(
                "no signed checkpoint covers entry {index} of this proposal and the server has no log key to sign one"
            )));
        }
        Err(countersign_store::Error::NoEntries { .. }) => {
            return Err(ApiError::Internal(format!(
                "proposal {id} has no log entry"
            )));
        }
        Err(error) => return Err(error.into()),
    };
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        bundle.to_json(),
    )
        .into_response())
}
