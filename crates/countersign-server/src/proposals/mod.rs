//! `/v1/proposals`: opening a proposal (diff, decision, stored and logged in one
//! transaction), reading it, approving or rejecting its head, and its lifecycle: moving the
//! head, closing, superseding, merged.
//!
//! Every handler that changes a proposal is load → transition → persist: it locks the
//! proposal ([`view::Loaded`]), asks countersign-lifecycle what the event does (the rules no
//! policy can lift live there: only humans, never an author, only eligible approvers, only
//! the current head, a person counts once, a rejection stands until its giver withdraws it
//! or the diff changes) and writes the answer ([`persist`]) in the transaction that appends
//! its events. Evidence is `evidence`'s; idempotency keys are `idempotency`'s.

pub(crate) mod open;
pub(crate) mod persist;
pub(crate) mod view;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use countersign_audit::EventKind;
use countersign_lifecycle::{Event, Verdict, transition};
use countersign_policy::Principal;
use countersign_store::{HeadMove, Proposal};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::body::Body;
use crate::error::{ApiError, Problem};
use crate::idempotency::Key;

use persist::{event, refused, typed};
pub use view::ProposalView;
pub(crate) use view::{Loaded, load_view, load_view_of, load_views};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(show))
        .routes(routes!(what_if))
        .routes(routes!(explanation))
        .routes(routes!(approve))
        .routes(routes!(move_head))
        .routes(routes!(close))
        .routes(routes!(mark_merged))
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
    /// Not empty nor only whitespace.
    #[schema(min_length = 1, pattern = r"\S")]
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// Findings this change fixes (`F-12`): each must be live and of this repository. The
    /// suites that reproduced them are required of the change besides its plan, and once
    /// it is merged they run again on the protected branch to verify the fix held.
    #[serde(default)]
    #[schema(max_items = 64)]
    pub fixes: Vec<String>,
}

fn verdict_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["approve", "reject"]))
        .build()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApproval {
    /// The head commit approved: must be the proposal's current head.
    pub head: String,
    #[schema(schema_with = verdict_schema)]
    pub verdict: Verdict,
    /// Why; required for a rejection.
    #[serde(default)]
    pub comment: String,
}

/// Open a proposal: the server computes the diff and decides it.
#[utoipa::path(
    post, path = "/v1/proposals", request_body = NewProposal,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response to the same request (principal, route and body); the same key with another request is a 422")),
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
    let author = caller.principal.to_string();
    let mut request = json!({
        "repo": body.repo, "base": body.base, "head": body.head,
        "title": body.title, "description": body.description,
    });
    if !body.fixes.is_empty() {
        // Only when given, so keys of requests without it replay as before.
        request["fixes"] = json!(body.fixes);
    }
    let key = Key::from_headers(&headers, &author, "POST /v1/proposals", &request)?;
    if let Some(key) = &key
        && let Some(replayed) = key.replay(&state.store).await?
    {
        return Ok(replayed);
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
    let fixed = crate::findings::to_fix(&state, &body.repo, &body.fixes).await?;
    let fix_suites = crate::findings::suites_of(&fixed);
    // Everything but the writes is CPU work and runs off the async workers: those also run
    // the transactions that hold the log's write order, which should never queue behind a
    // decision being computed, recorded, encoded or freed.
    let (clock, signer, principal, dispatcher, pipeline) = (
        state.clock.clone(),
        state.log_signer.clone(),
        caller.principal.clone(),
        caller.dispatched_by.clone(),
        std::sync::Arc::clone(&state.pipeline),
    );
    let open::Prepared {
        proposal,
        mut decision,
        blobs,
        leaves,
        decided,
        response,
        work,
    } = state
        .pipeline
        .blocking_for(&path.clone(), move || {
            open::prepare(
                &pipeline,
                &path,
                body,
                &principal,
                dispatcher.as_ref(),
                &clock,
                signer,
                &fix_suites,
            )
        })
        .await??;
    if key.is_none()
        && fixed.is_empty()
        && !crate::runs::queues_any(&work)
        && !crate::webhooks::announces(&state, &proposal, proposal.state.as_str(), &decision.record)
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
    if let Some(key) = &key
        && let Some(replayed) = key.replay_in(&mut tx).await?
    {
        // Another request with this key committed while the pipeline ran.
        return Ok(replayed);
    }
    write_opened(
        &state,
        &mut tx,
        &proposal,
        &mut decision,
        &blobs,
        &leaves,
        decided,
        &work,
    )
    .await?;
    // The findings it fixes, linked (and logged) with it.
    crate::findings::link(
        &mut tx,
        &fixed,
        &proposal.id,
        &proposal.head,
        &author,
        &proposal.created_at,
    )
    .await?;
    if let Some(key) = &key
        && !key
            .remember(&mut tx, StatusCode::CREATED, &response)
            .await?
    {
        // Lost a race with the same key on another connection: drop ours, replay theirs.
        tx.rollback().await?;
        return key.after_race(&state.store).await;
    }
    tx.commit().await?;
    Ok(created(response))
}

