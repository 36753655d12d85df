//! The fleet's runs: `GET /v1/runs` and `GET /v1/runs/{id}` (who ran what, where, with what
//! outcome), and the work routes runners call: `POST /v1/work/lease`, and on a leased item
//! `heartbeat`, `finish` and `return`.
//!
//! A run is queued by the server, never by a runner: [`enqueue`] turns the validation plan of
//! a proposal's head into one work item per required suite with a `[suites]` entry at the
//! base and per environment, in the transaction that records the head (a new proposal or a
//! head move), and [`cancel`] ends the old head's unfinished items in the same way. Who may
//! lease an item is fixed when it is queued: the `[[runners]]` of the base that may attest
//! its suite, and runners holding a capsule of a `[[capsules.signers]]` entry of the base
//! that delegates the suite in the item's environment. A runner token leases as the runner
//! its principal names (`runner:NAME`, the `[[runners]]` name), and under the capsule it
//! presents, judged on every lease (`prove_capsule`); no other role leases, not even an admin
//! (a lease is a promise to run and sign, which only a runner's key can keep).
//!
//! Leases expire by the server's [`crate::Clock`], so tests move time instead of sleeping;
//! an expired lease is taken by the next runner that asks, and the first holder's later
//! calls are refused (`409`). `run_started`, `run_finished` and `run_returned` events (the
//! run's id as subject) are appended in the transaction of the change they record.
//!
//! Not here: running anything (the runners do), weighing evidence (`evidence`: a runner
//! pushes its envelopes there like any other, and `finish` only names their digests).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path, Query, State};
use countersign_audit::EventKind;
use countersign_decide::DecideError;
use countersign_policy::Principal;
use countersign_store::{
    CapsuleAsk, Finish, LeaseAsk, NewRun, Refusal, Run, RunFilter, RunFor, RunOutcome, RunState,
    TestCounts, Tx,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::body::Body;
use crate::error::{ApiError, Problem};
use crate::pipeline::WorkSpec;
use crate::proposals::persist::event;

/// How long a lease lasts without a heartbeat, unless the server is told otherwise
/// (`serve --lease`, [`AppState::with_lease`]).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(5 * 60);

/// The most items one lease request takes.
pub const MAX_LEASE_ITEMS: u32 = 16;
/// The most environments one lease request names.
pub const MAX_ENVIRONMENTS: usize = 16;
/// The most envelope digests a finished run names (one per report kind, with room).
pub const MAX_ENVELOPES: usize = 16;
/// The most runs one page lists.
const MAX_PAGE: u32 = 1000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(lease))
        .routes(routes!(heartbeat))
        .routes(routes!(finish))
        .routes(routes!(give_back))
}

pub(crate) fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn rfc3339_ms(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}

/// A fresh run id: `r-`, the queue time in Unix milliseconds (12 hex digits), then 12 hex
/// digits of a hash of what it runs and a process counter. Ids sort by queue time.
fn run_id(proposal: &str, head: &str, work: &WorkSpec, now: SystemTime) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let hash = Sha256::digest(format!(
        "{proposal}\n{head}\n{}\n{}\n{}\n{nanos}\n{n}\n{}",
        work.suite,
        work.environment,
        work.base_version.as_ref().map_or("", |b| b.source.as_str()),
        std::process::id()
    ));
    format!(
        "r-{:012x}{}",
        (nanos / 1_000_000) & 0xffff_ffff_ffff,
        hex::encode(&hash[..6])
    )
}

/// Queues `work` (the plan of `head`) for `proposal` of repository `repo`, in `tx`. A suite
/// nobody may lease (no `[[runners]]` entry, no capsule signer delegating it) is not queued.
pub(crate) async fn enqueue(
    state: &AppState,
    tx: &mut Tx,
    repo: &str,
    proposal: &str,
    head: &str,
    work: &[WorkSpec],
) -> Result<usize, ApiError> {
    enqueue_for(
        state,
        tx,
        repo,
        RunFor::Proposal(proposal.to_owned()),
        head,
        work,
    )
    .await
}

