//! `/v1/proposals/{id}/evidence` and `/v1/proposals/{id}/plan`: runners submit signed
//! evidence for a proposal's current head and read which planned suites still need it.
//!
//! An envelope is weighed exactly as `countersign evaluate --evidence` weighs a file
//! (countersign-decide): trusted runners and the repository name come from the base's
//! `countersign.toml`, and it counts only when bound to the current head (or, for
//! comparisons, the base). An accepted envelope is stored as a blob, logged
//! (`evidence_accepted`), and the decision re-derived with every envelope accepted for the
//! head, stored and logged (`decided`, `authorized` when it authorizes), with the proposal's
//! new tier and state: all in one transaction. A refused one is logged (`evidence_refused`,
//! with the reasons) in a transaction of its own and answered 422.
//!
//! The states this module owns: a proposal whose validation plan has a required suite (one a
//! runner trusted at the base may attest) with no accepted head evidence is
//! `awaiting_evidence`, whatever its tier; once every required suite has some, it is
//! `authorized` for an automated tier and `awaiting_approval` otherwise. Evidence is read only
//! through [`for_head`] (live rows of one head), and a head move lapses it
//! (`Tx::lapse_evidence`), so what was accepted under an earlier head never counts again.
//!
//! Not here: running suites (runners do), approvals (`proposals`), head moves.

use std::path::PathBuf;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use countersign_audit::EventKind;
use countersign_lifecycle::{Event, transition};
use countersign_policy::Principal;
use countersign_store::{AcceptedEvidence, Proposal, Run, Store, Tx};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, Problem};
use crate::pipeline::Outcome;
use crate::proposals::persist::{self, event, refused, typed};
use crate::proposals::{Loaded, ProposalView, load_view, load_view_of};

/// The largest evidence envelope accepted: a signed test-result or scan carries a report's
/// worth of test names or findings, far more than a proposal, so this route raises the
/// server's [`crate::BODY_LIMIT`] to 1 MiB.
pub const EVIDENCE_BODY_LIMIT: usize = 1024 * 1024;

/// How many times a submission is re-derived when other evidence for the same head lands
/// in between (each attempt sees the set it decides with unchanged, or starts over).
const ATTEMPTS: usize = 5;
/// Refused envelopes logged per proposal head (and per branch run) at most: each refusal is
/// an audit entry, and a runner token (or whoever stole one) must not be able to grow the
/// log without bound. Beyond it refusals are answered `429` and not logged; a new head (or
/// run) starts over.
pub const MAX_REFUSED_PER_HEAD: usize = 64;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(submit))
        .routes(routes!(plan))
        // Inner to the server-wide limit, so it wins for these routes only.
        .layer(DefaultBodyLimit::max(EVIDENCE_BODY_LIMIT))
}

/// An envelope accepted for the proposal's current head.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EvidenceAccepted {
    /// Always true: a refused envelope is a 422 problem.
    pub accepted: bool,
    /// Lower-case hex SHA-256 of the envelope as sent: its blob and log name.
    pub digest: String,
    /// `head`, or `base` for evidence about the base commit (used for regressions and
    /// pre-existing vulnerabilities, never for coverage).
    pub binds_to: String,
    pub runner: String,
    pub suite: String,
    pub predicate_type: String,
    /// False when this envelope was already accepted for this head: nothing new recorded.
    pub recorded: bool,
    pub proposal: ProposalView,
}

/// One accepted envelope, as the plan lists it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EvidenceView {
    pub digest: String,
    pub binds_to: String,
    pub runner: String,
    pub predicate_type: String,
    /// The `evidence_accepted` log entry.
    pub log_index: u64,
}

/// One suite of the validation plan and where its evidence stands.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlannedSuite {
    pub suite: String,
    /// `satisfied` (accepted head evidence, passed or failed), `missing` (a trusted runner
    /// may attest it, none has), or `unattestable` (no runner trusted at the base may).
    pub status: String,
    /// Evidence accepted for it under the current head.
    pub evidence: Vec<EvidenceView>,
    /// Whether the fleet can run it: the base defines it under `[suites]`. A planned suite
    /// without a definition is never queued; only evidence attested by hand covers it.
    pub runnable: bool,
}