/// Writes a prepared new proposal in `tx`: its blobs, its entries, decision and row, the
/// fleet's work for its head and what it announces to webhook targets.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn write_opened(
    state: &AppState,
    tx: &mut countersign_store::Tx,
    proposal: &Proposal,
    decision: &mut countersign_store::Decision,
    blobs: &[countersign_audit::bundle::Blob],
    leaves: &[countersign_store::Leaf],
    decided: usize,
    work: &[crate::pipeline::WorkSpec],
) -> Result<(), ApiError> {
    for blob in blobs {
        tx.put_hashed_blob(blob).await?;
    }
    // The entries, the decision (pointing at the `decided` entry) and the proposal.
    tx.append_decided(leaves, decided, decision, proposal)
        .await?;
    // The fleet's work for the head, queued with the proposal.
    crate::runs::enqueue(
        state,
        tx,
        &proposal.repo,
        &proposal.id,
        &proposal.head,
        work,
    )
    .await?;
    // What the new proposal announces to webhook targets, queued in this transaction.
    crate::webhooks::notify(
        state,
        tx,
        proposal,
        proposal.state.as_str(),
        &decision.record,
    )
    .await?;
    Ok(())
}

fn created(response: String) -> Response {
    (
        StatusCode::CREATED,
        [("content-type", "application/json")],
        response,
    )
        .into_response()
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
    Ok(Json(load_view_of(&state.store, &id).await?))
}

/// What would lower the tier of a proposal's current head.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct WhatIfView {
    pub proposal: String,
    /// The head the search judged (the proposal's current head).
    pub head: String,
    /// The `what_if` object of `countersign evaluate --what-if --format json`: per more
    /// automated tier, the fewest changed files to leave out and the fewest planned suites
    /// whose passing evidence would reach it, each re-decided, and how far the search went
    /// (`search.cut` when it stopped early). Its JSON schema is `what_if` in
    /// docs/evaluate.schema.json.
    #[schema(value_type = Object)]
    pub what_if: countersign_decide::report::WhatIfReport,
}

/// How long the what-if search of one request may run, and how many re-decisions it may make.
const WHAT_IF_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);
const WHAT_IF_DECISIONS: u32 = 256;

