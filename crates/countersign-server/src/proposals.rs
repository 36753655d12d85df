//! `/v1/proposals`: opening a proposal (diff, decision, stored and logged in one
//! transaction), reading it, approving or rejecting its head, and its lifecycle: moving the
//! head, closing, superseding, merged.
//!
//! The approval rules enforced here, whatever the policy says: only a human principal with an
//! approver token, never the author nor an author or committer of a commit of the change
//! (`change`), only an eligible approver of the decision, only for the current head; one live
//! verdict per approver and head (the store's unique index, inside a transaction holding the
//! proposal); a rejection blocks until a new head. A head move re-derives everything and
//! lapses the verdicts, except that a trivial rebase (the same diff content) carries them.
//! Evidence is `evidence`'s.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use countersign_audit::{Event, EventKind};
use countersign_policy::Principal;
use countersign_store::{Approval, Decision, HeadMove, Idempotent, Leaf, Proposal, Tx};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::body::Body;
use crate::error::{ApiError, Problem};
use crate::pipeline;

/// The actor of events the server itself causes: the same as in a CLI record.
pub use countersign_decide::record::SYSTEM_ACTOR;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(show))
        .routes(routes!(approve))
        .routes(routes!(move_head))
        .routes(routes!(close))
        .routes(routes!(mark_merged))
}

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProposalState {
    Open,
    /// Required validation suites have no accepted evidence for the head yet.
    AwaitingEvidence,
    AwaitingApproval,
    Authorized,
    Rejected,
    /// The authorized head reached a protected branch. Final.
    Merged,
    /// Closed in favour of another proposal (`superseded_by`). Final.
    Superseded,
    /// Closed by its author or an admin. Final.
    Closed,
}

impl ProposalState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ProposalState::Open => "open",
            ProposalState::AwaitingEvidence => "awaiting_evidence",
            ProposalState::AwaitingApproval => "awaiting_approval",
            ProposalState::Authorized => "authorized",
            ProposalState::Rejected => "rejected",
            ProposalState::Merged => "merged",
            ProposalState::Superseded => "superseded",
            ProposalState::Closed => "closed",
        }
    }

    /// Whether `state` (as stored) ends the proposal: no head move, verdict or close after.
    pub(crate) fn is_final(state: &str) -> bool {
        [
            ProposalState::Merged,
            ProposalState::Superseded,
            ProposalState::Closed,
        ]
        .iter()
        .any(|s| s.as_str() == state)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProposal {
    /// A repository name configured on the server.
    pub repo: String,
    /// The base revision: its governed state judges the change.
    pub base: String,
    /// The head revision.
    pub head: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
}

/// A verdict on one verdict-able head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Reject,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApproval {
    /// The head commit approved: must be the proposal's current head.
    pub head: String,
    pub verdict: Verdict,
    #[serde(default)]
    pub comment: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApprovalView {
    pub approver: String,
    pub head: String,
    pub verdict: String,
    pub comment: String,
    /// The head moved since: the verdict is kept as a record and no longer counts.
    #[serde(default)]
    pub lapsed: bool,
    /// The head this verdict was given on, when a trivial rebase carried it to `head`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried_from: Option<String>,
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
    /// open, awaiting_evidence, awaiting_approval, authorized, rejected, merged, superseded
    /// or closed (docs/server.md).
    pub state: String,
    pub tier: String,
    /// Distinct humans needed on the current head.
    pub approvals_required: u64,
    /// Distinct humans who approved the current head.
    pub approvals_counted: u64,
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

pub(crate) fn event(
    kind: EventKind,
    at: &str,
    subject: &str,
    actor: &str,
    data: Value,
) -> Result<Event, ApiError> {
    Event::new(kind, at, subject, actor, data)
        .map_err(|e| ApiError::Internal(format!("event: {e}")))
}

/// Appends the `authorized` event of an authorization by people (enough approvals of
/// `head`), in `tx`. With a log key, the signed SLSA verification summary deploy-time gates
/// check is stored as a blob in the same transaction and named by digest in the event, as
/// for an automated decision.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn authorize_by_people(
    state: &AppState,
    tx: &mut Tx,
    id: &str,
    repo: &str,
    head: &str,
    tier: &str,
    policy_version: &str,
    now: &str,
) -> Result<(), ApiError> {
    let mut data = json!({ "commit": head, "tier": tier });
    if let Some(log_key) = &state.log_signer {
        let vsa = countersign_decide::record::verification_summary(
            repo,
            head,
            tier,
            policy_version,
            now,
            log_key,
        )
        .map_err(|e| ApiError::Internal(format!("verification summary: {}", e.chain())))?;
        data["verification_summary"] = json!(tx.put_blob(&vsa).await?);
    }
    tx.append_event(&event(EventKind::Authorized, now, id, SYSTEM_ACTOR, data)?)
        .await?;
    Ok(())
}

/// A fresh proposal id: `p-`, the creation time in Unix milliseconds (12 hex digits), then
/// 12 hex digits of a hash of the time, a process counter and the change. Unique without
/// randomness (the primary key refuses the unreachable collision). Ids sort by creation, so
/// a new proposal's rows land at the end of every index keyed by it instead of on a random
/// page each: fewer pages written per commit, and per checkpoint.
fn proposal_id(repo: &str, head: &str, author: &str, at_nanos: u128) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let hash = Sha256::digest(format!(
        "{repo}\n{head}\n{author}\n{at_nanos}\n{n}\n{}",
        std::process::id()
    ));
    format!(
        "p-{:012x}{}",
        (at_nanos / 1_000_000) & 0xffff_ffff_ffff,
        hex::encode(&hash[..6])
    )
}

