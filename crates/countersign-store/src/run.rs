//! Runs of the fleet: work items queued from a validation plan ([`Tx::enqueue_runs`]),
//! leased by exactly one runner ([`Tx::lease_runs`]), kept alive by heartbeats, finished,
//! given back or cancelled; and read back ([`Store::runs`], [`Store::run`]).
//!
//! Leasing is safe with several server processes on one database: on PostgreSQL the rows
//! are picked with `FOR UPDATE SKIP LOCKED`, so two leases never pick the same row and never
//! wait on each other; on SQLite the lease is one `UPDATE … RETURNING` under the database's
//! single write lock. A row is leasable when it is `queued`, or `running` with a lease that
//! has expired (its runner died): the new lease counts a new `attempt`, and only the holder
//! of the current attempt may heartbeat, finish or give it back. Times are the caller's (the
//! server's injected clock), in Unix milliseconds.
//!
//! What a run executes and who may lease it are decided by the server from the base's
//! `countersign.toml`; this module stores them and never reads a repository.

use std::fmt;
use std::str::FromStr;

use crate::backend::{Conn, dispatch, int, uint};
use crate::error::{Error, db};
use crate::store::Store;
use crate::tx::Tx;

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RunState {
    /// A work item no runner holds.
    Queued,
    /// Leased by a runner, executing.
    Running,
    /// Over: see its [`RunOutcome`].
    Finished,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RunOutcome {
    /// The command exited 0 and its reports hold no failure.
    Passed,
    /// The command failed, or a report holds a failure.
    Failed,
    /// The runner could not run the suite (no checkout, no command, unreadable reports).
    Errored,
    /// The suite ran past its timeout and was killed.
    TimedOut,
    /// The server cancelled it (the proposal's head moved, or it was closed).
    Cancelled,
}

impl RunState {
    pub const ALL: [RunState; 3] = [RunState::Queued, RunState::Running, RunState::Finished];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Finished => "finished",
        }
    }
}

impl RunOutcome {
    pub const ALL: [RunOutcome; 5] = [
        RunOutcome::Passed,
        RunOutcome::Failed,
        RunOutcome::Errored,
        RunOutcome::TimedOut,
        RunOutcome::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Passed => "passed",
            RunOutcome::Failed => "failed",
            RunOutcome::Errored => "errored",
            RunOutcome::TimedOut => "timed_out",
            RunOutcome::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunState {
    type Err = String;
    fn from_str(s: &str) -> Result<RunState, String> {
        RunState::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown run state {s:?}: expected queued, running or finished"))
    }
}

impl FromStr for RunOutcome {
    type Err = String;
    fn from_str(s: &str) -> Result<RunOutcome, String> {
        RunOutcome::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown run outcome {s:?}: expected passed, failed, errored, timed_out or cancelled"
                )
            })
    }
}

/// What a run was queued for: a proposal's head, or (later) a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunFor {
    Proposal(String),
    Branch(String),
}

/// A work item to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    pub id: String,
    /// The server's name of the repository.
    pub repo: String,
    /// The base's `[repository] name`, which the run's evidence must carry.
    pub repository: String,
    pub suite: String,
    pub environment: String,
    pub commit: String,
    pub target: RunFor,
    /// The suite's definition as JSON (what the runner executes).
    pub definition: String,
    /// The `[[runners]]` names that may lease it.
    pub runners: Vec<String>,
    /// The `[[capsules.signers]]` of the base that delegate its suite in its environment
    /// (their public keys, 64 lower-case hex digits): a runner leasing under a capsule one
    /// of them signed, covering the suite and environment, may lease it too.
    pub capsule_signers: Vec<String>,
    pub queued_at_ms: i64,
    /// Why a branch's run was queued (`schedule:NAME`, `merge:p-…`); `None` for a proposal's.
    pub cause: Option<String>,
    /// A base-version run: the suite files of `source` restored over `commit`.
    pub base_version: Option<BaseVersion>,
}

/// What makes a run a base-version run: the commit whose suite files it executes against
/// the run's commit, and the paths restored from it (a path absent there is removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseVersion {
    pub source: String,
    pub files: Vec<String>,
}