/// Queues `work` (the plan of the change that moved protected `branch` to `commit`) as
/// post-merge runs of the branch, in `tx`: their outcomes are recorded like any run's, with
/// no proposal to weigh evidence for.
pub(crate) async fn enqueue_branch(
    state: &AppState,
    tx: &mut Tx,
    repo: &str,
    branch: &str,
    commit: &str,
    work: &[WorkSpec],
) -> Result<usize, ApiError> {
    enqueue_for(
        state,
        tx,
        repo,
        RunFor::Branch(branch.to_owned()),
        commit,
        work,
    )
    .await
}

async fn enqueue_for(
    state: &AppState,
    tx: &mut Tx,
    repo: &str,
    target: RunFor,
    head: &str,
    work: &[WorkSpec],
) -> Result<usize, ApiError> {
    let now = state.clock.now();
    let about = match &target {
        RunFor::Proposal(p) => p.clone(),
        RunFor::Branch(b) => format!("branch {b}"),
    };
    let runs: Vec<NewRun> = work
        .iter()
        .filter(|w| w.leasable())
        .map(|w| NewRun {
            id: run_id(&about, head, w, now),
            repo: repo.to_owned(),
            repository: w.repository.clone(),
            suite: w.suite.clone(),
            environment: w.environment.clone(),
            commit: head.to_owned(),
            target: target.clone(),
            definition: w.definition.to_string(),
            runners: w.runners.clone(),
            capsule_signers: w.capsule_signers.clone(),
            queued_at_ms: millis(now),
            cause: None,
            base_version: w.base_version.clone(),
        })
        .collect();
    tx.enqueue_runs(&runs).await?;
    Ok(runs.len())
}

/// The work items `work` asks of the fleet for `commit` of protected branch `branch` of
/// repository `repo`, queued for `cause` (`schedule:NAME`, `merge:p-…`), ready for
/// `Tx::enqueue_runs`. A suite nobody may lease is left out.
pub(crate) fn queued_for_branch(
    state: &AppState,
    repo: &str,
    branch: &str,
    commit: &str,
    work: &[WorkSpec],
    cause: &str,
) -> Vec<NewRun> {
    let now = state.clock.now();
    work.iter()
        .filter(|w| w.leasable())
        .map(|w| NewRun {
            id: run_id(cause, commit, w, now),
            repo: repo.to_owned(),
            repository: w.repository.clone(),
            suite: w.suite.clone(),
            environment: w.environment.clone(),
            commit: commit.to_owned(),
            target: RunFor::Branch(branch.to_owned()),
            definition: w.definition.to_string(),
            runners: w.runners.clone(),
            capsule_signers: w.capsule_signers.clone(),
            queued_at_ms: millis(now),
            cause: Some(cause.to_owned()),
            base_version: w.base_version.clone(),
        })
        .collect()
}

/// Whether `work` holds anything [`enqueue`] would queue.
pub(crate) fn queues_any(work: &[WorkSpec]) -> bool {
    work.iter().any(WorkSpec::leasable)
}

/// Cancels the unfinished runs of `proposal` not about `keep_head` (all of them when
/// `None`), logging `run_finished` (outcome `cancelled`) for each, caused by `actor`.
pub(crate) async fn cancel(
    state: &AppState,
    tx: &mut Tx,
    proposal: &str,
    keep_head: Option<&str>,
    actor: &str,
    why: &str,
) -> Result<(), ApiError> {
    let now = state.clock.now();
    let cancelled = tx.cancel_runs(proposal, keep_head, millis(now)).await?;
    if cancelled.is_empty() {
        return Ok(());
    }
    let at = state.clock.rfc3339();
    let mut events = Vec::with_capacity(cancelled.len());
    for run in &cancelled {
        let mut data = run_data(run);
        data["reason"] = json!(why);
        events.push(event(EventKind::RunFinished, &at, &run.id, actor, data)?);
    }
    for e in &events {
        tx.append_event(e).await?;
    }
    Ok(())
}

