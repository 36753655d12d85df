//! [`Proposal`], [`Approval`] and idempotent responses as stored: the server's current state
//! beside the log.
//!
//! States and verdicts are countersign-lifecycle's types, parsed here where rows are read (an
//! unknown value is [`Error::Corrupt`]); this module never decides a transition. Writes go
//! through [`Tx`], so each lands in the transaction that appends the event recording it.

use countersign_lifecycle::{ProposalState, Verdict};
use countersign_policy::Tier;
use sqlx::Row as _;

pub use countersign_lifecycle::Approval;

use crate::backend::{Backend, Conn, DecisionRow, dispatch, int, placeholders, uint};
use crate::error::{Error, db};
use crate::log::{Leaf, NewEntry};
use crate::store::Store;
use crate::tx::Tx;
use countersign_audit::bundle::Blob;

/// A proposal row. `decision` is the id of the stored decision for the current head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub id: String,
    pub repo: String,
    pub base: String,
    pub head: String,
    pub title: String,
    pub description: String,
    pub author: String,
    pub state: ProposalState,
    pub tier: Tier,
    pub decision: String,
    /// RFC 3339, from the caller's clock.
    pub created_at: String,
    /// Everyone who authored or committed a commit in `base..head`, as principals
    /// (`human:bob`) or, when the base's catalog knows no such email, `email:<addr>`.
    pub authors: Vec<String>,
    /// The digest of the diff's content (paths, modes and blob ids of both sides): equal
    /// digests mean a trivial rebase. Empty for proposals stored before it was recorded.
    pub diff_digest: String,
    /// The proposal that replaces this one, when it was closed as superseded.
    pub superseded_by: Option<String>,
    /// Why it was closed, as the closer said.
    pub closed_reason: Option<String>,
    /// The human who dispatched the agent that proposed it (the proposer's token's
    /// `on_behalf_of`): an author through every head move.
    pub dispatched_by: Option<String>,
}

/// Which proposals [`Store::proposals`] lists: every given field must match.
#[derive(Debug, Clone, Default)]
pub struct ProposalFilter {
    pub state: Option<ProposalState>,
    pub tier: Option<Tier>,
    pub repo: Option<String>,
    /// The kind of the author's principal: `human`, `agent`.
    pub author_kind: Option<String>,
    /// Only ids below this one (newest first paging).
    pub before: Option<String>,
    pub limit: u32,
    /// Oldest first (ids ascending) instead of newest first: what has waited longest.
    pub oldest_first: bool,
}

/// What a head move changes in a proposal row: everything derived from the head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadMove {
    pub head: String,
    pub state: ProposalState,
    pub tier: Tier,
    pub decision: String,
    pub authors: Vec<String>,
    pub diff_digest: String,
}

/// A stored response to a creating request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotent {
    pub status: u16,
    pub response: String,
    /// What the key was first sent with: the route and a digest of the request body. The
    /// caller compares it before replaying `response`.
    pub scope: String,
}

const PROPOSAL_COLUMNS: &str = "id, repo, base, head, title, description, author, state, tier, decision, created_at, authors, diff_digest, superseded_by, closed_reason, dispatched_by";

/// A proposal row as read: its typed columns still text (parsed by [`decode_proposal`]).
struct RawProposal {
    proposal: Proposal,
    state: String,
    tier: String,
    authors: String,
}

fn proposal_from<R: sqlx::Row>(row: &R) -> Result<RawProposal, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let proposal = Proposal {
        id: row.try_get(0)?,
        repo: row.try_get(1)?,
        base: row.try_get(2)?,
        head: row.try_get(3)?,
        title: row.try_get(4)?,
        description: row.try_get(5)?,
        author: row.try_get(6)?,
        state: ProposalState::Open,
        tier: Tier::ChangeControl,
        decision: row.try_get(9)?,
        created_at: row.try_get(10)?,
        authors: Vec::new(),
        diff_digest: row.try_get(12)?,
        superseded_by: row.try_get(13)?,
        closed_reason: row.try_get(14)?,
        dispatched_by: row.try_get(15)?,
    };
    Ok(RawProposal {
        proposal,
        state: row.try_get(7)?,
        tier: row.try_get(8)?,
        authors: row.try_get(11)?,
    })
}