/// What a runner asks to lease.
#[derive(Debug, Clone, Copy)]
pub struct LeaseAsk<'a> {
    /// Its `[[runners]]` name: runs that name it may be leased.
    pub runner: &'a str,
    /// The capsule it proved (verified by the caller): runs delegable to the capsule's
    /// signer, of one of its suites in its environment, may be leased too.
    pub capsule: Option<CapsuleAsk<'a>>,
    /// Its principal (`runner:NAME`), recorded as the holder.
    pub principal: &'a str,
    /// The `[repository] name` it attests for.
    pub repository: &'a str,
    pub environments: &'a [String],
    pub max: u32,
    /// The server's clock, Unix milliseconds: leases that ended before it are expired.
    pub now_ms: i64,
    /// How long the new leases last.
    pub lease_ms: u64,
}

/// What a verified capsule lets its runner lease, besides what its `[[runners]]` name does.
#[derive(Debug, Clone, Copy)]
pub struct CapsuleAsk<'a> {
    /// The signer's public key (64 lower-case hex digits), as [`NewRun::capsule_signers`]
    /// names it.
    pub signer: &'a str,
    /// The suites the capsule covers (within what its signer may delegate).
    pub suites: &'a [String],
    /// The capsule's one environment.
    pub environment: &'a str,
}

/// Test counts a finished run reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TestCounts {
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub id: String,
    pub repo: String,
    pub repository: String,
    pub suite: String,
    pub environment: String,
    pub commit: String,
    pub target: RunFor,
    pub definition: String,
    pub state: RunState,
    pub outcome: Option<RunOutcome>,
    /// The runner principal holding (or that last held) the lease.
    pub runner: Option<String>,
    /// Leases taken so far; the holder of the current one names it.
    pub attempt: u32,
    pub lease_until_ms: Option<i64>,
    pub heartbeat_at_ms: Option<i64>,
    pub queued_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub tests: Option<TestCounts>,
    pub duration_ms: Option<u64>,
    /// Digests (lower-case hex SHA-256) of the envelopes the run produced.
    pub envelopes: Vec<String>,
    /// Why a branch's run was queued (`schedule:NAME`, `merge:p-…`); `None` for a proposal's.
    pub cause: Option<String>,
    /// A base-version run's suite source and the files restored from it.
    pub base_version: Option<BaseVersion>,
}

/// What a runner reports when it finishes a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    pub outcome: RunOutcome,
    pub tests: Option<TestCounts>,
    pub duration_ms: Option<u64>,
    pub envelopes: Vec<String>,
}

/// Which runs to list; every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub state: Option<RunState>,
    pub suite: Option<String>,
    pub environment: Option<String>,
    pub proposal: Option<String>,
    /// Only the runs of this branch (scheduled and post-merge runs).
    pub branch: Option<String>,
    /// Queued at or after, Unix milliseconds.
    pub since_ms: Option<i64>,
    /// Queued strictly before this run id's position (newest first paging): `(queued_at, id)`.
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

/// Why a runner's call on a run was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotFound,
    /// Another runner (or another attempt) holds it, or nobody does.
    NotHolder,
    /// It is finished (cancelled, perhaps): nothing more to do.
    Finished(RunOutcome),
}

const COLUMNS: &str = "id, repo, repository, suite, environment, commit_id, proposal, branch, definition, \
     state, outcome, runner, attempt, lease_until, heartbeat_at, queued_at, started_at, finished_at, \
     tests_passed, tests_failed, tests_skipped, duration_ms, envelopes, cause, suite_source, suite_files";

/// A row as the database holds it, before [`run_from`] parses it.
struct RawRun {
    id: String,
    repo: String,
    repository: String,
    suite: String,
    environment: String,
    commit: String,
    proposal: Option<String>,
    branch: Option<String>,
    definition: String,
    state: String,
    outcome: Option<String>,
    runner: Option<String>,
    attempt: i64,
    lease_until: Option<i64>,
    heartbeat_at: Option<i64>,
    queued_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    passed: Option<i64>,
    failed: Option<i64>,
    skipped: Option<i64>,
    duration: Option<i64>,
    envelopes: String,
    cause: Option<String>,
    suite_source: Option<String>,
    suite_files: String,
}

