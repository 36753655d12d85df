//! Signing in and out: the token form, single-use links, OIDC authorization code with PKCE.
//!
//! The token form is protected against login CSRF by a double-submit token (a cookie of
//! its own, echoed by the form). The OIDC flow keeps its state, PKCE verifier and nonce in
//! the database (`console_grants`, single use), bound to the browser by a cookie holding
//! the state; the ID token it gets back is verified and mapped by [`crate::oidc`], exactly
//! as the API verifies a bearer ID token.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use countersign_policy::Principal;
use countersign_store::Grant;
use maud::html;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::layout::{self, Flash, Nav};
use super::session::{self, COOKIE, NewSession, csrf_matches, random_hex, set_cookie};
use super::{error_message, html, local_path, see_other};
use crate::AppState;
use crate::auth::{Role, TOKEN_PREFIX, token_hash};
use crate::error::ApiError;

/// The cookie of the sign-in form's double-submit CSRF token.
const SIGNIN_COOKIE: &str = "countersign_signin";
/// The cookie binding an OIDC sign-in under way to this browser.
const OIDC_COOKIE: &str = "countersign_oidc";
/// How long an OIDC sign-in may take, from the redirect to the callback.
const OIDC_WINDOW: i64 = 600;

#[derive(Debug, Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

/// `GET /signin`: the token form, and the SSO link when an issuer is configured.
pub(crate) async fn form(State(state): State<AppState>, Query(q): Query<Next>) -> Response {
    signin_page(&state, q.next.as_deref(), None, StatusCode::OK)
}

fn signin_page(
    state: &AppState,
    next: Option<&str>,
    flash: Option<Flash>,
    status: StatusCode,
) -> Response {
    let csrf = match random_hex() {
        Ok(csrf) => csrf,
        Err(error) => return super::error_page(None, &error),
    };
    let next = local_path(next);
    let body = html! {
        div.signin {
            h1 { "Sign in to countersign" }
            @if state.oidc.is_some() {
                p {
                    a.button href={ "/signin/oidc?next=" (super::utf8_percent(&next)) } data-testid="signin-oidc" {
                        "Sign in with SSO"
                    }
                }
                p.muted { "Or, for local use, with an API token:" }
            }
            form method="post" action="/signin" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="next" value=(next);
                label for="token" { "API token" }
                input id="token" name="token" type="password" autocomplete="off" required size="40";
                p { button.primary type="submit" data-testid="signin-token" { "Sign in" } }
            }
            p.muted { "The token is exchanged for a session; the console never stores it in your browser." }
        }
    };
    let mut response = html(
        status,
        layout::page(None, Nav::None, "Sign in", flash, body),
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, SIGNIN_COOKIE, &csrf, "/signin", 3600),
    );
    response
}

#[derive(Debug, Deserialize)]
pub(crate) struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    next: Option<String>,
}

/// `POST /signin`: an API token exchanged for a session.
pub(crate) async fn with_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let expected = session::cookie_value(&headers, SIGNIN_COOKIE).unwrap_or("");
    if !csrf_matches(expected, &form.csrf) {
        return super::forbidden(
            None,
            "the sign-in form's CSRF token is missing or wrong: reload the sign-in page",
        );
    }
    let text = form.token.trim();
    let refused = |why: &str| {
        signin_page(
            &state,
            form.next.as_deref(),
            Some(Flash::error(why)),
            StatusCode::UNAUTHORIZED,
        )
    };
    if !text.starts_with(TOKEN_PREFIX) {
        return refused("that is not an API token (they start with cst_)");
    }
    let caller = match crate::auth::api_token(&state, text).await {
        Ok(caller) => caller,
        Err(ApiError::Unauthorized(why)) => return refused(&format!("sign-in refused: {why}")),
        Err(error) => return super::error_page(None, &error),
    };
    if caller.role == Role::Runner || matches!(caller.principal, Principal::Runner(_)) {
        return refused("a runner's token cannot sign in to the console");
    }
    let token = match state.store.token_by_secret(&token_hash(text)).await {
        Ok(Some(token)) => token,
        Ok(None) => return refused("sign-in refused: unknown token"),
        Err(error) => return super::error_page(None, &error.into()),
    };
    let started = session::start(
        &state,
        NewSession {
            principal: caller.principal,
            role: caller.role,
            token_id: Some(token.id),
            identity: None,
            dispatched_by: caller.dispatched_by,
            not_after: Some(token.expires_at),
        },
    )
    .await;
    signed_in(started, &local_path(form.next.as_deref()))
}