/// A decided proposal ready to be written: what `create` does between `begin` and `commit`
/// needs nothing else.
struct Prepared {
    proposal: Proposal,
    /// Its `log_index` is set once the `decided` event is appended.
    decision: Decision,
    blobs: Vec<Vec<u8>>,
    leaves: Vec<Leaf>,
    /// The position of the `decided` event in `leaves`.
    decided: usize,
    /// The `201` body.
    response: String,
}

/// Decides `body`'s change for `author` and prepares its proposal, audit entries and
/// response. Blocking (git, Cedar, encoding).
fn prepare(
    pipeline: &pipeline::Pipeline,
    path: &std::path::Path,
    body: NewProposal,
    author: &Principal,
    clock: &crate::Clock,
    signer: Option<std::sync::Arc<countersign_audit::Signer>>,
) -> Result<Prepared, ApiError> {
    let outcome = pipeline.decide(path, &body.base, &body.head, author)?;
    let author = author.to_string();
    let now = clock.rfc3339();
    let nanos = clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let id = proposal_id(&body.repo, &outcome.head, &author, nanos);
    let (record, decision_record) = outcome.record(&id, &body.repo, &now, signer.as_deref())?;
    // Awaiting evidence while a required suite has none, whatever the tier (evidence.rs).
    let proposal_state = crate::evidence::initial_state(&outcome);
    let proposal = Proposal {
        id: id.clone(),
        repo: body.repo,
        base: outcome.base.clone(),
        head: outcome.head.clone(),
        title: body.title,
        description: body.description,
        author,
        state: proposal_state.as_str().to_owned(),
        tier: outcome.tier.as_str().to_owned(),
        decision: format!("{id}@{}", outcome.head),
        created_at: now,
        authors: outcome.change.authors.clone(),
        diff_digest: outcome.change.diff_digest.clone(),
        superseded_by: None,
        closed_reason: None,
    };
    // The events of `countersign_decide::record`, in log order: proposed, decided and, for
    // an automated decision, authorized. Encoded here: appenders are serialized, so only the
    // writes themselves should happen inside the transaction.
    let mut leaves = Vec::with_capacity(record.events.len());
    let mut decided = None;
    for event in &record.events {
        if event.kind == EventKind::Authorized && proposal_state != ProposalState::Authorized {
            // An automated tier still waits for its required evidence: no authorization yet.
            continue;
        }
        if event.kind == EventKind::Decided {
            decided = Some(leaves.len());
        }
        leaves.push(Leaf::new(event).map_err(|e| ApiError::Internal(e.to_string()))?);
    }
    let decided =
        decided.ok_or_else(|| ApiError::Internal("the record has no `decided` event".into()))?;
    let view = view(&proposal, &decision_record, Vec::new());
    let response = serde_json::to_string(&view).map_err(|e| ApiError::Internal(e.to_string()))?;
    let decision = Decision {
        id: proposal.decision.clone(),
        subject: id,
        tier: proposal.tier.clone(),
        record: decision_record,
        log_index: 0,
    };
    Ok(Prepared {
        proposal,
        decision,
        blobs: record.blobs,
        leaves,
        decided,
        response,
    })
}

