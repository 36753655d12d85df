//! The API tokens as admins manage them: `GET /v1/tokens` (list) and
//! `DELETE /v1/tokens/{id}` (revoke), and [`revoke_token`], the one revocation behind that
//! route and `countersign token revoke`.
//!
//! A revocation is a state change like any other: the token row and a `token_revoked` audit
//! event commit in one transaction. No token is cached: every request reads its token row
//! (`auth`), so a revocation holds on every server sharing the database as soon as it
//! commits. Secrets never appear here: the store keeps only their hashes and lists none.

use axum::Json;
use axum::extract::{Path, State};
use countersign_audit::EventKind;
use countersign_store::{Store, Token};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(revoke))
}

/// An API token as an admin sees it: never its secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// `t-` and 16 hex digits.
    pub id: String,
    /// Who the token acts as, e.g. `human:alice`, `runner:ci`.
    pub principal: String,
    /// proposer, runner, approver, auditor or admin.
    pub role: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub revoked: bool,
}

impl From<Token> for TokenView {
    fn from(token: Token) -> TokenView {
        TokenView {
            id: token.id,
            principal: token.principal,
            role: token.role,
            expires_at: token.expires_at,
            revoked: token.revoked,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokensView {
    /// Every token, revoked and expired ones included, by id.
    pub tokens: Vec<TokenView>,
}

/// Every API token (admin): ids, principals, roles, expiry and revocation, never secrets.
#[utoipa::path(
    get, path = "/v1/tokens",
    responses(
        (status = 200, body = TokensView),
        (status = 401, body = Problem), (status = 403, body = Problem)
    ),
    security(("bearer" = []))
)]
async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<TokensView>, ApiError> {
    // No role besides admin is named: only an admin passes.
    caller.require(&[], "list API tokens")?;
    let tokens = state.store.tokens().await?;
    Ok(Json(TokensView {
        tokens: tokens.into_iter().map(TokenView::from).collect(),
    }))
}

/// Revoke an API token (admin). Effective at once on every server sharing the database;
/// logged as a `token_revoked` event. Revoking a revoked token changes nothing and logs
/// nothing.
#[utoipa::path(
    delete, path = "/v1/tokens/{id}",
    params(("id" = String, Path, description = "Token id, `t-…`")),
    responses(
        (status = 200, body = TokenView, description = "The token, now revoked"),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)
    ),
    security(("bearer" = []))
)]
async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TokenView>, ApiError> {
    caller.require(&[], "revoke API tokens")?;
    let actor = caller.principal.to_string();
    match revoke_token(&state.store, &id, &actor, &state.clock.rfc3339()).await? {
        Some(token) => Ok(Json(token.into())),
        None => Err(ApiError::NotFound(format!("no token {id}"))),
    }
}

/// Revokes token `id` on behalf of `actor` at `at` (RFC 3339): the row and a `token_revoked`
/// event in one transaction (none when it was revoked already). Returns the token as it is
/// now, `None` when there is no such token.
pub async fn revoke_token(
    store: &Store,
    id: &str,
    actor: &str,
    at: &str,
) -> Result<Option<Token>, countersign_store::Error> {
    let mut tx = store.begin().await?;
    let Some(mut token) = tx.revoke_token(id).await? else {
        tx.rollback().await?;
        return Ok(None);
    };
    if !token.revoked {
        let event = countersign_audit::Event::new(
            EventKind::TokenRevoked,
            at,
            &token.id,
            actor,
            json!({
                "token": token.id,
                "principal": token.principal,
                "role": token.role,
            }),
        )?;
        tx.append_event(&event).await?;
        token.revoked = true;
    }
    tx.commit().await?;
    Ok(Some(token))
}
