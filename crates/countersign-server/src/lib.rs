//! The countersign server: proposals, approvals and authorizations over HTTP, for the agents,
//! runners, owners and auditors who share one audit log.
//!
//! The caller hands it everything: [`run`] takes a bound listener, an [`AppState`] (store,
//! configured repositories, clock) and a shutdown future. Each resource has its own
//! `router()`, merged in [`router`], which also generates the OpenAPI document from the
//! handlers. Every state change is written in the transaction that appends its audit event.
//!
//! Callers are API tokens or people's OIDC ID tokens (`oidc`), both resolved by the
//! `Caller` extractor; every refusal, the framework's own included, is problem+json.
//!
//! With webhooks configured, [`run`] also runs the notification delivery worker
//! (`webhooks`) and stops it with the server; with the GitHub integration
//! (`integrations::github`), the worker that reports each followed pull request's
//! `countersign` check.
//!
//! With a log key ([`AppState::with_log_signer`]) the server signs checkpoints and the
//! verification summary of every authorization; the log, its proofs and proposal bundles are
//! served under `/v1/log` and `/v1/proposals/{id}/bundle` (`log`, `bundle`).
//!
//! Runners submit signed evidence and read the validation plan (`evidence`), and lease the
//! work the plans queue (`runs`: runs, leases, heartbeats); the proposal lifecycle (head
//! moves, closing, merged) is `proposals`'. The rules in force on protected branches (the
//! graph and the policy pack) are read under `/v1/repos` (`repos`).

mod auth;
mod authorizations;
mod body;
mod bundle;
mod change;
pub mod console;
mod error;
mod evidence;
mod findings;
mod health;
mod idempotency;
pub mod integrations;
mod listener;
mod log;
mod metrics;
pub mod oidc;
mod pipeline;
mod proposals;
mod repos;
mod runs;
mod schedules;
mod tokens;
mod webhooks;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use countersign_audit::Signer;
use countersign_store::Store;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

pub use auth::{
    Caller, DispatchError, Role, TOKEN_PREFIX, create_dispatched_token, create_token, token_hash,
};
pub use error::{ApiError, Problem};
pub use integrations::github::{
    GithubConfig, GithubConfigError, GithubRepository, Report as GithubReport, hub_signature,
};
pub use metrics::Metrics;
pub use oidc::{JwksSource, OidcConfig};
pub use tokens::revoke_token;
pub use webhooks::{
    DeliverySettings, NotificationKind, Target, WebhookConfig, WebhookConfigError, signature,
};

/// The largest request body accepted; proposals and approvals are small.
pub const BODY_LIMIT: usize = 64 * 1024;

pub use evidence::{EVIDENCE_BODY_LIMIT, MAX_REFUSED_PER_HEAD};
pub use findings::{FindingView, FindingsView, RunEvidenceAccepted};
pub use runs::{DEFAULT_LEASE, Definition, Leased, RunView, RunsView, WorkItem};
pub use schedules::{DEFAULT_TICK, Fired, ScheduleView, SchedulesView, tick as tick_schedules};

/// The largest body any route accepts: a body announced larger is refused before routing.
pub const LARGEST_BODY_LIMIT: usize = if EVIDENCE_BODY_LIMIT > BODY_LIMIT {
    EVIDENCE_BODY_LIMIT
} else {
    BODY_LIMIT
};