/// Open a proposal: the server computes the diff and decides it.
#[utoipa::path(
    post, path = "/v1/proposals", request_body = NewProposal,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for the same key and principal")),
    responses(
        (status = 201, body = ProposalView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Body(body): Body<NewProposal>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Proposer], "open proposals")?;
    let key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::Invalid("Idempotency-Key is not visible ASCII".into()))
        })
        .transpose()?;
    let author = caller.principal.to_string();
    if let Some(key) = &key
        && let Some(stored) = state.store.idempotent(key, &author).await?
    {
        return Ok(replay(stored));
    }
    if body.title.trim().is_empty() {
        return Err(ApiError::Invalid("title: must not be empty".into()));
    }
    let path = state.repos.get(&body.repo).cloned().ok_or_else(|| {
        ApiError::Invalid(format!(
            "repo: {:?} is not configured on this server",
            body.repo
        ))
    })?;
    // Everything but the writes is CPU work and runs off the async workers: those also run
    // the transactions that hold the log's write order, which should never queue behind a
    // decision being computed, recorded, encoded or freed.
    let (clock, signer, principal, pipeline) = (
        state.clock.clone(),
        state.log_signer.clone(),
        caller.principal.clone(),
        std::sync::Arc::clone(&state.pipeline),
    );
    let prepared = state
        .pipeline
        .blocking(move || prepare(&pipeline, &path, body, &principal, &clock, signer))
        .await??;
    let Prepared {
        proposal,
        mut decision,
        blobs,
        leaves,
        decided,
        response,
    } = prepared;
    if key.is_none()
        && !crate::webhooks::announces(&state, &proposal, &proposal.state, &decision.record)
    {
        // The common case: nothing is written but the decided proposal, in a transaction of
        // its own that needs one round trip in the log's write order.
        state
            .store
            .commit_decided(blobs, leaves, decided, decision, proposal)
            .await?;
        return Ok(created(response));
    }
    let mut tx = state.store.begin().await?;
    if let Some(key) = &key {
        // Another request with this key committed while the pipeline ran.
        if let Some(stored) = tx.idempotent(key, &author).await? {
            return Ok(replay(stored));
        }
    }
    for blob in &blobs {
        tx.put_blob(blob).await?;
    }
    // The entries, the decision (pointing at the `decided` entry) and the proposal.
    tx.append_decided(&leaves, decided, &mut decision, &proposal)
        .await?;
    // What the new proposal announces to webhook targets, queued in this transaction.
    crate::webhooks::notify(
        &state,
        &mut tx,
        &proposal,
        &proposal.state,
        &decision.record,
    )
    .await?;
    if let Some(key) = &key {
        let stored = Idempotent {
            status: StatusCode::CREATED.as_u16(),
            response: response.clone(),
        };
        if !tx.put_idempotent(key, &author, &stored).await? {
            // Lost a race with the same key on another connection: drop ours, replay theirs.
            tx.rollback().await?;
            if let Some(stored) = state.store.idempotent(key, &author).await? {
                return Ok(replay(stored));
            }
            return Err(ApiError::Conflict(
                "a request with this Idempotency-Key is in flight".into(),
            ));
        }
    }
    tx.commit().await?;
    Ok(created(response))
}

fn created(response: String) -> Response {
    (
        StatusCode::CREATED,
        [("content-type", "application/json")],
        response,
    )
        .into_response()
}

fn replay(stored: Idempotent) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    (
        status,
        [("content-type", "application/json")],
        stored.response,
    )
        .into_response()
}

