//! Findings: what failed on a protected branch ([`Tx::observe_finding`] opens one or counts
//! an observation on the live one of the same identity), the proposals that say they fix
//! them ([`Tx::link_fix`]), and the verdict of a fix's post-merge run
//! ([`Tx::settle_finding`]). Read back with [`Store::findings`] and [`Store::finding`].
//!
//! Ids are `F-<number>`, numbered in the transaction that opens the finding: transactions
//! that append to the log are serialized (see [`Tx`]), so the next number is exact across
//! every server on the database. The schema keeps one live (not `verified`) finding per
//! repository and identity. What a finding is, its severity and its state changes are
//! countersign-lifecycle's; this module stores what the server decided.

use countersign_lifecycle::{FindingKind, FindingState, Severity};
use serde_json::Value;

use crate::backend::{Conn, dispatch, uint};
use crate::error::{Error, db};
use crate::store::Store;
use crate::tx::Tx;

/// A finding as stored, with the proposals linked to it as fixes.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub id: String,
    pub number: u64,
    pub repo: String,
    pub repository: String,
    pub kind: FindingKind,
    pub suite: String,
    /// The failed test's id, or the vulnerability's id.
    pub test: String,
    /// The component it is placed on (an entity ref), or `unmapped`.
    pub component: String,
    pub severity: Severity,
    pub state: FindingState,
    pub branch: String,
    pub first_seen: String,
    pub last_seen: String,
    pub observations: u64,
    /// The latest failing evidence (JSON): run, envelope digest, test, message, command.
    pub evidence: Value,
    pub owners: Vec<String>,
    /// The evidence of the latest fix's post-merge run, once there is one.
    pub verification: Option<Value>,
    pub opened_at_ms: i64,
    pub updated_at_ms: i64,
    /// Proposals that say they fix it, by id.
    pub fixes: Vec<String>,
}

/// One failure seen on a protected branch.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub repo: String,
    pub repository: String,
    pub kind: FindingKind,
    pub suite: String,
    pub test: String,
    pub component: String,
    pub severity: Severity,
    pub branch: String,
    pub commit: String,
    pub evidence: Value,
    pub owners: Vec<String>,
    pub now_ms: i64,
}

/// What an observation did.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// No live finding had its identity: this one is new.
    Opened(Finding),
    /// Counted on the live finding of its identity (`last_seen` moved, evidence replaced).
    Again(Finding),
}

/// Which findings to list; every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingFilter {
    pub state: Option<FindingState>,
    pub suite: Option<String>,
    pub repo: Option<String>,
    /// Only numbers below this (newest first paging).
    pub before: Option<u64>,
    pub limit: u32,
}

const COLUMNS: &str = "id, number, repo, repository, kind, suite, test, component, severity, state, \
     branch, first_seen, last_seen, observations, evidence, owners, verification, opened_at, updated_at";

struct RawFinding {
    id: String,
    number: i64,
    repo: String,
    repository: String,
    kind: String,
    suite: String,
    test: String,
    component: String,
    severity: String,
    state: String,
    branch: String,
    first_seen: String,
    last_seen: String,
    observations: i64,
    evidence: String,
    owners: String,
    verification: Option<String>,
    opened_at: i64,
    updated_at: i64,
}

fn decode<R: sqlx::Row>(row: &R) -> Result<RawFinding, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(RawFinding {
        id: row.try_get(0)?,
        number: row.try_get(1)?,
        repo: row.try_get(2)?,
        repository: row.try_get(3)?,
        kind: row.try_get(4)?,
        suite: row.try_get(5)?,
        test: row.try_get(6)?,
        component: row.try_get(7)?,
        severity: row.try_get(8)?,
        state: row.try_get(9)?,
        branch: row.try_get(10)?,
        first_seen: row.try_get(11)?,
        last_seen: row.try_get(12)?,
        observations: row.try_get(13)?,
        evidence: row.try_get(14)?,
        owners: row.try_get(15)?,
        verification: row.try_get(16)?,
        opened_at: row.try_get(17)?,
        updated_at: row.try_get(18)?,
    })
}

/// The row boundary: an unknown kind, severity or state is an error naming the row.
fn finding_from(raw: RawFinding) -> Result<Finding, Error> {
    let id = raw.id;
    let corrupt = |column: &'static str, reason: String| Error::Corrupt {
        table: "findings",
        key: id.clone(),
        column,
        reason,
    };
    let json = |column: &'static str, text: &str| -> Result<Value, Error> {
        serde_json::from_str(text).map_err(|e| corrupt(column, e.to_string()))
    };
    let owners: Vec<String> = serde_json::from_value(json("owners", &raw.owners)?)
        .map_err(|e| corrupt("owners", e.to_string()))?;
    Ok(Finding {
        number: uint("findings", &id, "number", raw.number)?,
        observations: uint("findings", &id, "observations", raw.observations)?,
        kind: raw
            .kind
            .parse()
            .map_err(|e| corrupt("kind", format!("{e}")))?,
        severity: raw
            .severity
            .parse()
            .map_err(|e| corrupt("severity", format!("{e}")))?,
        state: raw
            .state
            .parse()
            .map_err(|e| corrupt("state", format!("{e}")))?,
        evidence: json("evidence", &raw.evidence)?,
        verification: raw
            .verification
            .as_deref()
            .map(|v| json("verification", v))
            .transpose()?,
        owners,
        repo: raw.repo,
        repository: raw.repository,
        suite: raw.suite,
        test: raw.test,
        component: raw.component,
        branch: raw.branch,
        first_seen: raw.first_seen,
        last_seen: raw.last_seen,
        opened_at_ms: raw.opened_at,
        updated_at_ms: raw.updated_at,
        fixes: Vec::new(),
        id,
    })
}