/// What would lower the proposal's tier: the smallest differences (changed files left out,
/// passing evidence for planned suites) that route its current head to a more automated
/// tier, each re-decided with the proposal's author and accepted evidence. Read like the
/// proposal itself.
#[utoipa::path(
    get, path = "/v1/proposals/{id}/what-if",
    params(("id" = String, Path, description = "Proposal id")),
    responses(
        (status = 200, body = WhatIfView), (status = 401, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)
    ),
    security(("bearer" = []))
)]
async fn what_if(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WhatIfView>, ApiError> {
    let Redecided {
        proposal,
        path,
        author,
        envelopes,
    } = redecided(&state, &id).await?;
    let (base, head) = (proposal.base.clone(), proposal.head.clone());
    let dispatched_by = proposal.dispatched_by.clone();
    let pipeline = std::sync::Arc::clone(&state.pipeline);
    let report = state
        .pipeline
        .blocking_for(&path.clone(), move || {
            // The deadline counts from when a core is ours, not from the wait for one.
            let budget = countersign_decide::what_if::Budget {
                decisions: WHAT_IF_DECISIONS,
                deadline: Some(std::time::Instant::now() + WHAT_IF_DEADLINE),
                ..countersign_decide::what_if::Budget::default()
            };
            pipeline.what_if(
                &path,
                &base,
                &head,
                &author,
                dispatched_by.as_deref(),
                &envelopes,
                &budget,
            )
        })
        .await??;
    Ok(Json(WhatIfView {
        proposal: proposal.id,
        head: proposal.head,
        what_if: report,
    }))
}

/// What re-deciding a proposal's current head reads: the proposal, its repository's path,
/// its author and the evidence accepted for the head.
struct Redecided {
    proposal: countersign_store::Proposal,
    path: std::path::PathBuf,
    author: Principal,
    envelopes: Vec<(String, Vec<u8>)>,
}

/// Loads [`Redecided`] for proposal `id` (the what-if and the explanation routes): `404` for
/// no such proposal, `409` when its repository is no longer configured.
async fn redecided(state: &AppState, id: &str) -> Result<Redecided, ApiError> {
    let proposal = state
        .store
        .proposal(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no proposal {id}")))?;
    let path = state.repos.get(&proposal.repo).cloned().ok_or_else(|| {
        ApiError::Conflict(format!(
            "repository {:?} of this proposal is no longer configured on this server",
            proposal.repo
        ))
    })?;
    let author: Principal = proposal
        .author
        .parse()
        .map_err(|e| ApiError::Internal(format!("proposal {id}: author: {e}")))?;
    let envelopes =
        crate::evidence::named(crate::evidence::for_head(&state.store, id, &proposal.head).await?);
    Ok(Redecided {
        proposal,
        path,
        author,
        envelopes,
    })
}

/// Why a proposal's current head takes its tier.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ExplanationView {
    pub proposal: String,
    /// The head explained (the proposal's current head).
    pub head: String,
    /// The tier, as the proposal has it.
    pub tier: String,
    /// The object of `countersign evaluate --format json` for the current head with its
    /// accepted evidence: `reasons` (for the chosen tier the permits, for each less
    /// restrictive tier the policies or invariants that ruled it out, each with its policy
    /// id and the facts it read), `impact`, `approvers`, `validation_plan`, `facts`,
    /// `evidence`. Its JSON schema is docs/evaluate.schema.json.
    #[schema(value_type = Object)]
    pub explanation: countersign_decide::report::EvaluationReport,
    /// The same for people: the text `countersign evaluate` prints.
    pub text: String,
}

/// Why the proposal's current head takes its tier: the decision re-derived from its
/// recorded inputs (the base's rules, the change, the author, the accepted evidence) with
/// every reason, policy id and fact. Read like the proposal itself.
#[utoipa::path(
    get, path = "/v1/proposals/{id}/explanation",
    params(("id" = String, Path, description = "Proposal id")),
    responses(
        (status = 200, body = ExplanationView), (status = 401, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)
    ),
    security(("bearer" = []))
)]
async fn explanation(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ExplanationView>, ApiError> {
    Ok(Json(explain(&state, &id).await?))
}

/// What `GET /v1/proposals/{id}/explanation` answers, for it and the console's proposal page.
pub(crate) async fn explain(state: &AppState, id: &str) -> Result<ExplanationView, ApiError> {
    let Redecided {
        proposal,
        path,
        author,
        envelopes,
    } = redecided(state, id).await?;
    let (base, head) = (proposal.base.clone(), proposal.head.clone());
    let dispatched_by = proposal.dispatched_by.clone();
    let pipeline = std::sync::Arc::clone(&state.pipeline);
    let evaluation = state
        .pipeline
        .blocking_for(&path.clone(), move || {
            pipeline.explain(
                &path,
                &base,
                &head,
                &author,
                dispatched_by.as_deref(),
                &envelopes,
            )
        })
        .await??;
    // The decision is a function of recorded inputs: an explanation of another tier than
    // the recorded one would explain a decision nobody made. It can differ only when this
    // server's rules of derivation are not those that decided (an upgrade since).
    if evaluation.decision.tier != proposal.tier {
        tracing::warn!(
            proposal = %id,
            recorded = %proposal.tier,
            rederived = %evaluation.decision.tier,
            "an explanation re-derived another tier than the recorded one"
        );
        return Err(ApiError::Conflict(format!(
            "proposal {id} was decided {} but re-derives {} on this server: the decision \
             cannot be explained by this version of the rules; `countersign bundle verify` \
             shows the difference",
            proposal.tier, evaluation.decision.tier
        )));
    }
    Ok(ExplanationView {
        proposal: proposal.id,
        head: proposal.head,
        tier: proposal.tier.as_str().to_owned(),
        text: countersign_policy::explain_text(&evaluation.decision),
        explanation: evaluation.report,
    })
}

/// Approve or reject the proposal's current head. A person's later verdict on the same head
/// supersedes their earlier one (both stay in the log); a rejection needs a comment, stands
/// until its giver withdraws it or the diff changes, and revokes an authorization that has
/// not merged.
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
    Ok(Json(give_verdict(&state, &caller, &id, &body).await?))
}