fn view(proposal: &Proposal, record: &Value, approvals: Vec<Approval>) -> ProposalView {
    let counted = approvals
        .iter()
        .filter(|a| a.head == proposal.head && a.verdict == "approve" && a.lapsed_by.is_none())
        .count();
    ProposalView {
        id: proposal.id.clone(),
        repo: proposal.repo.clone(),
        base: proposal.base.clone(),
        head: proposal.head.clone(),
        title: proposal.title.clone(),
        description: proposal.description.clone(),
        author: proposal.author.clone(),
        state: proposal.state.clone(),
        tier: proposal.tier.clone(),
        approvals_required: record["approvals_required"].as_u64().unwrap_or(0),
        approvals_counted: u64::try_from(counted).unwrap_or(u64::MAX),
        eligible_approvers: eligible(record),
        decision: record.clone(),
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

fn eligible(record: &Value) -> Vec<String> {
    record["eligible_approvers"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) async fn load_view(
    state: &AppState,
    proposal: &Proposal,
) -> Result<ProposalView, ApiError> {
    let decision = state
        .store
        .decision(&proposal.decision)
        .await?
        .ok_or_else(|| {
            ApiError::Internal(format!(
                "proposal {} has no decision {}",
                proposal.id, proposal.decision
            ))
        })?;
    let approvals = state.store.approvals(&proposal.id).await?;
    Ok(view(proposal, &decision.record, approvals))
}

/// A proposal, its decision and its verdicts.
#[utoipa::path(
    get, path = "/v1/proposals/{id}",
    params(("id" = String, Path, description = "Proposal id")),
    responses((status = 200, body = ProposalView), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ProposalView>, ApiError> {
    let proposal = state
        .store
        .proposal(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no proposal {id}")))?;
    Ok(Json(load_view(&state, &proposal).await?))
}

fn same_person(a: &Principal, b: &str) -> bool {
    a.to_string().eq_ignore_ascii_case(b)
}

/// Approve or reject the proposal's current head.
#[utoipa::path(
    post, path = "/v1/proposals/{id}/approvals", request_body = NewApproval,
    params(("id" = String, Path, description = "Proposal id")),
    responses(
        (status = 200, body = ProposalView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<NewApproval>,
) -> Result<Json<ProposalView>, ApiError> {
    caller.require(&[Role::Approver], "approve or reject")?;
    // Whatever the policy or the catalog says: only people approve.
    if !caller.principal.is_human() {
        return Err(ApiError::Forbidden(format!(
            "{} is not a human: only humans approve or reject",
            caller.principal
        )));
    }
    let approver = caller.principal.to_string();
    let mut tx = state.store.begin().await?;
    let proposal = tx
        .lock_proposal(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no proposal {id}")))?;
    if same_person(&caller.principal, &proposal.author) {
        return Err(ApiError::Forbidden(
            "the author of a proposal cannot approve or reject it".into(),
        ));
    }
    // Everyone whose hands were on a commit of the change (author or committer) is an
    // author too: a rebase by a service account does not make one's own code approvable.
    if crate::change::is_author(&proposal.authors, &caller.principal) {
        return Err(ApiError::Forbidden(format!(
            "{approver} authored or committed a commit of this change ({}..{}): the authors \
             of a change cannot approve or reject it",
            short(&proposal.base),
            short(&proposal.head)
        )));
    }
    if body.head != proposal.head {
        return Err(ApiError::Conflict(format!(
            "head {} is not the proposal's current head {}",
            body.head, proposal.head
        )));
    }
    // Through the transaction: the decision may come from a head move earlier in the batch.
    let decision = tx
        .decision(&proposal.decision)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("proposal {id} has no decision")))?;
    if !eligible(&decision.record)
        .iter()
        .any(|e| same_person(&caller.principal, e))
    {
        return Err(ApiError::Forbidden(format!(
            "{approver} is not an eligible approver of this change (owners of the affected nodes)"
        )));
    }
    let previous = tx.approvals(&id).await?;
    if previous.iter().any(|a| {
        a.head == proposal.head
            && a.lapsed_by.is_none()
            && a.approver.eq_ignore_ascii_case(&approver)
    }) {
        // The same person again: counted once, nothing new to record. Committing the empty
        // transaction waits for its batch, so the view below reads what it saw.
        tx.commit().await?;
        return Ok(Json(load_view(&state, &proposal).await?));
    }
    if proposal.state != ProposalState::AwaitingApproval.as_str() {
        return Err(ApiError::Conflict(format!(
            "the proposal is {}, not awaiting approval",
            proposal.state
        )));
    }
    let now = state.clock.rfc3339();
    let (kind, verdict) = match body.verdict {
        Verdict::Approve => (EventKind::Approved, "approve"),
        Verdict::Reject => (EventKind::Rejected, "reject"),
    };
    let index = tx
        .append_event(&event(
            kind,
            &now,
            &id,
            &approver,
            json!({ "head": proposal.head, "comment": body.comment }),
        )?)
        .await?;
    let approval = Approval {
        proposal: id.clone(),
        head: proposal.head.clone(),
        approver: approver.clone(),
        verdict: verdict.to_owned(),
        comment: body.comment,
        log_index: index,
        lapsed_by: None,
        carried_from: None,
    };
    if !tx.put_approval(&approval).await? {
        // Unreachable while the proposal row is held; kept so a double count cannot happen.
        return Err(ApiError::Conflict(
            "this approver already gave a verdict on this head".into(),
        ));
    }
    let required = decision.record["approvals_required"]
        .as_u64()
        .unwrap_or(u64::MAX);
    let next = next_state(&mut tx, &proposal, body.verdict, required).await?;
    if let Some(next) = next {
        tx.set_proposal_state(&id, next.as_str()).await?;
        if next == ProposalState::Authorized {
            let policy_version = match &state.log_signer {
                Some(_) => decision.record["policy_version"].as_str().ok_or_else(|| {
                    ApiError::Internal(format!("decision of {id} has no policy_version"))
                })?,
                None => "",
            };
            authorize_by_people(
                &state,
                &mut tx,
                &id,
                &proposal.repo,
                &proposal.head,
                &proposal.tier,
                policy_version,
                &now,
            )
            .await?;
        }
        // What the verdict announces to webhook targets, queued in this transaction.
        crate::webhooks::notify(&state, &mut tx, &proposal, next.as_str(), &decision.record)
            .await?;
    }
    tx.commit().await?;
    let proposal = state
        .store
        .proposal(&id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("proposal {id} vanished")))?;
    Ok(Json(load_view(&state, &proposal).await?))
}

/// The state after a verdict: rejected at once, authorized once enough distinct humans
/// approved the current head.
async fn next_state(
    tx: &mut Tx,
    proposal: &Proposal,
    verdict: Verdict,
    required: u64,
) -> Result<Option<ProposalState>, ApiError> {
    if verdict == Verdict::Reject {
        return Ok(Some(ProposalState::Rejected));
    }
    let mut approvers: Vec<String> = tx
        .approvals(&proposal.id)
        .await?
        .into_iter()
        .filter(|a| a.head == proposal.head && a.verdict == "approve" && a.lapsed_by.is_none())
        .map(|a| a.approver.to_lowercase())
        .collect();
    approvers.sort();
    approvers.dedup();
    let counted = u64::try_from(approvers.len()).unwrap_or(u64::MAX);
    Ok((counted >= required).then_some(ProposalState::Authorized))
}

// Lifecycle: head moves and closing (docs/server.md, "Proposal states").

/// `POST /v1/proposals/{id}/head`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHead {
    /// The new head revision (a commit id, branch or tag of the proposal's repository).
    pub head: String,
}

/// `POST /v1/proposals/{id}/close`; the body may be empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    /// Why, in the closer's words; recorded in the log.
    #[serde(default)]
    pub reason: Option<String>,
    /// The proposal of the same repository that replaces this one: the state becomes
    /// `superseded` instead of `closed`.
    #[serde(default)]
    pub superseded_by: Option<String>,
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::Invalid("Idempotency-Key is not visible ASCII".into()))
        })
        .transpose()
}