/// What every run event says about its run.
fn run_data(run: &Run) -> Value {
    let (proposal, branch) = match &run.target {
        RunFor::Proposal(p) => (Some(p.as_str()), None),
        RunFor::Branch(b) => (None, Some(b.as_str())),
    };
    json!({
        "suite": run.suite,
        "environment": run.environment,
        "repository": run.repository,
        "commit": run.commit,
        "proposal": proposal,
        "branch": branch,
        "attempt": run.attempt,
        "runner": run.runner,
        "outcome": run.outcome.map(RunOutcome::as_str),
        "envelopes": run.envelopes,
        "cause": run.cause,
        "suite_source": run.base_version.as_ref().map(|b| &b.source),
    })
}

// ---- Reading runs ----

fn state_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(RunState::ALL.map(RunState::as_str)))
        .build()
}

fn outcome_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(RunOutcome::ALL.map(RunOutcome::as_str)))
        .build()
}

/// Test counts of a finished run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tests {
    pub passed: u64,
    pub failed: u64,
    #[serde(default)]
    pub skipped: u64,
}

/// A run: one runner executing one suite against one commit in one environment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunView {
    pub id: String,
    /// The server's name of the repository.
    pub repo: String,
    /// The `[repository] name` its evidence must carry.
    pub repository: String,
    pub suite: String,
    pub environment: String,
    pub commit: String,
    /// The proposal whose head it validates, or null for a branch's run.
    pub proposal: Option<String>,
    pub branch: Option<String>,
    #[schema(schema_with = state_schema)]
    pub state: String,
    /// Set once finished.
    #[schema(schema_with = outcome_schema)]
    pub outcome: Option<String>,
    /// The runner principal holding (or that last held) the lease.
    pub runner: Option<String>,
    /// Leases taken so far (an expired lease taken over by another runner counts one more).
    pub attempt: u32,
    /// RFC 3339 with milliseconds, the server's clock.
    pub lease_expires_at: Option<String>,
    pub heartbeat_at: Option<String>,
    pub queued_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub tests: Option<Tests>,
    pub duration_ms: Option<u64>,
    /// SHA-256 digests of the evidence envelopes the run produced.
    pub envelopes: Vec<String>,
    /// Why a branch's run was queued: `schedule:NAME` or `merge:p-…`; null for a proposal's.
    pub cause: Option<String>,
    /// A base-version run of a self-validated suite: the commit (the proposal's base) whose
    /// suite files ran against `commit`. Null for a run of the suite as `commit` has it.
    pub suite_source: Option<String>,
    /// The paths a base-version run restored from `suite_source` (empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suite_files: Vec<String>,
}