/// What `POST /v1/proposals/{id}/approvals` does, for it and the console's forms alike: the
/// role, only people, the identity held to the repository, then the lifecycle's verdict in
/// its transaction. Returns the proposal as it is after.
pub(crate) async fn give_verdict(
    state: &AppState,
    caller: &Caller,
    id: &str,
    body: &NewApproval,
) -> Result<ProposalView, ApiError> {
    caller.require(&[Role::Approver], "approve or reject")?;
    // Whatever the policy or the catalog says: only people approve (the lifecycle says so
    // too; refusing before the proposal is read tells an agent nothing about it).
    if !caller.principal.is_human() {
        return Err(ApiError::Forbidden(format!(
            "{} is not a human: only humans approve or reject",
            caller.principal
        )));
    }
    if let (Some(person), Some(oidc)) = (&caller.identity, &state.oidc)
        && !oidc.has_identity_repo()
    {
        held_to_the_repository(state, id, person).await?;
    }
    let mut tx = state.store.begin().await?;
    apply_verdict(state, &mut tx, id, caller, body).await?;
    // Committing even an unchanged transaction waits for its batch, so the view below reads
    // what it saw.
    tx.commit().await?;
    load_view_of(&state.store, id).await
}

/// Gives `caller`'s verdict on proposal `id` in `tx`, as the lifecycle allows it (only
/// humans, never an author, only eligible people, only the current head): the event, the
/// verdict row, the state it settles. Returns the transition (`unchanged` when the same
/// verdict stood already and nothing was written).
pub(crate) async fn apply_verdict(
    state: &AppState,
    tx: &mut countersign_store::Tx,
    id: &str,
    caller: &Caller,
    body: &NewApproval,
) -> Result<countersign_lifecycle::Transition, ApiError> {
    let loaded = Loaded::lock(tx, id).await?;
    let t = transition(
        &loaded.lifecycle(),
        Event::Verdict {
            by: &caller.principal,
            head: &body.head,
            verdict: body.verdict,
            comment: &body.comment,
        },
    )
    .map_err(refused)?;
    if !t.unchanged {
        let now = state.clock.rfc3339();
        persist::verdict(state, tx, &loaded, caller, body, &t, &now).await?;
        crate::integrations::github::changed(state, tx, id, &loaded.proposal.head).await?;
    }
    Ok(t)
}

/// Withdraws `approver`'s standing verdict on proposal `id`'s current head, in `tx`, when
/// `given_there` says it is the one being withdrawn (a dismissed GitHub review withdraws the
/// verdict that review gave, not a later one): the lifecycle's withdrawal, logged as
/// `verdict_withdrawn` by `actor` with `details`, the state settled again. `None` when no
/// verdict of theirs stands on the head or the one standing was given elsewhere.
pub(crate) async fn apply_withdrawal(
    state: &AppState,
    tx: &mut countersign_store::Tx,
    id: &str,
    approver: &str,
    actor: &str,
    given_there: impl Fn(&countersign_lifecycle::Approval) -> bool,
    details: serde_json::Value,
) -> Result<Option<countersign_lifecycle::Transition>, ApiError> {
    let loaded = Loaded::lock(tx, id).await?;
    let standing = loaded.verdicts.iter().find(|v| {
        v.stands_on(&loaded.proposal.head)
            && countersign_lifecycle::same_principal(&v.approver, approver)
    });
    if !standing.is_some_and(&given_there) {
        return Ok(None);
    }
    let t = transition(
        &loaded.lifecycle(),
        Event::Withdrawn {
            approver,
            head: &loaded.proposal.head,
        },
    )
    .map_err(refused)?;
    if t.unchanged {
        return Ok(None);
    }
    let now = state.clock.rfc3339();
    persist::withdrawal(state, tx, &loaded, actor, details, &t, &now).await?;
    crate::integrations::github::changed(state, tx, id, &loaded.proposal.head).await?;
    Ok(Some(t))
}

