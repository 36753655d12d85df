//! `/v1/authorizations`: whether moving a protected ref of a configured repository from its
//! old tip to a new commit is authorized, and why not. The answer enforcement (a
//! pre-receive hook, a deploy gate) asks for. The rule is
//! `countersign_decide::protected::check_update`: an authorized proposal whose head is the
//! new tip and whose base is the old tip, or an ancestor of it when the move is a
//! fast-forward; a deletion never.

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use countersign_decide::protected::Candidate;

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
    /// The ref's new tip: a full commit id (all zeros: the ref is deleted, always refused).
    #[param(min_length = 1)]
    pub commit: String,
    /// The ref's old tip, what it points at before the move: a full commit id (all zeros:
    /// the ref is created). Every commit between it and `commit` must have been judged.
    #[param(min_length = 1)]
    pub old: String,
    /// The ref being moved (`refs/heads/main`), named in the reasons.
    #[serde(rename = "ref")]
    pub reference: Option<String>,
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
    /// The old tip asked about.
    pub old: String,
    /// Whether an authorized proposal with this commit as its head authorizes the move from
    /// `old`, on any page.
    pub authorized: bool,
    /// The authorizing proposal, when there is one.
    pub proposal: Option<String>,
    /// Why (not): one line per proposal of this page with this commit as its head, in id
    /// order (which follows the creation time), or why there is none; then what the move
    /// was held to (which proposal judged which commits, or why none covers the move).
    pub reasons: Vec<String>,
    /// More proposals have this head: ask again with `after` set to this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// May a protected ref move from `old` to `commit`? The verdict covers every proposal; the
/// reasons are listed a page at a time.
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
    for (field, id) in [("commit", &query.commit), ("old", &query.old)] {
        if !(matches!(id.len(), 40 | 64) && id.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(ApiError::Invalid(format!(
                "{field}: {id:?} is not a full commit id (all zeros for no commit)"
            )));
        }
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
    // (to another protected branch, or restoring a branch) is not a new change, as long as
    // the move it makes was judged.
    let candidates: Vec<Candidate> = state
        .store
        .authorized_at(&query.repo, &query.commit, MAX_CANDIDATES)
        .await?
        .into_iter()
        .map(|p| Candidate {
            id: p.id,
            base: p.base,
            head: p.head,
        })
        .collect();
    let path = state.repos.get(&query.repo).cloned().ok_or_else(|| {
        ApiError::Invalid(format!(
            "repo: {:?} is not configured on this server",
            query.repo
        ))
    })?;
    let branch = query
        .reference
        .clone()
        .unwrap_or_else(|| "the protected ref".to_owned());
    let (old, new) = (tip(&query.old), tip(&query.commit));
    let pipeline = std::sync::Arc::clone(&state.pipeline);
    let has_candidates = !candidates.is_empty();
    let verdict = state
        .pipeline
        .blocking(move || {
            pipeline.check_update(&path, &branch, old.as_deref(), new.as_deref(), &candidates)
        })
        .await??;
    let mut reasons = if proposals.is_empty() && after.is_empty() {
        vec![format!("no proposal has {} as its head", query.commit)]
    } else {
        proposals
            .iter()
            .map(|p| format!("proposal {} ({} tier) is {}", p.id, p.tier, p.state))
            .collect()
    };
    // Without an authorized proposal the lines above say why; with one, what it judged.
    if has_candidates || verdict.proposal.is_some() || tip(&query.commit).is_none() {
        reasons.extend(verdict.reasons);
    }
    Ok(Json(Authorization {
        authorized: verdict.proposal.is_some(),
        proposal: verdict.proposal,
        repo: query.repo,
        commit: query.commit,
        old: query.old,
        reasons,
        next,
    }))
}

/// Authorized proposals with one head weighed at most (the same head proposed against
/// that many bases is already far past any real use).
const MAX_CANDIDATES: u64 = 100;

/// A ref's tip as git's hook input gives it: `None` for the all-zero id (no object).
fn tip(id: &str) -> Option<String> {
    (!id.bytes().all(|b| b == b'0')).then(|| id.to_owned())
}