impl From<&Run> for RunView {
    fn from(run: &Run) -> RunView {
        let (proposal, branch) = match &run.target {
            RunFor::Proposal(p) => (Some(p.clone()), None),
            RunFor::Branch(b) => (None, Some(b.clone())),
        };
        RunView {
            id: run.id.clone(),
            repo: run.repo.clone(),
            repository: run.repository.clone(),
            suite: run.suite.clone(),
            environment: run.environment.clone(),
            commit: run.commit.clone(),
            proposal,
            branch,
            state: run.state.as_str().to_owned(),
            outcome: run.outcome.map(|o| o.as_str().to_owned()),
            runner: run.runner.clone(),
            attempt: run.attempt,
            lease_expires_at: run.lease_until_ms.map(rfc3339_ms),
            heartbeat_at: run.heartbeat_at_ms.map(rfc3339_ms),
            queued_at: rfc3339_ms(run.queued_at_ms),
            started_at: run.started_at_ms.map(rfc3339_ms),
            finished_at: run.finished_at_ms.map(rfc3339_ms),
            tests: run.tests.map(|t| Tests {
                passed: t.passed,
                failed: t.failed,
                skipped: t.skipped,
            }),
            duration_ms: run.duration_ms,
            envelopes: run.envelopes.clone(),
            cause: run.cause.clone(),
            suite_source: run.base_version.as_ref().map(|b| b.source.clone()),
            suite_files: run
                .base_version
                .as_ref()
                .map(|b| b.files.clone())
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// `queued`, `running` or `finished`.
    pub state: Option<String>,
    pub suite: Option<String>,
    pub environment: Option<String>,
    /// Only the runs of this proposal.
    pub proposal: Option<String>,
    /// Only the runs of this branch (scheduled and post-merge runs).
    pub branch: Option<String>,
    /// Only runs queued at or after this RFC 3339 time.
    pub since: Option<String>,
    /// At most this many runs, newest first (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only runs queued before this run (the previous page's `next_before`).
    pub before: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunsView {
    pub runs: Vec<RunView>,
    /// Pass as `before` for the next, older page; absent on the last page.
    pub next_before: Option<String>,
}

/// Runs, newest first (every role but runner).
#[utoipa::path(
    get, path = "/v1/runs", params(RunsQuery),
    responses(
        (status = 200, body = RunsView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    query: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RunsView>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::Invalid(format!(
            "limit: {limit} is not between 1 and {MAX_PAGE}"
        )));
    }
    let run_state = query
        .state
        .as_deref()
        .map(str::parse::<RunState>)
        .transpose()
        .map_err(|e| ApiError::Invalid(format!("state: {e}")))?;
    let since_ms = query
        .since
        .as_deref()
        .map(|s| {
            humantime::parse_rfc3339_weak(s).map(millis).map_err(|e| {
                ApiError::Invalid(format!("since: {s:?} is not an RFC 3339 time: {e}"))
            })
        })
        .transpose()?;
    let before = match &query.before {
        None => None,
        Some(id) => {
            let run = state
                .store
                .run(id)
                .await?
                .ok_or_else(|| ApiError::Invalid(format!("before: no run {id}")))?;
            Some((run.queued_at_ms, run.id))
        }
    };
    let runs = state
        .store
        .runs(&RunFilter {
            state: run_state,
            suite: query.suite,
            environment: query.environment,
            proposal: query.proposal,
            branch: query.branch,
            since_ms,
            before,
            limit,
        })
        .await?;
    let next_before = (runs.len() == usize::try_from(limit).unwrap_or(usize::MAX))
        .then(|| runs.last().map(|r| r.id.clone()))
        .flatten();
    Ok(Json(RunsView {
        runs: runs.iter().map(RunView::from).collect(),
        next_before,
    }))
}

/// One run.
#[utoipa::path(
    get, path = "/v1/runs/{id}",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, body = RunView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    let run = state
        .store
        .run(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no run {id}")))?;
    Ok(Json(RunView::from(&run)))
}

// ---- The work routes (runners) ----

/// The runner name a caller leases as: a runner token's principal. Every other caller is
/// refused, admins too.
fn runner_of(caller: &Caller) -> Result<String, ApiError> {
    match (&caller.principal, caller.role) {
        (Principal::Runner(name), Role::Runner) => Ok(name.clone()),
        _ => Err(ApiError::Forbidden(format!(
            "{} is not a runner with a runner token: only runners lease and run work",
            caller.principal
        ))),
    }
}

/// `POST /v1/work/lease`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// The `[repository] name` this runner attests for (its clone): only that repository's
    /// work is leased.
    pub repository: String,
    /// The environments this runner serves.
    #[schema(min_items = 1, max_items = 16)]
    pub environments: Vec<String>,
    /// At most this many items (1 to 16, default 1).
    #[schema(minimum = 1, maximum = 16)]
    #[serde(default)]
    pub max: Option<u32>,
    /// A capsule runner's capsule and its proof of holding the capsule's runner key: checked
    /// on every lease, it opens the items the capsule covers (docs/fleet.md, "Edge
    /// capsules").
    #[serde(default)]
    pub capsule: Option<CapsuleLease>,
}

/// The capsule a runner leases under.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapsuleLease {
    /// Base64 of the capsule file's bytes (a DSSE envelope).
    pub envelope: String,
    /// Base64 of the capsule's runner key's ed25519 signature over the capsule's digest and
    /// the SHA-256 of the bearer token (DSSE, payload type
    /// `application/vnd.countersign.capsule-lease.v1`): what `countersign runner serve
    /// --capsule` sends. A capsule is public (every envelope carries it); the proof is what
    /// makes it this runner's.
    pub proof: String,
}

