//! Schedules that fell due: one row per (repository, schedule, due time), inserted with
//! `ON CONFLICT DO NOTHING` in the transaction that queues the due time's work items
//! ([`Tx::fire_schedule`]). Whichever server inserts the row queues the runs; every other
//! server that ticks for the same due time inserts nothing and queues nothing, on SQLite
//! (one writer at a time) and on PostgreSQL (the second insert waits for the first's
//! transaction and then sees the key taken) alike.
//!
//! What is due and what runs are the server's to compute from the branch's
//! `countersign.toml`; this module only records that a due time was taken.

use crate::backend::{Conn, dispatch, int, uint};
use crate::error::{Error, db};
use crate::store::Store;
use crate::tx::Tx;

/// A due time taken: the branch tip it queued and how many work items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleFire {
    pub repo: String,
    pub schedule: String,
    /// Unix milliseconds, the due time by the schedule's cron expression.
    pub due_at_ms: i64,
    pub branch: String,
    pub commit: String,
    /// The server's clock when it was queued, Unix milliseconds.
    pub fired_at_ms: i64,
    pub runs: u64,
}

const COLUMNS: &str = "repo, schedule, due_at, branch, commit_id, fired_at, runs";

type RawFire = (String, String, i64, String, String, i64, i64);

fn fire_from(raw: RawFire) -> Result<ScheduleFire, Error> {
    let (repo, schedule, due_at_ms, branch, commit, fired_at_ms, runs) = raw;
    let key = format!("{repo}/{schedule}@{due_at_ms}");
    Ok(ScheduleFire {
        runs: uint("schedule_fires", &key, "runs", runs)?,
        repo,
        schedule,
        due_at_ms,
        branch,
        commit,
        fired_at_ms,
    })
}

impl Conn<'_> {
    async fn insert_fire(&mut self, fire: &ScheduleFire) -> Result<bool, Error> {
        let runs = int("runs", fire.runs)?;
        let inserted = dispatch!(self, c => sqlx::query(
            "INSERT INTO schedule_fires (repo, schedule, due_at, branch, commit_id, fired_at, runs) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(&fire.repo).bind(&fire.schedule).bind(fire.due_at_ms).bind(&fire.branch)
        .bind(&fire.commit).bind(fire.fired_at_ms).bind(runs)
        .execute(&mut **c)
        .await
        .map_err(db("taking a schedule's due time"))?
        .rows_affected());
        Ok(inserted == 1)
    }

    async fn latest_fires(&mut self, repo: &str) -> Result<Vec<ScheduleFire>, Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM schedule_fires f WHERE repo = $1 AND due_at = \
             (SELECT MAX(due_at) FROM schedule_fires g WHERE g.repo = f.repo AND g.schedule = f.schedule) \
             ORDER BY schedule"
        );
        let raw: Vec<RawFire> = dispatch!(self, c => sqlx::query_as(&sql)
            .bind(repo)
            .fetch_all(&mut **c)
            .await
            .map_err(db("reading schedules' last due times"))?);
        raw.into_iter().map(fire_from).collect()
    }
}

impl Tx {
    /// Takes `fire`'s due time for its schedule: `true` when this transaction took it (and
    /// should queue its work items), `false` when it was taken already.
    pub async fn fire_schedule(&mut self, fire: &ScheduleFire) -> Result<bool, Error> {
        self.conn().insert_fire(fire).await
    }
}

impl Store {
    /// The latest due time taken of each schedule of repository `repo`, by schedule name.
    pub async fn latest_schedule_fires(&self, repo: &str) -> Result<Vec<ScheduleFire>, Error> {
        self.pooled().await?.conn().latest_fires(repo).await
    }
}