/// The validation plan of the current head, for runners to pick up.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlanView {
    pub proposal: String,
    pub head: String,
    pub state: String,
    pub suites: Vec<PlannedSuite>,
    /// Required suites with accepted head evidence.
    pub satisfied: Vec<String>,
    /// Required suites still without: what runners should run.
    pub missing: Vec<String>,
    /// Planned suites no trusted runner may attest: never waited for.
    pub unattestable: Vec<String>,
    /// For each finding the proposal fixes: whether its reproducing test passes at the head.
    pub fixes: Vec<crate::findings::FixStatus>,
}

/// The live evidence of `proposal` accepted under `head`, with the envelopes. Whoever
/// re-derives a decision for a head reads its evidence here (and passes it through [`named`]
/// to [`crate::pipeline::Pipeline::decide_with_evidence`]): evidence accepted under another
/// head, or lapsed by a head move (`Tx::lapse_evidence`), is not returned; its rows and
/// events stay.
pub async fn for_head(
    store: &Store,
    proposal: &str,
    head: &str,
) -> Result<Vec<(AcceptedEvidence, Vec<u8>)>, ApiError> {
    Ok(store.evidence_for_head(proposal, head).await?)
}

/// Evidence rows as the pipeline takes envelopes: named by digest.
pub fn named(rows: Vec<(AcceptedEvidence, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    rows.into_iter()
        .map(|(row, bytes)| (name(&row.digest), bytes))
        .collect()
}

fn name(digest: &str) -> String {
    format!("sha256:{digest}")
}

async fn proposal(state: &AppState, id: &str) -> Result<Proposal, ApiError> {
    state
        .store
        .proposal(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no proposal {id}")))
}

/// Why the submitted envelope did not count.
struct Refused {
    reasons: Vec<(String, String)>,
}

/// What weighing the submitted envelope with the head's accepted evidence gave.
enum Weighed {
    Accepted {
        outcome: Box<Outcome>,
        binds_to: String,
        runner: String,
        key_id: String,
        suite: String,
        predicate_type: String,
        summary: String,
    },
    Refused(Refused),
}

/// Re-derives the decision of `proposal` with `accepted` and the submitted envelope, and
/// says whether the submitted one counted.
async fn weigh(
    state: &AppState,
    proposal: &Proposal,
    accepted: Vec<(String, Vec<u8>)>,
    digest: &str,
    envelope: &Bytes,
) -> Result<Weighed, ApiError> {
    let path: PathBuf = state.repos.get(&proposal.repo).cloned().ok_or_else(|| {
        ApiError::Conflict(format!(
            "repository {:?} of this proposal is no longer configured on this server",
            proposal.repo
        ))
    })?;
    let author: Principal = proposal
        .author
        .parse()
        .map_err(|e| ApiError::Internal(format!("proposal {}: author: {e}", proposal.id)))?;
    let submitted = name(digest);
    let mut envelopes = accepted;
    envelopes.push((submitted.clone(), envelope.to_vec()));
    let (base, head) = (proposal.base.clone(), proposal.head.clone());
    let dispatched_by = proposal.dispatched_by.clone();
    let pipeline = std::sync::Arc::clone(&state.pipeline);
    let result = state
        .pipeline
        .blocking_for(&path.clone(), move || {
            pipeline.decide_with_evidence(
                &path,
                &base,
                &head,
                &author,
                dispatched_by.as_deref(),
                &envelopes,
            )
        })
        .await?;
    let mut outcome = match result {
        Ok(outcome) => outcome,
        // The change decided when the proposal was opened; what is new is the evidence, so
        // an input error here is its verification's (e.g. a base naming no repository). The
        // server's own failures are not the runner's to hear about.
        Err(e) if e.is_input() => {
            return Ok(Weighed::Refused(Refused {
                reasons: vec![("unverifiable".to_owned(), e.chain())],
            }));
        }
        Err(e) => return Err(e.into()),
    };
    outcome.require_suites(&crate::findings::fix_suites(state, &proposal.id).await?)?;
    let Some(report) = outcome.evidence() else {
        return Err(ApiError::Internal(
            "evidence was given but the decision weighed none".into(),
        ));
    };
    let refused: Vec<(String, String)> = report
        .refused
        .iter()
        .filter(|r| r.file == submitted)
        .map(|r| (r.reason.clone(), r.message.clone()))
        .collect();
    if !refused.is_empty() {
        return Ok(Weighed::Refused(Refused { reasons: refused }));
    }
    let Some(mine) = report.accepted.iter().find(|a| a.file == submitted) else {
        return Err(ApiError::Internal(format!(
            "envelope {digest} is neither accepted nor refused"
        )));
    };
    Ok(Weighed::Accepted {
        binds_to: mine.binds_to.clone(),
        runner: mine.runner.clone(),
        key_id: mine.key_id.clone(),
        suite: mine.suite.clone(),
        predicate_type: mine.predicate_type.clone(),
        summary: mine.summary.clone(),
        outcome: Box::new(outcome),
    })
}

/// Submit one signed evidence envelope (DSSE, as `countersign attest` writes it) for the
/// proposal's current head. Runner tokens only (and admin).
#[utoipa::path(
    post, path = "/v1/proposals/{id}/evidence",
    params(("id" = String, Path, description = "Proposal id")),
    request_body(content = String, content_type = "application/json", description = "One DSSE envelope, at most 1 MiB"),
    responses(
        (status = 201, body = EvidenceAccepted, description = "Accepted; the decision is re-derived"),
        (status = 200, body = EvidenceAccepted, description = "Accepted for this head already; nothing new recorded"),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 413, body = Problem),
        (status = 422, body = Problem, description = "Refused (logged): the detail lists each reason"),
        (status = 429, body = Problem, description = "Refused, not logged: this head has MAX_REFUSED_PER_HEAD refusals logged")
    ),
    security(("bearer" = []))
)]
async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // Only runners sign what they ran; a proposer (agent or human) never vouches for its
    // own change, and an approver's role is to weigh evidence, not to bring it.
    caller.require(&[Role::Runner], "submit evidence")?;
    let envelope = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!(
                "the evidence envelope is over the limit of {EVIDENCE_BODY_LIMIT} bytes"
            ))
        } else {
            ApiError::Invalid(rejection.body_text())
        }
    })?;
    if envelope.is_empty() {
        return Err(ApiError::Invalid(
            "the body is empty: send one DSSE envelope as `countersign attest` writes it".into(),
        ));
    }
    let digest = countersign_audit::bundle::digest(&envelope);
    let actor = caller.principal.to_string();
    for _ in 0..ATTEMPTS {
        let proposal = proposal(&state, &id).await?;
        let stored = for_head(&state.store, &id, &proposal.head).await?;
        // A runner retrying an upload that landed gets the same answer, whatever happened
        // to the proposal since.
        if let Some((row, _)) = stored.iter().find(|(row, _)| row.digest == digest) {
            let view = load_view(&state.store, &proposal).await?;
            return Ok((StatusCode::OK, Json(accepted_body(row, false, view))).into_response());
        }
        if !proposal.state.takes_evidence() {
            return Err(ApiError::Conflict(format!(
                "the proposal is {}: evidence no longer changes its decision",
                proposal.state
            )));
        }
        let seen: Vec<String> = stored.iter().map(|(row, _)| row.digest.clone()).collect();
        match weigh(&state, &proposal, named(stored), &digest, &envelope).await? {
            Weighed::Refused(refused) => {
                let pushed = Pushed::Proposal(&proposal);
                let size = envelope.len();
                return refuse(&state, pushed, &actor, &digest, size, refused.reasons).await;
            }
            Weighed::Accepted { .. } if let Some(reason) = capsule_lapsed(&state, &envelope) => {
                let pushed = Pushed::Proposal(&proposal);
                let size = envelope.len();
                return refuse(&state, pushed, &actor, &digest, size, vec![reason]).await;
            }
            Weighed::Accepted {
                outcome,
                binds_to,
                runner,
                key_id,
                suite,
                predicate_type,
                summary,
            } => {
                let now = state.clock.rfc3339();
                let mut tx = state.store.begin().await?;
                let loaded = Loaded::lock(&mut tx, &id).await?;
                let current = &loaded.proposal;
                let again: Vec<String> = tx
                    .evidence_for_head(&id, &proposal.head)
                    .await?
                    .into_iter()
                    .map(|(row, _)| row.digest)
                    .collect();
                if current.head != proposal.head || current.state != proposal.state || again != seen
                {
                    // The head moved, the state changed or other evidence landed while this
                    // was weighed: weigh again against what is there now.
                    tx.rollback().await?;
                    continue;
                }
                let bound_commit = if binds_to == "base" {
                    proposal.base.clone()
                } else {
                    proposal.head.clone()
                };
                let data = json!({
                    "envelope": digest,
                    "head": proposal.head,
                    "binds_to": binds_to,
                    "commit": bound_commit,
                    "runner": runner,
                    "key_id": key_id,
                    "suite": suite,
                    "predicate_type": predicate_type,
                    "summary": summary,
                });
                tx.put_blob(&envelope).await?;
                let index = tx
                    .append_event(&event(
                        EventKind::EvidenceAccepted,
                        &now,
                        &id,
                        &actor,
                        data,
                    )?)
                    .await?;
                let row = AcceptedEvidence {
                    proposal: id.clone(),
                    head: proposal.head.clone(),
                    digest: digest.clone(),
                    bound_commit,
                    binding: binds_to,
                    runner,
                    suite,
                    predicate_type,
                    log_index: index,
                };
                tx.put_evidence(&row).await?;
                rederive(&state, &mut tx, &loaded, &outcome, &now).await?;
                tx.commit().await?;
                let view = load_view_of(&state.store, &id).await?;
                return Ok(
                    (StatusCode::CREATED, Json(accepted_body(&row, true, view))).into_response()
                );
            }
        }
    }
    Err(ApiError::Conflict(
        "other evidence for this proposal kept landing while this envelope was weighed; submit it again".into(),
    ))
}

