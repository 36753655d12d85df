//! Console sessions: a random secret in an HttpOnly cookie, its SHA-256 in the database
//! (`console_sessions`), read on every request so a sign-out or an expiry holds on every
//! replica at once. A session signed in with an API token lasts no longer than the token.

use axum::http::{HeaderMap, HeaderValue, header};
use countersign_policy::Principal;
use countersign_store::{Grant, Session, Store};

use crate::AppState;
use crate::auth::{Caller, Role, token_hash};
use crate::error::ApiError;

/// The session cookie's name.
pub const COOKIE: &str = "countersign_session";

/// A signed-in person: who they act as (the same [`Caller`] the API builds), the session's
/// CSRF token, and the hash of its secret (what signing out deletes).
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub caller: Caller,
    pub csrf: String,
    pub secret_hash: String,
}

/// 32 random bytes from the OS, hex.
pub(crate) fn random_hex() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::Internal(format!("no randomness from the OS: {e}")))?;
    Ok(hex::encode(bytes))
}

/// Whether `given` is `expected`, compared in constant time (for equal lengths).
pub(crate) fn csrf_matches(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    if a.is_empty() || a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in the request, if sent once or more (the first).
pub(crate) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax (the OIDC callback is a cross-site
/// navigation, which Strict would send without the cookie), Secure behind https.
pub(crate) fn set_cookie(
    state: &AppState,
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
) -> HeaderValue {
    let secure = if state.console.secure() {
        "; Secure"
    } else {
        ""
    };
    let text =
        format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// What a new session signs in as.
pub(crate) struct NewSession {
    pub principal: Principal,
    pub role: Role,
    pub token_id: Option<String>,
    pub identity: Option<crate::oidc::Person>,
    pub dispatched_by: Option<Principal>,
    /// The session ends at this time at the latest (a token's expiry).
    pub not_after: Option<i64>,
}

/// Starts a session; returns the `Set-Cookie` value that carries it.
pub(crate) async fn start(state: &AppState, new: NewSession) -> Result<HeaderValue, ApiError> {
    let secret = random_hex()?;
    let now = state.clock.unix_seconds();
    let ttl = i64::try_from(state.console.session_ttl.as_secs()).unwrap_or(i64::MAX);
    let mut expires_at = now.saturating_add(ttl);
    if let Some(limit) = new.not_after {
        expires_at = expires_at.min(limit);
    }
    let session = Session {
        principal: new.principal.to_string(),
        role: new.role.as_str().to_owned(),
        csrf: random_hex()?,
        token_id: new.token_id,
        issuer: new.identity.as_ref().map(|p| p.issuer.clone()),
        subject: new.identity.as_ref().map(|p| p.subject.clone()),
        email: new.identity.as_ref().map(|p| p.email.clone()),
        dispatched_by: new.dispatched_by.map(|p| p.to_string()),
        created_at: now,
        expires_at,
    };
    // Expired sessions and grants go as new ones come: nothing else prunes them.
    state.store.prune_sessions(now).await?;
    state
        .store
        .put_session(&token_hash(&secret), &session)
        .await?;
    Ok(set_cookie(
        state,
        COOKIE,
        &secret,
        "/",
        expires_at.saturating_sub(now),
    ))
}

/// The viewer of the session the request's cookie names: `None` without a cookie, or with
/// one naming no live session.
pub(crate) async fn viewer(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Viewer>, ApiError> {
    let Some(secret) = cookie_value(headers, COOKIE).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let hash = token_hash(secret);
    let Some(session) = state.store.session(&hash).await? else {
        return Ok(None);
    };
    let now = state.clock.unix_seconds();
    if session.expires_at <= now {
        state.store.delete_session(&hash).await?;
        return Ok(None);
    }
    if let Some(id) = &session.token_id {
        // The token it signed in with still holds: not revoked, not expired.
        let live = state
            .store
            .token(id)
            .await?
            .is_some_and(|t| !t.revoked && t.expires_at > now);
        if !live {
            state.store.delete_session(&hash).await?;
            return Ok(None);
        }
    }
    let corrupt =
        |what: &str, e: String| ApiError::Internal(format!("console session: {what}: {e}"));
    let principal: Principal = session
        .principal
        .parse()
        .map_err(|e: countersign_policy::PrincipalError| corrupt("principal", e.to_string()))?;
    let role: Role = session.role.parse().map_err(|e| corrupt("role", e))?;
    let identity = match (&session.issuer, &session.subject, &session.email) {
        (Some(issuer), Some(subject), Some(email)) => Some(crate::oidc::Person {
            principal: principal.clone(),
            issuer: issuer.clone(),
            subject: subject.clone(),
            email: email.clone(),
        }),
        _ => None,
    };
    let dispatched_by = session
        .dispatched_by
        .as_deref()
        .map(str::parse::<Principal>)
        .transpose()
        .map_err(|e| corrupt("dispatched_by", e.to_string()))?;
    Ok(Some(Viewer {
        caller: Caller {
            principal,
            role,
            identity,
            dispatched_by,
            token_sha256: None,
        },
        csrf: session.csrf,
        secret_hash: hash,
    }))
}

/// Creates a single-use sign-in link for `principal` with `role`, valid until `expires_at`
/// (Unix seconds), from 32 bytes of `secret` the caller drew from the OS: returns the
/// link's path and query (`/signin/link?token=…`). Only its hash is stored; the first
/// visit takes it. For `countersign demo`, and for handing a colleague a first session
/// locally: never a long-lived bearer in a URL.
pub async fn create_sign_in_link(
    store: &Store,
    principal: &Principal,
    role: Role,
    expires_at: i64,
    secret: [u8; 32],
) -> Result<String, countersign_store::Error> {
    let text = hex::encode(secret);
    store
        .put_grant(
            &token_hash(&text),
            &Grant {
                kind: "link".to_owned(),
                principal: Some(principal.to_string()),
                role: Some(role.as_str().to_owned()),
                verifier: None,
                nonce: None,
                next: None,
                expires_at,
            },
        )
        .await?;
    Ok(format!("/signin/link?token={text}"))
}