fn decode_proposal(raw: RawProposal) -> Result<Proposal, Error> {
    let RawProposal {
        mut proposal,
        state,
        tier,
        authors,
    } = raw;
    let corrupt = |column: &'static str, reason: String| Error::Corrupt {
        table: "proposals",
        key: proposal.id.clone(),
        column,
        reason,
    };
    proposal.state = state
        .parse()
        .map_err(|e| corrupt("state", format!("{e}")))?;
    proposal.tier = tier
        .parse()
        .map_err(|e: countersign_policy::TierError| corrupt("tier", e.to_string()))?;
    proposal.authors = serde_json::from_str(&authors)
        .map_err(|e| corrupt("authors", format!("not a JSON array of strings: {e}")))?;
    Ok(proposal)
}

fn encode_authors(authors: &[String]) -> String {
    // A list of strings always serializes.
    serde_json::to_string(authors).unwrap_or_else(|_| "[]".to_owned())
}

/// `Ok(false)` for a unique violation (the row exists), the error otherwise.
fn unique(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Result<bool, Error> {
    move |e| {
        if e.as_database_error()
            .is_some_and(|d| d.is_unique_violation())
        {
            Ok(false)
        } else {
            Err(db(operation)(e))
        }
    }
}

/// A proposal as its `proposals` row binds it.
struct ProposalRow<'a> {
    p: &'a Proposal,
    authors: String,
}

impl<'a> ProposalRow<'a> {
    fn new(p: &'a Proposal) -> Self {
        ProposalRow {
            p,
            authors: encode_authors(&p.authors),
        }
    }

    /// The `INSERT`, its placeholders numbered after the first `used`.
    fn insert(used: usize) -> String {
        let mut sql = format!("INSERT INTO proposals ({PROPOSAL_COLUMNS}) VALUES (");
        placeholders(&mut sql, used + 1, 16);
        sql.push(')');
        sql
    }

    /// Binds the row in the order of `PROPOSAL_COLUMNS`.
    fn bind<'q, DB>(
        &'q self,
        query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    ) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
    where
        DB: sqlx::Database,
        &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        let p = self.p;
        query
            .bind(p.id.as_str())
            .bind(p.repo.as_str())
            .bind(p.base.as_str())
            .bind(p.head.as_str())
            .bind(p.title.as_str())
            .bind(p.description.as_str())
            .bind(p.author.as_str())
            .bind(p.state.as_str())
            .bind(p.tier.as_str())
            .bind(p.decision.as_str())
            .bind(p.created_at.as_str())
            .bind(self.authors.as_str())
            .bind(p.diff_digest.as_str())
            .bind(p.superseded_by.as_deref())
            .bind(p.closed_reason.as_deref())
            .bind(p.dispatched_by.as_deref())
    }
}