/// Why an envelope that verified under a capsule does not count now: its capsule is not in
/// force at the server's clock (expired, or not issued yet). Verification itself reads no
/// clock (so a decision re-derived later keeps what was accepted); expiry is judged once, when
/// the evidence is received. `None` for an envelope without a capsule.
pub(crate) fn capsule_lapsed(state: &AppState, envelope: &[u8]) -> Option<(String, String)> {
    let refusal = |r: countersign_evidence::Refusal| (r.reason().to_owned(), r.to_string());
    let capsule = match countersign_evidence::capsule::carried(envelope) {
        Ok(Some(capsule)) => capsule,
        Ok(None) => return None,
        Err(r) => return Some(refusal(r)),
    };
    let Ok(now) = jiff::Timestamp::try_from(state.clock.now()) else {
        // A clock jiff cannot represent is no time to trust a capsule at: fail closed.
        return Some((
            "capsule_expired".to_owned(),
            "the server's clock is out of range".to_owned(),
        ));
    };
    capsule.check_valid_at(now).err().map(refusal)
}

fn accepted_body(
    row: &AcceptedEvidence,
    recorded: bool,
    proposal: ProposalView,
) -> EvidenceAccepted {
    EvidenceAccepted {
        accepted: true,
        digest: row.digest.clone(),
        binds_to: row.binding.clone(),
        runner: row.runner.clone(),
        suite: row.suite.clone(),
        predicate_type: row.predicate_type.clone(),
        recorded,
        proposal,
    }
}