fn to_json(id: &str, column: &'static str, value: &Value) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::Corrupt {
        table: "findings",
        key: id.to_owned(),
        column,
        reason: e.to_string(),
    })
}

macro_rules! fetch_findings {
    ($self:expr, $query:expr, $what:literal) => {{
        let raw = dispatch!($self, c => $query
            .fetch_all(&mut **c)
            .await
            .map_err(db($what))?
            .iter()
            .map(decode)
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(db($what))?);
        raw.into_iter().map(finding_from).collect::<Result<Vec<Finding>, Error>>()
    }};
}

impl Conn<'_> {
    async fn finding_by_id(&mut self, id: &str) -> Result<Option<Finding>, Error> {
        let sql = format!("SELECT {COLUMNS} FROM findings WHERE id = $1");
        let mut found = fetch_findings!(self, sqlx::query(&sql).bind(id), "reading a finding")?;
        let Some(mut finding) = found.pop() else {
            return Ok(None);
        };
        finding.fixes = self.fixes_of(id).await?;
        Ok(Some(finding))
    }

    async fn fixes_of(&mut self, id: &str) -> Result<Vec<String>, Error> {
        let rows: Vec<(String,)> = dispatch!(self, c => sqlx::query_as(
            "SELECT proposal FROM finding_fixes WHERE finding = $1 ORDER BY proposal",
        )
        .bind(id)
        .fetch_all(&mut **c)
        .await
        .map_err(db("reading a finding's fixes"))?);
        Ok(rows.into_iter().map(|(p,)| p).collect())
    }

    async fn live_finding(&mut self, repo: &str, identity: &str) -> Result<Option<Finding>, Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM findings WHERE repo = $1 AND identity = $2 AND state <> 'verified'"
        );
        let mut found = fetch_findings!(
            self,
            sqlx::query(&sql).bind(repo).bind(identity),
            "reading a live finding"
        )?;
        Ok(found.pop())
    }

    async fn list_findings(&mut self, filter: &FindingFilter) -> Result<Vec<Finding>, Error> {
        let before = filter.before.map(|b| i64::try_from(b).unwrap_or(i64::MAX));
        let sql = format!(
            "SELECT {COLUMNS} FROM findings \
             WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR suite = $2) \
             AND ($3 IS NULL OR repo = $3) AND ($4 IS NULL OR number < $4) \
             ORDER BY number DESC LIMIT $5"
        );
        let mut found = fetch_findings!(
            self,
            sqlx::query(&sql)
                .bind(filter.state.map(FindingState::as_str))
                .bind(filter.suite.as_deref())
                .bind(filter.repo.as_deref())
                .bind(before)
                .bind(i64::from(filter.limit)),
            "listing findings"
        )?;
        for finding in &mut found {
            finding.fixes = self.fixes_of(&finding.id).await?;
        }
        Ok(found)
    }
}