impl Conn<'_> {
    async fn insert_proposal(&mut self, p: &Proposal) -> Result<(), Error> {
        let row = ProposalRow::new(p);
        let sql = ProposalRow::insert(0);
        let result = dispatch!(self, c => row.bind(sqlx::query(&sql))
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected()));
        match result.map_or_else(unique("inserting proposal"), |_| Ok(true))? {
            true => Ok(()),
            false => Err(Error::Duplicate {
                table: "proposals",
                key: p.id.clone(),
            }),
        }
    }

    /// `lock`: hold the row against other writers until the transaction ends (PostgreSQL;
    /// a SQLite write transaction already excludes every other writer).
    async fn proposal(&mut self, id: &str, lock: bool) -> Result<Option<Proposal>, Error> {
        let mut sql = format!("SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE id = $1");
        if lock && matches!(self, Conn::Postgres(_)) {
            sql.push_str(" FOR UPDATE");
        }
        dispatch!(self, c => sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&mut **c)
            .await
            .map_err(db("reading proposal"))?
            .map(|row| proposal_from(&row))
            .transpose()
            .map_err(db("decoding proposal"))?)
        .map(decode_proposal)
        .transpose()
    }

    async fn proposals_at(
        &mut self,
        repo: &str,
        head: &str,
        after: &str,
        limit: u64,
    ) -> Result<Vec<Proposal>, Error> {
        let sql = format!(
            "SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE repo = $1 AND head = $2 AND id > $3 \
             ORDER BY id LIMIT $4"
        );
        let limit = int("limit", limit)?;
        dispatch!(self, c => sqlx::query(&sql)
            .bind(repo)
            .bind(head)
            .bind(after)
            .bind(limit)
            .fetch_all(&mut **c)
            .await
            .map_err(db("reading proposals"))?
            .iter()
            .map(proposal_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(db("decoding proposals"))?)
        .into_iter()
        .map(decode_proposal)
        .collect()
    }

    async fn proposals(&mut self, filter: &ProposalFilter) -> Result<Vec<Proposal>, Error> {
        let mut sql = format!("SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        let mut push = |sql: &mut String, clause: &str, value: String| {
            binds.push(value);
            sql.push_str(&clause.replace('?', &format!("${}", binds.len())));
        };
        if let Some(state) = filter.state {
            push(&mut sql, " AND state = ?", state.as_str().to_owned());
        }
        if let Some(tier) = filter.tier {
            push(&mut sql, " AND tier = ?", tier.as_str().to_owned());
        }
        if let Some(repo) = &filter.repo {
            push(&mut sql, " AND repo = ?", repo.clone());
        }
        if let Some(kind) = &filter.author_kind {
            // A principal is `kind:name`: the prefix up to the colon, compared exactly.
            let prefix = format!("{kind}:");
            let clause = format!(" AND substr(author, 1, {}) = ?", prefix.chars().count());
            push(&mut sql, &clause, prefix);
        }
        if let Some(before) = &filter.before {
            push(&mut sql, " AND id < ?", before.clone());
        }
        sql.push_str(if filter.oldest_first {
            " ORDER BY id ASC LIMIT "
        } else {
            " ORDER BY id DESC LIMIT "
        });
        sql.push_str(&filter.limit.to_string());
        dispatch!(self, c => {
            let mut query = sqlx::query(&sql);
            for value in &binds {
                query = query.bind(value);
            }
            query
                .fetch_all(&mut **c)
                .await
                .map_err(db("reading proposals"))?
                .iter()
                .map(proposal_from)
                .collect::<Result<Vec<_>, _>>()
                .map_err(db("decoding proposals"))?
        })
        .into_iter()
        .map(decode_proposal)
        .collect()
    }

    async fn authorized_at(
        &mut self,
        repo: &str,
        head: &str,
        limit: u64,
    ) -> Result<Vec<Proposal>, Error> {
        let sql = format!(
            "SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE repo = $1 AND head = $2 \
             AND state IN ('authorized', 'merged') ORDER BY id LIMIT $3"
        );
        let limit = int("limit", limit)?;
        dispatch!(self, c => sqlx::query(&sql)
            .bind(repo)
            .bind(head)
            .bind(limit)
            .fetch_all(&mut **c)
            .await
            .map_err(db("reading proposals"))?
            .iter()
            .map(proposal_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(db("decoding proposals"))?)
        .into_iter()
        .map(decode_proposal)
        .collect()
    }

    async fn update_proposal_state(&mut self, id: &str, state: ProposalState) -> Result<(), Error> {
        dispatch!(self, c => sqlx::query("UPDATE proposals SET state = $1 WHERE id = $2")
            .bind(state.as_str())
            .bind(id)
            .execute(&mut **c)
            .await
            .map_err(db("updating proposal state"))?
            .rows_affected());
        Ok(())
    }

    async fn insert_approval(&mut self, a: &Approval) -> Result<bool, Error> {
        let log_index = int("log index", a.log_index)?;
        let lapsed_by = a.lapsed_by.map(|i| int("log index", i)).transpose()?;
        let result = dispatch!(self, c => sqlx::query(
            "INSERT INTO approvals (proposal, head, approver, verdict, comment, log_index, lapsed_by, carried_from) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(&a.proposal).bind(&a.head).bind(&a.approver).bind(a.verdict.as_str()).bind(&a.comment).bind(log_index)
        .bind(lapsed_by).bind(&a.carried_from)
        .execute(&mut **c)
        .await
        .map(|done| done.rows_affected()));
        // ON CONFLICT rather than catching the violation: on PostgreSQL a failed statement
        // aborts the whole transaction, and the caller wants to carry on.
        Ok(result.map_err(db("inserting approval"))? == 1)
    }

    async fn approvals(&mut self, proposal: &str) -> Result<Vec<Approval>, Error> {
        self.approvals_of(&[proposal]).await
    }

    /// Every verdict on any of `proposals`, in one query, in log order.
    async fn approvals_of(&mut self, proposals: &[&str]) -> Result<Vec<Approval>, Error> {
        if proposals.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = "SELECT proposal, head, approver, verdict, comment, log_index, lapsed_by, \
                       carried_from FROM approvals WHERE proposal IN ("
            .to_owned();
        crate::backend::placeholders(&mut sql, 1, proposals.len());
        sql.push_str(") ORDER BY log_index, approver");
        let rows = dispatch!(self, c => {
            let mut query = sqlx::query(&sql);
            for proposal in proposals {
                query = query.bind(*proposal);
            }
            query
                .fetch_all(&mut **c)
                .await
                .map_err(db("reading approvals"))?
                .iter()
                .map(|row| Ok((
                    row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?, row.try_get::<String, _>(2)?,
                    row.try_get::<String, _>(3)?, row.try_get::<String, _>(4)?, row.try_get::<i64, _>(5)?,
                    row.try_get::<Option<i64>, _>(6)?, row.try_get::<Option<String>, _>(7)?,
                )))
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(db("decoding approvals"))?
        });
        rows.into_iter()
            .map(
                |(proposal, head, approver, verdict, comment, index, lapsed_by, carried_from)| {
                    let verdict: Verdict = verdict.parse().map_err(|e| Error::Corrupt {
                        table: "approvals",
                        key: format!("{proposal}/{head}/{approver}"),
                        column: "verdict",
                        reason: format!("{e}"),
                    })?;
                    Ok(Approval {
                        log_index: uint("approvals", &proposal, "log_index", index)?,
                        lapsed_by: lapsed_by
                            .map(|i| uint("approvals", &proposal, "lapsed_by", i))
                            .transpose()?,
                        carried_from,
                        proposal,
                        head,
                        approver,
                        verdict,
                        comment,
                    })
                },
            )
            .collect()
    }

    async fn update_proposal_head(&mut self, id: &str, m: &HeadMove) -> Result<(), Error> {
        let authors = encode_authors(&m.authors);
        dispatch!(self, c => sqlx::query(
            "UPDATE proposals SET head = $1, state = $2, tier = $3, decision = $4, authors = $5, diff_digest = $6 WHERE id = $7",
        )
        .bind(&m.head).bind(m.state.as_str()).bind(m.tier.as_str()).bind(&m.decision).bind(&authors)
        .bind(&m.diff_digest).bind(id)
        .execute(&mut **c)
        .await
        .map_err(db("moving proposal head"))?
        .rows_affected());
        Ok(())
    }

    async fn update_proposal_closed(
        &mut self,
        id: &str,
        state: ProposalState,
        reason: Option<&str>,
        superseded_by: Option<&str>,
    ) -> Result<(), Error> {
        dispatch!(self, c => sqlx::query(
            "UPDATE proposals SET state = $1, closed_reason = $2, superseded_by = $3 WHERE id = $4",
        )
        .bind(state.as_str()).bind(reason).bind(superseded_by).bind(id)
        .execute(&mut **c)
        .await
        .map_err(db("closing proposal"))?
        .rows_affected());
        Ok(())
    }

    async fn lapse_approvals(&mut self, proposal: &str, lapsed_by: u64) -> Result<u64, Error> {
        let lapsed_by = int("log index", lapsed_by)?;
        Ok(dispatch!(self, c => sqlx::query(
            "UPDATE approvals SET lapsed_by = $1 WHERE proposal = $2 AND lapsed_by IS NULL",
        )
        .bind(lapsed_by).bind(proposal)
        .execute(&mut **c)
        .await
        .map_err(db("lapsing approvals"))?
        .rows_affected()))
    }

    async fn supersede_approval(
        &mut self,
        proposal: &str,
        head: &str,
        approver: &str,
        by: u64,
    ) -> Result<u64, Error> {
        let by = int("log index", by)?;
        Ok(dispatch!(self, c => sqlx::query(
            "UPDATE approvals SET lapsed_by = $1 WHERE proposal = $2 AND head = $3 AND lower(approver) = lower($4) AND lapsed_by IS NULL",
        )
        .bind(by).bind(proposal).bind(head).bind(approver)
        .execute(&mut **c)
        .await
        .map_err(db("superseding a verdict"))?
        .rows_affected()))
    }

    async fn idempotent(
        &mut self,
        key: &str,
        principal: &str,
    ) -> Result<Option<Idempotent>, Error> {
        let row = dispatch!(self, c => sqlx::query(
            "SELECT status, response, scope FROM idempotency WHERE key = $1 AND principal = $2",
        )
        .bind(key)
        .bind(principal)
        .fetch_optional(&mut **c)
        .await
        .map_err(db("reading idempotency key"))?
        .map(|row| Ok::<_, sqlx::Error>((row.try_get::<i64, _>(0)?, row.try_get::<String, _>(1)?, row.try_get::<String, _>(2)?)))
        .transpose()
        .map_err(db("decoding idempotency key"))?);
        row.map(|(status, response, scope)| {
            let status = u16::try_from(status).map_err(|_| Error::Corrupt {
                table: "idempotency",
                key: key.to_owned(),
                column: "status",
                reason: format!("{status} is not an HTTP status"),
            })?;
            Ok(Idempotent {
                status,
                response,
                scope,
            })
        })
        .transpose()
    }

    async fn insert_idempotent(
        &mut self,
        key: &str,
        principal: &str,
        value: &Idempotent,
    ) -> Result<bool, Error> {
        let result = dispatch!(self, c => sqlx::query(
            "INSERT INTO idempotency (key, principal, status, response, scope) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(key).bind(principal).bind(i64::from(value.status)).bind(&value.response).bind(&value.scope)
        .execute(&mut **c)
        .await
        .map(|done| done.rows_affected()));
        Ok(result.map_err(db("inserting idempotency key"))? == 1)
    }
}

impl Store {
    pub async fn proposal(&self, id: &str) -> Result<Option<Proposal>, Error> {
        self.pooled().await?.conn().proposal(id, false).await
    }

    /// The proposals of `repo` whose current head is `head`, in id order (the server's ids
    /// follow the creation time), those with an id greater than `after` (`""` for the first), at most `limit`.
    pub async fn proposals_at(
        &self,
        repo: &str,
        head: &str,
        after: &str,
        limit: u64,
    ) -> Result<Vec<Proposal>, Error> {
        self.pooled()
            .await?
            .conn()
            .proposals_at(repo, head, after, limit)
            .await
    }

    /// The proposals `filter` selects, newest (greatest id) first.
    pub async fn proposals(&self, filter: &ProposalFilter) -> Result<Vec<Proposal>, Error> {
        self.pooled().await?.conn().proposals(filter).await
    }

    /// The proposals of `repo` whose current head is `head` and that authorized it
    /// (`authorized`, or `merged` since), in id order, at most `limit`. Several may: the
    /// same head proposed against different bases, each judging its own `base..head`, and
    /// which of them authorizes a ref update depends on the ref's old tip.
    pub async fn authorized_at(
        &self,
        repo: &str,
        head: &str,
        limit: u64,
    ) -> Result<Vec<Proposal>, Error> {
        self.pooled()
            .await?
            .conn()
            .authorized_at(repo, head, limit)
            .await
    }

    /// Every verdict on `proposal`, on any head, in log order.
    pub async fn approvals(&self, proposal: &str) -> Result<Vec<Approval>, Error> {
        self.pooled().await?.conn().approvals(proposal).await
    }

    /// Every verdict on any of `proposals`, in one query, in log order: for a page that
    /// shows many proposals (the console's next actions) instead of a query each.
    pub async fn approvals_of(&self, proposals: &[&str]) -> Result<Vec<Approval>, Error> {
        self.pooled().await?.conn().approvals_of(proposals).await
    }

    /// The response stored for `key` sent by `principal`.
    pub async fn idempotent(
        &self,
        key: &str,
        principal: &str,
    ) -> Result<Option<Idempotent>, Error> {
        self.pooled().await?.conn().idempotent(key, principal).await
    }

    /// A cheap round trip, for readiness probes.
    pub async fn ping(&self) -> Result<(), Error> {
        self.log_size().await.map(|_| ())
    }

    /// Opens a decided proposal in a transaction of its own: stores `blobs`, appends
    /// `leaves`, records `decision` (pointing at the entry of `leaves[decided]`) and the new
    /// `proposal`, and commits; returns the entries' indexes once durable. What
    /// [`Tx::append_decided`] then [`Tx::commit`] do, with one round trip in the section
    /// every writer of the process waits for (blobs this process committed before are not
    /// sent again), which is what opening a proposal mostly is:
    ///
    /// - SQLite: the write also releases the transaction's savepoint into its batch;
    /// - PostgreSQL: no savepoint, when the batch allows it (see the `group` module). The
    ///   statement inserts the proposal only if its id is free, and everything else only if
    ///   it did, so a taken id is [`Error::Duplicate`] with nothing written; any other
    ///   failure rolls back the batch, whose earlier members then write again.
    ///
    /// Told its batch was rolled back because another member failed ([`Error::RolledBack`]:
    /// nothing was written), it writes again, then with a savepoint, so another's failure
    /// costs it a retry, never its write.
    ///
    /// Runs in a task of its own, so a caller cancelled half-way (a client gone) cannot
    /// separate the write from the batch's bookkeeping: once called, the proposal is
    /// committed or refused whether or not anyone still waits for the answer.
    pub async fn commit_decided(
        &self,
        blobs: Vec<Blob>,
        leaves: Vec<Leaf>,
        decided: usize,
        mut decision: crate::Decision,
        proposal: Proposal,
    ) -> Result<Vec<u64>, Error> {
        let store = self.clone();
        let work = async move {
            let postgres = matches!(store.backend, Backend::Postgres(_));
            let mut attempt = 0;
            loop {
                attempt += 1;
                // The first time on PostgreSQL without a savepoint; after a rollback caused
                // by another member, with one (which no later failure can then undo).
                let savepoint = !postgres || attempt > 1;
                let written = store
                    .write_decided(
                        &blobs,
                        &leaves,
                        decided,
                        &mut decision,
                        &proposal,
                        savepoint,
                    )
                    .await;
                match written {
                    Err(Error::RolledBack(_)) if attempt < MAX_ATTEMPTS => continue,
                    other => return other,
                }
            }
        };
        crate::group::uncancellable(work).await
    }

    /// One attempt of [`Store::commit_decided`].
    async fn write_decided(
        &self,
        blobs: &[Blob],
        leaves: &[Leaf],
        decided: usize,
        decision: &mut crate::Decision,
        proposal: &Proposal,
        savepoint: bool,
    ) -> Result<Vec<u64>, Error> {
        let mut tx = self.begin_in(savepoint).await?;
        for blob in blobs {
            tx.put_hashed_blob(blob).await?;
        }
        if matches!(self.backend, Backend::Postgres(_)) {
            let written = tx.append_decided(leaves, decided, decision, proposal).await;
            // Refused, the member wrote nothing (but content-addressed blobs) and ends
            // normally too. On any other failure `tx` is dropped: with a savepoint that
            // undoes only it; without one, PostgreSQL has aborted the batch's transaction,
            // and dropping it rolls the batch back (see `group::Group::join`).
            if matches!(written, Ok(_) | Err(Error::Duplicate { .. })) {
                tx.commit().await?;
            }
            return written;
        }
        let (release, reopen) = tx.member().release_sql();
        // A failed write stopped before its release, so the savepoint is still open and
        // dropping `tx` undoes it (or it stopped after, at the reopening: then undoing
        // finds no savepoint and rolls the whole batch back).
        let indexes = tx
            .write_decided(leaves, decided, decision, proposal, release)
            .await?;
        let Some(member) = tx.hand_over() else {
            return Err(Error::Batch("the transaction had ended".to_owned()));
        };
        member.commit_released(reopen).await?;
        tx.committed_blobs();
        Ok(indexes)
    }
}

/// Attempts of [`Store::commit_decided`] at most: the second has a savepoint, so only
/// something broken (a savepoint that cannot be undone) rolls it back again.
const MAX_ATTEMPTS: u32 = 3;

impl Tx {
    /// Appends `leaves`, then stores `decision` pointing at the entry of `leaves[decided]`
    /// and the new `proposal`: what opening a proposal writes, in one round trip (SQLite:
    /// statements of one call; PostgreSQL: one statement), where each round trip is time
    /// every other writer waits. Returns the entries' indexes.
    pub async fn append_decided(
        &mut self,
        leaves: &[Leaf],
        decided: usize,
        decision: &mut crate::Decision,
        proposal: &Proposal,
    ) -> Result<Vec<u64>, Error> {
        self.write_decided(leaves, decided, decision, proposal, "")
            .await
    }

    /// The write of [`Tx::append_decided`]; on SQLite the statements `tail` run after it
    /// in the same call.
    async fn write_decided(
        &mut self,
        leaves: &[Leaf],
        decided: usize,
        decision: &mut crate::Decision,
        proposal: &Proposal,
        tail: &str,
    ) -> Result<Vec<u64>, Error> {
        // The proposal is new: its row is inserted with these entries, and the write fails
        // if the id exists (see `insert_decided`).
        let entries = self.entries(leaves, Some(&proposal.id)).await?;
        let Some(entry) = entries.get(decided) else {
            let none = Err(Error::Batch(format!(
                "no leaf {decided} among the {} appended",
                entries.len()
            )));
            return self.appended(&entries, none);
        };
        decision.log_index = entry.index;
        let written = insert_decided(self.conn(), &entries, decision, proposal, tail).await;
        self.appended(&entries, written)
    }

    /// Stores a new proposal; [`Error::Duplicate`] when the id exists.
    pub async fn put_proposal(&mut self, proposal: &Proposal) -> Result<(), Error> {
        self.conn().insert_proposal(proposal).await
    }

    /// Reads proposal `id` and holds it until the transaction ends, so two transactions
    /// changing one proposal run one after the other.
    pub async fn lock_proposal(&mut self, id: &str) -> Result<Option<Proposal>, Error> {
        self.conn().proposal(id, true).await
    }

    pub async fn set_proposal_state(
        &mut self,
        id: &str,
        state: ProposalState,
    ) -> Result<(), Error> {
        self.conn().update_proposal_state(id, state).await
    }

    /// Points proposal `id` at a new head with everything derived from it. The caller holds
    /// the row ([`Tx::lock_proposal`]) and appends the event recording the move.
    pub async fn move_head(&mut self, id: &str, change: &HeadMove) -> Result<(), Error> {
        self.conn().update_proposal_head(id, change).await
    }

    /// Sets a final `state` (closed, superseded) with the closer's reason and, for a
    /// superseded proposal, its successor.
    pub async fn close_proposal(
        &mut self,
        id: &str,
        state: ProposalState,
        reason: Option<&str>,
        superseded_by: Option<&str>,
    ) -> Result<(), Error> {
        self.conn()
            .update_proposal_closed(id, state, reason, superseded_by)
            .await
    }

    /// Marks every live verdict on `proposal` lapsed by the log entry `lapsed_by` (a head
    /// move); returns how many lapsed. The rows stay: they are the record of what was said.
    pub async fn lapse_approvals(&mut self, proposal: &str, lapsed_by: u64) -> Result<u64, Error> {
        self.conn().lapse_approvals(proposal, lapsed_by).await
    }

    /// Ends `approver`'s standing verdict on `head` of `proposal`, lapsed by the log entry
    /// `by` (the same person's new verdict on the same head); returns how many rows ended
    /// (0 or 1: one standing verdict per person and head). The row stays, marked.
    pub async fn supersede_approval(
        &mut self,
        proposal: &str,
        head: &str,
        approver: &str,
        by: u64,
    ) -> Result<u64, Error> {
        self.conn()
            .supersede_approval(proposal, head, approver, by)
            .await
    }

    /// Records a verdict; `false` (and nothing written) when this approver already gave a
    /// live (not lapsed) one on this head.
    pub async fn put_approval(&mut self, approval: &Approval) -> Result<bool, Error> {
        self.conn().insert_approval(approval).await
    }

    /// The verdicts on `proposal` as this transaction sees them.
    pub async fn approvals(&mut self, proposal: &str) -> Result<Vec<Approval>, Error> {
        self.conn().approvals(proposal).await
    }

    pub async fn idempotent(
        &mut self,
        key: &str,
        principal: &str,
    ) -> Result<Option<Idempotent>, Error> {
        self.conn().idempotent(key, principal).await
    }

    /// Stores the response for `key`; `false` when one is stored already.
    pub async fn put_idempotent(
        &mut self,
        key: &str,
        principal: &str,
        value: &Idempotent,
    ) -> Result<bool, Error> {
        self.conn().insert_idempotent(key, principal, value).await
    }
}

/// Writes a decided proposal: its entries, then its decision and the proposal, in one call;
/// [`Error::Duplicate`] when the proposal's id is taken (on SQLite, the decision's too).
///
/// SQLite: statements of one call, then the statements `tail`; a taken id fails the call
/// part-way (the caller's savepoint undoes the rest). PostgreSQL: one statement of `WITH`
/// clauses (foreign keys are checked at its end, when every row is there), and `tail` must
/// be empty (a parameterized statement cannot carry others). It inserts the proposal only if
/// its id is free and the other rows only if it did, so a taken proposal id writes nothing
/// and fails nothing: the statement needs no savepoint (see `Store::commit_decided`). A taken
/// decision id alone (no caller makes one) fails the statement, and is not `Duplicate`.
async fn insert_decided(
    conn: Conn<'_>,
    entries: &[NewEntry<'_>],
    decision: &crate::Decision,
    p: &Proposal,
    tail: &str,
) -> Result<(), Error> {
    let rows = crate::backend::EntryRows::new(entries)?;
    let decision_row = DecisionRow::new(decision)?;
    let proposal_row = ProposalRow::new(p);
    let duplicate = || Error::Duplicate {
        table: "decisions or proposals",
        key: format!("{} / {}", decision.id, p.id),
    };
    match conn {
        Conn::Sqlite(c) => {
            let (entries_sql, used) = rows.sql(false);
            let mut sql = format!(
                "{entries_sql}; {}; {}",
                DecisionRow::insert(used, None),
                ProposalRow::insert(used + DecisionRow::PLACEHOLDERS)
            );
            if !tail.is_empty() {
                sql.push_str("; ");
                sql.push_str(tail);
            }
            proposal_row
                .bind(decision_row.bind(rows.bind(sqlx::query(&sql))))
                .execute(&mut *c)
                .await
                .map_err(|e| match e.as_database_error() {
                    Some(d) if d.is_unique_violation() => duplicate(),
                    _ => db("recording a decided proposal")(e),
                })?;
            Ok(())
        }
        Conn::Postgres(c) => {
            if !tail.is_empty() {
                return Err(Error::Batch(
                    "PostgreSQL runs no statements after a parameterized one".to_owned(),
                ));
            }
            // The proposal's placeholders come last, as they are bound; its clause first.
            const OPENED: &str = "EXISTS (SELECT FROM opened)";
            let (clauses, used) = rows.with_clauses(Some(OPENED));
            let sql = format!(
                "WITH opened AS ({} ON CONFLICT (id) DO NOTHING RETURNING id), {clauses}, \
                 decision AS ({}) SELECT count(*) FROM opened",
                ProposalRow::insert(used + DecisionRow::PLACEHOLDERS),
                DecisionRow::insert(used, Some(OPENED)),
            );
            // A failure here is never `Duplicate`, which tells the caller that nothing was
            // written and the transaction goes on: here it was aborted.
            let opened: i64 = proposal_row
                .bind(decision_row.bind(rows.bind(sqlx::query(&sql))))
                .fetch_one(&mut *c)
                .await
                .and_then(|row| row.try_get(0))
                .map_err(db("recording a decided proposal"))?;
            if opened == 0 {
                return Err(duplicate());
            }
            Ok(())
        }
    }
}