/// Where a refused envelope was pushed: a proposal (weighed against its current head), or a
/// branch run (weighed against the run's commit, `findings`).
pub(crate) enum Pushed<'a> {
    Proposal(&'a Proposal),
    Run { run: &'a Run, branch: &'a str },
}

impl Pushed<'_> {
    /// The log subject the refusal is about.
    fn subject(&self) -> &str {
        match self {
            Pushed::Proposal(p) => &p.id,
            Pushed::Run { run, .. } => &run.id,
        }
    }

    /// The field of an `evidence_refused` event that scopes the count, and its value here:
    /// the proposal's head (a head move starts over), or the run's commit.
    fn scope(&self) -> (&'static str, &str) {
        match self {
            Pushed::Proposal(p) => ("head", &p.head),
            Pushed::Run { run, .. } => ("commit", &run.commit),
        }
    }

    /// What the answer names: `head H`, or `run R at C`.
    fn what(&self) -> String {
        match self {
            Pushed::Proposal(p) => format!("head {}", p.head),
            Pushed::Run { run, .. } => format!("run {} at {}", run.id, run.commit),
        }
    }
}

/// Logs the refusal in its own transaction and answers 422 with every reason. The same
/// envelope refused again for the same head (or run) is answered alike but not logged
/// again; past [`MAX_REFUSED_PER_HEAD`] logged refusals for the head (or run), a new one is
/// `429`, not logged. Counted in the refusal's transaction with the proposal (or run)
/// locked, so concurrent refusals (on any replica) count each other exactly. One event
/// shape for both: `envelope`, `size`, `reasons`, and the head, or the run, its branch and
/// commit.
pub(crate) async fn refuse(
    state: &AppState,
    pushed: Pushed<'_>,
    actor: &str,
    digest: &str,
    size: usize,
    reasons: Vec<(String, String)>,
) -> Result<Response, ApiError> {
    let detail = reasons
        .iter()
        .map(|(reason, message)| format!("{reason}: {message}"))
        .collect::<Vec<_>>()
        .join("; ");
    let answer = ApiError::Invalid(format!("evidence refused for {}: {detail}", pushed.what()));
    let (key, value) = pushed.scope();
    let mut tx = state.store.begin().await?;
    match &pushed {
        Pushed::Proposal(p) => {
            tx.lock_proposal(&p.id).await?;
        }
        Pushed::Run { run, .. } => {
            tx.lock_run(&run.id).await?;
        }
    }
    let mut logged = 0;
    for entry in tx.entries_about(pushed.subject()).await? {
        let event = entry
            .event()
            .map_err(|e| ApiError::Internal(format!("log entry {}: {e}", entry.index)))?;
        if event.kind != EventKind::EvidenceRefused || event.data[key] != value {
            continue;
        }
        if event.data["envelope"] == digest {
            tx.rollback().await?;
            return Err(answer);
        }
        logged += 1;
    }
    if logged >= MAX_REFUSED_PER_HEAD {
        tx.rollback().await?;
        let hint = match pushed {
            Pushed::Proposal(_) => "fix the runner, or move the proposal's head",
            Pushed::Run { .. } => "fix the runner; the next run starts over",
        };
        return Err(ApiError::TooMany(format!(
            "{logged} refused envelopes are logged for {} already; this one is refused \
             too ({detail}) and not logged: {hint}",
            pushed.what()
        )));
    }
    let now = state.clock.rfc3339();
    let reasons: Vec<Value> = reasons
        .iter()
        .map(|(reason, message)| json!({ "reason": reason, "message": message }))
        .collect();
    // The envelope's digest and size, not its bytes: a refused body may be anything, and
    // storing it would let any runner token fill the database.
    let data = match pushed {
        Pushed::Proposal(p) => json!({
            "envelope": digest,
            "size": size,
            "head": p.head,
            "reasons": reasons,
        }),
        Pushed::Run { run, branch } => json!({
            "envelope": digest,
            "size": size,
            "run": run.id,
            "branch": branch,
            "commit": run.commit,
            "reasons": reasons,
        }),
    };
    tx.append_event(&event(
        EventKind::EvidenceRefused,
        &now,
        pushed.subject(),
        actor,
        data,
    )?)
    .await?;
    tx.commit().await?;
    Err(answer)
}