/// Without one identity repository, a person signed in by email gives a verdict only as
/// someone the proposal's own repository declares, at the proposal's base, with that email:
/// another repository (or a branch nobody reviewed) declaring a User of the same name with
/// the person's email must not let them act as that User here.
async fn held_to_the_repository(
    state: &AppState,
    id: &str,
    person: &crate::oidc::Person,
) -> Result<(), ApiError> {
    let proposal = state
        .store
        .proposal(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no proposal {id}")))?;
    let path = state.repos.get(&proposal.repo).cloned().ok_or_else(|| {
        ApiError::Conflict(format!(
            "repository {:?} is no longer configured on this server",
            proposal.repo
        ))
    })?;
    let (pipeline, base, email, principal) = (
        std::sync::Arc::clone(&state.pipeline),
        proposal.base.clone(),
        person.email.clone(),
        person.principal.clone(),
    );
    let declared = state
        .pipeline
        .blocking(move || pipeline.declares(&path, &base, &email, &principal))
        .await??;
    if !declared {
        tracing::warn!(
            principal = %person.principal, email = %person.email, repo = %proposal.repo,
            "identity refused: the repository does not declare this person with this email"
        );
        return Err(ApiError::Forbidden(format!(
            "{} signed in as {}, but repository {} does not declare {} with that email at \
             the proposal's base: a person gives verdicts as the repository's own people say",
            person.email, person.principal, proposal.repo, person.principal
        )));
    }
    Ok(())
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

/// The proposal's author or an admin may move its head or close it.
fn may_manage(caller: &Caller, proposal: &Proposal, action: &str) -> Result<(), ApiError> {
    if caller.role == Role::Admin
        || countersign_lifecycle::same_principal(&caller.principal.to_string(), &proposal.author)
    {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "only the proposal's author ({}) or an admin may {action} it",
        proposal.author
    )))
}

fn refuse_final(proposal: &Proposal, action: &str) -> Result<(), ApiError> {
    if proposal.state.is_final() {
        return Err(ApiError::Conflict(format!(
            "proposal {} is {}: it cannot {action} any more",
            proposal.id, proposal.state
        )));
    }
    Ok(())
}

