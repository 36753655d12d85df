//! Writing what the lifecycle decided: each function takes a [`Transition`] (and the
//! decision it was computed under) and writes its log events, rows and notifications in the
//! caller's transaction, so the state change and the events recording it commit together.
//! Nothing here decides anything: the rules are countersign-lifecycle's.

use countersign_audit::{Event, EventKind};
use countersign_decide::record::Record;
use countersign_lifecycle::{
    Approval, DecidedRecord, ProposalState, Refusal, RefusalKind, Transition, Verdict,
    VerdictChange,
};
use countersign_store::{Decision, Proposal, Tx};
use serde_json::{Value, json};

use super::NewApproval;
use super::view::Loaded;
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// The actor of events the server itself causes: the same as in a CLI record.
pub use countersign_decide::record::SYSTEM_ACTOR;

/// How a lifecycle refusal is answered.
pub(crate) fn refused(refusal: Refusal) -> ApiError {
    let message = refusal.to_string();
    match refusal.kind() {
        RefusalKind::Forbidden => ApiError::Forbidden(message),
        RefusalKind::Conflict => ApiError::Conflict(message),
        RefusalKind::Invalid => ApiError::Invalid(message),
    }
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

/// The decided record of a fresh decision (the `decided` event's data), typed.
pub(crate) fn typed(decided: &Value) -> Result<DecidedRecord, ApiError> {
    DecidedRecord::from_json(decided).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Appends the `authorized` event of an authorization by people (enough approvals of the
/// proposal's head), in `tx`. With a log key, the signed SLSA verification summary
/// deploy-time gates check is stored as a blob in the same transaction and named by digest in
/// the event, as for an automated decision.
pub(crate) async fn authorize_by_people(
    state: &AppState,
    tx: &mut Tx,
    proposal: &Proposal,
    head: &str,
    record: &DecidedRecord,
    now: &str,
) -> Result<(), ApiError> {
    let tier = record.tier.as_str();
    let mut data = json!({ "commit": head, "tier": tier });
    if let Some(log_key) = &state.log_signer {
        // The repository as the proposal recorded it (its base's `[repository] name`, or the
        // server's name for it): the statement names what the record names.
        let recorded = tx
            .entries_about(&proposal.id)
            .await?
            .iter()
            .filter_map(|entry| entry.event().ok())
            .find(|event| event.kind == EventKind::Proposed)
            .and_then(|event| event.data["repository"].as_str().map(str::to_owned));
        let vsa = countersign_decide::record::verification_summary(
            recorded.as_deref().unwrap_or(&proposal.repo),
            head,
            tier,
            &record.policy_version,
            now,
            log_key,
        )
        .map_err(|e| ApiError::Internal(format!("verification summary: {}", e.chain())))?;
        data["verification_summary"] = json!(tx.put_blob(&vsa).await?);
    }
    tx.append_event(&event(
        EventKind::Authorized,
        now,
        &proposal.id,
        SYSTEM_ACTOR,
        data,
    )?)
    .await?;
    Ok(())
}

/// Writes a verdict's transition: the `approved` or `rejected` event (naming the verdict it
/// supersedes), the verdict row (ending the superseded one), then the state it settles.
pub(crate) async fn verdict(
    state: &AppState,
    tx: &mut Tx,
    loaded: &Loaded,
    caller: &Caller,
    given: &NewApproval,
    t: &Transition,
    now: &str,
) -> Result<(), ApiError> {
    let VerdictChange::Record { supersedes } = &t.verdict else {
        return Ok(());
    };
    let (verdict, comment) = (given.verdict, given.comment.as_str());
    let proposal = &loaded.proposal;
    let approver = caller.principal.to_string();
    let kind = match verdict {
        Verdict::Approve => EventKind::Approved,
        Verdict::Reject => EventKind::Rejected,
    };
    let mut data = json!({ "head": proposal.head, "comment": comment });
    if let Some(person) = &caller.identity {
        // Who vouched for the person: the identity provider's issuer and subject, beside
        // the principal the catalog maps them to.
        data["identity"] = json!({ "issuer": person.issuer, "subject": person.subject });
    }
    if let Some(old) = supersedes {
        // The person's earlier verdict on this head ends here; both stay in the log.
        data["supersedes"] = json!({ "verdict": old.verdict.as_str(), "log_index": old.log_index });
    }
    let index = tx
        .append_event(&event(kind, now, &proposal.id, &approver, data)?)
        .await?;
    if supersedes.is_some() {
        tx.supersede_approval(&proposal.id, &proposal.head, &approver, index)
            .await?;
    }
    let row = Approval {
        proposal: proposal.id.clone(),
        head: proposal.head.clone(),
        approver,
        verdict,
        comment: comment.to_owned(),
        log_index: index,
        lapsed_by: None,
        carried_from: None,
    };
    if !tx.put_approval(&row).await? {
        // Unreachable while the proposal row is held; kept so a double count cannot happen.
        return Err(ApiError::Conflict(
            "this approver already gave a verdict on this head".into(),
        ));
    }
    if t.next != proposal.state {
        tx.set_proposal_state(&proposal.id, t.next).await?;
    }
    if t.authorized_by_people {
        authorize_by_people(state, tx, proposal, &proposal.head, &loaded.record, now).await?;
    }
    if t.next != proposal.state {
        let updated = Proposal {
            state: t.next,
            ..proposal.clone()
        };
        crate::webhooks::notify(
            state,
            tx,
            &updated,
            t.next.as_str(),
            &loaded.decision.record,
        )
        .await?;
    }
    Ok(())
}

/// Persists a withdrawal `t` (a [`VerdictChange::Withdraw`]) caused by `actor`: the
/// `verdict_withdrawn` event (with `details`, where it was withdrawn), the verdict marked
/// lapsed by it, the state and what follows from it, as [`verdict`] does for a new one.
pub(crate) async fn withdrawal(
    state: &AppState,
    tx: &mut Tx,
    loaded: &Loaded,
    actor: &str,
    details: Value,
    t: &Transition,
    now: &str,
) -> Result<(), ApiError> {
    let VerdictChange::Withdraw { withdrawn } = &t.verdict else {
        return Ok(());
    };
    let proposal = &loaded.proposal;
    let mut data = json!({
        "head": proposal.head,
        "approver": withdrawn.approver,
        "withdraws": { "verdict": withdrawn.verdict.as_str(), "log_index": withdrawn.log_index },
        "state": t.next.as_str(),
    });
    if let (Value::Object(data), Value::Object(details)) = (&mut data, details) {
        data.extend(details);
    }
    let index = tx
        .append_event(&event(
            EventKind::VerdictWithdrawn,
            now,
            &proposal.id,
            actor,
            data,
        )?)
        .await?;
    tx.supersede_approval(&proposal.id, &proposal.head, &withdrawn.approver, index)
        .await?;
    if t.next != proposal.state {
        tx.set_proposal_state(&proposal.id, t.next).await?;
    }
    if t.authorized_by_people {
        authorize_by_people(state, tx, proposal, &proposal.head, &loaded.record, now).await?;
    }
    if t.next != proposal.state {
        let updated = Proposal {
            state: t.next,
            ..proposal.clone()
        };
        crate::webhooks::notify(
            state,
            tx,
            &updated,
            t.next.as_str(),
            &loaded.decision.record,
        )
        .await?;
    }
    Ok(())
}

/// Appends a decision's record (its `proposed` event when `with_proposed`, its `decided`
/// event, and its own `authorized` event when the transition authorizes an automated
/// decision), the people's authorization when the transition completes one, and stores the
/// decision. Returns the stored decision's id.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn decision(
    state: &AppState,
    tx: &mut Tx,
    proposal: &Proposal,
    head: &str,
    record: &Record,
    decided: &Value,
    typed: &DecidedRecord,
    t: &Transition,
    with_proposed: bool,
    now: &str,
) -> Result<String, ApiError> {
    for blob in &record.blobs {
        tx.put_hashed_blob(blob).await?;
    }
    let mut decided_index = None;
    for event in &record.events {
        match event.kind {
            EventKind::Proposed if with_proposed => {
                tx.append_event(event).await?;
            }
            EventKind::Decided => decided_index = Some(tx.append_event(event).await?),
            // An automated decision's own authorization, once nothing holds it back.
            EventKind::Authorized if t.next == ProposalState::Authorized => {
                tx.append_event(event).await?;
            }
            _ => {}
        }
    }
    let decided_index = decided_index
        .ok_or_else(|| ApiError::Internal("the record has no `decided` event".into()))?;
    if t.authorized_by_people {
        authorize_by_people(state, tx, proposal, head, typed, now).await?;
    }
    let id = format!("{}@{head}+{decided_index}", proposal.id);
    tx.put_decision(&Decision {
        id: id.clone(),
        subject: proposal.id.clone(),
        tier: typed.tier,
        record: decided.clone(),
        log_index: decided_index,
    })
    .await?;
    Ok(id)
}

/// The verdicts of a head move as its event lists them.
pub(crate) fn verdicts(list: &[Approval]) -> Vec<Value> {
    list.iter()
        .map(|a| json!({ "approver": a.approver, "head": a.head, "verdict": a.verdict.as_str() }))
        .collect()
}
