//! The webhook outbox and its delivery log: notifications queued in the transaction of the
//! state change they announce ([`Tx::enqueue_notification`]), claimed by delivery workers
//! under a lease ([`Store::claim_notifications`]), and every attempt recorded
//! ([`Store::record_attempt`]).
//!
//! Claiming is safe with several server processes on one database: on PostgreSQL the due rows
//! are picked with `FOR UPDATE SKIP LOCKED`, so two workers never pick the same row and never
//! wait on each other; on SQLite the claim is one `UPDATE … RETURNING` under the database's
//! single write lock. Either way the claim writes a lease (`lease_owner`, `lease_until`): a
//! row is claimable again only once its lease has expired, which is also how the row of a
//! worker that died mid-delivery comes back. Due times and leases use the database clock, so
//! processes with skewed clocks still agree.
//!
//! What to send, to whom, how to sign it and how long to wait before retrying are the
//! server's; this module stores rows and never reads the network.

use sqlx::Row as _;

use crate::backend::{Conn, dispatch, int, uint};
use crate::error::{Error, db};
use crate::store::Store;
use crate::tx::Tx;

/// One notification to one target, as queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    /// `<notification>/<target>`: unique per row.
    pub id: String,
    /// The notification's id, the same for every target and every retry; receivers
    /// deduplicate on it.
    pub notification: String,
    /// The configured target's name.
    pub target: String,
    /// What happened, e.g. `awaiting_approval`.
    pub kind: String,
    /// The proposal it is about.
    pub subject: String,
    /// The JSON body, exactly as sent and signed.
    pub payload: String,
}

/// An outbox row as stored, with its delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub item: OutboxItem,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    /// Attempts started so far (a claim starts one).
    pub attempts: u32,
    /// Unix milliseconds (database clock) from which a pending row is due.
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

/// A row claimed for delivery: this is attempt number `attempt` (from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub item: OutboxItem,
    pub attempt: u32,
}

/// One delivery attempt, for the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The outbox row's id.
    pub outbox: String,
    pub notification: String,
    pub target: String,
    pub url: String,
    pub attempt: u32,
    /// When the request started, Unix milliseconds (the delivering worker's clock).
    pub started_at_ms: i64,
    pub duration_ms: u64,
    /// The response status, `None` when no response came back.
    pub status: Option<u16>,
    /// Why the attempt failed: a transport error or a summary of the response.
    pub error: Option<String>,
}

/// What becomes of an outbox row after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Due again `after_ms` milliseconds from now (database clock).
    Retry {
        after_ms: u64,
    },
    /// Attempts exhausted: the row stays, dead-lettered, for an operator to look at.
    Dead,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::Dead => "dead",
        }
    }
}

/// A row of the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Increasing with time: newer attempts have larger ids.
    pub id: i64,
    pub attempt: Attempt,
    /// `delivered`, `retry` or `dead`.
    pub outcome: String,
}

/// The database's clock in Unix milliseconds, in each dialect.
fn now_ms(conn: &Conn<'_>) -> &'static str {
    match conn {
        Conn::Sqlite(_) => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
        Conn::Postgres(_) => "(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT",
    }
}

fn count(table: &'static str, key: &str, column: &'static str, value: i64) -> Result<u32, Error> {
    u32::try_from(value).map_err(|_| Error::Corrupt {
        table,
        key: key.to_owned(),
        column,
        reason: format!("{value} is not a count"),
    })
}

const OUTBOX_COLUMNS: &str = "id, notification, target, kind, subject, payload";

fn item_from<R: sqlx::Row>(row: &R) -> Result<OutboxItem, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(OutboxItem {
        id: row.try_get(0)?,
        notification: row.try_get(1)?,
        target: row.try_get(2)?,
        kind: row.try_get(3)?,
        subject: row.try_get(4)?,
        payload: row.try_get(5)?,
    })
}

