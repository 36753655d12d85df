//! Opening a proposal: everything but the writes, done off the async workers (decide the
//! change, build its record, encode its log leaves and the response), so `create`'s
//! transaction only writes.

use std::sync::atomic::{AtomicU64, Ordering};

use countersign_audit::EventKind;
use countersign_lifecycle::ProposalState;
use countersign_policy::Principal;
use countersign_store::{Decision, Leaf, Proposal};
use sha2::{Digest, Sha256};

use super::NewProposal;
use super::persist::typed;
use super::view::view;
use crate::error::ApiError;
use crate::pipeline;

/// A fresh proposal id: `p-`, the creation time in Unix milliseconds (12 hex digits), then
/// 12 hex digits of a hash of the time, a process counter and the change. Unique without
/// randomness (the primary key refuses the unreachable collision). Ids sort by creation, so
/// a new proposal's rows land at the end of every index keyed by it instead of on a random
/// page each: fewer pages written per commit, and per checkpoint.
pub(super) fn proposal_id(repo: &str, head: &str, author: &str, at_nanos: u128) -> String {
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
pub(crate) struct Prepared {
    pub proposal: Proposal,
    /// Its `log_index` is set once the `decided` event is appended.
    pub decision: Decision,
    pub blobs: Vec<countersign_audit::bundle::Blob>,
    pub leaves: Vec<Leaf>,
    /// The position of the `decided` event in `leaves`.
    pub decided: usize,
    /// The `201` body.
    pub response: String,
    /// The work the head's plan queues for the fleet.
    pub work: Vec<crate::pipeline::WorkSpec>,
}

/// Decides `body`'s change for `author` and prepares its proposal, audit entries and
/// response. Blocking (git, Cedar, encoding).
// Each argument is one input of the opening (who, with what key, under which clock, fixing
// which findings); a struct of them would only be built here to be taken apart.
#[allow(clippy::too_many_arguments)]
pub(crate) fn prepare(
    pipeline: &pipeline::Pipeline,
    path: &std::path::Path,
    body: NewProposal,
    author: &Principal,
    dispatched_by: Option<&Principal>,
    clock: &crate::Clock,
    signer: Option<std::sync::Arc<countersign_audit::Signer>>,
    fix_suites: &[String],
) -> Result<Prepared, ApiError> {
    let dispatched_by = dispatched_by.map(ToString::to_string);
    let mut outcome = pipeline.decide(
        path,
        &body.base,
        &body.head,
        author,
        dispatched_by.as_deref(),
    )?;
    outcome.require_suites(fix_suites)?;
    // The base must already be protected history, or the proposer would choose the rules
    // and hide commits from `main..head` (checked on the resolved id, after the decision
    // has said what an unknown revision is).
    pipeline.check_base(path, &outcome.base)?;
    let author = author.to_string();
    let now = clock.rfc3339();
    let nanos = clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let id = proposal_id(&body.repo, &outcome.head, &author, nanos);
    let (record, decided_json) = outcome.record(&id, &body.repo, &now, signer.as_deref())?;
    let decided_record = typed(&decided_json)?;
    // Awaiting evidence while a required suite has none, whatever the tier.
    let state = countersign_lifecycle::opened(&decided_record);
    let proposal = Proposal {
        id: id.clone(),
        repo: body.repo,
        base: outcome.base.clone(),
        head: outcome.head.clone(),
        title: body.title,
        description: body.description,
        author,
        state,
        tier: outcome.tier,
        decision: format!("{id}@{}", outcome.head),
        created_at: now,
        authors: countersign_lifecycle::authors(
            &outcome.change.authors,
            outcome.dispatched_by.as_deref(),
        ),
        diff_digest: outcome.change.diff_digest.clone(),
        superseded_by: None,
        closed_reason: None,
        dispatched_by: outcome.dispatched_by.clone(),
    };
    // The events of `countersign_decide::record`, in log order: proposed, decided and, for
    // an automated decision, authorized. Encoded here: appenders are serialized, so only the
    // writes themselves should happen inside the transaction.
    let mut leaves = Vec::with_capacity(record.events.len());
    let mut decided = None;
    for event in &record.events {
        if event.kind == EventKind::Authorized && state != ProposalState::Authorized {
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
    let decision = Decision {
        id: proposal.decision.clone(),
        subject: id,
        tier: proposal.tier,
        record: decided_json,
        log_index: 0,
    };
    let view = view(&proposal, &decision, &decided_record, Vec::new());
    let response = serde_json::to_string(&view).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Prepared {
        proposal,
        decision,
        blobs: record.blobs,
        leaves,
        decided,
        response,
        work: outcome.fleet.work,
    })
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
