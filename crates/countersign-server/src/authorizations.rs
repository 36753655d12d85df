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

/// Proposals listed per page at most (and by default).
pub const MAX_PAGE: u64 = 100;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CommitQuery {
    /// A configured repository name.
    #[param(min_length = 1)]
    pub repo: String,
    /// A full commit id.
    #[param(min_length = 1)]
    pub commit: String,
    /// List the proposals whose id comes after this one (the `next` of the previous page).
    pub after: Option<String>,
    /// Proposals listed at most, 1 to 100 (default 100).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Authorization {
    pub repo: String,
    pub commit: String,
    /// Whether a proposal with this commit as its head authorized it, on any page.
    pub authorized: bool,
    /// The authorized proposal, when there is one.
    pub proposal: Option<String>,
    /// Why (not): one line per proposal of this page with this commit as its head, in id
    /// order (which follows the creation time), or why there is none.
    pub reasons: Vec<String>,
    /// More proposals have this head: ask again with `after` set to this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Is this commit authorized? The verdict covers every proposal; the reasons are listed a
/// page at a time.
#[utoipa::path(
    get, path = "/v1/authorizations", params(CommitQuery),
    responses(
        (status = 200, body = Authorization),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")
    ),
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
    let limit = match query.limit {
        None => MAX_PAGE,
        Some(limit @ 1..=MAX_PAGE) => limit,
        Some(limit) => {
            return Err(ApiError::Invalid(format!(
                "limit: {limit} is not between 1 and {MAX_PAGE}"
            )));
        }
    };
    let after = query.after.as_deref().unwrap_or("");
    // One more than the page, to know whether there is a next one.
    let mut proposals = state
        .store
        .proposals_at(&query.repo, &query.commit, after, limit + 1)
        .await?;
    let next = if proposals.len() as u64 > limit {
        proposals.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        proposals.last().map(|p| p.id.clone())
    } else {
        None
    };
    // A merged proposal's head was authorized and stays so: pushing the same commit again
    // (to another protected branch, or restoring a branch) is not a new change.
    let authorized = state
        .store
        .authorized_at(&query.repo, &query.commit)
        .await?;
    let reasons = if proposals.is_empty() && after.is_empty() {
        vec![format!("no proposal has {} as its head", query.commit)]
    } else {
        proposals
            .iter()
            .map(|p| format!("proposal {} ({} tier) is {}", p.id, p.tier, p.state))
            .collect()
    };
    Ok(Json(Authorization {
        authorized: authorized.is_some(),
        proposal: authorized.map(|p| p.id),
        repo: query.repo,
        commit: query.commit,
        reasons,
        next,
    }))
}
