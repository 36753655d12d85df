//! `/v1/proposals`: opening a proposal (diff, decision, stored and logged in one
//! transaction), reading it, and approving or rejecting its head.
//!
//! The approval rules enforced here, whatever the policy says: only a human principal with an
//! approver token, never the author, only an eligible approver of the decision, only for the
//! current head; one verdict per approver and head (the store's UNIQUE constraint, inside a
//! transaction holding the proposal); a rejection blocks. Head moves, evidence and
//! commit-author checks are not here yet.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use countersign_audit::{Event, EventKind};
use countersign_policy::Principal;
use countersign_store::{Approval, Decision, Idempotent, Proposal, Tx};
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
}

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProposalState {
    Open,
    AwaitingApproval,
    Authorized,
    Rejected,
}

impl ProposalState {
    fn as_str(self) -> &'static str {
        match self {
            ProposalState::Open => "open",
            ProposalState::AwaitingApproval => "awaiting_approval",
            ProposalState::Authorized => "authorized",
            ProposalState::Rejected => "rejected",
        }
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
    /// open, awaiting_approval, authorized or rejected.
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
}

fn event(
    kind: EventKind,
    at: &str,
    subject: &str,
    actor: &str,
    data: Value,
) -> Result<Event, ApiError> {
    Event::new(kind, at, subject, actor, data)
        .map_err(|e| ApiError::Internal(format!("event: {e}")))
}

/// A fresh proposal id. Unique without randomness: the time, a process counter and the
/// change itself are hashed; the primary key refuses the (unreachable) collision.
fn proposal_id(repo: &str, head: &str, author: &str, at_nanos: u128) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let hash = Sha256::digest(format!(
        "{repo}\n{head}\n{author}\n{at_nanos}\n{n}\n{}",
        std::process::id()
    ));
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("p-{hex}")
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
    let (base, head, principal) = (
        body.base.clone(),
        body.head.clone(),
        caller.principal.clone(),
    );
    let outcome =
        tokio::task::spawn_blocking(move || pipeline::decide(&path, &base, &head, &principal))
            .await
            .map_err(|e| ApiError::Internal(format!("pipeline task: {e}")))?
            .map_err(|e| ApiError::Invalid(e.to_string()))?;

    let now = state.clock.rfc3339();
    let nanos = state
        .clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let id = proposal_id(&body.repo, &outcome.head, &author, nanos);
    let (record, decision_record) = outcome
        .record(&id, &body.repo, &now)
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
    let proposal_state = if outcome.automated {
        ProposalState::Authorized
    } else {
        ProposalState::AwaitingApproval
    };
    let proposal = Proposal {
        id: id.clone(),
        repo: body.repo,
        base: outcome.base.clone(),
        head: outcome.head.clone(),
        title: body.title,
        description: body.description,
        author: author.clone(),
        state: proposal_state.as_str().to_owned(),
        tier: outcome.tier.as_str().to_owned(),
        decision: format!("{id}@{}", outcome.head),
        created_at: now.clone(),
    };

    let mut tx = state.store.begin().await?;
    if let Some(key) = &key {
        // Another request with this key committed while the pipeline ran.
        if let Some(stored) = tx.idempotent(key, &author).await? {
            return Ok(replay(stored));
        }
    }
    for blob in &record.blobs {
        tx.put_blob(blob).await?;
    }
    // The events of `countersign_decide::record`, in log order: proposed, decided and, for
    // an automated decision, authorized. The stored decision points at the `decided` one.
    let mut decided = None;
    for event in &record.events {
        let index = tx.append_event(event).await?;
        if event.kind == EventKind::Decided {
            decided = Some(index);
        }
    }
    let log_index =
        decided.ok_or_else(|| ApiError::Internal("the record has no `decided` event".into()))?;
    tx.put_decision(&Decision {
        id: proposal.decision.clone(),
        subject: id.clone(),
        tier: proposal.tier.clone(),
        record: decision_record.clone(),
        log_index,
    })
    .await?;
    tx.put_proposal(&proposal).await?;
    let view = view(&proposal, &decision_record, Vec::new());
    let response = serde_json::to_string(&view).map_err(|e| ApiError::Internal(e.to_string()))?;
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
    Ok((
        StatusCode::CREATED,
        [("content-type", "application/json")],
        response,
    )
        .into_response())
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
        .filter(|a| a.head == proposal.head && a.verdict == "approve")
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
                approver: a.approver,
                head: a.head,
                verdict: a.verdict,
                comment: a.comment,
            })
            .collect(),
        created_at: proposal.created_at.clone(),
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

async fn load_view(state: &AppState, proposal: &Proposal) -> Result<ProposalView, ApiError> {
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
    if body.head != proposal.head {
        return Err(ApiError::Conflict(format!(
            "head {} is not the proposal's current head {}",
            body.head, proposal.head
        )));
    }
    let decision = state
        .store
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
    if previous
        .iter()
        .any(|a| a.head == proposal.head && a.approver.eq_ignore_ascii_case(&approver))
    {
        // The same person again: counted once, nothing new to record.
        drop(tx);
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
            tx.append_event(&event(
                EventKind::Authorized,
                &now,
                &id,
                SYSTEM_ACTOR,
                json!({ "commit": proposal.head, "tier": proposal.tier }),
            )?)
            .await?;
        }
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
        .filter(|a| a.head == proposal.head && a.verdict == "approve")
        .map(|a| a.approver.to_lowercase())
        .collect();
    approvers.sort();
    approvers.dedup();
    let counted = u64::try_from(approvers.len()).unwrap_or(u64::MAX);
    Ok((counted >= required).then_some(ProposalState::Authorized))
}
