//! Who is calling: bearer tokens, their [`Role`]s, and the [`Caller`] extractor.
//!
//! A token is `cst_` followed by 64 hex digits of secret; the store keeps only the SHA-256 of
//! the whole token text. Expiry is checked against the clock in [`AppState`]. Any other bearer
//! token is an OIDC ID token, verified and mapped to a person by [`crate::oidc`] when an
//! issuer is configured. What a role may do on a given resource is decided by the handler,
//! above a floor kept here for every route: runners only submit evidence (and read plans),
//! auditors only read.

use std::fmt;
use std::str::FromStr;

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use axum::http::{Method, header};
use countersign_policy::Principal;
use countersign_store::{Store, Token};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;

/// The prefix of every token, so a leaked one is recognizable by secret scanners.
pub const TOKEN_PREFIX: &str = "cst_";

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Opens proposals.
    Proposer,
    /// Submits evidence.
    Runner,
    /// Approves or rejects (eligibility still comes from ownership in the graph).
    Approver,
    /// Reads and exports only.
    Auditor,
    /// Everything a proposer, approver and auditor may do.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Proposer => "proposer",
            Role::Runner => "runner",
            Role::Approver => "approver",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Ok(match s {
            "proposer" => Role::Proposer,
            "runner" => Role::Runner,
            "approver" => Role::Approver,
            "auditor" => Role::Auditor,
            "admin" => Role::Admin,
            other => {
                return Err(format!(
                    "unknown role {other:?}: expected proposer, runner, approver, auditor or admin"
                ));
            }
        })
    }
}

/// The authenticated principal of a request and the role of its token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub role: Role,
    /// For a person signed in with an ID token: the issuer and subject that vouched.
    pub identity: Option<crate::oidc::Person>,
    /// For an agent's token bound to a person (`token create --on-behalf-of`), or a
    /// per-task token sent with the person's verified ID token ([`DISPATCHER_HEADER`]):
    /// that person, an author of every proposal the agent makes. Nothing else in a request
    /// can claim a dispatcher.
    pub dispatched_by: Option<Principal>,
    /// For an API token: the lower-case hex SHA-256 of its text (what the store keys it by).
    /// A capsule runner's lease proof signs it, binding its capsule to this token.
    pub token_sha256: Option<String>,
}

impl Caller {
    /// Refuses with 403 unless the token's role is one of `roles` (admin always passes).
    pub fn require(&self, roles: &[Role], action: &str) -> Result<(), ApiError> {
        if self.role == Role::Admin || roles.contains(&self.role) {
            return Ok(());
        }
        Err(ApiError::Forbidden(format!(
            "{} token may not {action}",
            with_article(self.role)
        )))
    }
}

/// "an approver", "a runner": how messages name a token's role.
fn with_article(role: Role) -> String {
    let role = role.as_str();
    let article = if role.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {role}")
}

/// Lower-case hex SHA-256 of a token's text: the only form the store holds.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token for `principal` with `role`, valid until `expires_at` (Unix seconds),
/// from 32 bytes of `secret` the caller drew from the OS. Returns the token text, shown
/// once: only its hash is stored.
pub async fn create_token(
    store: &Store,
    principal: &Principal,
    role: Role,
    expires_at: i64,
    secret: [u8; 32],
) -> Result<(String, Token), countersign_store::Error> {
    let text = format!("{TOKEN_PREFIX}{}", hex::encode(secret));
    let hash = token_hash(&text);
    let token = Token {
        id: format!("t-{}", &hash[..16]),
        principal: principal.to_string(),
        role: role.as_str().to_owned(),
        expires_at,
        revoked: false,
        on_behalf_of: None,
    };
    store.put_token(&token, &hash).await?;
    Ok((text, token))
}

/// Why a token cannot be bound to a dispatcher.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("only an agent's token is dispatched by a person: {0} is not an agent (agent:NAME)")]
    NotAnAgent(Principal),
    #[error("the dispatcher must be a person (human:NAME): {0} is not")]
    NotAHuman(Principal),
    #[error(
        "the dispatcher {0} is unknown here: no active token of this database names them (create theirs first)"
    )]
    Unknown(Principal),
    #[error(transparent)]
    Store(#[from] countersign_store::Error),
}

