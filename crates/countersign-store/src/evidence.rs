//! [`AcceptedEvidence`]: the evidence envelopes the server accepted for a proposal, indexed by
//! the head they were accepted under, with their bytes read back from the blobs.
//!
//! Whether an envelope is trusted, which commit it binds to and what it does to a decision
//! are decided by the server with countersign-decide; this module stores its verdict and
//! never verifies a signature. A head move lapses every live row ([`Tx::lapse_evidence`],
//! like approvals) and every read takes only live rows of the given head, so evidence
//! accepted for an earlier head never counts for a later one, even when the head moves back:
//! rows lapse, they are not deleted.

use sqlx::Row as _;

use crate::backend::{Conn, dispatch, int, uint};
use crate::error::{Error, db};
use crate::store::Store;
use crate::tx::Tx;

/// One accepted envelope of one proposal at one head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedEvidence {
    pub proposal: String,
    /// The proposal's head when the envelope was accepted.
    pub head: String,
    /// The envelope's blob digest (lower-case hex SHA-256 of its bytes).
    pub digest: String,
    /// The commit the envelope is about.
    pub bound_commit: String,
    /// `head` or `base`: what `bound_commit` is to the proposal.
    pub binding: String,
    pub runner: String,
    pub suite: String,
    pub predicate_type: String,
    /// The `evidence_accepted` log entry.
    pub log_index: u64,
}

const COLUMNS: &str = "e.proposal, e.head, e.digest, e.bound_commit, e.binding, e.runner, e.suite, e.predicate_type, e.log_index";

type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
);

fn evidence_from(row: Row) -> Result<AcceptedEvidence, Error> {
    let (proposal, head, digest, bound_commit, binding, runner, suite, predicate_type, index) = row;
    Ok(AcceptedEvidence {
        log_index: uint("evidence", &digest, "log_index", index)?,
        proposal,
        head,
        digest,
        bound_commit,
        binding,
        runner,
        suite,
        predicate_type,
    })
}

macro_rules! decode_row {
    ($row:expr) => {
        (|| -> Result<Row, sqlx::Error> {
            Ok((
                $row.try_get(0)?,
                $row.try_get(1)?,
                $row.try_get(2)?,
                $row.try_get(3)?,
                $row.try_get(4)?,
                $row.try_get(5)?,
                $row.try_get(6)?,
                $row.try_get(7)?,
                $row.try_get(8)?,
            ))
        })()
    };
}

impl Conn<'_> {
    async fn insert_evidence(&mut self, e: &AcceptedEvidence) -> Result<bool, Error> {
        let log_index = int("log index", e.log_index)?;
        let result = dispatch!(self, c => sqlx::query(
            "INSERT INTO evidence (proposal, head, digest, bound_commit, binding, runner, suite, predicate_type, log_index) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .bind(&e.proposal).bind(&e.head).bind(&e.digest).bind(&e.bound_commit).bind(&e.binding)
        .bind(&e.runner).bind(&e.suite).bind(&e.predicate_type).bind(log_index)
        .execute(&mut **c)
        .await
        .map(|done| done.rows_affected()));
        // ON CONFLICT rather than catching the violation: a failed statement aborts a
        // PostgreSQL transaction, and the caller wants to carry on.
        Ok(result.map_err(db("inserting evidence"))? == 1)
    }

    /// The evidence of `proposal` accepted under `head`, in log order, with the envelopes.
    async fn evidence_for_head(
        &mut self,
        proposal: &str,
        head: &str,
    ) -> Result<Vec<(AcceptedEvidence, Vec<u8>)>, Error> {
        let sql = format!(
            "SELECT {COLUMNS}, b.content FROM evidence e JOIN blobs b ON b.digest = e.digest \
             WHERE e.proposal = $1 AND e.head = $2 AND e.lapsed_by IS NULL ORDER BY e.log_index"
        );
        let rows = dispatch!(self, c => sqlx::query(&sql)
            .bind(proposal)
            .bind(head)
            .fetch_all(&mut **c)
            .await
            .map_err(db("reading evidence"))?
            .iter()
            .map(|row| Ok((decode_row!(row)?, row.try_get::<Vec<u8>, _>(9)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(db("decoding evidence"))?);
        rows.into_iter()
            .map(|(row, content)| Ok((evidence_from(row)?, content)))
            .collect()
    }

    async fn lapse_evidence(&mut self, proposal: &str, by: u64) -> Result<u64, Error> {
        let by = int("log index", by)?;
        Ok(dispatch!(self, c => sqlx::query(
            "UPDATE evidence SET lapsed_by = $1 WHERE proposal = $2 AND lapsed_by IS NULL",
        )
        .bind(by)
        .bind(proposal)
        .execute(&mut **c)
        .await
        .map_err(db("lapsing evidence"))?
        .rows_affected()))
    }

    async fn update_proposal_decision(
        &mut self,
        id: &str,
        decision: &str,
        tier: countersign_policy::Tier,
        state: countersign_lifecycle::ProposalState,
    ) -> Result<(), Error> {
        dispatch!(self, c => sqlx::query(
            "UPDATE proposals SET decision = $1, tier = $2, state = $3 WHERE id = $4",
        )
        .bind(decision)
        .bind(tier.as_str())
        .bind(state.as_str())
        .bind(id)
        .execute(&mut **c)
        .await
        .map_err(db("updating proposal decision"))?
        .rows_affected());
        Ok(())
    }
}

impl Store {
    /// The live evidence accepted for `proposal` under `head`, in log order, with each
    /// envelope's bytes. Evidence accepted under any other head, or lapsed, is not returned.
    pub async fn evidence_for_head(
        &self,
        proposal: &str,
        head: &str,
    ) -> Result<Vec<(AcceptedEvidence, Vec<u8>)>, Error> {
        self.pooled()
            .await?
            .conn()
            .evidence_for_head(proposal, head)
            .await
    }
}

impl Tx {
    /// Records an accepted envelope (its blob must be stored in this transaction or
    /// before); `false`, and nothing written, when a live row has it for this head already.
    pub async fn put_evidence(&mut self, evidence: &AcceptedEvidence) -> Result<bool, Error> {
        self.conn().insert_evidence(evidence).await
    }

    /// Lapses every live evidence row of `proposal`: the head move logged at `by` replaced
    /// the head they were accepted for. Returns how many lapsed.
    pub async fn lapse_evidence(&mut self, proposal: &str, by: u64) -> Result<u64, Error> {
        self.conn().lapse_evidence(proposal, by).await
    }

    /// [`Store::evidence_for_head`] as this transaction sees it.
    pub async fn evidence_for_head(
        &mut self,
        proposal: &str,
        head: &str,
    ) -> Result<Vec<(AcceptedEvidence, Vec<u8>)>, Error> {
        self.conn().evidence_for_head(proposal, head).await
    }

    /// Points proposal `id` at a new decision of its current head, with that decision's
    /// tier and the state it leads to.
    pub async fn set_proposal_decision(
        &mut self,
        id: &str,
        decision: &str,
        tier: countersign_policy::Tier,
        state: countersign_lifecycle::ProposalState,
    ) -> Result<(), Error> {
        self.conn()
            .update_proposal_decision(id, decision, tier, state)
            .await
    }
}