fn decode<R: sqlx::Row>(row: &R) -> Result<RawRun, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(RawRun {
        id: row.try_get(0)?,
        repo: row.try_get(1)?,
        repository: row.try_get(2)?,
        suite: row.try_get(3)?,
        environment: row.try_get(4)?,
        commit: row.try_get(5)?,
        proposal: row.try_get(6)?,
        branch: row.try_get(7)?,
        definition: row.try_get(8)?,
        state: row.try_get(9)?,
        outcome: row.try_get(10)?,
        runner: row.try_get(11)?,
        attempt: row.try_get(12)?,
        lease_until: row.try_get(13)?,
        heartbeat_at: row.try_get(14)?,
        queued_at: row.try_get(15)?,
        started_at: row.try_get(16)?,
        finished_at: row.try_get(17)?,
        passed: row.try_get(18)?,
        failed: row.try_get(19)?,
        skipped: row.try_get(20)?,
        duration: row.try_get(21)?,
        envelopes: row.try_get(22)?,
        cause: row.try_get(23)?,
        suite_source: row.try_get(24)?,
        suite_files: row.try_get(25)?,
    })
}

/// The row boundary: every stored value parsed into its type; an unknown state or outcome
/// is an error naming the row, never a default.
fn run_from(raw: RawRun) -> Result<Run, Error> {
    let id = raw.id;
    let corrupt = |column: &'static str, reason: String| Error::Corrupt {
        table: "runs",
        key: id.clone(),
        column,
        reason,
    };
    let state: RunState = raw.state.parse().map_err(|e| corrupt("state", e))?;
    let outcome: Option<RunOutcome> = raw
        .outcome
        .map(|o| o.parse())
        .transpose()
        .map_err(|e| corrupt("outcome", e))?;
    if (state == RunState::Finished) != outcome.is_some() {
        return Err(corrupt(
            "outcome",
            format!("state {state} with outcome {outcome:?}"),
        ));
    }
    let target = match (raw.proposal, raw.branch) {
        (Some(p), None) => RunFor::Proposal(p),
        (None, Some(b)) => RunFor::Branch(b),
        _ => {
            return Err(corrupt(
                "proposal",
                "neither or both of proposal and branch".into(),
            ));
        }
    };
    let envelopes: Vec<String> =
        serde_json::from_str(&raw.envelopes).map_err(|e| corrupt("envelopes", e.to_string()))?;
    let files: Vec<String> = serde_json::from_str(&raw.suite_files)
        .map_err(|e| corrupt("suite_files", e.to_string()))?;
    let base_version = match raw.suite_source {
        Some(source) => Some(BaseVersion { source, files }),
        None if files.is_empty() => None,
        None => {
            return Err(corrupt(
                "suite_files",
                "suite files without a suite source".into(),
            ));
        }
    };
    let count = |column, v: Option<i64>| v.map(|v| uint("runs", &id, column, v)).transpose();
    let tests = match (
        count("tests_passed", raw.passed)?,
        count("tests_failed", raw.failed)?,
        count("tests_skipped", raw.skipped)?,
    ) {
        (Some(passed), Some(failed), Some(skipped)) => Some(TestCounts {
            passed,
            failed,
            skipped,
        }),
        _ => None,
    };
    let duration_ms = count("duration_ms", raw.duration)?;
    let attempt =
        u32::try_from(raw.attempt).map_err(|_| corrupt("attempt", raw.attempt.to_string()))?;
    Ok(Run {
        repo: raw.repo,
        repository: raw.repository,
        suite: raw.suite,
        environment: raw.environment,
        commit: raw.commit,
        target,
        definition: raw.definition,
        state,
        outcome,
        runner: raw.runner,
        attempt,
        lease_until_ms: raw.lease_until,
        heartbeat_at_ms: raw.heartbeat_at,
        queued_at_ms: raw.queued_at,
        started_at_ms: raw.started_at,
        finished_at_ms: raw.finished_at,
        tests,
        duration_ms,
        envelopes,
        cause: raw.cause,
        base_version,
        id,
    })
}

macro_rules! fetch_runs {
    ($self:expr, $query:expr, $what:literal) => {{
        let raw = dispatch!($self, c => $query
            .fetch_all(&mut **c)
            .await
            .map_err(db($what))?
            .iter()
            .map(decode)
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(db($what))?);
        raw.into_iter().map(run_from).collect::<Result<Vec<Run>, Error>>()
    }};
}

