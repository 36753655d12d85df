//! The countersign server: proposals, approvals and authorizations over HTTP, for the agents,
//! runners, owners and auditors who share one audit log.
//!
//! The caller hands it everything: [`run`] takes a bound listener, an [`AppState`] (store,
//! configured repositories, clock) and a shutdown future. Each resource has its own
//! `router()`, merged in [`router`], which also generates the OpenAPI document from the
//! handlers. Every state change is written in the transaction that appends its audit event.
//!
//! Not here yet: OIDC, evidence, head moves, webhooks, the log and bundle endpoints (see
//! docs/server.md).

mod auth;
mod authorizations;
mod body;
mod error;
mod health;
mod metrics;
mod pipeline;
mod proposals;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use countersign_store::Store;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

pub use auth::{Caller, Role, TOKEN_PREFIX, create_token, token_hash};
pub use error::{ApiError, Problem};
pub use metrics::Metrics;

/// The largest request body accepted; proposals and approvals are small.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Where the server reads time. Tests set a fixed time; nothing sleeps on it.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> SystemTime + Send + Sync>);

impl Clock {
    pub fn system() -> Clock {
        Clock(Arc::new(SystemTime::now))
    }

    /// A clock stopped at `unix_seconds`.
    pub fn fixed(unix_seconds: u64) -> Clock {
        Clock(Arc::new(move || {
            UNIX_EPOCH + Duration::from_secs(unix_seconds)
        }))
    }

    pub fn now(&self) -> SystemTime {
        (self.0)()
    }

    pub fn unix_seconds(&self) -> i64 {
        let secs = self
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        i64::try_from(secs).unwrap_or(i64::MAX)
    }

    /// RFC 3339 UTC with seconds, as audit events carry it.
    pub fn rfc3339(&self) -> String {
        humantime::format_rfc3339_seconds(self.now()).to_string()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// Everything a handler needs, cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    /// Configured repositories by name: local clones or bare repositories the server reads.
    pub repos: Arc<BTreeMap<String, PathBuf>>,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(store: Store, repos: BTreeMap<String, PathBuf>, clock: Clock) -> AppState {
        AppState {
            store,
            repos: Arc::new(repos),
            clock,
            metrics: Arc::new(Metrics::default()),
        }
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "countersign", description = "Agents propose, humans authorize, every decision is evidence."),
    components(schemas(Problem)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every route, the OpenAPI document generated from them, and the middleware.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(proposals::router())
        .merge(authorizations::router())
        .split_for_parts();
    let openapi = Arc::new(openapi);
    api.merge(health::router(openapi))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::record,
        ))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The OpenAPI 3.1 document, as `/openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .merge(proposals::router())
        .merge(authorizations::router())
        .into_openapi()
}

/// Serves `state` on `listener` until `shutdown` completes, then finishes the requests in
/// flight and returns.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "countersign server listening");
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