impl Tx {
    /// Opens a finding for `seen`, or counts it on the live finding of the same identity.
    pub async fn observe_finding(&mut self, seen: &Observation) -> Result<Observed, Error> {
        let identity =
            countersign_lifecycle::identity(seen.kind, &seen.suite, &seen.test, &seen.component);
        let mut conn = self.conn();
        if let Some(live) = conn.live_finding(&seen.repo, &identity).await? {
            let evidence = to_json(&live.id, "evidence", &seen.evidence)?;
            dispatch!(&mut conn, c => sqlx::query(
                "UPDATE findings SET last_seen = $1, observations = observations + 1, evidence = $2, \
                 updated_at = $3 WHERE id = $4",
            )
            .bind(&seen.commit).bind(&evidence).bind(seen.now_ms).bind(&live.id)
            .execute(&mut **c)
            .await
            .map_err(db("observing a finding"))?
            .rows_affected());
            let again = conn
                .finding_by_id(&live.id)
                .await?
                .ok_or_else(|| Error::Corrupt {
                    table: "findings",
                    key: live.id.clone(),
                    column: "id",
                    reason: "vanished while observed".into(),
                })?;
            return Ok(Observed::Again(again));
        }
        let (max,): (Option<i64>,) = dispatch!(&mut conn, c => sqlx::query_as(
            "SELECT MAX(number) FROM findings",
        )
        .fetch_one(&mut **c)
        .await
        .map_err(db("numbering a finding"))?);
        let number = max.unwrap_or(0).saturating_add(1);
        let id = format!("F-{number}");
        let evidence = to_json(&id, "evidence", &seen.evidence)?;
        let owners = to_json(&id, "owners", &Value::from(seen.owners.clone()))?;
        dispatch!(&mut conn, c => sqlx::query(
            "INSERT INTO findings (id, number, repo, repository, identity, kind, suite, test, component, \
             severity, state, branch, first_seen, last_seen, observations, evidence, owners, opened_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'open', $11, $12, $12, 1, $13, $14, $15, $15)",
        )
        .bind(&id).bind(number).bind(&seen.repo).bind(&seen.repository).bind(&identity)
        .bind(seen.kind.as_str()).bind(&seen.suite).bind(&seen.test).bind(&seen.component)
        .bind(seen.severity.as_str()).bind(&seen.branch).bind(&seen.commit)
        .bind(&evidence).bind(&owners).bind(seen.now_ms)
        .execute(&mut **c)
        .await
        .map_err(db("opening a finding"))?
        .rows_affected());
        let opened = conn
            .finding_by_id(&id)
            .await?
            .ok_or_else(|| Error::Corrupt {
                table: "findings",
                key: id.clone(),
                column: "id",
                reason: "not found after insert".into(),
            })?;
        Ok(Observed::Opened(opened))
    }

    /// Links `proposal` to finding `finding` as a fix; `false` when it was linked already.
    pub async fn link_fix(&mut self, finding: &str, proposal: &str) -> Result<bool, Error> {
        let mut conn = self.conn();
        let done = dispatch!(&mut conn, c => sqlx::query(
            "INSERT INTO finding_fixes (finding, proposal) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(finding).bind(proposal)
        .execute(&mut **c)
        .await
        .map_err(db("linking a fix"))?
        .rows_affected());
        Ok(done == 1)
    }

    /// Moves finding `id` to `state` after a fix's post-merge run, with that run's evidence.
    /// Not an observation: a failure the same run reports is observed on its own.
    pub async fn settle_finding(
        &mut self,
        id: &str,
        state: FindingState,
        verification: &Value,
        now_ms: i64,
    ) -> Result<(), Error> {
        let verification = to_json(id, "verification", verification)?;
        let mut conn = self.conn();
        dispatch!(&mut conn, c => sqlx::query(
            "UPDATE findings SET state = $1, verification = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(state.as_str()).bind(&verification).bind(now_ms).bind(id)
        .execute(&mut **c)
        .await
        .map_err(db("settling a finding"))?
        .rows_affected());
        Ok(())
    }

    /// [`Store::finding`] as this transaction sees it.
    pub async fn finding(&mut self, id: &str) -> Result<Option<Finding>, Error> {
        self.conn().finding_by_id(id).await
    }

    /// The findings `proposal` says it fixes.
    pub async fn fixed_by(&mut self, proposal: &str) -> Result<Vec<Finding>, Error> {
        let mut conn = self.conn();
        let rows: Vec<(String,)> = dispatch!(&mut conn, c => sqlx::query_as(
            "SELECT finding FROM finding_fixes WHERE proposal = $1 ORDER BY finding",
        )
        .bind(proposal)
        .fetch_all(&mut **c)
        .await
        .map_err(db("reading a proposal's findings"))?);
        let mut out = Vec::with_capacity(rows.len());
        for (id,) in rows {
            if let Some(finding) = conn.finding_by_id(&id).await? {
                out.push(finding);
            }
        }
        Ok(out)
    }
}

impl Store {
    /// The finding `id`, with its fixes.
    pub async fn finding(&self, id: &str) -> Result<Option<Finding>, Error> {
        self.pooled().await?.conn().finding_by_id(id).await
    }

    /// Findings matching `filter`, newest (highest number) first.
    pub async fn findings(&self, filter: &FindingFilter) -> Result<Vec<Finding>, Error> {
        self.pooled().await?.conn().list_findings(filter).await
    }

    /// The findings `proposal` says it fixes.
    pub async fn fixed_by(&self, proposal: &str) -> Result<Vec<Finding>, Error> {
        let mut pooled = self.pooled().await?;
        let mut conn = pooled.conn();
        let rows: Vec<(String,)> = dispatch!(&mut conn, c => sqlx::query_as(
            "SELECT finding FROM finding_fixes WHERE proposal = $1 ORDER BY finding",
        )
        .bind(proposal)
        .fetch_all(&mut **c)
        .await
        .map_err(db("reading a proposal's findings"))?);
        let mut out = Vec::with_capacity(rows.len());
        for (id,) in rows {
            if let Some(finding) = conn.finding_by_id(&id).await? {
                out.push(finding);
            }
        }
        Ok(out)
    }
}