/// Re-derives `proposal`'s decision at its head with the head's accepted evidence, requiring
/// besides its plan the suites of the findings it fixes and `also` (the suites of findings
/// about to be linked to it): what [`rederive`] then records, when nothing changed the
/// proposal meanwhile (its head, its state, its evidence: the digests weighed are returned
/// beside the outcome to compare).
pub(crate) async fn redecide(
    state: &AppState,
    proposal: &Proposal,
    also: &[String],
) -> Result<(Outcome, Vec<String>), ApiError> {
    let path: PathBuf = state.repos.get(&proposal.repo).cloned().ok_or_else(|| {
        ApiError::Conflict(format!(
            "repository {:?} of this proposal is no longer configured on this server",
            proposal.repo
        ))
    })?;
    let author: Principal = proposal
        .author
        .parse()
        .map_err(|e| ApiError::Internal(format!("proposal {}: author: {e}", proposal.id)))?;
    let stored = for_head(&state.store, &proposal.id, &proposal.head).await?;
    let weighed: Vec<String> = stored.iter().map(|(row, _)| row.digest.clone()).collect();
    let envelopes = named(stored);
    let (base, head) = (proposal.base.clone(), proposal.head.clone());
    let dispatched_by = proposal.dispatched_by.clone();
    let pipeline = std::sync::Arc::clone(&state.pipeline);
    let mut outcome = state
        .pipeline
        .blocking_for(&path.clone(), move || {
            pipeline.decide_with_evidence(
                &path,
                &base,
                &head,
                &author,
                dispatched_by.as_deref(),
                &envelopes,
            )
        })
        .await??;
    let mut suites = crate::findings::fix_suites(state, &proposal.id).await?;
    for suite in also {
        if !suites.contains(suite) {
            suites.push(suite.clone());
        }
    }
    outcome.require_suites(&suites)?;
    Ok((outcome, weighed))
}