/// The suite's definition at the base, as the runner executes it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Definition {
    /// The argv; never run through a shell.
    pub command: Vec<String>,
    /// Repository-relative directory to run in.
    pub workdir: String,
    pub timeout_seconds: u64,
    pub reports: Reports,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct Reports {
    #[serde(default)]
    pub junit: Vec<String>,
    #[serde(default)]
    pub sarif: Vec<String>,
    #[serde(default)]
    pub vex: Vec<String>,
}

/// One leased work item.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkItem {
    /// The run's id.
    pub id: String,
    /// The lease this runner holds: name it in heartbeat, finish and return.
    pub attempt: u32,
    pub repository: String,
    pub suite: String,
    pub environment: String,
    pub commit: String,
    pub proposal: Option<String>,
    pub branch: Option<String>,
    /// RFC 3339 with milliseconds, the server's clock.
    pub lease_expires_at: String,
    /// Seconds of lease from now: heartbeat well within it.
    pub lease_seconds: u64,
    pub definition: Definition,
    /// A base-version run: check `commit` out, restore `suite_files` from this commit (a
    /// path it lacks is removed), run the suite, and attest naming this commit as the
    /// suite source (`attest --suite-source`). Null: run the suite as `commit` has it.
    #[serde(default)]
    pub suite_source: Option<String>,
    /// The paths to restore from `suite_source`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suite_files: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Leased {
    pub items: Vec<WorkItem>,
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn work_item(state: &AppState, run: &Run) -> Result<WorkItem, ApiError> {
    let definition: Definition = serde_json::from_str(&run.definition)
        .map_err(|e| ApiError::Internal(format!("run {}: definition: {e}", run.id)))?;
    let (proposal, branch) = match &run.target {
        RunFor::Proposal(p) => (Some(p.clone()), None),
        RunFor::Branch(b) => (None, Some(b.clone())),
    };
    Ok(WorkItem {
        id: run.id.clone(),
        attempt: run.attempt,
        repository: run.repository.clone(),
        suite: run.suite.clone(),
        environment: run.environment.clone(),
        commit: run.commit.clone(),
        proposal,
        branch,
        lease_expires_at: run.lease_until_ms.map(rfc3339_ms).unwrap_or_default(),
        lease_seconds: state.lease.as_secs(),
        definition,
        suite_source: run.base_version.as_ref().map(|b| b.source.clone()),
        suite_files: run
            .base_version
            .as_ref()
            .map(|b| b.files.clone())
            .unwrap_or_default(),
    })
}