/// The condition a row `ask` may lease meets, its parameters numbered from `first` in the
/// order [`bind_leasable!`] binds them: now, repository, runner, the environments, then the
/// capsule's signer, environment and suites. One text for the lease and for the read that
/// spares a poll with nothing to lease its write ([`Store::any_leasable`]), so the two never
/// disagree.
fn leasable(ask: &LeaseAsk<'_>, first: usize) -> String {
    let (now, repository, runner) = (first, first + 1, first + 2);
    let mut envs = String::new();
    crate::backend::placeholders(&mut envs, first + 3, ask.environments.len());
    // A capsule adds the rows its signer may delegate, of its suites, in its environment:
    // never a row only `run_runners` opens to others.
    let by_capsule = match ask.capsule {
        None => String::new(),
        Some(c) => {
            let signer = first + 3 + ask.environments.len();
            let mut suites = String::new();
            crate::backend::placeholders(&mut suites, signer + 2, c.suites.len());
            format!(
                " OR (runs.environment = ${} AND runs.suite IN ({suites}) \
                 AND EXISTS (SELECT 1 FROM run_capsule_signers cs WHERE cs.run = runs.id AND cs.signer = ${signer}))",
                signer + 1,
            )
        }
    };
    format!(
        "(state = 'queued' OR (state = 'running' AND lease_until <= ${now})) \
         AND repository = ${repository} AND environment IN ({envs}) \
         AND (EXISTS (SELECT 1 FROM run_runners rr WHERE rr.run = runs.id AND rr.runner = ${runner}){by_capsule})"
    )
}

/// Binds the parameters of [`leasable`] to query `$q`, in its order.
macro_rules! bind_leasable {
    ($q:expr, $ask:expr) => {{
        let ask: &LeaseAsk<'_> = $ask;
        let mut q = $q.bind(ask.now_ms).bind(ask.repository).bind(ask.runner);
        for env in ask.environments {
            q = q.bind(env);
        }
        if let Some(capsule) = ask.capsule {
            q = q.bind(capsule.signer).bind(capsule.environment);
            for suite in capsule.suites {
                q = q.bind(suite);
            }
        }
        q
    }};
}

/// `ask` as the statements take it: `None` when it can lease nothing (no environment, no
/// item), a capsule covering no suite dropped (it opens no row, and `IN ()` is no SQL).
fn normalized<'a>(ask: &LeaseAsk<'a>) -> Option<LeaseAsk<'a>> {
    if ask.environments.is_empty() || ask.max == 0 {
        return None;
    }
    let mut ask = *ask;
    if ask.capsule.is_some_and(|c| c.suites.is_empty()) {
        ask.capsule = None;
    }
    Some(ask)
}

