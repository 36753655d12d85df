//! The `countersign` check on GitHub: what a followed head shows ([`shown`]: its tier, its
//! state and a link to the proposal) and the worker that reports it.
//!
//! A proposal change bumps its head's row in the store's check outbox in the transaction of
//! the change (`changed`); the worker claims rows whose report is behind (under a lease, as
//! the webhook worker does), reads the proposal as it is *then*, and creates or updates the
//! check run (or sets the commit status). A change during a report leaves the row behind, so
//! the last report is always of the last state. Failures are retried with the webhook
//! worker's capped backoff, at most `max_attempts` times per change.
//!
//! Only an authorized (or merged) head is `success`: waiting is `in_progress` (a required
//! check still running blocks the merge button; `neutral` would not), a rejection is
//! `failure`, a closed proposal and a head the pull request moved away from are `cancelled`.
//! A completed run is never reopened: going back to waiting (an authorization lapsed by new
//! evidence) creates a new run, which GitHub then takes as the check's result.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use countersign_lifecycle::ProposalState;
use countersign_store::{CheckReport, GithubCheck, Store};
use serde_json::json;
use tokio::sync::watch;

use super::Github;
use super::config::Report;
use crate::proposals::ProposalView;
use crate::{AppState, Clock};

/// The name of the check run, and the context of the commit status.
pub const CHECK_NAME: &str = "countersign";

