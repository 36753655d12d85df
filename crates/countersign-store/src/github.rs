//! The GitHub integration's state: webhook deliveries answered for good
//! ([`Tx::put_github_delivery`], so a redelivery, or the same body under another delivery
//! id, is answered alike and changes nothing), the
//! pull requests proposals follow ([`GithubPull`]), and the outbox of the `countersign`
//! checks reported on GitHub ([`GithubCheck`]).
//!
//! The check outbox coalesces: a proposal change bumps the `version` of the row of its head
//! ([`Tx::touch_github_check`], in the transaction of the change), and a worker claims rows
//! whose report is behind ([`Store::claim_github_checks`], under a lease, `FOR UPDATE SKIP
//! LOCKED` on PostgreSQL, one `UPDATE … RETURNING` on SQLite, as the webhook outbox does) and
//! reports the proposal's state as it is then. A change during a report leaves the row
//! behind, so it is reported again: the last report is the last state, whatever the order.
//!
//! What is reported, and to whom, is the server's; this module never reads the network.

use sqlx::Row as _;

use crate::backend::{Conn, dispatch, int};
use crate::error::{Error, db};
use crate::store::Store;
use crate::tx::Tx;

/// The database's clock in Unix milliseconds, in each dialect.
fn now_ms(conn: &Conn<'_>) -> &'static str {
    match conn {
        Conn::Sqlite(_) => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
        Conn::Postgres(_) => "(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT",
    }
}

/// The answer given to a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubDelivery {
    pub status: u16,
    /// The JSON body, byte for byte.
    pub response: String,
}

/// The proposal following a pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubPull {
    /// `owner/name` as the server's GitHub configuration writes it.
    pub repository: String,
    pub number: u64,
    pub proposal: String,
    /// The App installation to report through; `None` with token authentication.
    pub installation: Option<u64>,
}

/// A check claimed for reporting: the head of `proposal` it is about, and what GitHub shows
/// of it so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubCheck {
    /// `<proposal>@<head>`.
    pub id: String,
    pub proposal: String,
    pub head: String,
    /// `repository.full_name` as configured (`owner/name`).
    pub repository: String,
    pub installation: Option<u64>,
    /// The version this claim reports.
    pub version: u64,
    /// The check run, once created.
    pub check_run: Option<u64>,
    /// `in_progress` or `completed`: what the check run shows now.
    pub check_status: Option<String>,
    /// This claim's attempt (from 1).
    pub attempt: u32,
    pub last_error: Option<String>,
    /// Whether the last report is of the latest version.
    pub reported: bool,
}

/// How a report of a claimed check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckReport {
    /// Reported: the run now shows `status`.
    Reported {
        check_run: Option<u64>,
        status: String,
    },
    /// Not reported; due again `after_ms` from now. A check run created before the failure
    /// is kept.
    Failed {
        check_run: Option<u64>,
        error: String,
        after_ms: u64,
    },
}

fn unsigned(table: &'static str, key: &str, column: &'static str, v: i64) -> Result<u64, Error> {
    u64::try_from(v).map_err(|_| Error::Corrupt {
        table,
        key: key.to_owned(),
        column,
        reason: format!("{v} is negative"),
    })
}

const CHECK_COLUMNS: &str = "id, proposal, head, repository, installation, version, check_run, check_status, attempts, last_error, reported";

type CheckRow = (
    [String; 4],
    Option<i64>,
    i64,
    Option<i64>,
    Option<String>,
    i64,
    Option<String>,
    i64,
);

fn check_row<R: sqlx::Row>(row: &R) -> Result<CheckRow, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok((
        [
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
        ],
        row.try_get(4)?,
        row.try_get(5)?,
        row.try_get(6)?,
        row.try_get(7)?,
        row.try_get(8)?,
        row.try_get(9)?,
        row.try_get(10)?,
    ))
}

fn check_from(row: CheckRow) -> Result<GithubCheck, Error> {
    let (
        [id, proposal, head, repository],
        installation,
        version,
        check_run,
        status,
        attempts,
        last_error,
        reported,
    ) = row;
    let t = "github_checks";
    let version = unsigned(t, &id, "version", version)?;
    Ok(GithubCheck {
        installation: installation
            .map(|v| unsigned(t, &id, "installation", v))
            .transpose()?,
        check_run: check_run
            .map(|v| unsigned(t, &id, "check_run", v))
            .transpose()?,
        attempt: u32::try_from(attempts).map_err(|_| Error::Corrupt {
            table: t,
            key: id.clone(),
            column: "attempts",
            reason: format!("{attempts} is not a count"),
        })?,
        reported: unsigned(t, &id, "reported", reported)? >= version,
        version,
        check_status: status,
        last_error,
        id,
        proposal,
        head,
        repository,
    })
}