/// Records the decision re-derived with the head's evidence (`decided`, and `authorized`
/// when it authorizes) and points the proposal at it, in the caller's transaction. What the
/// new decision does to the proposal (the verdicts already given count again under it, or
/// not) is the lifecycle's.
pub(crate) async fn rederive(
    state: &AppState,
    tx: &mut Tx,
    loaded: &Loaded,
    outcome: &Outcome,
    now: &str,
) -> Result<(), ApiError> {
    let proposal = &loaded.proposal;
    let id = &proposal.id;
    let (record, decided) = outcome
        .record(id, &proposal.repo, now, state.log_signer.as_deref())
        .map_err(|e| ApiError::Internal(format!("recording the re-derived decision: {e}")))?;
    let decided_record = typed(&decided)?;
    let t = transition(
        &loaded.lifecycle(),
        Event::Redecided {
            record: &decided_record,
        },
    )
    .map_err(refused)?;
    let decision_id = persist::decision(
        state,
        tx,
        proposal,
        &proposal.head,
        &record,
        &decided,
        &decided_record,
        &t,
        false,
        now,
    )
    .await?;
    tx.set_proposal_decision(id, &decision_id, decided_record.tier, t.next)
        .await?;
    if t.next != proposal.state {
        // What entering the new state announces (owners told, approvers asked), queued in
        // this transaction like every other state change.
        let updated = Proposal {
            state: t.next,
            tier: decided_record.tier,
            decision: decision_id,
            ..proposal.clone()
        };
        crate::webhooks::notify(state, tx, &updated, t.next.as_str(), &decided).await?;
    }
    // The tier, the evidence counted and the state a forge shows for the head.
    crate::integrations::github::changed(state, tx, id, &proposal.head).await?;
    Ok(())
}

/// The validation plan of the current head: which suites runners should run, which have
/// accepted evidence. Any valid token may read it.
#[utoipa::path(
    get, path = "/v1/proposals/{id}/plan",
    params(("id" = String, Path, description = "Proposal id")),
    responses((status = 200, body = PlanView), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
async fn plan(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PlanView>, ApiError> {
    let proposal = proposal(&state, &id).await?;
    let decision = state
        .store
        .decision(&proposal.decision)
        .await?
        .ok_or_else(|| {
            ApiError::Internal(format!(
                "proposal {id} has no decision {}",
                proposal.decision
            ))
        })?;
    let record = crate::proposals::view::decided_record(&decision)?;
    let evidence = for_head(&state.store, &id, &proposal.head).await?;
    // Recorded only when the base defines suites (`pipeline::Fleet`): absent, none is runnable.
    let runnable: Vec<&str> = decision.record["runnable_suites"]
        .as_array()
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut view = PlanView {
        proposal: proposal.id.clone(),
        head: proposal.head.clone(),
        state: proposal.state.as_str().to_owned(),
        suites: Vec::new(),
        satisfied: Vec::new(),
        missing: Vec::new(),
        unattestable: Vec::new(),
        fixes: crate::findings::fix_statuses(&state, &id, &evidence).await?,
    };
    for suite in record.validation_plan {
        let status = if !record.required_suites.contains(&suite) {
            view.unattestable.push(suite.clone());
            "unattestable"
        } else if record.missing_suites.contains(&suite) {
            view.missing.push(suite.clone());
            "missing"
        } else {
            view.satisfied.push(suite.clone());
            "satisfied"
        };
        view.suites.push(PlannedSuite {
            evidence: evidence
                .iter()
                .filter(|(row, _)| row.suite == suite)
                .map(|(row, _)| EvidenceView {
                    digest: row.digest.clone(),
                    binds_to: row.binding.clone(),
                    runner: row.runner.clone(),
                    predicate_type: row.predicate_type.clone(),
                    log_index: row.log_index,
                })
                .collect(),
            runnable: runnable.contains(&suite.as_str()),
            suite,
            status: status.to_owned(),
        });
    }
    Ok(Json(view))
}