/// Move the proposal's head: everything is re-derived from the base's governed state.
/// Verdicts on the old head lapse (kept, marked), unless the new head has exactly the same
/// diff against the base (a trivial rebase): then they carry over, rejections included.
#[utoipa::path(
    post, path = "/v1/proposals/{id}/head", request_body = NewHead,
    params(
        ("id" = String, Path, description = "Proposal id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response to the same request (principal, route and body); the same key with another request is a 422")
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
    let actor = caller.principal.to_string();
    let route = format!("POST /v1/proposals/{id}/head");
    let key = Key::from_headers(&headers, &actor, &route, &json!({ "head": body.head }))?;
    if let Some(key) = &key
        && let Some(replayed) = key.replay(&state.store).await?
    {
        return Ok(replayed);
    }
    let current = state
        .store
        .proposal(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no proposal {id}")))?;
    may_manage(&caller, &current, "move the head of")?;
    refuse_final(&current, "move its head")?;
    let decided = decide_head_move(&state, &current, body.head, &[]).await?;

    let mut tx = state.store.begin().await?;
    if let Some(key) = &key
        && let Some(replayed) = key.replay_in(&mut tx).await?
    {
        return Ok(replayed);
    }
    let view = match apply_head_move(&state, &mut tx, &id, &decided, &actor).await? {
        Moved::Unchanged(proposal) => {
            // Already there: nothing lapses, nothing is logged. Committing the empty
            // transaction waits for its batch, so the view below reads what it saw.
            tx.commit().await?;
            let view = load_view(&state.store, &proposal).await?;
            return Ok(Json(view).into_response());
        }
        Moved::Moved { view, .. } => view,
    };
    let response = serde_json::to_string(&view).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(key) = &key
        && !key.remember(&mut tx, StatusCode::OK, &response).await?
    {
        // Lost a race with the same key on another connection: drop ours, replay theirs.
        tx.rollback().await?;
        return key.after_race(&state.store).await;
    }
    tx.commit().await?;
    Ok((
        StatusCode::OK,
        [("content-type", "application/json")],
        response,
    )
        .into_response())
}

/// A proposal's new head, decided: what [`apply_head_move`] writes.
pub(crate) struct HeadMoveDecided {
    outcome: crate::pipeline::Outcome,
    authors: Vec<String>,
    record: countersign_decide::record::Record,
    decided: serde_json::Value,
    decided_record: countersign_lifecycle::DecidedRecord,
    now: String,
}

/// Decides `current` at `head` (a revision of its repository), as its author proposed it,
/// whoever moves it: everything but the writes, off the async workers.
///
/// `also`: the suites of findings linked to it with this move (a pull request's description
/// naming more), required besides those of the findings it fixes already.
pub(crate) async fn decide_head_move(
    state: &AppState,
    current: &Proposal,
    head: String,
    also: &[String],
) -> Result<HeadMoveDecided, ApiError> {
    let id = &current.id;
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
    let base = current.base.clone();
    let pipeline = std::sync::Arc::clone(&state.pipeline);
    // The dispatcher stays an author (and the `dispatched_by` fact) whatever the new
    // commits say.
    let dispatched_by = current.dispatched_by.clone();
    let mut outcome = state
        .pipeline
        .blocking_for(&path.clone(), move || {
            pipeline.decide(&path, &base, &head, &author, dispatched_by.as_deref())
        })
        .await??;
    let mut suites = crate::findings::fix_suites(state, id).await?;
    for suite in also {
        if !suites.contains(suite) {
            suites.push(suite.clone());
        }
    }
    outcome.require_suites(&suites)?;
    let authors =
        countersign_lifecycle::authors(&outcome.change.authors, current.dispatched_by.as_deref());
    let now = state.clock.rfc3339();
    // Built before the transaction (appenders are serialized); a proposal's repository
    // never changes, so the row read above names the same one the locked row will.
    let (record, decided) = outcome.record(id, &current.repo, &now, state.log_signer.as_deref())?;
    let decided_record = typed(&decided)?;
    Ok(HeadMoveDecided {
        outcome,
        authors,
        record,
        decided,
        decided_record,
        now,
    })
}

/// What [`apply_head_move`] did.
pub(crate) enum Moved {
    /// The proposal was at that head already: nothing written.
    Unchanged(Proposal),
    Moved {
        proposal: Proposal,
        /// Boxed: a view is large, and most callers only need the proposal.
        view: Box<ProposalView>,
    },
}

/// Moves proposal `id` to the decided head in `tx`, caused by `actor`: the `head_moved`
/// event, verdicts and evidence lapsed (or carried by a trivial rebase), the old head's runs
/// cancelled and the new head's queued, the new decision, what it announces.
pub(crate) async fn apply_head_move(
    state: &AppState,
    tx: &mut countersign_store::Tx,
    id: &str,
    decided: &HeadMoveDecided,
    actor: &str,
) -> Result<Moved, ApiError> {
    let HeadMoveDecided {
        outcome,
        authors,
        record,
        decided,
        decided_record,
        now,
    } = decided;
    let loaded = Loaded::lock(tx, id).await?;
    refuse_final(&loaded.proposal, "move its head")?;
    let t = transition(
        &loaded.lifecycle(),
        Event::HeadMoved {
            head: &outcome.head,
            record: decided_record,
            authors,
            diff_digest: &outcome.change.diff_digest,
        },
    )
    .map_err(refused)?;
    if t.unchanged {
        return Ok(Moved::Unchanged(loaded.proposal));
    }
    let proposal = &loaded.proposal;
    let moved = tx
        .append_event(&event(
            EventKind::HeadMoved,
            now,
            id,
            actor,
            json!({
                "from": proposal.head,
                "to": outcome.head,
                "diff_digest": { "from": proposal.diff_digest, "to": outcome.change.diff_digest },
                "trivial_rebase": t.trivial_rebase,
                "lapsed": persist::verdicts(&t.lapsed),
                "carried_over": persist::verdicts(&t.carried),
                "commit_authors": outcome.change.authors,
            }),
        )?)
        .await?;
    tx.lapse_approvals(id, moved).await?;
    // Evidence is about one head too: none of it counts for the new one (evidence.rs).
    tx.lapse_evidence(id, moved).await?;
    // So is the fleet's work: the old head's unfinished runs end `cancelled` (evidence they
    // would push is refused anyway, bound to the old head) and the new head's are queued.
    crate::runs::cancel(state, tx, id, Some(&outcome.head), actor, "head_moved").await?;
    crate::runs::enqueue(
        state,
        tx,
        &proposal.repo,
        id,
        &outcome.head,
        &outcome.fleet.work,
    )
    .await?;
    for verdict in &t.carried {
        tx.put_approval(&countersign_store::Approval {
            head: outcome.head.clone(),
            log_index: moved,
            lapsed_by: None,
            carried_from: Some(verdict.head.clone()),
            ..verdict.clone()
        })
        .await?;
    }
    let moved_proposal = Proposal {
        head: outcome.head.clone(),
        state: t.next,
        tier: outcome.tier,
        authors: authors.clone(),
        diff_digest: outcome.change.diff_digest.clone(),
        ..proposal.clone()
    };
    let decision_id = persist::decision(
        state,
        tx,
        &moved_proposal,
        &outcome.head,
        record,
        decided,
        decided_record,
        &t,
        true,
        now,
    )
    .await?;
    let change = HeadMove {
        head: outcome.head.clone(),
        state: t.next,
        tier: outcome.tier,
        decision: decision_id.clone(),
        authors: authors.clone(),
        diff_digest: outcome.change.diff_digest.clone(),
    };
    tx.move_head(id, &change).await?;
    let moved_proposal = Proposal {
        decision: decision_id,
        ..moved_proposal
    };
    crate::webhooks::notify(state, tx, &moved_proposal, t.next.as_str(), decided).await?;
    // The old head's check says it is no longer judged; the new head's reports the decision.
    crate::integrations::github::changed(state, tx, id, &proposal.head).await?;
    crate::integrations::github::changed(state, tx, id, &outcome.head).await?;
    let approvals = tx.approvals(id).await?;
    let stored = countersign_store::Decision {
        id: moved_proposal.decision.clone(),
        subject: id.to_owned(),
        tier: outcome.tier,
        record: decided.clone(),
        log_index: 0,
    };
    let view = view::view(&moved_proposal, &stored, decided_record, approvals);
    Ok(Moved::Moved {
        proposal: moved_proposal,
        view: Box::new(view),
    })
}

/// Close the proposal (its author or an admin), or mark it superseded by another proposal
/// of the same repository. Final: no head move, verdict or close after.
#[utoipa::path(
    post, path = "/v1/proposals/{id}/close", request_body(content = Option<CloseRequest>, description = "Optional: an empty body closes without a reason"),
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
        crate::body::refuse_nul(&bytes)?;
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
    let closed = apply_close(
        &state,
        &mut tx,
        &id,
        &caller.principal.to_string(),
        reason,
        successor.as_ref(),
        |proposal| may_manage(&caller, proposal, "close"),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(load_view(&state.store, &closed).await?))
}