/// The proposal's author or an admin may move its head or close it.
fn may_manage(caller: &Caller, proposal: &Proposal, action: &str) -> Result<(), ApiError> {
    if caller.role == Role::Admin || same_person(&caller.principal, &proposal.author) {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "only the proposal's author ({}) or an admin may {action} it",
        proposal.author
    )))
}

fn refuse_final(proposal: &Proposal, action: &str) -> Result<(), ApiError> {
    if ProposalState::is_final(&proposal.state) {
        return Err(ApiError::Conflict(format!(
            "proposal {} is {}: it cannot {action} any more",
            proposal.id, proposal.state
        )));
    }
    Ok(())
}

/// Stores `response` under `key` (when there is one) in `tx`; `false` when another request
/// with the key committed first (then [`replay_or_conflict`] answers).
async fn remember(
    tx: &mut Tx,
    key: Option<&str>,
    principal: &str,
    status: StatusCode,
    response: &str,
) -> Result<bool, ApiError> {
    let Some(key) = key else { return Ok(true) };
    let stored = Idempotent {
        status: status.as_u16(),
        response: response.to_owned(),
    };
    Ok(tx.put_idempotent(key, principal, &stored).await?)
}

async fn replay_or_conflict(
    state: &AppState,
    key: &str,
    principal: &str,
) -> Result<Response, ApiError> {
    match state.store.idempotent(key, principal).await? {
        Some(stored) => Ok(replay(stored)),
        None => Err(ApiError::Conflict(
            "a request with this Idempotency-Key is in flight".into(),
        )),
    }
}