/// Lease work: up to `max` queued items (or items whose lease expired) of the runner's
/// repository and environments that this runner may attest. Runner tokens only.
#[utoipa::path(
    post, path = "/v1/work/lease", request_body = LeaseRequest,
    responses(
        (status = 200, body = Leased, description = "Possibly no items: poll again later"),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
async fn lease(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<LeaseRequest>,
) -> Result<Json<Leased>, ApiError> {
    let runner = runner_of(&caller)?;
    let max = body.max.unwrap_or(1);
    if !(1..=MAX_LEASE_ITEMS).contains(&max) {
        return Err(ApiError::Invalid(format!(
            "max: {max} is not between 1 and {MAX_LEASE_ITEMS}"
        )));
    }
    if body.environments.is_empty() || body.environments.len() > MAX_ENVIRONMENTS {
        return Err(ApiError::Invalid(format!(
            "environments: name 1 to {MAX_ENVIRONMENTS} environments"
        )));
    }
    if let Some(bad) = body.environments.iter().find(|e| !is_name(e)) {
        return Err(ApiError::Invalid(format!(
            "environments: {bad:?} is not an environment name"
        )));
    }
    if body.repository.trim().is_empty() {
        return Err(ApiError::Invalid(
            "repository: name the repository this runner attests for".into(),
        ));
    }
    let proven = match &body.capsule {
        Some(capsule) => Some(prove_capsule(&state, &caller, &body, capsule).await?),
        None => None,
    };
    let principal = caller.principal.to_string();
    let now = millis(state.clock.now());
    let lease_ms = u64::try_from(state.lease.as_millis()).unwrap_or(u64::MAX);
    let at = state.clock.rfc3339();
    let ask = LeaseAsk {
        runner: &runner,
        capsule: proven.as_ref().map(|p| CapsuleAsk {
            signer: &p.signer,
            suites: &p.suites,
            environment: &p.environment,
        }),
        principal: &principal,
        repository: &body.repository,
        environments: &body.environments,
        max,
        now_ms: now,
        lease_ms,
    };
    // Runners poll often: a poll that finds nothing only reads (no write transaction, no
    // wait on other writers). The lease itself is still taken in the
    // transaction below, exactly once.
    if !state.store.any_leasable(&ask).await? {
        return Ok(Json(Leased { items: Vec::new() }));
    }
    let mut tx = state.store.begin().await?;
    let runs = tx.lease_runs(&ask).await?;
    let mut events = Vec::with_capacity(runs.len());
    for run in &runs {
        let mut data = run_data(run);
        data["lease_expires_at"] = json!(run.lease_until_ms.map(rfc3339_ms));
        if let Some(p) = &proven {
            data["capsule"] = json!(format!("sha256:{}", p.digest));
        }
        events.push(event(
            EventKind::RunStarted,
            &at,
            &run.id,
            &principal,
            data,
        )?);
    }
    for e in &events {
        tx.append_event(e).await?;
    }
    tx.commit().await?;
    let items = runs
        .iter()
        .map(|run| work_item(&state, run))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(Leased { items }))
}

/// A capsule checked for one lease: what it lets its runner lease.
struct Proven {
    /// The signer's public key, hex: the runs its base delegated to it name it.
    signer: String,
    /// The capsule's suites its signer may delegate (at the protected tip).
    suites: Vec<String>,
    environment: String,
    /// The capsule's digest, recorded in each `run_started` event.
    digest: String,
}

/// A capsule refused for a lease: 403, the reason named as in evidence refusals.
fn capsule_refused(refusal: &countersign_evidence::Refusal) -> ApiError {
    ApiError::Forbidden(format!("capsule refused ({}): {refusal}", refusal.reason()))
}

