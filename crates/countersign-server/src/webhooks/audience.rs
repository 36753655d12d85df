//! Who is told of what: the [`NotificationKind`] a proposal entering a state announces, the
//! targets that want it (by kind and by the owning teams of the change), and queuing it in
//! the outbox ([`notify`]) inside the transaction of the state change, with the `notified`
//! audit event naming the targets. A notification exists exactly when its change committed.
//!
//! Delivering is the worker's; this module reads no clock but the state's and sends nothing.

use countersign_audit::{Event, EventKind};
use countersign_store::{OutboxItem, Proposal, Tx};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::config::{NotificationKind, Target};
use crate::AppState;
use crate::error::ApiError;

/// What entering `state` at `tier` announces, if anything. A `notify_and_proceed`
/// authorization is announced as the alert that tier promises, not as a plain authorization.
fn announced(state: &str, tier: &str) -> Option<NotificationKind> {
    match state {
        "authorized" if tier == "notify_and_proceed" => Some(NotificationKind::NotifyAndProceed),
        "authorized" => Some(NotificationKind::Authorized),
        "awaiting_approval" => Some(NotificationKind::AwaitingApproval),
        "rejected" => Some(NotificationKind::Rejected),
        _ => None,
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether [`notify`] would announce anything (and so write in the transaction).
pub(crate) fn announces(
    state: &AppState,
    proposal: &Proposal,
    new_state: &str,
    record: &Value,
) -> bool {
    audience(state, proposal, new_state, record).is_some()
}

/// What a proposal entering `new_state` announces, the owners it concerns and the targets
/// that want it; `None` when nobody is told.
fn audience<'s>(
    state: &'s AppState,
    proposal: &Proposal,
    new_state: &str,
    record: &Value,
) -> Option<(NotificationKind, Vec<String>, Vec<&'s Target>)> {
    let config = state.webhooks.as_ref()?;
    let kind = announced(new_state, proposal.tier.as_str())?;
    let owners = strings(&record["owners"]);
    let targets: Vec<&Target> = config
        .targets
        .iter()
        .filter(|t| t.wants(kind, &owners))
        .collect();
    (!targets.is_empty()).then_some((kind, owners, targets))
}

/// Queues what `proposal` entering `new_state` announces, for every target that wants it,
/// in `tx`: the transaction that changes the state and appends its event. Appends a
/// `notified` event naming the targets (the notification id derives from its log index).
/// Does nothing without webhooks, for a state that announces nothing, or when no target
/// wants it. `record` is the proposal's decision (the `decided` event's data).
pub(crate) async fn notify(
    state: &AppState,
    tx: &mut Tx,
    proposal: &Proposal,
    new_state: &str,
    record: &Value,
) -> Result<(), ApiError> {
    let Some((kind, owners, targets)) = audience(state, proposal, new_state, record) else {
        return Ok(());
    };
    let approvers = if kind == NotificationKind::AwaitingApproval {
        strings(&record["eligible_approvers"])
    } else {
        Vec::new()
    };
    let at = state.clock.rfc3339();
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let event = Event::new(
        EventKind::Notified,
        &at,
        &proposal.id,
        countersign_decide::record::SYSTEM_ACTOR,
        json!({ "type": kind, "targets": names, "owners": owners, "approvers": approvers }),
    )
    .map_err(|e| ApiError::Internal(format!("event: {e}")))?;
    let log_index = tx.append_event(&event).await?;
    let digest = Sha256::digest(format!("{}\n{kind}\n{log_index}", proposal.id).as_bytes());
    let id = format!("ntf-{}", hex::encode(&digest[..16]));
    let payload = json!({
        "id": id,
        "type": kind,
        "created_at": at,
        "log_index": log_index,
        "proposal": {
            "id": proposal.id,
            "repo": proposal.repo,
            "base": proposal.base,
            "head": proposal.head,
            "title": proposal.title,
            "author": proposal.author,
            "state": new_state,
            "tier": proposal.tier.as_str(),
        },
        "approvals_required": record["approvals_required"],
        "owners": owners,
        "touched": strings(&record["touched"]),
        "approvers": approvers,
    });
    let body = serde_json::to_string(&payload).map_err(|e| ApiError::Internal(e.to_string()))?;
    for target in targets {
        tx.enqueue_notification(&OutboxItem {
            id: format!("{id}/{}", target.name),
            notification: id.clone(),
            target: target.name.clone(),
            kind: kind.as_str().to_owned(),
            subject: proposal.id.clone(),
            payload: body.clone(),
        })
        .await?;
    }
    Ok(())
}

/// Queues the notification that finding `finding` (a JSON view) was reopened, for every
/// target that wants `finding_reopened` and (when it names teams) owns the finding's
/// component, in `tx`, with a `notified` event about the finding. Does nothing without
/// webhooks or when no target wants it.
pub(crate) async fn notify_finding(
    state: &AppState,
    tx: &mut Tx,
    finding_id: &str,
    owners: &[String],
    finding: Value,
) -> Result<(), ApiError> {
    let Some(config) = state.webhooks.as_ref() else {
        return Ok(());
    };
    let kind = NotificationKind::FindingReopened;
    let targets: Vec<&Target> = config
        .targets
        .iter()
        .filter(|t| t.wants(kind, owners))
        .collect();
    if targets.is_empty() {
        return Ok(());
    }
    let at = state.clock.rfc3339();
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let event = Event::new(
        EventKind::Notified,
        &at,
        finding_id,
        countersign_decide::record::SYSTEM_ACTOR,
        json!({ "type": kind, "targets": names, "owners": owners }),
    )
    .map_err(|e| ApiError::Internal(format!("event: {e}")))?;
    let log_index = tx.append_event(&event).await?;
    let digest = Sha256::digest(format!("{finding_id}\n{kind}\n{log_index}").as_bytes());
    let id = format!("ntf-{}", hex::encode(&digest[..16]));
    let payload = json!({
        "id": id,
        "type": kind,
        "created_at": at,
        "log_index": log_index,
        "finding": finding,
        "owners": owners,
    });
    let body = serde_json::to_string(&payload).map_err(|e| ApiError::Internal(e.to_string()))?;
    for target in targets {
        tx.enqueue_notification(&OutboxItem {
            id: format!("{id}/{}", target.name),
            notification: id.clone(),
            target: target.name.clone(),
            kind: kind.as_str().to_owned(),
            subject: finding_id.to_owned(),
            payload: body.clone(),
        })
        .await?;
    }
    Ok(())
}