/// How often deliveries past their retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// What a head shows on GitHub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shown {
    /// `in_progress` or `completed`.
    pub status: &'static str,
    /// For a completed run: `success`, `failure` or `cancelled`.
    pub conclusion: Option<&'static str>,
    /// The commit status state: `pending`, `success`, `failure` or `error`.
    pub state: &'static str,
    pub title: String,
    pub summary: String,
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// What `head` of the proposal `view` shows.
pub(crate) fn shown(view: &ProposalView, head: &str) -> Shown {
    let tier = view.tier.as_str();
    let missing: Vec<String> = view.decision["missing_suites"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut summary = format!(
        "**Tier:** `{tier}` · **State:** `{}` · **Proposal:** `{}`\n\n",
        view.state.as_str(),
        view.id
    );
    if head != view.head {
        summary.push_str(&format!(
            "The pull request moved on: the proposal judges `{}` now, not `{}`.\n",
            view.head, head
        ));
        return Shown {
            status: "completed",
            conclusion: Some("cancelled"),
            state: "failure",
            title: format!("superseded: the head moved to {}", short(&view.head)),
            summary,
        };
    }
    summary.push_str(&format!(
        "**Approvals counted on `{}`:** {} of {}\n",
        short(head),
        view.approvals_counted,
        view.approvals_required
    ));
    if !view.rejected_by.is_empty() {
        summary.push_str(&format!(
            "**Rejected by:** {}\n",
            view.rejected_by.join(", ")
        ));
    }
    if !view.approver_pool.eligible.is_empty() && !view.state.is_final() {
        summary.push_str(&format!(
            "**Eligible approvers:** {}\n",
            view.approver_pool.eligible.join(", ")
        ));
    }
    if !missing.is_empty() {
        summary.push_str(&format!(
            "**Waiting for evidence of:** {}\n",
            missing.join(", ")
        ));
    }
    let (status, conclusion, state, title) = match view.state {
        ProposalState::Authorized => (
            "completed",
            Some("success"),
            "success",
            format!("authorized ({tier})"),
        ),
        ProposalState::Merged => (
            "completed",
            Some("success"),
            "success",
            format!("merged ({tier})"),
        ),
        ProposalState::Rejected => (
            "completed",
            Some("failure"),
            "failure",
            format!("rejected by {} ({tier})", view.rejected_by.join(", ")),
        ),
        ProposalState::Closed => ("completed", Some("cancelled"), "error", "closed".to_owned()),
        ProposalState::Superseded => (
            "completed",
            Some("cancelled"),
            "error",
            format!(
                "superseded by {}",
                view.superseded_by.as_deref().unwrap_or("another proposal")
            ),
        ),
        ProposalState::AwaitingEvidence => (
            "in_progress",
            None,
            "pending",
            format!("awaiting evidence: {} ({tier})", missing.join(", ")),
        ),
        ProposalState::AwaitingApproval => (
            "in_progress",
            None,
            "pending",
            format!(
                "awaiting approval: {} of {} ({tier})",
                view.approvals_counted, view.approvals_required
            ),
        ),
        ProposalState::Open => ("in_progress", None, "pending", format!("open ({tier})")),
    };
    Shown {
        status,
        conclusion,
        state,
        title,
        summary,
    }
}

/// The link a report carries: the proposal on the server's console.
fn details_url(github: &Github, proposal: &str) -> Option<String> {
    github.config.public_url.as_ref().map(|url| {
        format!(
            "{}/proposals/{proposal}",
            url.as_str().trim_end_matches('/')
        )
    })
}

/// GitHub's commit status description holds at most 140 characters.
fn description(title: &str) -> String {
    let mut text: String = title.chars().take(140).collect();
    if text.len() < title.len() {
        text.pop();
        text.push('…');
    }
    text
}

/// One report of a claimed check: the proposal as it is now, to GitHub.
async fn report(
    github: &Github,
    store: &Store,
    clock: &Clock,
    claimed: &GithubCheck,
) -> CheckReport {
    let failed = |check_run: Option<u64>, error: String| CheckReport::Failed {
        check_run,
        after_ms: u64::try_from(
            github
                .config
                .delivery
                .retry_delay(&claimed.id, claimed.attempt)
                .as_millis(),
        )
        .unwrap_or(u64::MAX),
        error,
    };
    let view = match crate::proposals::load_view_of(store, &claimed.proposal).await {
        Ok(view) => view,
        Err(e) => return failed(None, format!("reading the proposal: {e}")),
    };
    let shown = shown(&view, &claimed.head);
    let now = clock.now();
    let api = &github.api;
    let link = details_url(github, &view.id);
    match github.config.report {
        Report::Status => {
            let mut body = json!({
                "state": shown.state,
                "description": description(&shown.title),
                "context": CHECK_NAME,
            });
            if let Some(link) = &link {
                body["target_url"] = json!(link);
            }
            match api
                .create_status(
                    &claimed.repository,
                    &claimed.head,
                    &body,
                    claimed.installation,
                    now,
                )
                .await
            {
                Ok(()) => CheckReport::Reported {
                    check_run: None,
                    status: shown.status.to_owned(),
                },
                Err(e) => failed(None, e.to_string()),
            }
        }
        Report::CheckRun => {
            let mut body = json!({
                "name": CHECK_NAME,
                "external_id": view.id,
                "status": shown.status,
                "output": { "title": shown.title, "summary": shown.summary },
            });
            if let Some(conclusion) = shown.conclusion {
                body["conclusion"] = json!(conclusion);
                body["completed_at"] = json!(humantime::format_rfc3339_seconds(now).to_string());
            }
            if let Some(link) = &link {
                body["details_url"] = json!(link);
            }
            // A run still in progress is updated; a completed one only to another
            // conclusion. Back to waiting is a new run: GitHub takes the newest.
            let update = claimed.check_run.filter(|_| {
                claimed.check_status.as_deref() == Some("in_progress")
                    || shown.status == "completed"
            });
            if let Some(id) = update {
                match api
                    .update_check_run(&claimed.repository, id, &body, claimed.installation, now)
                    .await
                {
                    Ok(()) => {
                        return CheckReport::Reported {
                            check_run: Some(id),
                            status: shown.status.to_owned(),
                        };
                    }
                    // The run is gone (deleted with its suite): make another.
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return failed(None, e.to_string()),
                }
            }
            body["head_sha"] = json!(claimed.head);
            match api
                .create_check_run(&claimed.repository, &body, claimed.installation, now)
                .await
            {
                Ok(id) => CheckReport::Reported {
                    check_run: Some(id),
                    status: shown.status.to_owned(),
                },
                Err(e) => failed(None, e.to_string()),
            }
        }
    }
}

/// Shows on `head` of pull requests of `repository` that countersign did not judge it: a
/// completed `countersign` check run concluding `failure` (or a `failure` commit status)
/// titled `not judged` with `why`. A branch protection requiring the check then blocks the
/// merge with the reason shown, instead of waiting for a check that never comes (and a
/// `neutral` or `skipped` conclusion would count as passing). Off the delivery's path and
/// best effort: retried with the webhooks' backoff up to `max_attempts` times, then logged;
/// a redelivery reports again. There is no proposal to link to.
pub(crate) fn report_refusal(
    github: &Arc<Github>,
    clock: &Clock,
    repository: &str,
    head: &str,
    installation: Option<u64>,
    why: &str,
) {
    let title = "not judged by countersign".to_owned();
    let summary = format!(
        "countersign did not judge commit {}: {why}\n\nNothing authorizes this head: fix \
         the cause and push again (or redeliver the webhook).",
        short(head)
    );
    let (github, clock, repository, head) = (
        Arc::clone(github),
        clock.clone(),
        repository.to_owned(),
        head.to_owned(),
    );
    let why = why.to_owned();
    tokio::spawn(async move {
        let settings = &github.config.delivery;
        let key = format!("refused:{repository}@{head}");
        for attempt in 1..=settings.max_attempts.max(1) {
            let now = clock.now();
            let result = match github.config.report {
                Report::Status => {
                    let body = json!({
                        "state": "failure",
                        "description": description(&format!("{title}: {why}")),
                        "context": CHECK_NAME,
                    });
                    github
                        .api
                        .create_status(&repository, &head, &body, installation, now)
                        .await
                }
                Report::CheckRun => {
                    let body = json!({
                        "name": CHECK_NAME,
                        "head_sha": head,
                        "status": "completed",
                        "conclusion": "failure",
                        "completed_at": humantime::format_rfc3339_seconds(now).to_string(),
                        "output": { "title": title, "summary": summary },
                    });
                    github
                        .api
                        .create_check_run(&repository, &body, installation, now)
                        .await
                        .map(|_| ())
                }
            };
            match result {
                Ok(()) => {
                    tracing::info!(%repository, %head, "github: refusal reported");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%repository, %head, attempt, %error, "github: reporting a refusal failed");
                    tokio::time::sleep(settings.retry_delay(&key, attempt)).await;
                }
            }
        }
    });
}

