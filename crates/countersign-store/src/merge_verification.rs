//! Merge verifications: the post-merge runs that verify a merged proposal's fixes, queued
//! exactly once however many times, and in whichever order, the merge is announced (the
//! merged route, GitHub's closed pull request, the push that landed it, each redelivered).
//!
//! A merge of a proposal that fixes live findings is noted ([`Tx::await_verification`]);
//! whoever finds its commit on a protected branch takes it ([`Tx::take_verification`]:
//! `queued_at` from NULL to a time, in the transaction that queues the runs). Two takers,
//! on one server or two, cannot both win: on SQLite writers take turns, on PostgreSQL the
//! second `UPDATE` waits for the first's transaction and then finds the row taken. What
//! the runs are is the server's to compute; this module only records who queued them.

use crate::backend::{Conn, dispatch};
use crate::error::{Error, db};
use crate::store::Store;
use crate::tx::Tx;

/// A merge whose verification waits for its commit to reach a protected branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwaitedVerification {
    pub proposal: String,
    pub repo: String,
    /// The merged commit the runs verify.
    pub commit: String,
}

/// The most waiting merges one read returns, newest proposal first (ids sort by creation):
/// a merge whose commit never lands must not keep later ones from being read.
const MAX_AWAITED: i64 = 256;

impl Conn<'_> {
    async fn insert_verification(
        &mut self,
        proposal: &str,
        repo: &str,
        commit: &str,
    ) -> Result<(), Error> {
        dispatch!(self, c => sqlx::query(
            "INSERT INTO merge_verifications (proposal, repo, commit_id) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(proposal).bind(repo).bind(commit)
        .execute(&mut **c)
        .await
        .map_err(db("noting a merge to verify"))?
        .rows_affected());
        Ok(())
    }

    async fn take_verification(&mut self, proposal: &str, now_ms: i64) -> Result<bool, Error> {
        let taken = dispatch!(self, c => sqlx::query(
            "UPDATE merge_verifications SET queued_at = $2 \
             WHERE proposal = $1 AND queued_at IS NULL",
        )
        .bind(proposal).bind(now_ms)
        .execute(&mut **c)
        .await
        .map_err(db("taking a merge to verify"))?
        .rows_affected());
        Ok(taken == 1)
    }

    async fn awaited_verifications(
        &mut self,
        repo: &str,
    ) -> Result<Vec<AwaitedVerification>, Error> {
        let rows: Vec<(String, String, String)> = dispatch!(self, c => sqlx::query_as(
            "SELECT proposal, repo, commit_id FROM merge_verifications \
             WHERE repo = $1 AND queued_at IS NULL ORDER BY proposal DESC LIMIT $2",
        )
        .bind(repo).bind(MAX_AWAITED)
        .fetch_all(&mut **c)
        .await
        .map_err(db("reading merges to verify"))?);
        Ok(rows
            .into_iter()
            .map(|(proposal, repo, commit)| AwaitedVerification {
                proposal,
                repo,
                commit,
            })
            .collect())
    }
}

impl Tx {
    /// Notes that merged proposal `proposal` of `repo` waits for the verification of its
    /// fixes at `commit`; nothing when it was noted before (the first note's commit stays).
    pub async fn await_verification(
        &mut self,
        proposal: &str,
        repo: &str,
        commit: &str,
    ) -> Result<(), Error> {
        self.conn()
            .insert_verification(proposal, repo, commit)
            .await
    }

    /// Takes the verification of `proposal`'s merge: `true` once, for the caller that is
    /// to queue its runs in this transaction; `false` when it was never noted or another
    /// caller took it.
    pub async fn take_verification(&mut self, proposal: &str, now_ms: i64) -> Result<bool, Error> {
        self.conn().take_verification(proposal, now_ms).await
    }
}

impl Store {
    /// The merges of `repo` whose verification nobody has queued yet, newest proposal first
    /// (at most 256).
    pub async fn awaited_verifications(
        &self,
        repo: &str,
    ) -> Result<Vec<AwaitedVerification>, Error> {
        self.pooled()
            .await?
            .conn()
            .awaited_verifications(repo)
            .await
    }
}