/// [`create_token`] for an agent dispatched by the human `on_behalf_of`, who becomes an
/// author of every proposal the token opens. Refused unless `principal` is an agent and
/// `on_behalf_of` a person the server knows (an active token of theirs in this database):
/// a token can neither vouch for an agent it is not nor name someone nobody authenticated.
pub async fn create_dispatched_token(
    store: &Store,
    principal: &Principal,
    role: Role,
    expires_at: i64,
    secret: [u8; 32],
    on_behalf_of: &Principal,
    now: i64,
) -> Result<(String, Token), DispatchError> {
    if !matches!(principal, Principal::Agent(_)) {
        return Err(DispatchError::NotAnAgent(principal.clone()));
    }
    if !on_behalf_of.is_human() {
        return Err(DispatchError::NotAHuman(on_behalf_of.clone()));
    }
    let name = on_behalf_of.to_string();
    let known = store
        .tokens()
        .await?
        .iter()
        .any(|t| t.principal == name && !t.revoked && t.expires_at > now);
    if !known {
        return Err(DispatchError::Unknown(on_behalf_of.clone()));
    }
    let text = format!("{TOKEN_PREFIX}{}", hex::encode(secret));
    let hash = token_hash(&text);
    let token = Token {
        id: format!("t-{}", &hash[..16]),
        principal: principal.to_string(),
        role: role.as_str().to_owned(),
        expires_at,
        revoked: false,
        on_behalf_of: Some(name),
    };
    store.put_token(&token, &hash).await?;
    Ok((text, token))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized = |why: &str| ApiError::Unauthorized(why.to_owned());
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing Authorization: Bearer <token>"))?;
        // The scheme is case-insensitive (RFC 9110 section 11.1).
        let text = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| unauthorized("the Authorization header is not Bearer <token>"))?;
        let caller = if text.starts_with(TOKEN_PREFIX) {
            api_token(state, text).await?
        } else if let Some(oidc) = &state.oidc {
            let person = oidc
                .authenticate(text, state.clock.unix_seconds(), &state.repos)
                .await?;
            Caller {
                principal: person.principal.clone(),
                role: oidc.config().role,
                identity: Some(person),
                dispatched_by: None,
                token_sha256: None,
            }
        } else {
            return Err(unauthorized(
                "unknown token: API tokens start with cst_, and this server accepts no ID \
                 tokens (no OIDC issuer is configured)",
            ));
        };
        let mut caller = caller;
        if let Some(value) = parts.headers.get(DISPATCHER_HEADER) {
            caller.dispatched_by = Some(dispatcher(state, &caller, value).await?);
        }
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map_or_else(|| parts.uri.path().to_owned(), |m| m.as_str().to_owned());
        caller.admit(&parts.method, &route)?;
        Ok(caller)
    }
}

/// The header an agent with a per-task token sends to name the person who dispatched it:
/// that person's OIDC ID token, verified exactly as a person's sign-in is.
pub const DISPATCHER_HEADER: &str = "x-countersign-dispatcher-token";

