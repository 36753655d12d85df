//! The console: server-rendered pages for the people who approve, operate and audit, at `/`
//! of `countersign serve` (docs/console.md).
//!
//! Pages are maud templates compiled into the binary and work without JavaScript; one small
//! script of ours (`assets/console.js`, served from the binary) only adds live updates of
//! active runs over SSE. Nothing here decides: every page reads through the API's own data
//! functions, and the approve and reject forms call the API's verdict path
//! ([`crate::proposals::give_verdict`]) with the signed-in person as the [`Caller`], so the
//! rules, the eligibility and the log's attribution are the API's.
//!
//! People sign in with OIDC (authorization code with PKCE against the API's issuer, the ID
//! token verified and mapped by [`crate::oidc`]), with an API token (local use), or with a
//! single-use link (`countersign demo`). Sessions live in the database (`console_sessions`)
//! so replicas share them; the cookie is HttpOnly, SameSite=Lax, Secure when the public URL
//! is https. Every form carries the session's CSRF token, compared in constant time, and
//! every page is sent with a strict Content-Security-Policy, `frame-ancestors 'none'` and
//! `no-store`.

mod assets;
mod events;
mod graph_svg;
mod home;
mod layout;
mod pages;
mod proposals;
mod session;
mod signin;

use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::Markup;

use crate::AppState;
use crate::error::ApiError;

pub(crate) use session::Viewer;
pub use session::create_sign_in_link;

/// How the console signs people in and keeps them signed in; `countersign serve`'s
/// `--public-url`, `--console-session-ttl` and `--oidc-client-secret`.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// The URL people reach the server at (`https://countersign.example.com`): an https one
    /// makes the session cookie `Secure`, and it is the base of the OIDC redirect URI. Without
    /// one, the redirect URI is built from the request's Host header.
    pub public_url: Option<String>,
    /// How long a session lasts from sign-in (no sliding renewal).
    pub session_ttl: Duration,
    /// The OIDC client id; the API's audience when not given (the ID tokens the console
    /// receives are then verified exactly as the API's).
    pub oidc_client_id: Option<String>,
    /// The OIDC client secret, when the issuer registered the console as a confidential
    /// client (sent with HTTP Basic to the token endpoint). PKCE is used either way.
    pub oidc_client_secret: Option<String>,
    /// The share of decisions in the human tiers above which admins see a calibration
    /// warning on the home page (0.0–1.0).
    pub human_share_warning: f64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            public_url: None,
            session_ttl: Duration::from_secs(12 * 3600),
            oidc_client_id: None,
            oidc_client_secret: None,
            human_share_warning: 0.5,
        }
    }
}

impl ConsoleConfig {
    /// Whether cookies are `Secure`: the configured public URL is https.
    pub(crate) fn secure(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.to_ascii_lowercase().starts_with("https://"))
    }
}

/// The console's routes, with its security headers. Not in the OpenAPI document: these are
/// pages, not the API.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home::home))
        .route("/signin", get(signin::form).post(signin::with_token))
        .route("/signin/link", get(signin::with_link))
        .route("/signin/oidc", get(signin::oidc_start))
        .route("/signin/oidc/callback", get(signin::oidc_callback))
        .route("/signout", post(signin::signout))
        .route("/proposals", get(proposals::list))
        .route("/proposals/{id}", get(proposals::detail))
        .route("/proposals/{id}/approve", post(proposals::approve))
        .route("/proposals/{id}/reject", post(proposals::reject))
        .route("/proposals/{id}/bundle", get(proposals::bundle))
        .route("/runs", get(pages::runs))
        .route("/runs/{id}", get(pages::run))
        .route("/findings", get(pages::findings))
        .route("/findings/{id}", get(pages::finding))
        .route("/schedules", get(pages::schedules))
        .route("/graph", get(pages::graph))
        .route("/audit", get(pages::audit))
        .route("/audit/verify", post(pages::verify))
        .route("/calibration", get(pages::calibration))
        .route("/console/events", get(events::events))
        .route("/console/assets/{file}", get(assets::asset))
        .layer(axum::middleware::from_fn(security_headers))
}

/// The Content-Security-Policy of every console response: our own origin only, no inline
/// script or style, no framing, forms only to ourselves.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/console/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Sign-in links carry a (single-use) secret in their query: never sent on.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !is_asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// An HTML page answer.
pub(crate) fn html(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// A `303 See Other` to `location` (a path on this server).
pub(crate) fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// A path on this server to go back to after signing in: absolute, not protocol-relative,
/// no backslash or control character; anything else is `/`.
pub(crate) fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control)
                && p.len() <= 512 =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// The signed-in viewer of a page request, or the redirect to sign in.
pub(crate) async fn viewer_or_signin(
    state: &AppState,
    headers: &HeaderMap,
    here: &str,
) -> Result<Viewer, Response> {
    match session::viewer(state, headers).await {
        Ok(Some(viewer)) => Ok(viewer),
        Ok(None) => {
            let next = utf8_percent(here);
            Err(see_other(&format!("/signin?next={next}")))
        }
        Err(error) => Err(error_page(None, &error)),
    }
}

/// Percent-encodes everything but unreserved characters and `/`.
pub(crate) fn utf8_percent(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The page of a failure: its status and the API's message (an internal error's cause
/// stays in the log, as the API's does).
pub(crate) fn error_page(viewer: Option<&Viewer>, error: &ApiError) -> Response {
    let (status, message) = error_message(error);
    html(
        status,
        layout::page(
            viewer,
            layout::Nav::None,
            "Error",
            Some(layout::Flash::error(message)),
            maud::html! { h1 { "Something went wrong" } p { a href="/" { "Back to the console" } } },
        ),
    )
}

/// The status and the message people see for `error`.
pub(crate) fn error_message(error: &ApiError) -> (StatusCode, String) {
    let status = match error {
        ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
        ApiError::NotFound(_) => StatusCode::NOT_FOUND,
        ApiError::Conflict(_) => StatusCode::CONFLICT,
        ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        ApiError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
        ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ApiError::Internal(cause) => {
            tracing::error!(%cause, "console request failed");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the server could not complete the request; the cause is in its log".to_owned(),
            );
        }
    };
    (status, error.to_string())
}

/// The forbidden answer of a console form: CSRF, role, no session.
pub(crate) fn forbidden(viewer: Option<&Viewer>, why: &str) -> Response {
    error_page(viewer, &ApiError::Forbidden(why.to_owned()))
}

/// The caller a form acts as: the viewer, refused unless `csrf` is the session's token and
/// the role may write at all (an auditor only reads, as the API's floor says).
pub(crate) async fn form_caller(
    state: &AppState,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Viewer, Response> {
    let viewer = match session::viewer(state, headers).await {
        Ok(Some(viewer)) => viewer,
        Ok(None) => return Err(forbidden(None, "not signed in: sign in and try again")),
        Err(error) => return Err(error_page(None, &error)),
    };
    if !session::csrf_matches(&viewer.csrf, csrf) {
        return Err(forbidden(
            Some(&viewer),
            "the form's CSRF token is missing or wrong: reload the page and try again",
        ));
    }
    if viewer.caller.role == crate::auth::Role::Auditor {
        return Err(forbidden(
            Some(&viewer),
            "an auditor only reads: this action is refused",
        ));
    }
    Ok(viewer)
}