/// Where the server reads time: handlers, the OIDC checks and the webhook worker all read
/// this one. Tests set a fixed time or move a [`ManualClock`]; nothing sleeps on it.
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

    /// A clock that reads `manual`: it stands still until `manual` is advanced.
    pub fn manual(manual: &ManualClock) -> Clock {
        let time = Arc::clone(&manual.0);
        Clock(Arc::new(move || {
            *time.lock().unwrap_or_else(PoisonError::into_inner)
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

/// A time moved by hand, for tests: what a [`Clock::manual`] reads. Clones move together.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<SystemTime>>);

impl ManualClock {
    /// Stopped at `unix_seconds`.
    pub fn new(unix_seconds: u64) -> ManualClock {
        ManualClock(Arc::new(Mutex::new(
            UNIX_EPOCH + Duration::from_secs(unix_seconds),
        )))
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut time = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *time += by;
    }

    pub fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The [`Clock`] that reads this time.
    pub fn clock(&self) -> Clock {
        Clock::manual(self)
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
    /// People's ID tokens, when an issuer is configured ([`AppState::with_oidc`]).
    pub oidc: Option<Arc<oidc::Oidc>>,
    /// The log key: signs checkpoints and the verification summaries of authorizations.
    /// Without one, `/v1/log/checkpoint` and `/v1/log/key` answer 503 and authorizations are
    /// recorded without a statement. See [`AppState::with_log_signer`].
    pub log_signer: Option<Arc<Signer>>,
    /// Webhook targets, when configured ([`AppState::with_webhooks`]): state changes queue
    /// notifications in the outbox and [`run`] delivers them.
    pub webhooks: Option<Arc<WebhookConfig>>,
    /// The GitHub integration, when configured ([`AppState::with_github`]): its webhook
    /// route follows pull requests, and [`run`] reports their checks.
    pub github: Option<Arc<integrations::github::Github>>,
    /// The governed states and catalog directories of recent bases, and the cores decisions
    /// run on: shared by the requests of this state, and by nothing else.
    pub(crate) pipeline: Arc<pipeline::Pipeline>,
    /// The lease owners' names of the webhook workers [`run`] starts with this state.
    pub(crate) workers: Arc<webhooks::WorkerNames>,
    /// How long a runner's lease on a work item lasts without a heartbeat
    /// ([`AppState::with_lease`]).
    pub lease: Duration,
    /// How often (real time) [`run`] looks for due schedules; `None`: never (another
    /// replica, or a test calling [`tick_schedules`] itself). See [`AppState::with_schedule_tick`].
    pub schedule_tick: Option<Duration>,
    /// How the console signs people in ([`AppState::with_console`]).
    pub console: Arc<console::ConsoleConfig>,
}

impl AppState {
    pub fn new(store: Store, repos: BTreeMap<String, PathBuf>, clock: Clock) -> AppState {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let pipeline = pipeline::Pipeline::new(cores).for_repositories(repos.len());
        AppState {
            store,
            repos: Arc::new(repos),
            clock,
            metrics: Arc::new(Metrics::default()),
            oidc: None,
            log_signer: None,
            webhooks: None,
            github: None,
            pipeline: Arc::new(pipeline),
            workers: Arc::new(webhooks::WorkerNames::new()),
            lease: runs::DEFAULT_LEASE,
            schedule_tick: Some(schedules::DEFAULT_TICK),
            console: Arc::new(console::ConsoleConfig::default()),
        }
    }

    /// The console's sign-in settings: the public URL (Secure cookies, the OIDC redirect
    /// URI), the session lifetime, the OIDC client. See docs/console.md.
    pub fn with_console(mut self, config: console::ConsoleConfig) -> AppState {
        self.console = Arc::new(config);
        self
    }

    /// Looks for due schedules every `tick` of real time (the due times themselves are read
    /// from this state's clock), or never with `None`. Several replicas may all tick: each
    /// due time is queued once.
    pub fn with_schedule_tick(mut self, tick: Option<Duration>) -> AppState {
        self.schedule_tick = tick.map(|t| t.max(Duration::from_millis(10)));
        self
    }

    /// Leases of work items last `lease` without a heartbeat (at least one second): a
    /// runner that dies loses its items to another runner that long after its last
    /// heartbeat, by this state's clock.
    pub fn with_lease(mut self, lease: Duration) -> AppState {
        self.lease = lease.max(Duration::from_secs(1));
        self
    }

    /// The server signs with `signer`: checkpoints of its log, and the SLSA verification
    /// summary of every authorization (automated or by approvals), as `evaluate --record`
    /// does with its `--log-key`.
    pub fn with_log_signer(mut self, signer: Signer) -> AppState {
        self.log_signer = Some(Arc::new(signer));
        self
    }

    /// Decisions on `concurrency` cores at most (each repository on all but one of them when
    /// there are several), and a request waiting at most `budget` for its decision before it
    /// is answered `503`.
    pub fn with_decisions(mut self, concurrency: usize, budget: std::time::Duration) -> AppState {
        self.pipeline = Arc::new(
            pipeline::Pipeline::new(concurrency)
                .for_repositories(self.repos.len())
                .with_budget(budget),
        );
        self
    }

    /// Accepts OIDC ID tokens from people besides API tokens. The issuer's keys load at the
    /// first ID token, or now with `state.oidc.load_keys()`.
    pub fn with_oidc(mut self, config: OidcConfig) -> AppState {
        self.oidc = Some(Arc::new(oidc::Oidc::new(config)));
        self
    }

    /// Notifies `config`'s targets of state changes: each change queues its notifications in
    /// the outbox in its own transaction, and the worker [`run`] spawns delivers them.
    pub fn with_webhooks(mut self, config: WebhookConfig) -> AppState {
        self.webhooks = Some(Arc::new(config));
        self
    }

    /// Follows GitHub pull requests (`POST /v1/integrations/github/webhook`) and reports
    /// each followed head's `countersign` check, from the worker [`run`] spawns. Every
    /// repository `config` names must be one of this state's repositories.
    pub fn with_github(mut self, config: GithubConfig) -> Result<AppState, GithubConfigError> {
        for repository in &config.repositories {
            if !self.repos.contains_key(&repository.repo) {
                return Err(GithubConfigError::Invalid {
                    at: format!("repository {:?}, repo", repository.github),
                    reason: format!(
                        "{:?} is not a configured repository (--repo NAME=PATH)",
                        repository.repo
                    ),
                });
            }
        }
        self.github = Some(Arc::new(integrations::github::Github::new(config)?));
        Ok(self)
    }
}

/// Why a server may not sign for the log on its database.
#[derive(Debug, thiserror::Error)]
pub enum LogKeyError {
    /// The log on the database was started under another key.
    #[error(
        "this database's log is signed with key {recorded}, but this server's log key is \
         {given}: replicas on one database share one log key. Start this server with the key \
         of the server that started the log (--log-key FILE or COUNTERSIGN_LOG_KEY, the file \
         whose verifier key is {recorded_key})"
    )]
    Mismatch {
        /// `<origin>+<key id>` of the recorded key.
        recorded: String,
        /// `<origin>+<key id>` of this server's key.
        given: String,
        /// The recorded verifier key in full.
        recorded_key: String,
    },
    #[error(transparent)]
    Store(#[from] countersign_store::Error),
}

/// `<origin>+<key id>`: how messages name a log key.
fn key_name(verifier: &str) -> String {
    match countersign_audit::Verifier::parse(verifier) {
        Ok(v) => format!("{}+{:08x}", v.name(), v.key_id()),
        Err(_) => verifier.to_owned(),
    }
}

/// Binds the log on `store` to `signer`'s key: the first server to start records its
/// verifier key with the log; a later one whose key differs is refused, with both keys named.
/// Call it before serving: one log is signed with one key, whichever replica signs.
pub async fn claim_log_key(store: &Store, signer: &Signer) -> Result<(), LogKeyError> {
    let given = signer.verifier().to_string();
    let recorded = store.claim_log_key(&given).await?;
    if recorded == given {
        return Ok(());
    }
    Err(LogKeyError::Mismatch {
        recorded: key_name(&recorded),
        given: key_name(&given),
        recorded_key: recorded,
    })
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

/// States once, for every operation, what the server answers whatever the handler: errors
/// are problem+json (handlers name them with `body = Problem`, whose default media type
/// utoipa writes as `application/json`); a bearer-authenticated operation may answer 401
/// (no valid token) and 403 (the role floor of `Caller::admit`, or the handler's rule); an
/// operation with parameters or a body, 422 (one that does not parse, or text a database
/// cannot store, `body`); one with a body, 413.
fn complete(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    const PROBLEM_JSON: &str = "application/problem+json";
    let problem = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    PROBLEM_JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build(),
        )
    };
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            let responses = &mut operation.responses.responses;
            for response in responses.values_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                let is_problem = response.content.get("application/json").is_some_and(|c| {
                    matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Problem"))
                });
                if is_problem
                    && let Some(content) = response.content.shift_remove("application/json")
                {
                    response.content.insert(PROBLEM_JSON.to_owned(), content);
                }
            }
            let authenticated = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| problem(description));
            };
            if authenticated {
                add("401", "No token, or an unknown, revoked or expired one");
                add("403", "The token's role or principal may not do this");
            }
            let parameters = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
            if parameters || operation.request_body.is_some() {
                add(
                    "422",
                    "A parameter or body that does not parse, or text a database cannot store",
                );
            }
            if operation.request_body.is_some() {
                add("413", "The request body is over this endpoint's size limit");
            }
        }
    }
}