/// Closes proposal `id` in `tx` (superseded by `successor` when given), caused by `actor`,
/// once `authorize` accepts the locked proposal: the `closed` event, the row, its unfinished
/// runs cancelled, what it announces. Returns the closed proposal.
pub(crate) async fn apply_close(
    state: &AppState,
    tx: &mut countersign_store::Tx,
    id: &str,
    actor: &str,
    reason: Option<String>,
    successor: Option<&Proposal>,
    authorize: impl FnOnce(&Proposal) -> Result<(), ApiError>,
) -> Result<Proposal, ApiError> {
    let loaded = Loaded::lock(tx, id).await?;
    let proposal = &loaded.proposal;
    authorize(proposal)?;
    refuse_final(proposal, "be closed")?;
    if let Some(successor) = successor
        && successor.repo != proposal.repo
    {
        return Err(ApiError::Invalid(format!(
            "superseded_by: {} is a proposal of {}, not of {}",
            successor.id, successor.repo, proposal.repo
        )));
    }
    if let Some(successor) = successor {
        refuse_supersession_circle(tx, id, successor).await?;
    }
    let t = transition(
        &loaded.lifecycle(),
        Event::Closed {
            superseded: successor.is_some(),
        },
    )
    .map_err(refused)?;
    let superseded_by = successor.map(|s| s.id.clone());
    let now = state.clock.rfc3339();
    tx.append_event(&event(
        EventKind::Closed,
        &now,
        id,
        actor,
        json!({
            "state": t.next.as_str(),
            "head": proposal.head,
            "reason": reason,
            "superseded_by": superseded_by,
        }),
    )?)
    .await?;
    tx.close_proposal(id, t.next, reason.as_deref(), superseded_by.as_deref())
        .await?;
    // Nothing will weigh its evidence any more: its unfinished runs end `cancelled`.
    crate::runs::cancel(state, tx, id, None, actor, t.next.as_str()).await?;
    let closed = Proposal {
        state: t.next,
        superseded_by,
        closed_reason: reason,
        ..proposal.clone()
    };
    crate::webhooks::notify(state, tx, &closed, t.next.as_str(), &loaded.decision.record).await?;
    crate::integrations::github::changed(state, tx, id, &closed.head).await?;
    Ok(closed)
}