/// The person an agent's [`DISPATCHER_HEADER`] proves: the ID token verifies against the
/// configured issuer (signature, issuer, audience, expiry on the server's clock) and names a
/// catalog person. Anything less is refused, never ignored: a request that claims a
/// dispatcher the server cannot check is not decided as if it claimed none. A token bound
/// to one person (`--on-behalf-of`) cannot name another.
async fn dispatcher(
    state: &AppState,
    caller: &Caller,
    value: &header::HeaderValue,
) -> Result<Principal, ApiError> {
    let refused = |why: String| ApiError::Unauthorized(format!("{DISPATCHER_HEADER}: {why}"));
    if !matches!(caller.principal, Principal::Agent(_)) {
        return Err(ApiError::Forbidden(format!(
            "{DISPATCHER_HEADER}: only an agent is dispatched, and {} is not one",
            caller.principal
        )));
    }
    let Some(oidc) = &state.oidc else {
        return Err(refused(
            "this server verifies no ID tokens (no OIDC issuer is configured), so it cannot \
             check who dispatched the agent"
                .to_owned(),
        ));
    };
    let text = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| refused("empty or not text; send the dispatcher's ID token".to_owned()))?;
    let person = oidc
        .authenticate(text, state.clock.unix_seconds(), &state.repos)
        .await
        .map_err(|e| match e {
            ApiError::Unauthorized(why) => refused(why),
            ApiError::Forbidden(why) => ApiError::Forbidden(format!("{DISPATCHER_HEADER}: {why}")),
            other => other,
        })?;
    let principal = person.principal;
    if !matches!(principal, Principal::Human(_)) {
        return Err(ApiError::Forbidden(format!(
            "{DISPATCHER_HEADER}: the dispatcher must be a person, and {principal} is not"
        )));
    }
    match &caller.dispatched_by {
        Some(bound) if *bound != principal => Err(ApiError::Forbidden(format!(
            "{DISPATCHER_HEADER}: this token is bound to {bound}, not {principal}"
        ))),
        _ => Ok(principal),
    }
}

/// The routes a runner may call: it leases work, submits evidence and reads the plan it runs.
const RUNNER_ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/proposals/{id}/evidence"),
    ("GET", "/v1/proposals/{id}/plan"),
    ("POST", "/v1/work/lease"),
    ("POST", "/v1/work/{id}/heartbeat"),
    ("POST", "/v1/work/{id}/finish"),
    ("POST", "/v1/work/{id}/return"),
    ("POST", "/v1/runs/{id}/evidence"),
];

impl Caller {
    /// The checks that hold on every route, before any handler's own: a runner (by role or
    /// by principal) reaches only [`RUNNER_ROUTES`], an auditor only reads. Handlers still
    /// check their roles; this is the floor a forgotten check cannot go below.
    fn admit(&self, method: &Method, route: &str) -> Result<(), ApiError> {
        let runner = self.role == Role::Runner || matches!(self.principal, Principal::Runner(_));
        if runner
            && !RUNNER_ROUTES
                .iter()
                .any(|(m, r)| method.as_str() == *m && route == *r)
        {
            return Err(ApiError::Forbidden(format!(
                "{} with {} token may only lease work, submit evidence and read plans, not {method} {route}",
                self.principal,
                with_article(self.role)
            )));
        }
        if self.role == Role::Auditor && !(method == Method::GET || method == Method::HEAD) {
            return Err(ApiError::Forbidden(format!(
                "an auditor token only reads: {method} {route} is refused"
            )));
        }
        Ok(())
    }
}

/// The caller of an API token: known, not revoked, not expired.
pub(crate) async fn api_token(state: &AppState, text: &str) -> Result<Caller, ApiError> {
    let unauthorized = |why: &str| ApiError::Unauthorized(why.to_owned());
    let hash = token_hash(text);
    let token = state
        .store
        .token_by_secret(&hash)
        .await?
        .ok_or_else(|| unauthorized("unknown token"))?;
    if token.revoked {
        return Err(unauthorized("the token is revoked"));
    }
    if token.expires_at <= state.clock.unix_seconds() {
        return Err(unauthorized("the token has expired"));
    }
    let principal = token
        .principal
        .parse()
        .map_err(|e| ApiError::Internal(format!("token {}: {e}", token.id)))?;
    let role = token
        .role
        .parse()
        .map_err(|e| ApiError::Internal(format!("token {}: {e}", token.id)))?;
    let dispatched_by = token
        .on_behalf_of
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| ApiError::Internal(format!("token {}: on_behalf_of: {e}", token.id)))?;
    Ok(Caller {
        principal,
        role,
        identity: None,
        dispatched_by,
        token_sha256: Some(hash),
    })
}
