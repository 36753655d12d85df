//! `/v1/authorizations`: whether a commit of a configured repository is authorized, and why
//! not. The answer enforcement (a pre-receive hook, a deploy gate) asks for.

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(check))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CommitQuery {
    /// A configured repository name.
    pub repo: String,
    /// A full commit id.
    pub commit: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Authorization {
    pub repo: String,
    pub commit: String,
    pub authorized: bool,
    /// The authorized proposal, when there is one.
    pub proposal: Option<String>,
    /// Why (not): one line per proposal with this commit as its head, or why there is none.
    pub reasons: Vec<String>,
}

/// Is this commit authorized?
#[utoipa::path(
    get, path = "/v1/authorizations", params(CommitQuery),
    responses((status = 200, body = Authorization), (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn check(
    State(state): State<AppState>,
    _caller: Caller,
    query: Result<Query<CommitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Authorization>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::Invalid(e.body_text()))?;
    if !state.repos.contains_key(&query.repo) {
        return Err(ApiError::Invalid(format!(
            "repo: {:?} is not configured on this server",
            query.repo
        )));
    }
    let proposals = state.store.proposals_at(&query.repo, &query.commit).await?;
    // A merged proposal's head was authorized and stays so: pushing the same commit again
    // (to another protected branch, or restoring a branch) is not a new change.
    let authorized = proposals.iter().find(|p| {
        matches!(
            p.state,
            countersign_lifecycle::ProposalState::Authorized
                | countersign_lifecycle::ProposalState::Merged
        )
    });
    let reasons = if proposals.is_empty() {
        vec![format!("no proposal has {} as its head", query.commit)]
    } else {
        proposals
            .iter()
            .map(|p| format!("proposal {} ({} tier) is {}", p.id, p.tier, p.state))
            .collect()
    };
    Ok(Json(Authorization {
        authorized: authorized.is_some(),
        proposal: authorized.map(|p| p.id.clone()),
        repo: query.repo,
        commit: query.commit,
        reasons,
    }))
}