/// The reporting worker: claims checks whose report is behind, reports them (up to
/// `concurrency` at once), prunes old deliveries hourly, and stops when `stop` turns true or
/// its sender is dropped, after finishing the reports in flight.
async fn work(
    github: Arc<Github>,
    store: Store,
    clock: Clock,
    owner: String,
    mut stop: watch::Receiver<bool>,
) {
    let settings = github.config.delivery.clone();
    let lease = u64::try_from(settings.lease().as_millis()).unwrap_or(u64::MAX);
    let retention = u64::try_from(settings.retention.as_millis()).unwrap_or(u64::MAX);
    tracing::info!(%owner, "GitHub report worker started");
    let mut pruned_at: Option<SystemTime> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        let now = clock.now();
        if pruned_at.is_none_or(|at| !now.duration_since(at).is_ok_and(|d| d < PRUNE_EVERY)) {
            pruned_at = Some(now);
            match store.prune_github_deliveries(retention).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "github: pruned old deliveries"),
                Err(e) => tracing::warn!(error = %e, "github: pruning old deliveries"),
            }
        }
        match store
            .claim_github_checks(&owner, lease, settings.max_attempts, settings.concurrency)
            .await
        {
            Ok(claimed) if !claimed.is_empty() => {
                let mut reports = tokio::task::JoinSet::new();
                for check in claimed {
                    let (github, store, clock, owner) = (
                        Arc::clone(&github),
                        store.clone(),
                        clock.clone(),
                        owner.clone(),
                    );
                    reports.spawn(async move {
                        let outcome = report(&github, &store, &clock, &check).await;
                        match &outcome {
                            CheckReport::Reported { status, .. } => tracing::info!(
                                proposal = %check.proposal, head = %check.head, %status,
                                "github: check reported"
                            ),
                            CheckReport::Failed { error, after_ms, .. } => tracing::warn!(
                                proposal = %check.proposal, head = %check.head, attempt = check.attempt,
                                after_ms, %error, "github: check report failed; will retry"
                            ),
                        }
                        match store.settle_github_check(&check, &owner, &outcome).await {
                            Ok(true) => {}
                            Ok(false) => tracing::warn!(
                                proposal = %check.proposal,
                                "github: the lease ran out during the report; another worker owns the row"
                            ),
                            Err(e) => tracing::error!(
                                proposal = %check.proposal, error = %e,
                                "github: settling the report failed; it is retried when its lease expires"
                            ),
                        }
                    });
                }
                while reports.join_next().await.is_some() {}
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "github: claiming due checks"),
        }
        tokio::select! {
            _ = stop.changed() => break,
            () = tokio::time::sleep(settings.poll_interval) => {}
        }
    }
    tracing::info!(%owner, "GitHub report worker stopped");
}

