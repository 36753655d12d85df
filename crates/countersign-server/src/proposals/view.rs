//! What `GET /v1/proposals/{id}` (and every proposal-changing route) answers: the proposal,
//! its decision and its verdicts, with the approval count from the lifecycle's one tally, so
//! the count shown is the count decided.

use countersign_lifecycle::{DecidedRecord, ProposalState, Verdict, pool, tally};
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

/// A commit that names a person, and how far that is believed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NamedView {
    pub commit: String,
    /// `author`, `committer`, or both.
    #[serde(rename = "as")]
    pub roles: Vec<String>,
    /// `verified` (signed with a key their catalog User lists), `claimed` (not signed by
    /// them), `invalid` (made with a named person's key, and not verifying over the commit).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A person the change's commits name as author or committer, as recorded with the
/// decision (docs/server.md, "Authorship").
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuthorView {
    pub principal: String,
    /// `verified`, `claimed` or `invalid`: the least believed of `commits`, with `invalid`
    /// first.
    pub status: String,
    pub commits: Vec<NamedView>,
}

/// Who may still approve the current head: the decision's eligible approvers less the
/// proposer and every author, counted as the tally counts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApproverPoolView {
    pub eligible: Vec<String>,
    pub eligible_count: u32,
    /// Eligible approvers of the decision whom a commit names as author or committer.
    pub excluded_as_authors: Vec<String>,
    /// Enough people are left for every requirement and the tier; when false, nothing can
    /// authorize the head until an admin acts (the decision's `authorship.explanation`
    /// says why).
    pub meetable: bool,
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
    /// The people who may approve this proposal: the owners the decision names, without
    /// the proposer and the change's authors (`approver_pool.eligible`).
    pub eligible_approvers: Vec<String>,
    pub decision: Value,
    pub approvals: Vec<ApprovalView>,
    pub created_at: String,
    /// Everyone who authored or committed a commit of the change: none of them may approve.
    #[serde(default)]
    pub authors: Vec<String>,
    /// The same people, each with the commits that name them and whether their authorship
    /// is verified, claimed or invalid.
    #[serde(default)]
    pub authorship: Vec<AuthorView>,
    /// What the decision says about its authors and the approvers they took out.
    #[serde(default)]
    pub authorship_explanation: Vec<String>,
    pub approver_pool: ApproverPoolView,
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
    let pool = pool(record, &proposal.author, &proposal.authors);
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
                // Those who can still approve it: its authors never can.
                eligible: record
                    .requirements
                    .iter()
                    .find(|r| &r.subject == subject)
                    .map(|r| {
                        r.eligible
                            .iter()
                            .filter(|p| **p != proposal.author && !proposal.authors.contains(*p))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect(),
        // Who can approve: the decision's eligible people without the change's authors
        // (the decision record keeps the list before authors are taken out).
        eligible_approvers: pool.eligible.clone(),
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
        authorship: decision.record["authorship"]
            .get("authors")
            .cloned()
            .and_then(|a| serde_json::from_value(a).ok())
            .unwrap_or_default(),
        authorship_explanation: decision.record["authorship"]
            .get("explanation")
            .cloned()
            .and_then(|a| serde_json::from_value(a).ok())
            .unwrap_or_default(),
        approver_pool: ApproverPoolView {
            eligible_count: pool.count(),
            meetable: pool.meetable(),
            eligible: pool.eligible,
            excluded_as_authors: pool.excluded,
        },
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

/// The views of `proposals` as stored now, in their order: two queries for them all (their
/// decisions, their verdicts) and each decision's record read once, where [`load_view`]
/// costs two queries a proposal. For pages that weigh many proposals (the console's next
/// actions).
pub(crate) async fn load_views(
    store: &Store,
    proposals: &[Proposal],
) -> Result<Vec<ProposalView>, ApiError> {
    use std::collections::{BTreeSet, HashMap};
    let ids: BTreeSet<&str> = proposals.iter().map(|p| p.decision.as_str()).collect();
    let ids: Vec<&str> = ids.into_iter().collect();
    let mut decisions: HashMap<String, (Decision, DecidedRecord)> = HashMap::new();
    for decision in store.decisions(&ids).await? {
        let record = decided_record(&decision)?;
        decisions.insert(decision.id.clone(), (decision, record));
    }
    let wanted: Vec<&str> = proposals.iter().map(|p| p.id.as_str()).collect();
    let mut verdicts: HashMap<String, Vec<Approval>> = HashMap::new();
    for approval in store.approvals_of(&wanted).await? {
        verdicts
            .entry(approval.proposal.clone())
            .or_default()
            .push(approval);
    }
    proposals
        .iter()
        .map(|proposal| {
            let (decision, record) = decisions.get(&proposal.decision).ok_or_else(|| {
                ApiError::Internal(format!(
                    "proposal {} has no decision {}",
                    proposal.id, proposal.decision
                ))
            })?;
            let approvals = verdicts.remove(&proposal.id).unwrap_or_default();
            Ok(view(proposal, decision, record, approvals))
        })
        .collect()
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