impl Conn<'_> {
    async fn github_delivery(
        &mut self,
        id: &str,
        body_digest: &str,
    ) -> Result<Option<GithubDelivery>, Error> {
        let row = dispatch!(self, c => sqlx::query(
            "SELECT status, response FROM github_deliveries WHERE id = $1 OR body_digest = $2 LIMIT 1",
        )
        .bind(id).bind(body_digest)
        .fetch_optional(&mut **c)
        .await
        .map_err(db("reading a GitHub delivery"))?
        .map(|row| Ok::<_, sqlx::Error>((row.try_get::<i64, _>(0)?, row.try_get::<String, _>(1)?)))
        .transpose()
        .map_err(db("decoding a GitHub delivery"))?);
        row.map(|(status, response)| {
            let status = u16::try_from(status).map_err(|_| Error::Corrupt {
                table: "github_deliveries",
                key: id.to_owned(),
                column: "status",
                reason: format!("{status} is not an HTTP status"),
            })?;
            Ok(GithubDelivery { status, response })
        })
        .transpose()
    }

    async fn insert_github_delivery(
        &mut self,
        id: &str,
        body_digest: &str,
        event: &str,
        answer: &GithubDelivery,
    ) -> Result<bool, Error> {
        let done = dispatch!(self, c => sqlx::query(
            "INSERT INTO github_deliveries (id, body_digest, event, status, response) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(id).bind(body_digest).bind(event).bind(i64::from(answer.status)).bind(&answer.response)
        .execute(&mut **c)
        .await
        .map_err(db("recording a GitHub delivery"))?
        .rows_affected());
        Ok(done == 1)
    }

    async fn github_pull(
        &mut self,
        repository: &str,
        number: u64,
    ) -> Result<Option<GithubPull>, Error> {
        let n = int("pull request number", number)?;
        let row = dispatch!(self, c => sqlx::query(
            "SELECT proposal, installation FROM github_pulls WHERE repository = $1 AND number = $2",
        )
        .bind(repository).bind(n)
        .fetch_optional(&mut **c)
        .await
        .map_err(db("reading a followed pull request"))?
        .map(|row| Ok::<_, sqlx::Error>((row.try_get::<String, _>(0)?, row.try_get::<Option<i64>, _>(1)?)))
        .transpose()
        .map_err(db("decoding a followed pull request"))?);
        let key = format!("{repository}#{number}");
        row.map(|(proposal, installation)| {
            Ok(GithubPull {
                repository: repository.to_owned(),
                number,
                proposal,
                installation: installation
                    .map(|v| unsigned("github_pulls", &key, "installation", v))
                    .transpose()?,
            })
        })
        .transpose()
    }

    async fn follow_github_pull(
        &mut self,
        pull: &GithubPull,
        replacing: Option<&str>,
    ) -> Result<bool, Error> {
        let number = int("pull request number", pull.number)?;
        let installation = pull
            .installation
            .map(|i| int("installation id", i))
            .transpose()?;
        let done = match replacing {
            None => dispatch!(self, c => sqlx::query(
                "INSERT INTO github_pulls (repository, number, proposal, installation) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&pull.repository).bind(number).bind(&pull.proposal).bind(installation)
            .execute(&mut **c)
            .await
            .map_err(db("following a pull request"))?
            .rows_affected()),
            Some(old) => dispatch!(self, c => sqlx::query(
                "UPDATE github_pulls SET proposal = $1, installation = $2 \
                 WHERE repository = $3 AND number = $4 AND proposal = $5",
            )
            .bind(&pull.proposal).bind(installation).bind(&pull.repository).bind(number).bind(old)
            .execute(&mut **c)
            .await
            .map_err(db("following a pull request"))?
            .rows_affected()),
        };
        Ok(done == 1)
    }

    async fn touch_github_check(&mut self, proposal: &str, head: &str) -> Result<u64, Error> {
        let now = now_ms(self);
        // One statement: nothing for a proposal no pull request is followed by (the common
        // case on a server with the integration on), a new row for a new head, a bump for a
        // known one. The SELECT's WHERE also settles SQLite's parse of `SELECT … ON CONFLICT`.
        let sql = format!(
            "INSERT INTO github_checks (id, proposal, head, repository, installation) \
             SELECT $1, proposal, $2, repository, installation FROM github_pulls WHERE proposal = $3 LIMIT 1 \
             ON CONFLICT (id) DO UPDATE SET version = github_checks.version + 1, attempts = 0, \
             next_attempt_at = {now}"
        );
        let id = format!("{proposal}@{head}");
        Ok(dispatch!(self, c => sqlx::query(&sql)
            .bind(&id).bind(head).bind(proposal)
            .execute(&mut **c)
            .await
            .map_err(db("queueing a GitHub check report"))?
            .rows_affected()))
    }

    async fn claim_github_checks(
        &mut self,
        owner: &str,
        lease_ms: i64,
        max_attempts: i64,
        limit: i64,
    ) -> Result<Vec<GithubCheck>, Error> {
        let now = now_ms(self);
        let due = format!(
            "reported < version AND attempts < {max_attempts} AND next_attempt_at <= {now} \
             AND (lease_until IS NULL OR lease_until <= {now})"
        );
        // A read first: an idle worker polls, and on SQLite an UPDATE takes the only write
        // lock even when it matches nothing.
        let probe = format!("SELECT 1 FROM github_checks WHERE {due} LIMIT 1");
        let any = dispatch!(self, c => sqlx::query(&probe)
            .fetch_optional(&mut **c)
            .await
            .map_err(db("looking for due GitHub checks"))?
            .is_some());
        if !any {
            return Ok(Vec::new());
        }
        let skip_locked = match self {
            Conn::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            Conn::Sqlite(_) => "",
        };
        let sql = format!(
            "UPDATE github_checks SET lease_owner = $1, lease_until = {now} + $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM github_checks WHERE {due} \
                 ORDER BY next_attempt_at, id LIMIT $3{skip_locked}) \
             RETURNING {CHECK_COLUMNS}"
        );
        let rows = dispatch!(self, c => sqlx::query(&sql)
            .bind(owner).bind(lease_ms).bind(limit)
            .fetch_all(&mut **c)
            .await
            .map_err(db("claiming GitHub checks"))?
            .iter()
            .map(check_row)
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(db("decoding claimed GitHub checks"))?);
        rows.into_iter().map(check_from).collect()
    }

    async fn settle_github_check(
        &mut self,
        claimed: &GithubCheck,
        owner: &str,
        report: &CheckReport,
    ) -> Result<bool, Error> {
        let now = now_ms(self);
        let version = int("check version", claimed.version)?;
        let done = match report {
            CheckReport::Reported { check_run, status } => {
                let run = check_run.map(|r| int("check run id", r)).transpose()?;
                let sql = "UPDATE github_checks SET reported = CASE WHEN reported > $1 THEN reported ELSE $1 END, \
                     check_run = COALESCE($2, check_run), check_status = $3, attempts = 0, last_error = NULL, \
                     lease_owner = NULL, lease_until = NULL WHERE id = $4 AND lease_owner = $5";
                dispatch!(self, c => sqlx::query(sql)
                    .bind(version).bind(run).bind(status).bind(&claimed.id).bind(owner)
                    .execute(&mut **c)
                    .await
                    .map_err(db("settling a GitHub check"))?
                    .rows_affected())
            }
            CheckReport::Failed {
                check_run,
                error,
                after_ms,
            } => {
                let run = check_run.map(|r| int("check run id", r)).transpose()?;
                let delay = int("retry delay", *after_ms)?;
                let sql = format!(
                    "UPDATE github_checks SET check_run = COALESCE($1, check_run), \
                     check_status = CASE WHEN $1 IS NULL THEN check_status ELSE 'in_progress' END, \
                     last_error = $2, next_attempt_at = {now} + $3, \
                     lease_owner = NULL, lease_until = NULL WHERE id = $4 AND lease_owner = $5"
                );
                dispatch!(self, c => sqlx::query(&sql)
                    .bind(run).bind(error).bind(delay).bind(&claimed.id).bind(owner)
                    .execute(&mut **c)
                    .await
                    .map_err(db("settling a GitHub check"))?
                    .rows_affected())
            }
        };
        Ok(done == 1)
    }

    async fn github_checks(&mut self, proposal: &str) -> Result<Vec<GithubCheck>, Error> {
        let sql =
            format!("SELECT {CHECK_COLUMNS} FROM github_checks WHERE proposal = $1 ORDER BY id");
        let rows = dispatch!(self, c => sqlx::query(&sql)
            .bind(proposal)
            .fetch_all(&mut **c)
            .await
            .map_err(db("reading GitHub checks"))?
            .iter()
            .map(check_row)
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(db("decoding GitHub checks"))?);
        rows.into_iter().map(check_from).collect()
    }

    async fn prune_github_deliveries(&mut self, age_ms: i64) -> Result<u64, Error> {
        let now = now_ms(self);
        let sql = format!("DELETE FROM github_deliveries WHERE received_at < {now} - $1");
        Ok(dispatch!(self, c => sqlx::query(&sql)
            .bind(age_ms)
            .execute(&mut **c)
            .await
            .map_err(db("pruning GitHub deliveries"))?
            .rows_affected()))
    }
}

impl Tx {
    /// The answer recorded for delivery `id`, or for a delivery of the same body (its
    /// SHA-256, lower-case hex), as this transaction sees it.
    pub async fn github_delivery(
        &mut self,
        id: &str,
        body_digest: &str,
    ) -> Result<Option<GithubDelivery>, Error> {
        self.conn().github_delivery(id, body_digest).await
    }

    /// Records the answer to delivery `id` of body `body_digest` (an `event` delivery);
    /// `false` when that delivery or body is recorded already (another request answered it
    /// first).
    pub async fn put_github_delivery(
        &mut self,
        id: &str,
        body_digest: &str,
        event: &str,
        answer: &GithubDelivery,
    ) -> Result<bool, Error> {
        self.conn()
            .insert_github_delivery(id, body_digest, event, answer)
            .await
    }

    /// The proposal following pull request `number` of `repository` (`owner/name` as configured).
    pub async fn github_pull(
        &mut self,
        repository: &str,
        number: u64,
    ) -> Result<Option<GithubPull>, Error> {
        self.conn().github_pull(repository, number).await
    }

    /// Makes `pull.proposal` the proposal following the pull request: a first one when
    /// `replacing` is `None`, else in place of that proposal. `false` (nothing written) when
    /// the pull request is followed otherwise by now: another delivery got there first.
    pub async fn follow_github_pull(
        &mut self,
        pull: &GithubPull,
        replacing: Option<&str>,
    ) -> Result<bool, Error> {
        self.conn().follow_github_pull(pull, replacing).await
    }

    /// Queues a report of `proposal`'s check on `head` when a pull request is followed by
    /// it: a new row, or a bump of the existing one. Returns how many rows changed (0 for a
    /// proposal no pull request follows).
    pub async fn touch_github_check(&mut self, proposal: &str, head: &str) -> Result<u64, Error> {
        self.conn().touch_github_check(proposal, head).await
    }
}

impl Store {
    /// The answer recorded for delivery `id`, or for a delivery of the same body.
    pub async fn github_delivery(
        &self,
        id: &str,
        body_digest: &str,
    ) -> Result<Option<GithubDelivery>, Error> {
        self.pooled()
            .await?
            .conn()
            .github_delivery(id, body_digest)
            .await
    }

    /// The proposal following pull request `number` of `repository` (`owner/name` as configured).
    pub async fn github_pull(
        &self,
        repository: &str,
        number: u64,
    ) -> Result<Option<GithubPull>, Error> {
        self.pooled()
            .await?
            .conn()
            .github_pull(repository, number)
            .await
    }

    /// Claims up to `limit` checks whose report is behind, fewer than `max_attempts` tried
    /// since the last change, for `owner` during `lease_ms`; starts an attempt on each.
    pub async fn claim_github_checks(
        &self,
        owner: &str,
        lease_ms: u64,
        max_attempts: u32,
        limit: u32,
    ) -> Result<Vec<GithubCheck>, Error> {
        self.pooled()
            .await?
            .conn()
            .claim_github_checks(
                owner,
                int("lease", lease_ms)?,
                i64::from(max_attempts),
                i64::from(limit),
            )
            .await
    }

    /// Settles a claimed check, if `owner` still holds it; `false` otherwise (a worker whose
    /// lease ran out must not undo the next claimant's report).
    pub async fn settle_github_check(
        &self,
        claimed: &GithubCheck,
        owner: &str,
        report: &CheckReport,
    ) -> Result<bool, Error> {
        let mut tx = self.begin().await?;
        let done = tx
            .conn()
            .settle_github_check(claimed, owner, report)
            .await?;
        tx.commit().await?;
        Ok(done)
    }

    /// The checks of `proposal`, one per head reported, in id order.
    pub async fn github_checks(&self, proposal: &str) -> Result<Vec<GithubCheck>, Error> {
        self.pooled().await?.conn().github_checks(proposal).await
    }

    /// Deletes the deliveries answered more than `age_ms` ago (database clock).
    pub async fn prune_github_deliveries(&self, age_ms: u64) -> Result<u64, Error> {
        let mut tx = self.begin().await?;
        let pruned = tx
            .conn()
            .prune_github_deliveries(int("retention", age_ms)?)
            .await?;
        tx.commit().await?;
        Ok(pruned)
    }
}