/// Spawns the reporting worker when the integration can report (it has credentials).
pub(crate) fn spawn(
    state: &AppState,
    stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let github = state.github.clone()?;
    if !github.api.authenticated() {
        tracing::info!("github: no [app] or [token]: followed heads are not reported on GitHub");
        return None;
    }
    Some(tokio::spawn(work(
        github,
        state.store.clone(),
        state.clock.clone(),
        state.workers.next(),
        stop,
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{description, shown};
    use crate::proposals::ProposalView;

    fn view(state: &str) -> ProposalView {
        serde_json::from_value(serde_json::json!({
            "id": "p-1", "repo": "shop", "base": "b", "head": "h", "title": "t",
            "description": "", "author": "agent:fixbot", "state": state,
            "tier": "change_control", "approvals_required": 2, "approvals_counted": 1,
            "rejected_by": if state == "rejected" { vec!["human:dave"] } else { vec![] },
            "eligible_approvers": ["human:alice"], "decision": { "missing_suites": ["unit"] },
            "approvals": [], "created_at": "2026-01-05T09:00:00Z",
            "approver_pool": { "eligible": ["human:alice"], "eligible_count": 1,
                               "excluded_as_authors": [], "meetable": true },
        }))
        .unwrap()
    }

    /// Only an authorized or merged head passes; waiting is in progress (a `neutral`
    /// conclusion would pass a required check); a head left behind is cancelled.
    #[test]
    fn each_state_shows_as_its_check() {
        let cases = [
            (
                "authorized",
                "h",
                (
                    "completed",
                    Some("success"),
                    "success",
                    "authorized (change_control)",
                ),
            ),
            (
                "merged",
                "h",
                (
                    "completed",
                    Some("success"),
                    "success",
                    "merged (change_control)",
                ),
            ),
            (
                "rejected",
                "h",
                (
                    "completed",
                    Some("failure"),
                    "failure",
                    "rejected by human:dave (change_control)",
                ),
            ),
            (
                "closed",
                "h",
                ("completed", Some("cancelled"), "error", "closed"),
            ),
            (
                "superseded",
                "h",
                (
                    "completed",
                    Some("cancelled"),
                    "error",
                    "superseded by another proposal",
                ),
            ),
            (
                "awaiting_approval",
                "h",
                (
                    "in_progress",
                    None,
                    "pending",
                    "awaiting approval: 1 of 2 (change_control)",
                ),
            ),
            (
                "awaiting_evidence",
                "h",
                (
                    "in_progress",
                    None,
                    "pending",
                    "awaiting evidence: unit (change_control)",
                ),
            ),
            (
                "authorized",
                "old",
                (
                    "completed",
                    Some("cancelled"),
                    "failure",
                    "superseded: the head moved to h",
                ),
            ),
        ];
        for (state, head, (status, conclusion, commit_state, title)) in cases {
            let shown = shown(&view(state), head);
            assert_eq!(
                (
                    shown.status,
                    shown.conclusion,
                    shown.state,
                    shown.title.as_str()
                ),
                (status, conclusion, commit_state, title),
                "{state} at {head}"
            );
            assert_ne!(shown.conclusion, Some("neutral"));
        }
    }

    #[test]
    fn descriptions_fit_githubs_limit() {
        assert_eq!(description("short"), "short");
        let long = "é".repeat(200);
        let cut = description(&long);
        assert_eq!(cut.chars().count(), 140);
        assert!(cut.ends_with('…'));
    }
}
