//! Schedules: `[schedules.NAME]` read from each protected branch's own tip, fired by the
//! server's clock, and `GET /v1/schedules` (what is scheduled, when it is next due, when it
//! last fired).
//!
//! [`tick`] runs in a task of [`crate::run`] every [`crate::AppState::schedule_tick`] of
//! real time, and reads the time from the state's injected [`crate::Clock`] (tests move it
//! and call [`tick`] themselves). For each schedule in force it takes the latest due time at
//! or before now: the `schedule_fires` row of that (repository, schedule, due time) is
//! inserted with `ON CONFLICT DO NOTHING` in the transaction that queues the work items
//! (one per suite and environment, for the branch's tip), so however many servers share the
//! database and tick, a due time is queued exactly once. After downtime only the latest due
//! time is queued (the ones missed before it are not made up), and a schedule seen for the
//! first time fires for its latest due time at once.
//!
//! What runs, and who may lease it, comes from the branch's tip: protected history, so a
//! proposal never schedules anything. Not here: deriving findings from what the runs find
//! (`findings`).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use countersign_store::ScheduleFire;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::pipeline::Scheduled;

/// How often (real time) `serve` looks for due schedules unless told otherwise.
pub const DEFAULT_TICK: Duration = Duration::from_secs(15);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

use crate::runs::{millis, rfc3339_ms};

/// One due time this server queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub repo: String,
    pub schedule: String,
    pub due_at_ms: i64,
    pub commit: String,
    pub runs: usize,
}

/// The schedules in force in every configured repository. Blocking work (git) off the async
/// workers.
async fn in_force(state: &AppState) -> Result<Vec<(String, Vec<Scheduled>)>, ApiError> {
    let mut out = Vec::with_capacity(state.repos.len());
    for (name, path) in state.repos.iter() {
        let (pipeline, path) = (std::sync::Arc::clone(&state.pipeline), path.clone());
        let scheduled = state
            .pipeline
            .blocking(move || pipeline.schedules(&path))
            .await?;
        match scheduled {
            Ok(scheduled) => out.push((name.clone(), scheduled)),
            // One unreadable repository does not stop the others' schedules.
            Err(error) => {
                tracing::warn!(repo = %name, error = %error.chain(), "schedules not read");
            }
        }
    }
    Ok(out)
}

/// Queues every schedule's latest due time not queued yet (by any server on the database),
/// as of the state's clock; returns what this call queued.
pub async fn tick(state: &AppState) -> Result<Vec<Fired>, ApiError> {
    let now = state.clock.now();
    let mut fired = Vec::new();
    for (repo, scheduled) in in_force(state).await? {
        // A read first: a due time taken already (the common case, every tick between two
        // due times) costs no write transaction, which would wait in the log's write order.
        let fires = state.store.latest_schedule_fires(&repo).await?;
        for entry in scheduled {
            let Some(due) = entry.schedule.due_at_or_before(now) else {
                continue;
            };
            let due_at_ms = millis(due);
            if fires
                .iter()
                .any(|f| f.schedule == entry.schedule.name && f.due_at_ms >= due_at_ms)
            {
                continue;
            }
            let cause = format!("schedule:{}", entry.schedule.name);
            let mut tx = state.store.begin().await?;
            let runs = crate::runs::queued_for_branch(
                state,
                &repo,
                &entry.schedule.branch,
                &entry.tip,
                &entry.work,
                &cause,
            );
            let taken = tx
                .fire_schedule(&ScheduleFire {
                    repo: repo.clone(),
                    schedule: entry.schedule.name.clone(),
                    due_at_ms,
                    branch: entry.schedule.branch.clone(),
                    commit: entry.tip.clone(),
                    fired_at_ms: millis(now),
                    runs: u64::try_from(runs.len()).unwrap_or(u64::MAX),
                })
                .await?;
            if !taken {
                tx.rollback().await?;
                continue;
            }
            tx.enqueue_runs(&runs).await?;
            tx.commit().await?;
            tracing::info!(repo = %repo, schedule = %entry.schedule.name, due = %rfc3339_ms(due_at_ms), runs = runs.len(), "schedule fired");
            fired.push(Fired {
                repo: repo.clone(),
                schedule: entry.schedule.name.clone(),
                due_at_ms,
                commit: entry.tip.clone(),
                runs: runs.len(),
            });
        }
    }
    Ok(fired)
}

/// Ticks every `every` (real time) until `stop` says so; errors are logged, and the next
/// tick tries again.
pub(crate) fn spawn(
    state: &AppState,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let every = state.schedule_tick?;
    let state = state.clone();
    Some(tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            if let Err(error) = tick(&state).await {
                tracing::warn!(%error, "schedules: tick failed");
            }
        }
    }))
}

/// A due time a schedule fired for.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FiredView {
    /// The due time, RFC 3339 with milliseconds.
    pub due_at: String,
    /// When a server queued it, by its clock.
    pub fired_at: String,
    /// The branch's tip it queued.
    pub commit: String,
    /// Work items queued.
    pub runs: u64,
}

/// A schedule in force.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScheduleView {
    /// The server's name of the repository.
    pub repo: String,
    pub name: String,
    pub branch: String,
    /// The branch's tip now, whose `countersign.toml` declares the schedule.
    pub commit: String,
    /// The five-field cron expression.
    pub cron: String,
    /// The IANA time zone it is read in.
    pub timezone: String,
    pub suites: Vec<String>,
    /// The one environment, or null for each suite's own.
    pub environment: Option<String>,
    /// The next due time after now (RFC 3339, milliseconds), by the server's clock; null when
    /// the expression never falls due again.
    pub next_due_at: Option<String>,
    /// The latest due time queued, by any server.
    pub last_fired: Option<FiredView>,
    /// Suites of the schedule that no runner at the tip may attest: never queued.
    pub unrunnable: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SchedulesView {
    pub schedules: Vec<ScheduleView>,
}

/// The schedules in force (each protected branch's own `[schedules]`), with their next due
/// time and the latest one queued. Any valid token may read them.
#[utoipa::path(
    get, path = "/v1/schedules",
    responses((status = 200, body = SchedulesView), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<SchedulesView>, ApiError> {
    let now = state.clock.now();
    let mut schedules = Vec::new();
    for (repo, scheduled) in in_force(&state).await? {
        let fires = state.store.latest_schedule_fires(&repo).await?;
        for entry in scheduled {
            let schedule = &entry.schedule;
            let last_fired =
                fires
                    .iter()
                    .find(|f| f.schedule == schedule.name)
                    .map(|f| FiredView {
                        due_at: rfc3339_ms(f.due_at_ms),
                        fired_at: rfc3339_ms(f.fired_at_ms),
                        commit: f.commit.clone(),
                        runs: f.runs,
                    });
            let unrunnable = schedule
                .suites
                .iter()
                .filter(|s| !entry.work.iter().any(|w| &w.suite == *s && w.leasable()))
                .cloned()
                .collect();
            schedules.push(ScheduleView {
                repo: repo.clone(),
                name: schedule.name.clone(),
                branch: schedule.branch.clone(),
                commit: entry.tip.clone(),
                cron: schedule.cron.clone(),
                timezone: schedule.timezone.clone(),
                suites: schedule.suites.clone(),
                environment: schedule.environment.clone(),
                next_due_at: schedule.due_after(now).map(|t| rfc3339_ms(millis(t))),
                last_fired,
                unrunnable,
            });
        }
    }
    Ok(Json(SchedulesView { schedules }))
}