/// Judges the capsule a runner leases under, on every lease: its lease proof (the capsule's
/// runner key signed this token's digest, so a capsule copied from someone's evidence leases
/// nothing), in force at the server's clock, for the environments asked, signed by a
/// `[[capsules.signers]]` key of the repository's protected `main` (else `master`) whose entry
/// delegates its environment and some of its suites. What it opens is narrowed again in the
/// store: only runs whose own base named this signer for their suite and environment.
async fn prove_capsule(
    state: &AppState,
    caller: &Caller,
    body: &LeaseRequest,
    lease: &CapsuleLease,
) -> Result<Proven, ApiError> {
    use base64::Engine as _;
    use countersign_evidence::capsule::{Capsule, MAX_CAPSULE_BYTES};
    use countersign_evidence::{PublicKey, Refusal};
    let Some(token) = &caller.token_sha256 else {
        return Err(ApiError::Forbidden(
            "a capsule is leased under with an API token (the lease proof signs its digest)".into(),
        ));
    };
    if lease.envelope.len() > MAX_CAPSULE_BYTES / 3 * 4 + 4 {
        return Err(ApiError::Invalid(format!(
            "capsule.envelope: over the {MAX_CAPSULE_BYTES}-byte capsule limit"
        )));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(lease.envelope.trim())
        .map_err(|_| ApiError::Invalid("capsule.envelope: not base64".into()))?;
    let claimed = Capsule::read(&bytes).map_err(|r| capsule_refused(&r))?;
    // Who holds the runner key comes first: nothing else about a capsule someone merely
    // copied is worth telling them.
    claimed
        .check_lease_proof(token, &lease.proof)
        .map_err(|r| capsule_refused(&r))?;
    let now = jiff::Timestamp::try_from(state.clock.now()).map_err(|_| {
        capsule_refused(&Refusal::CapsuleExpired {
            expires_at: claimed.expires_at.to_string(),
            now: "out of range".into(),
        })
    })?;
    claimed
        .check_valid_at(now)
        .map_err(|r| capsule_refused(&r))?;
    if let Some(other) = body
        .environments
        .iter()
        .find(|e| **e != claimed.environment)
    {
        return Err(capsule_refused(&Refusal::CapsuleOtherEnvironment {
            found: other.clone(),
            allowed: claimed.environment.clone(),
        }));
    }
    let signers = signers_in_force(state, &body.repository).await?;
    let (capsule, signer) = Capsule::open(&bytes, &signers).map_err(|r| capsule_refused(&r))?;
    if !signer.environments.contains(&capsule.environment) {
        return Err(capsule_refused(&Refusal::CapsuleNotDelegated {
            signer: signer.name.clone(),
            what: format!("environment {:?}", capsule.environment),
        }));
    }
    let suites: Vec<String> = capsule
        .suites
        .intersection(&signer.suites)
        .cloned()
        .collect();
    if suites.is_empty() {
        return Err(capsule_refused(&Refusal::CapsuleNotDelegated {
            signer: signer.name.clone(),
            what: format!(
                "any of the suites {}",
                capsule
                    .suites
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }));
    }
    Ok(Proven {
        signer: PublicKey::to_hex(&signer.key),
        suites,
        environment: capsule.environment,
        digest: capsule.digest,
    })
}

/// The `[[capsules.signers]]` in force for `[repository] name` `repository`: those of the
/// protected `main` (else `master`) tip of each repository this server governs under that
/// name. None when no such repository is governed here (every capsule is then untrusted).
async fn signers_in_force(
    state: &AppState,
    repository: &str,
) -> Result<Vec<countersign_evidence::CapsuleSigner>, ApiError> {
    use countersign_decide::protected::ROOT_BRANCHES;
    let mut signers = Vec::new();
    for path in state.repos.values() {
        let pipeline = std::sync::Arc::clone(&state.pipeline);
        let at = path.clone();
        let name = repository.to_owned();
        let found = state
            .pipeline
            .blocking_for(path, move || -> Result<_, DecideError> {
                let git = countersign_repo::Repo::open_shared(&at)?;
                let protected = pipeline.protected(&at, &git)?;
                let Some(tip) = ROOT_BRANCHES.iter().find_map(|root| {
                    protected
                        .branches
                        .iter()
                        .find(|b| b.name == *root)
                        .and_then(|b| b.tip.clone())
                }) else {
                    return Ok(Vec::new());
                };
                let loaded = pipeline.governed(&at, &git, &tip)?;
                let config = &loaded.state.config;
                if config.repository.name.as_deref() != Some(name.as_str()) {
                    return Ok(Vec::new());
                }
                countersign_decide::evidence::capsule_signers(config)
            })
            .await?;
        match found {
            Ok(found) => signers.extend(found),
            // A repository whose rules cannot be read trusts no capsule (fail closed), and
            // does not stop the others' runners from leasing.
            Err(error) => {
                tracing::warn!(path = %path.display(), error = %error.chain(), "capsule signers not read");
            }
        }
    }
    Ok(signers)
}

/// The lease a runner names in heartbeat and return.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseRef {
    /// The `attempt` of the work item as leased.
    pub attempt: u32,
}

/// `POST /v1/work/{id}/finish`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishRequest {
    pub attempt: u32,
    /// `passed`, `failed`, `errored` or `timed_out` (only the server cancels).
    pub outcome: String,
    #[serde(default)]
    pub tests: Option<Tests>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// SHA-256 digests (64 lower-case hex digits) of the envelopes pushed for this run.
    #[serde(default)]
    #[schema(max_items = 16)]
    pub envelopes: Vec<String>,
}

fn refusal(id: &str, refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::NotFound => ApiError::NotFound(format!("no run {id}")),
        Refusal::NotHolder => ApiError::Conflict(format!(
            "run {id} is not leased to this runner under this attempt (the lease expired and \
             another runner took it, or it was never leased to you): stop working on it"
        )),
        Refusal::Finished(outcome) => {
            ApiError::Conflict(format!("run {id} is over ({outcome}): stop working on it"))
        }
    }
}

