//! The server's use of `countersign_decide`: a proposed change between two commits of a
//! configured repository decided by the same pipeline as `countersign evaluate`, and
//! recorded in the same audit format, so `countersign bundle verify` re-derives a server
//! decision exactly like a CLI one.
//!
//! What the server adds is kept here: its own proposal id as the record's subject, and
//! the fields its approval rules read (eligible approvers, shortfall, validation plan) as
//! annotations of the `decided` event, which re-derivation ignores. The server holds no
//! log key (yet), so an automated decision is recorded without a signed verification
//! summary (docs/server.md). Evidence is not weighed here yet.

use std::path::Path;

use countersign_decide::DecideError;
use countersign_decide::evaluate::{self, ChangeSource, Evaluation, Proposer};
use countersign_decide::record::{self, Record};
use countersign_policy::{Principal, Tier};
use serde_json::{Map, Value, json};

/// A decided change, before it is recorded under a proposal id.
pub struct Outcome {
    pub base: String,
    pub head: String,
    pub tier: Tier,
    pub automated: bool,
    evaluation: Evaluation,
    proposer: Proposer,
}

/// Why no decision could be made or recorded: a bad revision, an empty diff, a broken
/// governed state. All are the proposer's input, so they are answered as 422.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PipelineError(String);

impl PipelineError {
    fn from_error(error: &DecideError) -> PipelineError {
        // The whole chain in one line, as the CLI prints it.
        PipelineError(error.chain())
    }
}

/// Decides the change `base..head` of the repository at `path` proposed by `author`. Blocking
/// (git and Cedar): run it off the async workers.
pub fn decide(
    path: &Path,
    base: &str,
    head: &str,
    author: &Principal,
) -> Result<Outcome, PipelineError> {
    let proposer = Proposer {
        author: author.to_string(),
        declared_tier: None,
    };
    let change = ChangeSource::Commits {
        base: base.to_owned(),
        head: head.to_owned(),
    };
    let evaluation =
        evaluate::evaluate(path, change, &proposer).map_err(|e| PipelineError::from_error(&e))?;
    let (Some(base), Some(head)) = (
        evaluation.report.change.base.clone(),
        evaluation.report.change.head.clone(),
    ) else {
        return Err(PipelineError(
            "the evaluation names no base and head commits".to_owned(),
        ));
    };
    Ok(Outcome {
        base,
        head,
        tier: evaluation.decision.tier,
        automated: evaluation.report.automated,
        evaluation,
        proposer,
    })
}

impl Outcome {
    /// The audit record of this decision as proposal `subject` of `repository`, and the
    /// `decided` event's data (what the server stores as the decision record).
    pub fn record(
        &self,
        subject: &str,
        repository: &str,
        now: &str,
    ) -> Result<(Record, Value), PipelineError> {
        let decision = &self.evaluation.decision;
        let mut annotations = Map::new();
        annotations.insert(
            "eligible_approvers".to_owned(),
            json!(
                decision
                    .approvals
                    .eligible
                    .iter()
                    .map(|user| format!("human:{}", user.name))
                    .collect::<Vec<_>>()
            ),
        );
        annotations.insert("shortfall".to_owned(), json!(decision.approvals.shortfall));
        annotations.insert(
            "validation_plan".to_owned(),
            json!(
                self.evaluation
                    .report
                    .validation_plan
                    .suites
                    .iter()
                    .map(|s| s.suite.clone())
                    .collect::<Vec<_>>()
            ),
        );
        let record = record::record_as(
            subject.to_owned(),
            &self.evaluation,
            &self.proposer,
            repository,
            now,
            None,
            annotations,
        )
        .map_err(|e| PipelineError::from_error(&e))?;
        let decided = record
            .events
            .iter()
            .find(|e| e.kind == countersign_audit::EventKind::Decided)
            .map(|e| e.data.clone())
            .ok_or_else(|| PipelineError("the record has no `decided` event".to_owned()))?;
        Ok((record, decided))
    }
}