/// Every route, the OpenAPI document generated from them, and the middleware.
pub fn router(state: AppState) -> Router {
    let (api, mut openapi) = routes().split_for_parts();
    complete(&mut openapi);
    let openapi = Arc::new(openapi);
    api.merge(health::router(openapi))
        // The console's pages: not in the OpenAPI document, which describes the API.
        .merge(console::router())
        // Inside the metrics, so their refusals are counted like every other answer.
        .layer(axum::middleware::from_fn(body::refuse_unstorable_uri))
        .layer(axum::middleware::from_fn(body::refuse_announced_oversize))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::record,
        ))
        // The limit every body extractor (`Body`, `Bytes`) applies, so an over-limit body is a
        // 413 problem whether it is sent with a length or chunked; a route that takes more
        // (evidence envelopes) raises it with its own inner `DefaultBodyLimit`, which a
        // global `RequestBodyLimitLayer` would not let it do.
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(error::problem_for_bare_errors))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The OpenAPI 3.1 document, as `/openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut openapi = routes().into_openapi();
    complete(&mut openapi);
    openapi
}

/// The API's routes with the document their annotations make (before [`complete`]).
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(proposals::router())
        .merge(authorizations::router())
        .merge(webhooks::router())
        .merge(log::router())
        .merge(bundle::router())
        .merge(evidence::router())
        .merge(runs::router())
        .merge(schedules::router())
        .merge(findings::router())
        .merge(tokens::router())
        .merge(repos::router())
        .merge(integrations::router())
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
    // Proofs are served from an in-process copy of the immutable stored hashes, filled beside
    // serving (a proof asked during the first fill waits for it).
    let store = state.store.clone();
    tokio::spawn(async move {
        match store.mirror_stored_hashes().await {
            Ok(count) => tracing::info!(count, "stored hashes mirrored in memory"),
            Err(error) => {
                tracing::warn!(%error, "stored hashes not mirrored; proofs read the database")
            }
        }
    });
    // The webhook worker stops with the server: on `shutdown`, or when `serve` fails and
    // drops the sender.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let ticker = schedules::spawn(&state, stopped.clone());
    let worker = webhooks::spawn(&state, stopped.clone());
    let reporter = integrations::github::spawn(&state, stopped);
    let shutdown = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    let served = axum::serve(listener::Problems(listener), router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    // They finish the deliveries and reports in flight, each bounded by its timeout.
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    if let Some(reporter) = reporter {
        let _ = reporter.await;
    }
    if let Some(ticker) = ticker {
        let _ = ticker.await;
    }
    served
}