/// Extend the lease of a work item this runner holds.
#[utoipa::path(
    post, path = "/v1/work/{id}/heartbeat", request_body = LeaseRef,
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, body = WorkItem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Not held by this runner (expired and taken, or cancelled)"),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<LeaseRef>,
) -> Result<Json<WorkItem>, ApiError> {
    runner_of(&caller)?;
    let principal = caller.principal.to_string();
    let now = millis(state.clock.now());
    let lease_ms = u64::try_from(state.lease.as_millis()).unwrap_or(u64::MAX);
    let mut tx = state.store.begin().await?;
    let run = tx
        .heartbeat_run(&id, &principal, body.attempt, now, lease_ms)
        .await?
        .map_err(|r| refusal(&id, r))?;
    tx.commit().await?;
    Ok(Json(work_item(&state, &run)?))
}

/// Finish a work item this runner holds: its outcome, test counts and the digests of the
/// envelopes it pushed.
#[utoipa::path(
    post, path = "/v1/work/{id}/finish", request_body = FinishRequest,
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, body = RunView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Not held by this runner (expired and taken, or cancelled)"),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
async fn finish(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<FinishRequest>,
) -> Result<Json<RunView>, ApiError> {
    runner_of(&caller)?;
    let outcome: RunOutcome = body
        .outcome
        .parse()
        .map_err(|e| ApiError::Invalid(format!("outcome: {e}")))?;
    if outcome == RunOutcome::Cancelled {
        return Err(ApiError::Invalid(
            "outcome: only the server cancels a run; give it back (`return`) instead".into(),
        ));
    }
    if body.envelopes.len() > MAX_ENVELOPES {
        return Err(ApiError::Invalid(format!(
            "envelopes: at most {MAX_ENVELOPES} digests"
        )));
    }
    if let Some(bad) = body.envelopes.iter().find(|d| {
        d.len() != 64
            || !d
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }) {
        return Err(ApiError::Invalid(format!(
            "envelopes: {bad:?} is not a SHA-256 digest (64 lower-case hex digits)"
        )));
    }
    let principal = caller.principal.to_string();
    let now = millis(state.clock.now());
    let at = state.clock.rfc3339();
    let finish = Finish {
        outcome,
        tests: body.tests.map(|t| TestCounts {
            passed: t.passed,
            failed: t.failed,
            skipped: t.skipped,
        }),
        duration_ms: body.duration_ms,
        envelopes: body.envelopes,
    };
    let mut tx = state.store.begin().await?;
    let run = tx
        .finish_run(&id, &principal, body.attempt, &finish, now)
        .await?
        .map_err(|r| refusal(&id, r))?;
    let mut data = run_data(&run);
    data["tests"] = json!(body.tests);
    data["duration_ms"] = json!(run.duration_ms);
    tx.append_event(&event(
        EventKind::RunFinished,
        &at,
        &run.id,
        &principal,
        data,
    )?)
    .await?;
    tx.commit().await?;
    Ok(Json(RunView::from(&run)))
}

/// Give a work item back unfinished (a runner shutting down): it is queued again.
#[utoipa::path(
    post, path = "/v1/work/{id}/return", request_body = LeaseRef,
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, body = RunView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Not held by this runner"),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
async fn give_back(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<LeaseRef>,
) -> Result<Json<RunView>, ApiError> {
    runner_of(&caller)?;
    let principal = caller.principal.to_string();
    let at = state.clock.rfc3339();
    let mut tx = state.store.begin().await?;
    let run = tx
        .return_run(&id, &principal, body.attempt)
        .await?
        .map_err(|r| refusal(&id, r))?;
    let mut data = run_data(&run);
    data["attempt"] = json!(body.attempt);
    tx.append_event(&event(
        EventKind::RunReturned,
        &at,
        &run.id,
        &principal,
        data,
    )?)
    .await?;
    tx.commit().await?;
    Ok(Json(RunView::from(&run)))
}