fn signed_in(started: Result<axum::http::HeaderValue, ApiError>, next: &str) -> Response {
    match started {
        Ok(cookie) => {
            let mut response = see_other(next);
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        Err(error) => super::error_page(None, &error),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct LinkQuery {
    #[serde(default)]
    token: String,
}

/// `GET /signin/link?token=…`: a single-use link (`countersign demo`) exchanged for a
/// session, then `/`.
pub(crate) async fn with_link(
    State(state): State<AppState>,
    Query(q): Query<LinkQuery>,
) -> Response {
    let refused = |why: &str| {
        signin_page(
            &state,
            None,
            Some(Flash::error(why)),
            StatusCode::UNAUTHORIZED,
        )
    };
    if q.token.is_empty() {
        return refused("the sign-in link has no token");
    }
    let grant = match state.store.take_grant(&token_hash(&q.token), "link").await {
        Ok(Some(grant)) => grant,
        Ok(None) => {
            return refused(
                "this sign-in link was used already or never existed: sign in another way",
            );
        }
        Err(error) => return super::error_page(None, &error.into()),
    };
    if grant.expires_at <= state.clock.unix_seconds() {
        return refused("this sign-in link has expired");
    }
    let parsed = grant
        .principal
        .as_deref()
        .and_then(|p| p.parse::<Principal>().ok())
        .zip(grant.role.as_deref().and_then(|r| r.parse::<Role>().ok()));
    let Some((principal, role)) = parsed else {
        return super::error_page(
            None,
            &ApiError::Internal("a sign-in link without a principal or role".into()),
        );
    };
    let started = session::start(
        &state,
        NewSession {
            principal,
            role,
            token_id: None,
            identity: None,
            dispatched_by: None,
            not_after: None,
        },
    )
    .await;
    signed_in(started, "/")
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /signout`: the session deleted from the database (every replica forgets it), the
/// cookie cleared.
pub(crate) async fn signout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignoutForm>,
) -> Response {
    let viewer = match session::viewer(&state, &headers).await {
        Ok(Some(viewer)) => viewer,
        Ok(None) => return see_other("/signin"),
        Err(error) => return super::error_page(None, &error),
    };
    if !csrf_matches(&viewer.csrf, &form.csrf) {
        return super::forbidden(
            Some(&viewer),
            "the form's CSRF token is missing or wrong: reload the page and try again",
        );
    }
    if let Err(error) = state.store.delete_session(&viewer.secret_hash).await {
        return super::error_page(Some(&viewer), &error.into());
    }
    let mut response = see_other("/signin");
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(&state, COOKIE, "", "/", 0));
    response
}

/// What the issuer's discovery document says, the two endpoints the code flow needs.
#[derive(Debug, Deserialize)]
struct Discovery {
    authorization_endpoint: String,
    token_endpoint: String,
}

fn http_client() -> Result<reqwest::Client, ApiError> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ApiError::Unavailable(format!("no HTTP client for the issuer: {e}")))
}

async fn discover(issuer: &str) -> Result<Discovery, ApiError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let unavailable =
        |e: String| ApiError::Unavailable(format!("the issuer's discovery document {url}: {e}"));
    let response = http_client()?
        .get(&url)
        .send()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    if !response.status().is_success() {
        return Err(unavailable(format!("answered {}", response.status())));
    }
    response
        .json::<Discovery>()
        .await
        .map_err(|e| unavailable(e.to_string()))
}

/// The redirect URI registered with the issuer: the public URL's (or the request's host's)
/// `/signin/oidc/callback`.
fn redirect_uri(state: &AppState, headers: &HeaderMap) -> String {
    let base = match &state.console.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    format!("{base}/signin/oidc/callback")
}

fn client_id(state: &AppState, oidc: &crate::oidc::Oidc) -> String {
    state
        .console
        .oidc_client_id
        .clone()
        .unwrap_or_else(|| oidc.config().audience.clone())
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `GET /signin/oidc`: starts the authorization code flow with PKCE (S256), a state and a
/// nonce, and sends the browser to the issuer.
pub(crate) async fn oidc_start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Next>,
) -> Response {
    match oidc_redirect(&state, &headers, q.next.as_deref()).await {
        Ok(response) => response,
        Err(error) => super::error_page(None, &error),
    }
}

async fn oidc_redirect(
    state: &AppState,
    headers: &HeaderMap,
    next: Option<&str>,
) -> Result<Response, ApiError> {
    let Some(oidc) = &state.oidc else {
        return Err(ApiError::NotFound(
            "this server has no OIDC issuer configured: sign in with a token".into(),
        ));
    };
    let discovery = discover(&oidc.config().issuer).await?;
    let (flow, verifier, nonce) = (random_hex()?, random_hex()?, random_hex()?);
    let challenge = b64url(&Sha256::digest(verifier.as_bytes()));
    state
        .store
        .put_grant(
            &token_hash(&flow),
            &Grant {
                kind: "oidc".into(),
                principal: None,
                role: None,
                verifier: Some(verifier),
                nonce: Some(nonce.clone()),
                next: Some(local_path(next)),
                expires_at: state.clock.unix_seconds() + OIDC_WINDOW,
            },
        )
        .await?;
    let mut url = reqwest::Url::parse(&discovery.authorization_endpoint)
        .map_err(|e| ApiError::Unavailable(format!("the issuer's authorization_endpoint: {e}")))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id(state, oidc))
        .append_pair("redirect_uri", &redirect_uri(state, headers))
        .append_pair("scope", "openid email profile")
        .append_pair("state", &flow)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let mut response = see_other(url.as_str());
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, OIDC_COOKIE, &flow, "/signin/oidc", OIDC_WINDOW),
    );
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub(crate) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
}

/// `GET /signin/oidc/callback`: the code exchanged (with the PKCE verifier) for an ID token,
/// verified and mapped as the API's, its nonce checked; then a session.
pub(crate) async fn oidc_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    match finish_oidc(&state, &headers, q).await {
        Ok(response) => response,
        Err(error) => {
            let (status, message) = error_message(&error);
            signin_page(
                &state,
                None,
                Some(Flash::error(format!("SSO sign-in failed: {message}"))),
                status,
            )
        }
    }
}

async fn finish_oidc(
    state: &AppState,
    headers: &HeaderMap,
    q: Callback,
) -> Result<Response, ApiError> {
    let Some(oidc) = &state.oidc else {
        return Err(ApiError::NotFound(
            "this server has no OIDC issuer configured".into(),
        ));
    };
    if let Some(error) = q.error {
        return Err(ApiError::Unauthorized(format!(
            "the issuer answered {error}: {}",
            q.error_description.unwrap_or_default()
        )));
    }
    let (Some(code), Some(flow)) = (q.code, q.state) else {
        return Err(ApiError::Invalid(
            "the callback has no code or state".into(),
        ));
    };
    // The flow must be this browser's: the state in its cookie.
    let bound = session::cookie_value(headers, OIDC_COOKIE).unwrap_or("");
    if !csrf_matches(bound, &flow) {
        return Err(ApiError::Forbidden(
            "this sign-in was not started in this browser (the state does not match): start again"
                .into(),
        ));
    }
    let grant = state
        .store
        .take_grant(&token_hash(&flow), "oidc")
        .await?
        .ok_or_else(|| {
            ApiError::Forbidden("this sign-in was used already or never started".into())
        })?;
    if grant.expires_at <= state.clock.unix_seconds() {
        return Err(ApiError::Forbidden(
            "this sign-in took too long: start again".into(),
        ));
    }
    let discovery = discover(&oidc.config().issuer).await?;
    let mut request = http_client()?.post(&discovery.token_endpoint).form(&[
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect_uri(state, headers).as_str()),
        ("client_id", client_id(state, oidc).as_str()),
        ("code_verifier", grant.verifier.as_deref().unwrap_or("")),
    ]);
    if let Some(secret) = &state.console.oidc_client_secret {
        request = request.basic_auth(client_id(state, oidc), Some(secret));
    }
    let response = request
        .send()
        .await
        .map_err(|e| ApiError::Unavailable(format!("the issuer's token endpoint: {e}")))?;
    if !response.status().is_success() {
        let status = response.status();
        let text: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        return Err(ApiError::Unauthorized(format!(
            "the issuer's token endpoint answered {status}: {text}"
        )));
    }
    let tokens: TokenResponse = response
        .json()
        .await
        .map_err(|e| ApiError::Unauthorized(format!("the issuer's token response: {e}")))?;
    let id_token = tokens
        .id_token
        .ok_or_else(|| ApiError::Unauthorized("the issuer sent no ID token".into()))?;
    // Verified exactly as the API verifies a bearer ID token: signature, issuer, audience,
    // expiry, verified email, the catalog User it maps to.
    let person = oidc
        .authenticate(&id_token, state.clock.unix_seconds(), &state.repos)
        .await?;
    if nonce_of(&id_token).as_deref() != grant.nonce.as_deref() {
        return Err(ApiError::Unauthorized(
            "the ID token's nonce is not this sign-in's".into(),
        ));
    }
    let started = session::start(
        state,
        NewSession {
            principal: person.principal.clone(),
            role: oidc.config().role,
            token_id: None,
            identity: Some(person),
            dispatched_by: None,
            not_after: None,
        },
    )
    .await?;
    let mut response = see_other(&local_path(grant.next.as_deref()));
    response.headers_mut().append(header::SET_COOKIE, started);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, OIDC_COOKIE, "", "/signin/oidc", 0),
    );
    Ok(response.into_response())
}

/// The `nonce` claim of a JWT already verified by [`crate::oidc::Oidc::authenticate`].
fn nonce_of(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("nonce")?.as_str().map(str::to_owned)
}
