//! What `GET /v1/proposals/{id}` (and every proposal-changing route) answers: the proposal,
//! its decision and its verdicts, with the approval count from the lifecycle's one tally, so
//! the count shown is the count decided.

use countersign_lifecycle::{DecidedRecord, ProposalState, Verdict, tally};
use countersign_store::{Approval, Decision, Proposal, Store, Tx};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::ApiError;

/// The wire schema of a [`ProposalState`]: a string, one of its values.
fn state_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(ProposalState::ALL.iter().map(|s| s.as_str())))
        .description(Some(
            "Where the proposal stands (docs/server.md, \"Proposal states\").",
        ))
        .build()
}

fn verdict_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["approve", "reject"]))
        .build()
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApprovalView {
    pub approver: String,
    pub head: String,
    #[schema(schema_with = verdict_schema)]
    pub verdict: Verdict,
    pub comment: String,
    /// The verdict no longer counts: the head moved since, or its giver gave another verdict
    /// on the same head. Kept as the record of what was said.
    #[serde(default)]
    pub lapsed: bool,
    /// The head this verdict was given on, when a trivial rebase carried it to `head`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried_from: Option<String>,
}

/// A part of the change still waiting for its own owners.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OpenRequirement {
    /// A node ref, `governance files`, `unmapped files` or `the change`.
    pub subject: String,
    /// How many more approvals of its eligible people it needs.
    pub needed: u32,
    /// Who can give them.
    pub eligible: Vec<String>,
}

/// A proposal with its decision and verdicts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProposalView {
    pub id: String,
    pub repo: String,
    pub base: String,
    pub head: String,
    pub title: String,
    pub description: String,
    pub author: String,
    #[schema(schema_with = state_schema)]
    pub state: ProposalState,
    pub tier: String,
    /// Distinct humans needed on the current head.
    pub approvals_required: u32,
    /// Distinct eligible humans whose approval of the current head counts (never an author,
    /// never an agent): the same count that authorizes.
    pub approvals_counted: u32,
    /// People whose rejection of the current head stands: nothing authorizes it meanwhile.
    #[serde(default)]
    pub rejected_by: Vec<String>,
    /// The parts of the change still waiting for approvals of their own owners: each needs
    /// `needed` more approvals from its `eligible` people.
    #[serde(default)]
    pub open_requirements: Vec<OpenRequirement>,
    pub eligible_approvers: Vec<String>,
    pub decision: Value,
    pub approvals: Vec<ApprovalView>,
    pub created_at: String,
    /// Everyone who authored or committed a commit of the change: none of them may approve.
    #[serde(default)]
    pub authors: Vec<String>,
    /// The proposal that replaced this one, when it is superseded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    /// Why it was closed, when it is closed or superseded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_reason: Option<String>,
}

/// The decision record of a stored decision, typed. Unreadable is the server's fault: the
/// server wrote it.
pub(crate) fn decided_record(decision: &Decision) -> Result<DecidedRecord, ApiError> {
    DecidedRecord::from_json(&decision.record)
        .map_err(|e| ApiError::Internal(format!("decision {}: {e}", decision.id)))
}

pub(crate) fn view(
    proposal: &Proposal,
    decision: &Decision,
    record: &DecidedRecord,
    approvals: Vec<Approval>,
) -> ProposalView {
    let tally = tally(
        record,
        &proposal.head,
        &proposal.author,
        &proposal.authors,
        &approvals,
    );
    ProposalView {
        id: proposal.id.clone(),
        repo: proposal.repo.clone(),
        base: proposal.base.clone(),
        head: proposal.head.clone(),
        title: proposal.title.clone(),
        description: proposal.description.clone(),
        author: proposal.author.clone(),
        state: proposal.state,
        tier: proposal.tier.as_str().to_owned(),
        approvals_required: tally.required,
        approvals_counted: tally.counted(),
        rejected_by: tally.rejecters,
        open_requirements: tally
            .open
            .iter()
            .map(|(subject, needed)| OpenRequirement {
                subject: subject.clone(),
                needed: *needed,
                eligible: record
                    .requirements
                    .iter()
                    .find(|r| &r.subject == subject)
                    .map(|r| r.eligible.clone())
                    .unwrap_or_default(),
            })
            .collect(),
        eligible_approvers: record.eligible_approvers.clone(),
        decision: decision.record.clone(),
        approvals: approvals
            .into_iter()
            .map(|a| ApprovalView {
                lapsed: a.lapsed_by.is_some(),
                carried_from: a.carried_from,
                approver: a.approver,
                head: a.head,
                verdict: a.verdict,
                comment: a.comment,
            })
            .collect(),
        created_at: proposal.created_at.clone(),
        authors: proposal.authors.clone(),
        superseded_by: proposal.superseded_by.clone(),
        closed_reason: proposal.closed_reason.clone(),
    }
}

/// The view of `proposal` as stored now.
pub(crate) async fn load_view(
    store: &Store,
    proposal: &Proposal,
) -> Result<ProposalView, ApiError> {
    let decision = store.decision(&proposal.decision).await?.ok_or_else(|| {
        ApiError::Internal(format!(
            "proposal {} has no decision {}",
            proposal.id, proposal.decision
        ))
    })?;
    let record = decided_record(&decision)?;
    let approvals = store.approvals(&proposal.id).await?;
    Ok(view(proposal, &decision, &record, approvals))
}

/// The view of proposal `id` as stored now; 404 when there is none.
pub(crate) async fn load_view_of(store: &Store, id: &str) -> Result<ProposalView, ApiError> {
    let proposal = store
        .proposal(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no proposal {id}")))?;
    load_view(store, &proposal).await
}

/// A proposal loaded for a change, its row held until the transaction ends: with its
/// decision, the decision's typed record and every verdict ever given on it.
pub(crate) struct Loaded {
    pub proposal: Proposal,
    pub decision: Decision,
    pub record: DecidedRecord,
    pub verdicts: Vec<Approval>,
}

impl Loaded {
    /// Locks proposal `id` in `tx` and reads the rest through it (a head move earlier in the
    /// same batch is seen).
    pub(crate) async fn lock(tx: &mut Tx, id: &str) -> Result<Loaded, ApiError> {
        let proposal = tx
            .lock_proposal(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no proposal {id}")))?;
        let decision = tx.decision(&proposal.decision).await?.ok_or_else(|| {
            ApiError::Internal(format!(
                "proposal {id} has no decision {}",
                proposal.decision
            ))
        })?;
        let record = decided_record(&decision)?;
        let verdicts = tx.approvals(id).await?;
        Ok(Loaded {
            proposal,
            decision,
            record,
            verdicts,
        })
    }

    /// The proposal as the lifecycle sees it.
    pub(crate) fn lifecycle(&self) -> countersign_lifecycle::Proposal<'_> {
        countersign_lifecycle::Proposal {
            state: self.proposal.state,
            head: &self.proposal.head,
            proposer: &self.proposal.author,
            authors: &self.proposal.authors,
            diff_digest: &self.proposal.diff_digest,
            record: &self.record,
            verdicts: &self.verdicts,
        }
    }
}