impl Conn<'_> {
    async fn insert_outbox(&mut self, item: &OutboxItem) -> Result<(), Error> {
        let sql = format!(
            "INSERT INTO webhook_outbox ({OUTBOX_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        );
        let result = dispatch!(self, c => sqlx::query(&sql)
            .bind(&item.id).bind(&item.notification).bind(&item.target)
            .bind(&item.kind).bind(&item.subject).bind(&item.payload)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected()));
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                Err(Error::Duplicate {
                    table: "webhook_outbox",
                    key: item.id.clone(),
                })
            }
            Err(e) => Err(db("queueing notification")(e)),
        }
    }

    async fn claim(
        &mut self,
        owner: &str,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Claimed>, Error> {
        let now = now_ms(self);
        let due = format!(
            "state = 'pending' AND next_attempt_at <= {now} \
             AND (lease_until IS NULL OR lease_until <= {now})"
        );
        // A read first, because an idle worker polls: on SQLite an UPDATE takes the database's
        // only write lock even when it matches nothing, and would queue behind (and delay)
        // the proposals being written.
        let probe = format!("SELECT 1 FROM webhook_outbox WHERE {due} LIMIT 1");
        let any = dispatch!(self, c => sqlx::query(&probe)
            .fetch_optional(&mut **c)
            .await
            .map_err(db("looking for due notifications"))?
            .is_some());
        if !any {
            return Ok(Vec::new());
        }
        // PostgreSQL: skip rows another worker is claiming right now instead of waiting for
        // it and then claiming them again. SQLite: the statement holds the only write lock.
        let skip_locked = match self {
            Conn::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            Conn::Sqlite(_) => "",
        };
        let sql = format!(
            "UPDATE webhook_outbox SET lease_owner = $1, lease_until = {now} + $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM webhook_outbox WHERE {due} \
                 ORDER BY next_attempt_at, id LIMIT $3{skip_locked}) \
             RETURNING {OUTBOX_COLUMNS}, attempts"
        );
        let rows = dispatch!(self, c => sqlx::query(&sql)
            .bind(owner)
            .bind(lease_ms)
            .bind(limit)
            .fetch_all(&mut **c)
            .await
            .map_err(db("claiming notifications"))?
            .iter()
            .map(|row| Ok((item_from(row)?, row.try_get::<i64, _>(6)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(db("decoding claimed notifications"))?);
        rows.into_iter()
            .map(|(item, attempts)| {
                let attempt = count("webhook_outbox", &item.id, "attempts", attempts)?;
                Ok(Claimed { item, attempt })
            })
            .collect()
    }

    async fn insert_delivery(&mut self, a: &Attempt, outcome: Outcome) -> Result<(), Error> {
        let duration = int("delivery duration", a.duration_ms)?;
        dispatch!(self, c => sqlx::query(
            "INSERT INTO webhook_deliveries (outbox, notification, target, url, attempt, started_at, duration_ms, status, error, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&a.outbox).bind(&a.notification).bind(&a.target).bind(&a.url)
        .bind(i64::from(a.attempt)).bind(a.started_at_ms).bind(duration)
        .bind(a.status.map(i64::from)).bind(&a.error).bind(outcome.as_str())
        .execute(&mut **c)
        .await
        .map_err(db("recording delivery attempt"))?
        .rows_affected());
        Ok(())
    }

    /// Settles the row after an attempt, if `owner` still holds it: a worker whose lease
    /// ran out while it waited for a slow receiver must not undo the next claimant's work.
    async fn settle(
        &mut self,
        id: &str,
        owner: &str,
        outcome: Outcome,
        error: Option<&str>,
    ) -> Result<bool, Error> {
        let now = now_ms(self);
        let (state, delay) = match outcome {
            Outcome::Delivered => ("delivered", 0),
            Outcome::Retry { after_ms } => ("pending", int("retry delay", after_ms)?),
            Outcome::Dead => ("dead", 0),
        };
        let sql = format!(
            "UPDATE webhook_outbox SET state = $1, next_attempt_at = {now} + $2, last_error = $3, \
             lease_owner = NULL, lease_until = NULL WHERE id = $4 AND lease_owner = $5"
        );
        let done = dispatch!(self, c => sqlx::query(&sql)
            .bind(state).bind(delay).bind(error).bind(id).bind(owner)
            .execute(&mut **c)
            .await
            .map_err(db("settling notification"))?
            .rows_affected());
        Ok(done == 1)
    }

    /// Deletes settled rows queued more than `age_ms` ago, and their attempts.
    async fn prune(&mut self, age_ms: i64) -> Result<u64, Error> {
        let now = now_ms(self);
        let old = format!("state <> 'pending' AND created_at < {now} - $1");
        let attempts = format!(
            "DELETE FROM webhook_deliveries WHERE outbox IN (SELECT id FROM webhook_outbox WHERE {old})"
        );
        let rows = format!("DELETE FROM webhook_outbox WHERE {old}");
        Ok(dispatch!(self, c => {
            sqlx::query(&attempts)
                .bind(age_ms)
                .execute(&mut **c)
                .await
                .map_err(db("pruning the delivery log"))?;
            sqlx::query(&rows)
                .bind(age_ms)
                .execute(&mut **c)
                .await
                .map_err(db("pruning the outbox"))?
                .rows_affected()
        }))
    }

    async fn requeue_dead(
        &mut self,
        target: &str,
        notification: Option<&str>,
    ) -> Result<Vec<String>, Error> {
        let now = now_ms(self);
        let sql = format!(
            "UPDATE webhook_outbox SET state = 'pending', attempts = 0, next_attempt_at = {now}, \
             lease_owner = NULL, lease_until = NULL \
             WHERE state = 'dead' AND target = $1 AND ($2 IS NULL OR notification = $2) \
             RETURNING id"
        );
        let mut ids = dispatch!(self, c => sqlx::query_scalar::<_, String>(&sql)
            .bind(target)
            .bind(notification)
            .fetch_all(&mut **c)
            .await
            .map_err(db("requeueing dead notifications"))?);
        ids.sort();
        Ok(ids)
    }

    async fn notification_state(
        &mut self,
        notification: &str,
        target: &str,
    ) -> Result<Option<String>, Error> {
        let sql = "SELECT state FROM webhook_outbox WHERE notification = $1 AND target = $2";
        Ok(dispatch!(self, c => sqlx::query_scalar::<_, String>(sql)
            .bind(notification)
            .bind(target)
            .fetch_optional(&mut **c)
            .await
            .map_err(db("reading a notification's state"))?))
    }

    async fn outbox(&mut self, limit: i64) -> Result<Vec<OutboxRow>, Error> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS}, state, attempts, next_attempt_at, last_error FROM webhook_outbox \
             ORDER BY created_at DESC, id DESC LIMIT $1"
        );
        let rows = dispatch!(self, c => sqlx::query(&sql)
            .bind(limit)
            .fetch_all(&mut **c)
            .await
            .map_err(db("reading the outbox"))?
            .iter()
            .map(|row| Ok((
                item_from(row)?,
                row.try_get::<String, _>(6)?,
                row.try_get::<i64, _>(7)?,
                row.try_get::<i64, _>(8)?,
                row.try_get::<Option<String>, _>(9)?,
            )))
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(db("decoding the outbox"))?);
        rows.into_iter()
            .map(|(item, state, attempts, next_attempt_at, last_error)| {
                Ok(OutboxRow {
                    attempts: count("webhook_outbox", &item.id, "attempts", attempts)?,
                    item,
                    state,
                    next_attempt_at,
                    last_error,
                })
            })
            .collect()
    }

    async fn deliveries(
        &mut self,
        limit: i64,
        before: Option<i64>,
    ) -> Result<Vec<Delivery>, Error> {
        let sql = "SELECT id, outbox, notification, target, url, attempt, started_at, duration_ms, status, error, outcome \
                   FROM webhook_deliveries WHERE id < $1 ORDER BY id DESC LIMIT $2";
        let rows = dispatch!(self, c => sqlx::query(sql)
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(&mut **c)
            .await
            .map_err(db("reading the delivery log"))?
            .iter()
            .map(|row| Ok((
                row.try_get::<i64, _>(0)?,
                [row.try_get::<String, _>(1)?, row.try_get::<String, _>(2)?, row.try_get::<String, _>(3)?, row.try_get::<String, _>(4)?],
                [row.try_get::<i64, _>(5)?, row.try_get::<i64, _>(6)?, row.try_get::<i64, _>(7)?],
                row.try_get::<Option<i64>, _>(8)?,
                row.try_get::<Option<String>, _>(9)?,
                row.try_get::<String, _>(10)?,
            )))
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(db("decoding the delivery log"))?);
        rows.into_iter()
            .map(
                |(
                    id,
                    [outbox, notification, target, url],
                    [attempt, started_at_ms, duration],
                    status,
                    error,
                    outcome,
                )| {
                    let key = id.to_string();
                    let status = status
                        .map(|s| {
                            u16::try_from(s).map_err(|_| Error::Corrupt {
                                table: "webhook_deliveries",
                                key: key.clone(),
                                column: "status",
                                reason: format!("{s} is not an HTTP status"),
                            })
                        })
                        .transpose()?;
                    Ok(Delivery {
                        id,
                        attempt: Attempt {
                            outbox,
                            notification,
                            target,
                            url,
                            attempt: count("webhook_deliveries", &key, "attempt", attempt)?,
                            started_at_ms,
                            duration_ms: uint("webhook_deliveries", &key, "duration_ms", duration)?,
                            status,
                            error,
                        },
                        outcome,
                    })
                },
            )
            .collect()
    }
}

impl Tx {
    /// Queues `item` for delivery; it becomes visible to workers when this transaction
    /// commits, and vanishes with it on rollback. [`Error::Duplicate`] when its id exists.
    pub async fn enqueue_notification(&mut self, item: &OutboxItem) -> Result<(), Error> {
        self.conn().insert_outbox(item).await
    }
}

impl Store {
    /// Claims up to `limit` due notifications for `owner` (a name unique to the worker) for
    /// `lease_ms` milliseconds and starts an attempt on each. See the module docs.
    pub async fn claim_notifications(
        &self,
        owner: &str,
        lease_ms: u64,
        limit: u32,
    ) -> Result<Vec<Claimed>, Error> {
        self.pooled()
            .await?
            .conn()
            .claim(owner, int("lease", lease_ms)?, i64::from(limit))
            .await
    }

    /// Records `attempt` in the delivery log and settles its outbox row as `outcome`, in
    /// one transaction. Returns `false` when `owner` had lost the lease (the attempt is
    /// still logged; the row is left to its new owner).
    pub async fn record_attempt(
        &self,
        owner: &str,
        attempt: &Attempt,
        outcome: Outcome,
    ) -> Result<bool, Error> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        conn.insert_delivery(attempt, outcome).await?;
        let settled = conn
            .settle(&attempt.outbox, owner, outcome, attempt.error.as_deref())
            .await?;
        tx.commit().await?;
        Ok(settled)
    }

    /// Deletes delivered and dead notifications queued more than `age_ms` ago (database
    /// clock), with their delivery attempts, in one transaction; returns how many rows went.
    /// Pending ones stay whatever their age.
    pub async fn prune_notifications(&self, age_ms: u64) -> Result<u64, Error> {
        let mut tx = self.begin().await?;
        let pruned = tx.conn().prune(int("retention", age_ms)?).await?;
        tx.commit().await?;
        Ok(pruned)
    }

    /// Queues the dead notifications of `target` again (only `notification`'s, when given):
    /// pending, due now, attempts counted from 1 again. Delivered and pending rows are not
    /// touched. Returns the outbox ids requeued, sorted.
    pub async fn redeliver(
        &self,
        target: &str,
        notification: Option<&str>,
    ) -> Result<Vec<String>, Error> {
        let mut tx = self.begin().await?;
        let ids = tx.conn().requeue_dead(target, notification).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// The state (`pending`, `delivered`, `dead`) of `notification` for `target`, if queued.
    pub async fn notification_state(
        &self,
        notification: &str,
        target: &str,
    ) -> Result<Option<String>, Error> {
        self.pooled()
            .await?
            .conn()
            .notification_state(notification, target)
            .await
    }

    /// The `limit` most recently queued outbox rows, newest first.
    pub async fn outbox(&self, limit: u32) -> Result<Vec<OutboxRow>, Error> {
        self.pooled().await?.conn().outbox(i64::from(limit)).await
    }

    /// The `limit` most recent delivery attempts with an id below `before` (all when
    /// `None`), newest first.
    pub async fn deliveries(
        &self,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<Delivery>, Error> {
        self.pooled()
            .await?
            .conn()
            .deliveries(i64::from(limit), before)
            .await
    }
}