/// Refuses `successor` as the successor of `id` when it is superseded, directly or through
/// others, by `id` itself (A→B→A): a chain of successors must end at a live proposal.
/// Read in the closing transaction, which holds the log head, so no other close can
/// complete a circle meanwhile.
async fn refuse_supersession_circle(
    tx: &mut countersign_store::Tx,
    id: &str,
    successor: &Proposal,
) -> Result<(), ApiError> {
    let mut next = successor.superseded_by.clone();
    let mut seen = std::collections::BTreeSet::new();
    while let Some(current) = next {
        if current == id {
            return Err(ApiError::Invalid(format!(
                "superseded_by: {} is superseded by {id} already, so {id} cannot be superseded \
                 by it: supersession cannot go in a circle",
                successor.id
            )));
        }
        // A circle not through `id` cannot be, as every close refuses one; stop all the same.
        if !seen.insert(current.clone()) {
            break;
        }
        next = tx
            .lock_proposal(&current)
            .await?
            .and_then(|p| p.superseded_by);
    }
    Ok(())
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
    // The findings it fixes: their reproducing suites run again on the protected branch at
    // the merged commit (planned before the transaction: git work).
    let planned = match state.store.proposal(&id).await? {
        Some(proposal) if proposal.head == body.commit => {
            crate::findings::plan_verification(&state, &proposal, &body.commit).await?
        }
        _ => crate::findings::Verification::Nothing,
    };
    let mut tx = state.store.begin().await?;
    let merged = apply_merged(
        &state,
        &mut tx,
        &id,
        &caller.principal.to_string(),
        &body.commit,
        None,
    )
    .await?;
    crate::findings::queue_verification(&state, &mut tx, &merged, &planned).await?;
    tx.commit().await?;
    Ok(Json(load_view(&state.store, &merged).await?))
}

/// Records in `tx` that proposal `id`'s authorized head `commit` reached a protected branch,
/// caused by `actor`; `details` (how it was merged, when a forge says so) goes into the
/// `merged` event beside the commit. Returns the merged proposal.
pub(crate) async fn apply_merged(
    state: &AppState,
    tx: &mut countersign_store::Tx,
    id: &str,
    actor: &str,
    commit: &str,
    details: Option<(&str, serde_json::Value)>,
) -> Result<Proposal, ApiError> {
    let loaded = Loaded::lock(tx, id).await?;
    let t = transition(&loaded.lifecycle(), Event::Merged { commit }).map_err(refused)?;
    let now = state.clock.rfc3339();
    let mut data = json!({ "commit": loaded.proposal.head });
    if let Some((name, value)) = details {
        data[name] = value;
    }
    tx.append_event(&event(EventKind::Merged, &now, id, actor, data)?)
        .await?;
    tx.set_proposal_state(id, t.next).await?;
    crate::integrations::github::changed(state, tx, id, &loaded.proposal.head).await?;
    Ok(Proposal {
        state: t.next,
        ..loaded.proposal
    })
}