impl Conn<'_> {
    async fn insert_run(&mut self, run: &NewRun) -> Result<(), Error> {
        let suite_files = serde_json::json!(
            run.base_version
                .as_ref()
                .map(|b| b.files.as_slice())
                .unwrap_or_default()
        )
        .to_string();
        let (proposal, branch) = match &run.target {
            RunFor::Proposal(p) => (Some(p.as_str()), None),
            RunFor::Branch(b) => (None, Some(b.as_str())),
        };
        dispatch!(self, c => sqlx::query(
            "INSERT INTO runs (id, repo, repository, suite, environment, commit_id, proposal, branch, definition, state, queued_at, cause, suite_source, suite_files) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', $10, $11, $12, $13)",
        )
        .bind(&run.id).bind(&run.repo).bind(&run.repository).bind(&run.suite)
        .bind(&run.environment).bind(&run.commit).bind(proposal).bind(branch)
        .bind(&run.definition).bind(run.queued_at_ms).bind(run.cause.as_deref())
        .bind(run.base_version.as_ref().map(|b| b.source.as_str())).bind(&suite_files)
        .execute(&mut **c)
        .await
        .map_err(db("queueing a run"))?
        .rows_affected());
        for runner in &run.runners {
            dispatch!(self, c => sqlx::query(
                "INSERT INTO run_runners (run, runner) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(&run.id).bind(runner)
            .execute(&mut **c)
            .await
            .map_err(db("queueing a run's runners"))?
            .rows_affected());
        }
        for signer in &run.capsule_signers {
            dispatch!(self, c => sqlx::query(
                "INSERT INTO run_capsule_signers (run, signer) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(&run.id).bind(signer)
            .execute(&mut **c)
            .await
            .map_err(db("queueing a run's capsule signers"))?
            .rows_affected());
        }
        Ok(())
    }

    async fn lease(&mut self, ask: &LeaseAsk<'_>, lease_ms: i64) -> Result<Vec<Run>, Error> {
        // PostgreSQL: skip rows another transaction is leasing right now instead of waiting
        // for it and then leasing them again. SQLite: the statement holds the only write lock.
        let skip_locked = match self {
            Conn::Postgres(_) => " FOR UPDATE OF runs SKIP LOCKED",
            Conn::Sqlite(_) => "",
        };
        let sql = format!(
            "UPDATE runs SET state = 'running', runner = $1, attempt = attempt + 1, \
                 lease_until = $2 + $3, heartbeat_at = $2, started_at = $2 \
             WHERE id IN (SELECT id FROM runs WHERE {} \
                 ORDER BY queued_at, id LIMIT $4{skip_locked}) \
             RETURNING {COLUMNS}",
            leasable(ask, 5)
        );
        let raw = dispatch!(self, c => {
            let q = sqlx::query(&sql)
                .bind(ask.principal)
                .bind(ask.now_ms)
                .bind(lease_ms)
                .bind(i64::from(ask.max));
            bind_leasable!(q, ask)
                .fetch_all(&mut **c)
                .await
                .map_err(db("leasing runs"))?
                .iter()
                .map(decode)
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(db("decoding leased runs"))?
        });
        let mut runs = raw
            .into_iter()
            .map(run_from)
            .collect::<Result<Vec<Run>, Error>>()?;
        runs.sort_by(|a, b| (a.queued_at_ms, &a.id).cmp(&(b.queued_at_ms, &b.id)));
        Ok(runs)
    }

    async fn run_by_id(&mut self, id: &str) -> Result<Option<Run>, Error> {
        let sql = format!("SELECT {COLUMNS} FROM runs WHERE id = $1");
        let mut runs = fetch_runs!(self, sqlx::query(&sql).bind(id), "reading a run")?;
        Ok(runs.pop())
    }

    async fn run_locked(&mut self, id: &str) -> Result<Option<Run>, Error> {
        let mut sql = format!("SELECT {COLUMNS} FROM runs WHERE id = $1");
        if matches!(self, Conn::Postgres(_)) {
            sql.push_str(" FOR UPDATE");
        }
        let mut runs = fetch_runs!(self, sqlx::query(&sql).bind(id), "locking a run")?;
        Ok(runs.pop())
    }

    /// The run `id` if `principal` holds its current lease (`attempt`), else why not.
    async fn held(
        &mut self,
        id: &str,
        principal: &str,
        attempt: u32,
    ) -> Result<Result<Run, Refusal>, Error> {
        let Some(run) = self.run_by_id(id).await? else {
            return Ok(Err(Refusal::NotFound));
        };
        if let Some(outcome) = run.outcome {
            return Ok(Err(Refusal::Finished(outcome)));
        }
        if run.state != RunState::Running
            || run.runner.as_deref() != Some(principal)
            || run.attempt != attempt
        {
            return Ok(Err(Refusal::NotHolder));
        }
        Ok(Ok(run))
    }

    /// Runs `sql` (an `UPDATE runs SET …` whose last three parameters are `$first`..)
    /// guarded again in the statement: a lease taken between [`Conn::held`] and the write
    /// changes `attempt`, and then nothing is written.
    fn guard(first: usize) -> String {
        format!(
            " WHERE id = ${first} AND runner = ${} AND attempt = ${} AND state = 'running'",
            first + 1,
            first + 2
        )
    }

    async fn heartbeat(
        &mut self,
        id: &str,
        principal: &str,
        attempt: u32,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<bool, Error> {
        let sql = format!(
            "UPDATE runs SET lease_until = $1, heartbeat_at = $2{}",
            Self::guard(3)
        );
        let done = dispatch!(self, c => sqlx::query(&sql)
            .bind(until_ms).bind(now_ms)
            .bind(id).bind(principal).bind(i64::from(attempt))
            .execute(&mut **c)
            .await
            .map_err(db("extending a lease"))?
            .rows_affected());
        Ok(done == 1)
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &mut self,
        id: &str,
        principal: &str,
        attempt: u32,
        outcome: RunOutcome,
        counts: [Option<i64>; 4],
        envelopes: &str,
        now_ms: i64,
    ) -> Result<bool, Error> {
        let sql = format!(
            "UPDATE runs SET state = 'finished', outcome = $1, finished_at = $2, tests_passed = $3,              tests_failed = $4, tests_skipped = $5, duration_ms = $6, envelopes = $7, lease_until = NULL{}",
            Self::guard(8)
        );
        let [passed, failed, skipped, duration] = counts;
        let done = dispatch!(self, c => sqlx::query(&sql)
            .bind(outcome.as_str()).bind(now_ms)
            .bind(passed).bind(failed).bind(skipped).bind(duration).bind(envelopes)
            .bind(id).bind(principal).bind(i64::from(attempt))
            .execute(&mut **c)
            .await
            .map_err(db("finishing a run"))?
            .rows_affected());
        Ok(done == 1)
    }

    async fn give_back(&mut self, id: &str, principal: &str, attempt: u32) -> Result<bool, Error> {
        let sql = format!(
            "UPDATE runs SET state = 'queued', lease_until = NULL{}",
            Self::guard(1)
        );
        let done = dispatch!(self, c => sqlx::query(&sql)
            .bind(id).bind(principal).bind(i64::from(attempt))
            .execute(&mut **c)
            .await
            .map_err(db("returning a run"))?
            .rows_affected());
        Ok(done == 1)
    }

    async fn cancel_runs(
        &mut self,
        proposal: &str,
        keep_commit: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<Run>, Error> {
        let sql = format!(
            "UPDATE runs SET state = 'finished', outcome = 'cancelled', finished_at = $1, lease_until = NULL \
             WHERE proposal = $2 AND state IN ('queued', 'running') AND ($3 IS NULL OR commit_id <> $3) \
             RETURNING {COLUMNS}"
        );
        let mut runs = fetch_runs!(
            self,
            sqlx::query(&sql)
                .bind(now_ms)
                .bind(proposal)
                .bind(keep_commit),
            "cancelling runs"
        )?;
        runs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(runs)
    }

    async fn list_runs(&mut self, filter: &RunFilter) -> Result<Vec<Run>, Error> {
        // Only the conditions the filter sets are written: with `($1 IS NULL OR state = $1)`
        // SQLite plans for any value, finds no index it can use and walks the runs by queue
        // time (100,000 of them for one proposal's runs; PostgreSQL folds the test away).
        enum Bind<'a> {
            Text(&'a str),
            Int(i64),
        }
        /// The statement so far and its values.
        struct Select<'a> {
            sql: String,
            binds: Vec<Bind<'a>>,
        }
        impl<'a> Select<'a> {
            /// Appends `clause`, its `?`s numbered after the values bound so far.
            fn and<const N: usize>(&mut self, clause: &str, values: [Bind<'a>; N]) {
                let mut clause = clause.to_owned();
                for value in values {
                    self.binds.push(value);
                    clause = clause.replacen('?', &format!("${}", self.binds.len()), 1);
                }
                self.sql.push_str(&clause);
            }
        }
        let mut select = Select {
            sql: format!("SELECT {COLUMNS} FROM runs WHERE 1 = 1"),
            binds: Vec::new(),
        };
        if let Some(state) = filter.state {
            select.and(" AND state = ?", [Bind::Text(state.as_str())]);
        }
        if let Some(suite) = &filter.suite {
            select.and(" AND suite = ?", [Bind::Text(suite)]);
        }
        if let Some(environment) = &filter.environment {
            select.and(" AND environment = ?", [Bind::Text(environment)]);
        }
        if let Some(proposal) = &filter.proposal {
            select.and(" AND proposal = ?", [Bind::Text(proposal)]);
        }
        if let Some(branch) = &filter.branch {
            select.and(" AND branch = ?", [Bind::Text(branch)]);
        }
        if let Some(since) = filter.since_ms {
            select.and(" AND queued_at >= ?", [Bind::Int(since)]);
        }
        if let Some((at, id)) = &filter.before {
            select.and(
                " AND (queued_at < ? OR (queued_at = ? AND id < ?))",
                [Bind::Int(*at), Bind::Int(*at), Bind::Text(id)],
            );
        }
        select.and(
            " ORDER BY queued_at DESC, id DESC LIMIT ?",
            [Bind::Int(i64::from(filter.limit))],
        );
        let Select { sql, binds } = select;
        fetch_runs!(
            self,
            {
                let mut query = sqlx::query(&sql);
                for value in &binds {
                    query = match value {
                        Bind::Text(text) => query.bind(*text),
                        Bind::Int(int) => query.bind(*int),
                    };
                }
                query
            },
            "listing runs"
        )
    }
}

impl Tx {
    /// Queues work items; they become leasable when this transaction commits.
    pub async fn enqueue_runs(&mut self, runs: &[NewRun]) -> Result<(), Error> {
        let mut conn = self.conn();
        for run in runs {
            conn.insert_run(run).await?;
        }
        Ok(())
    }

    /// Leases up to `ask.max` runs (see [`LeaseAsk`]): queued ones and running ones whose
    /// lease expired, oldest first. See the module docs.
    pub async fn lease_runs(&mut self, ask: &LeaseAsk<'_>) -> Result<Vec<Run>, Error> {
        let Some(ask) = normalized(ask) else {
            return Ok(Vec::new());
        };
        let lease_ms = int("lease", ask.lease_ms)?;
        self.conn().lease(&ask, lease_ms).await
    }

    /// Extends the lease of run `id` to `now_ms + lease_ms`, if `principal` holds `attempt`
    /// (even past its expiry, as long as no other runner has taken it).
    pub async fn heartbeat_run(
        &mut self,
        id: &str,
        principal: &str,
        attempt: u32,
        now_ms: i64,
        lease_ms: u64,
    ) -> Result<Result<Run, Refusal>, Error> {
        let mut conn = self.conn();
        if let Err(refusal) = conn.held(id, principal, attempt).await? {
            return Ok(Err(refusal));
        }
        let until = now_ms.saturating_add(int("lease", lease_ms)?);
        if !conn
            .heartbeat(id, principal, attempt, until, now_ms)
            .await?
        {
            return Ok(Err(Refusal::NotHolder));
        }
        Ok(conn.run_by_id(id).await?.ok_or(Refusal::NotFound))
    }

    /// Finishes run `id` as `finish` says, if `principal` holds `attempt`.
    pub async fn finish_run(
        &mut self,
        id: &str,
        principal: &str,
        attempt: u32,
        finish: &Finish,
        now_ms: i64,
    ) -> Result<Result<Run, Refusal>, Error> {
        let mut conn = self.conn();
        if let Err(refusal) = conn.held(id, principal, attempt).await? {
            return Ok(Err(refusal));
        }
        let count = |n: u64| int("test count", n);
        let counts = [
            finish.tests.map(|t| count(t.passed)).transpose()?,
            finish.tests.map(|t| count(t.failed)).transpose()?,
            finish.tests.map(|t| count(t.skipped)).transpose()?,
            finish.duration_ms.map(|d| int("duration", d)).transpose()?,
        ];
        let envelopes = serde_json::to_string(&finish.envelopes).map_err(|e| Error::Corrupt {
            table: "runs",
            key: id.to_owned(),
            column: "envelopes",
            reason: e.to_string(),
        })?;
        let done = conn
            .finish(
                id,
                principal,
                attempt,
                finish.outcome,
                counts,
                &envelopes,
                now_ms,
            )
            .await?;
        if !done {
            return Ok(Err(Refusal::NotHolder));
        }
        Ok(conn.run_by_id(id).await?.ok_or(Refusal::NotFound))
    }

    /// Gives run `id` back to the queue unfinished, if `principal` holds `attempt`.
    pub async fn return_run(
        &mut self,
        id: &str,
        principal: &str,
        attempt: u32,
    ) -> Result<Result<Run, Refusal>, Error> {
        let mut conn = self.conn();
        if let Err(refusal) = conn.held(id, principal, attempt).await? {
            return Ok(Err(refusal));
        }
        if !conn.give_back(id, principal, attempt).await? {
            return Ok(Err(Refusal::NotHolder));
        }
        Ok(conn.run_by_id(id).await?.ok_or(Refusal::NotFound))
    }

    /// Cancels the unfinished runs of `proposal` (all of them, or those not about
    /// `keep_commit`); returns them as cancelled.
    pub async fn cancel_runs(
        &mut self,
        proposal: &str,
        keep_commit: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<Run>, Error> {
        self.conn().cancel_runs(proposal, keep_commit, now_ms).await
    }

    /// [`Store::run`] as this transaction sees it.
    pub async fn run(&mut self, id: &str) -> Result<Option<Run>, Error> {
        self.conn().run_by_id(id).await
    }

    /// [`Tx::run`], its row locked until the transaction ends (`FOR UPDATE` on PostgreSQL;
    /// SQLite's writers are serialized already): what a count over the run's log entries
    /// holds still for, across replicas.
    pub async fn lock_run(&mut self, id: &str) -> Result<Option<Run>, Error> {
        self.conn().run_locked(id).await
    }
}

/// How many runs of one suite, queued in a window, are in one state and outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunTally {
    pub suite: String,
    pub state: RunState,
    pub outcome: Option<RunOutcome>,
    pub count: u64,
}

impl Store {
    /// How many runs queued at or after `since_ms` (Unix milliseconds) are in each suite,
    /// state and outcome, one [`RunTally`] per triple that has any. Counted by the database
    /// over the `runs_by_queue_outcome` index (migration 0019), so a dashboard reads neither
    /// every run nor the rows themselves.
    pub async fn run_tally(&self, since_ms: i64) -> Result<Vec<RunTally>, Error> {
        let mut pooled = self.pooled().await?;
        let mut conn = pooled.conn();
        // The upper bound, always true, is written: with a one-sided range and no statistics
        // SQLite guesses that a quarter of the table matches and walks another index whole
        // (to group in index order) instead of this window's entries.
        let raw: Vec<(String, String, Option<String>, i64)> = dispatch!(&mut conn, c => {
            sqlx::query_as(
                "SELECT suite, state, outcome, COUNT(*) FROM runs \
                 WHERE queued_at >= $1 AND queued_at <= $2 GROUP BY suite, state, outcome",
            )
            .bind(since_ms)
            .bind(i64::MAX)
            .fetch_all(&mut **c)
            .await
            .map_err(db("counting runs"))?
        });
        raw.into_iter()
            .map(|(suite, state, outcome, count)| {
                let key = format!("{suite}/{state}/{}", outcome.as_deref().unwrap_or("-"));
                let corrupt = |column: &'static str, reason: String| Error::Corrupt {
                    table: "runs",
                    key: key.clone(),
                    column,
                    reason,
                };
                Ok(RunTally {
                    state: state.parse().map_err(|e| corrupt("state", e))?,
                    outcome: outcome
                        .map(|o| o.parse())
                        .transpose()
                        .map_err(|e| corrupt("outcome", e))?,
                    count: u64::try_from(count).map_err(|_| corrupt("count", count.to_string()))?,
                    suite,
                })
            })
            .collect()
    }
}

impl Store {
    /// Whether [`Tx::lease_runs`] with `ask` would lease anything now: a plain read, outside
    /// any transaction. A runner's poll that finds nothing stops here and writes nothing; one
    /// that finds something still leases in its transaction, so exactly-once holds as
    /// before (an item taken in between is simply not leased, and one queued in between waits
    /// for the next poll).
    pub async fn any_leasable(&self, ask: &LeaseAsk<'_>) -> Result<bool, Error> {
        let Some(ask) = normalized(ask) else {
            return Ok(false);
        };
        let sql = format!("SELECT id FROM runs WHERE {} LIMIT 1", leasable(&ask, 1));
        let mut pooled = self.pooled().await?;
        let mut conn = pooled.conn();
        let found = dispatch!(&mut conn, c => bind_leasable!(sqlx::query(&sql), &ask)
            .fetch_optional(&mut **c)
            .await
            .map_err(db("looking for leasable runs"))?
            .is_some());
        Ok(found)
    }

    /// The run `id`.
    pub async fn run(&self, id: &str) -> Result<Option<Run>, Error> {
        self.pooled().await?.conn().run_by_id(id).await
    }

    /// Runs matching `filter`, newest first (by queue time, then id).
    pub async fn runs(&self, filter: &RunFilter) -> Result<Vec<Run>, Error> {
        self.pooled().await?.conn().list_runs(filter).await
    }
}