/// Move the proposal's head: everything is re-derived from the base's governed state.
/// Verdicts on the old head lapse (kept, marked), unless the new head has exactly the same
/// diff against the base (a trivial rebase): then they carry over.
#[utoipa::path(
    post, path = "/v1/proposals/{id}/head", request_body = NewHead,
    params(
        ("id" = String, Path, description = "Proposal id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for the same key and principal")
    ),
    responses(
        (status = 200, body = ProposalView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
async fn move_head(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(body): Body<NewHead>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Proposer], "move a proposal's head")?;
    let key = idempotency_key(&headers)?;
    let actor = caller.principal.to_string();
    if let Some(key) = &key
        && let Some(stored) = state.store.idempotent(key, &actor).await?
    {
        return Ok(replay(stored));
    }
    let current = state
        .store
        .proposal(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no proposal {id}")))?;
    may_manage(&caller, &current, "move the head of")?;
    refuse_final(&current, "move its head")?;
    let path = state.repos.get(&current.repo).cloned().ok_or_else(|| {
        ApiError::Conflict(format!(
            "repository {:?} is no longer configured on this server",
            current.repo
        ))
    })?;
    // Re-derived as the proposal's author proposed it, whoever moves the head.
    let author: Principal = current
        .author
        .parse()
        .map_err(|e| ApiError::Internal(format!("proposal {id}: {e}")))?;
    let (base, head) = (current.base.clone(), body.head.clone());
    let pipeline = std::sync::Arc::clone(&state.pipeline);
    let outcome = state
        .pipeline
        .blocking(move || pipeline.decide(&path, &base, &head, &author))
        .await??;
    let now = state.clock.rfc3339();
    // Built before the transaction (appenders are serialized); a proposal's repository
    // never changes, so the row read above names the same one the locked row will.
    let (record, decided) =
        outcome.record(&id, &current.repo, &now, state.log_signer.as_deref())?;

    let mut tx = state.store.begin().await?;
    if let Some(key) = &key
        && let Some(stored) = tx.idempotent(key, &actor).await?
    {
        return Ok(replay(stored));
    }
    let proposal = tx
        .lock_proposal(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no proposal {id}")))?;
    refuse_final(&proposal, "move its head")?;
    if proposal.head == outcome.head {
        // Already there: nothing lapses, nothing is logged. Committing the empty
        // transaction waits for its batch, so the view below reads what it saw.
        tx.commit().await?;
        let view = load_view(&state, &proposal).await?;
        return Ok(Json(view).into_response());
    }
    let live: Vec<Approval> = tx
        .approvals(&id)
        .await?
        .into_iter()
        .filter(|a| a.lapsed_by.is_none())
        .collect();
    let trivial =
        !proposal.diff_digest.is_empty() && proposal.diff_digest == outcome.change.diff_digest;
    // A trivial rebase carries every live verdict, rejections included (the same diff stays
    // rejected), except those of people the new commits made authors (a rebase they did).
    let (carried, lapsed): (Vec<Approval>, Vec<Approval>) = live.into_iter().partition(|a| {
        trivial
            && !outcome
                .change
                .authors
                .iter()
                .any(|x| x.eq_ignore_ascii_case(&a.approver))
    });
    let verdicts = |list: &[Approval]| -> Vec<Value> {
        list.iter()
            .map(|a| json!({ "approver": a.approver, "head": a.head, "verdict": a.verdict }))
            .collect()
    };
    let moved = tx
        .append_event(&event(
            EventKind::HeadMoved,
            &now,
            &id,
            &actor,
            json!({
                "from": proposal.head,
                "to": outcome.head,
                "diff_digest": { "from": proposal.diff_digest, "to": outcome.change.diff_digest },
                "trivial_rebase": trivial,
                "lapsed": verdicts(&lapsed),
                "carried_over": verdicts(&carried),
                "commit_authors": outcome.change.authors,
            }),
        )?)
        .await?;
    tx.lapse_approvals(&id, moved).await?;
    // Evidence is about one head too: none of it counts for the new one (evidence.rs).
    tx.lapse_evidence(&id, moved).await?;
    for verdict in &carried {
        tx.put_approval(&Approval {
            head: outcome.head.clone(),
            log_index: moved,
            lapsed_by: None,
            carried_from: Some(verdict.head.clone()),
            ..verdict.clone()
        })
        .await?;
    }

    // The state as for a new proposal, then what the carried verdicts settle.
    let mut next = crate::evidence::initial_state(&outcome);
    let eligible = eligible(&decided);
    let approvers: std::collections::BTreeSet<String> = carried
        .iter()
        .filter(|a| a.verdict == "approve")
        .filter(|a| eligible.iter().any(|e| e.eq_ignore_ascii_case(&a.approver)))
        .map(|a| a.approver.to_lowercase())
        .collect();
    let required = decided["approvals_required"].as_u64().unwrap_or(u64::MAX);
    if carried.iter().any(|a| a.verdict == "reject") {
        next = ProposalState::Rejected;
    } else if next == ProposalState::AwaitingApproval
        && u64::try_from(approvers.len()).unwrap_or(u64::MAX) >= required
    {
        next = ProposalState::Authorized;
    }

    for blob in &record.blobs {
        tx.put_blob(blob).await?;
    }
    let mut decided_index = None;
    let mut authorized = false;
    for event in &record.events {
        if event.kind == EventKind::Authorized {
            if next != ProposalState::Authorized {
                continue;
            }
            authorized = true;
        }
        let index = tx.append_event(event).await?;
        if event.kind == EventKind::Decided {
            decided_index = Some(index);
        }
    }
    let decided_index = decided_index
        .ok_or_else(|| ApiError::Internal("the record has no `decided` event".into()))?;
    if next == ProposalState::Authorized && !authorized {
        // The carried approvals reach the count: the people's authorization, as in `approve`.
        authorize_by_people(
            &state,
            &mut tx,
            &id,
            &proposal.repo,
            &outcome.head,
            outcome.tier.as_str(),
            decided["policy_version"].as_str().unwrap_or_default(),
            &now,
        )
        .await?;
    }
    let decision_id = format!("{id}@{}+{decided_index}", outcome.head);
    tx.put_decision(&Decision {
        id: decision_id.clone(),
        subject: id.clone(),
        tier: outcome.tier.as_str().to_owned(),
        record: decided.clone(),
        log_index: decided_index,
    })
    .await?;
    let change = HeadMove {
        head: outcome.head.clone(),
        state: next.as_str().to_owned(),
        tier: outcome.tier.as_str().to_owned(),
        decision: decision_id,
        authors: outcome.change.authors.clone(),
        diff_digest: outcome.change.diff_digest.clone(),
    };
    tx.move_head(&id, &change).await?;
    let moved_proposal = Proposal {
        head: change.head,
        state: change.state,
        tier: change.tier,
        decision: change.decision,
        authors: change.authors,
        diff_digest: change.diff_digest,
        ..proposal
    };
    crate::webhooks::notify(&state, &mut tx, &moved_proposal, next.as_str(), &decided).await?;
    let approvals = tx.approvals(&id).await?;
    let view = view(&moved_proposal, &decided, approvals);
    let response = serde_json::to_string(&view).map_err(|e| ApiError::Internal(e.to_string()))?;
    if !remember(&mut tx, key.as_deref(), &actor, StatusCode::OK, &response).await? {
        // Lost a race with the same key on another connection: drop ours, replay theirs.
        tx.rollback().await?;
        return replay_or_conflict(&state, key.as_deref().unwrap_or_default(), &actor).await;
    }
    tx.commit().await?;
    Ok((
        StatusCode::OK,
        [("content-type", "application/json")],
        response,
    )
        .into_response())
}

/// Close the proposal (its author or an admin), or mark it superseded by another proposal
/// of the same repository. Final: no head move, verdict or close after.
#[utoipa::path(
    post, path = "/v1/proposals/{id}/close", request_body(content = CloseRequest, description = "Optional: an empty body closes without a reason"),
    params(("id" = String, Path, description = "Proposal id")),
    responses(
        (status = 200, body = ProposalView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
async fn close(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Json<ProposalView>, ApiError> {
    caller.require(&[Role::Proposer], "close proposals")?;
    let body: CloseRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        CloseRequest::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Invalid(format!("the body is not a close request: {e}")))?
    };
    let reason = body.reason.filter(|r| !r.trim().is_empty());
    let successor = match &body.superseded_by {
        None => None,
        Some(other) if *other == id => {
            return Err(ApiError::Invalid(
                "superseded_by: a proposal cannot supersede itself".into(),
            ));
        }
        Some(other) => Some(state.store.proposal(other).await?.ok_or_else(|| {
            ApiError::Invalid(format!("superseded_by: there is no proposal {other}"))
        })?),
    };
    let mut tx = state.store.begin().await?;
    let proposal = tx
        .lock_proposal(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no proposal {id}")))?;
    may_manage(&caller, &proposal, "close")?;
    refuse_final(&proposal, "be closed")?;
    if let Some(successor) = &successor
        && successor.repo != proposal.repo
    {
        return Err(ApiError::Invalid(format!(
            "superseded_by: {} is a proposal of {}, not of {}",
            successor.id, successor.repo, proposal.repo
        )));
    }
    let next = if successor.is_some() {
        ProposalState::Superseded
    } else {
        ProposalState::Closed
    };
    let superseded_by = successor.as_ref().map(|s| s.id.clone());
    let now = state.clock.rfc3339();
    tx.append_event(&event(
        EventKind::Closed,
        &now,
        &id,
        &caller.principal.to_string(),
        json!({
            "state": next.as_str(),
            "head": proposal.head,
            "reason": reason,
            "superseded_by": superseded_by,
        }),
    )?)
    .await?;
    tx.close_proposal(
        &id,
        next.as_str(),
        reason.as_deref(),
        superseded_by.as_deref(),
    )
    .await?;
    let decision = tx
        .decision(&proposal.decision)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("proposal {id} has no decision")))?;
    let closed = Proposal {
        state: next.as_str().to_owned(),
        superseded_by,
        closed_reason: reason,
        ..proposal
    };
    crate::webhooks::notify(&state, &mut tx, &closed, next.as_str(), &decision.record).await?;
    tx.commit().await?;
    Ok(Json(load_view(&state, &closed).await?))
}

/// `POST /v1/proposals/{id}/merged`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergedRequest {
    /// The commit that reached the protected branch: must be the authorized head.
    pub commit: String,
}

/// Record that the authorized head reached a protected branch (for a post-receive hook or a
/// forge integration; admin only). Final.
#[utoipa::path(
    post, path = "/v1/proposals/{id}/merged", request_body = MergedRequest,
    params(("id" = String, Path, description = "Proposal id")),
    responses(
        (status = 200, body = ProposalView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
async fn mark_merged(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<MergedRequest>,
) -> Result<Json<ProposalView>, ApiError> {
    caller.require(&[Role::Admin], "mark proposals merged")?;
    let mut tx = state.store.begin().await?;
    let proposal = tx
        .lock_proposal(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no proposal {id}")))?;
    if proposal.state != ProposalState::Authorized.as_str() {
        return Err(ApiError::Conflict(format!(
            "proposal {id} is {}: only an authorized proposal can be merged",
            proposal.state
        )));
    }
    if !body.commit.eq_ignore_ascii_case(&proposal.head) {
        return Err(ApiError::Conflict(format!(
            "commit {} is not the proposal's authorized head {}",
            body.commit, proposal.head
        )));
    }
    let now = state.clock.rfc3339();
    tx.append_event(&event(
        EventKind::Merged,
        &now,
        &id,
        &caller.principal.to_string(),
        json!({ "commit": proposal.head }),
    )?)
    .await?;
    let merged = ProposalState::Merged.as_str();
    tx.set_proposal_state(&id, merged).await?;
    tx.commit().await?;
    let proposal = Proposal {
        state: merged.to_owned(),
        ..proposal
    };
    Ok(Json(load_view(&state, &proposal).await?))
}

#[cfg(test)]
mod tests {
    use super::proposal_id;

    #[test]
    fn proposal_ids_sort_by_creation_and_differ_within_a_millisecond() {
        let ms = 1_000_000u128;
        let at = 1_767_603_600_000 * ms;
        let first = proposal_id("shop", "h", "agent:fixbot", at);
        let same_ms = proposal_id("shop", "h", "agent:fixbot", at + 1);
        let later = proposal_id("shop", "h", "agent:fixbot", at + ms);
        let much_later = proposal_id("shop", "a", "agent:a", at + 86_400_000 * ms);
        assert_eq!(first.len(), 2 + 24, "{first}");
        assert!(first.starts_with("p-019b8d627a80"), "{first}");
        assert!(
            first[2..]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(first, same_ms);
        assert_eq!(first[..14], same_ms[..14], "same millisecond, same prefix");
        assert!(
            first < later && later < much_later,
            "{first} {later} {much_later}"
        );
        // The same inputs twice still differ (the process counter).
        assert_ne!(first, proposal_id("shop", "h", "agent:fixbot", at));
    }
}
