//! Pushes to protected branches: the server's branch follows GitHub's (fast-forward only,
//! so it never rewrites the protected history proposals are based on), and the fleet gets
//! the validation plan of the pushed change (`before..after`, judged by the rules at
//! `before`) as post-merge runs of the new tip.
//!
//! A push that lands a merged proposal's commit also queues the post-merge runs that verify
//! the findings it fixes (when the merged pull request, announced first, could not: its
//! merge commit was not on the branch yet); `findings::queue_verification` queues them once
//! whichever announcement comes first. The runs' evidence comes back through
//! `POST /v1/runs/{id}/evidence` like any branch run's: failures open findings, and a
//! verification run settles its proposal's findings (`findings`).
//!
//! A push the server will not follow is recorded with its reason and logged at `warn`: a
//! deleted protected branch, or one GitHub moved in a way that is no fast-forward (a force
//! push nobody proposed).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use countersign_policy::Principal;

use super::payload::{self, PushEvent};
use super::pulls::{Target, has_commit, is_protected};
use super::webhook::{self, Delivery};
use super::{GITHUB_ACTOR, fetch};
use crate::AppState;
use crate::error::ApiError;

/// `X-GitHub-Event: push`.
pub(crate) async fn push(
    state: &AppState,
    target: &Target<'_>,
    delivery: &Delivery,
    body: &[u8],
) -> Result<Response, ApiError> {
    let event: PushEvent = payload::parse("push", body)?;
    let Some(branch) = event.reference.strip_prefix("refs/heads/") else {
        return webhook::ignore(
            state,
            delivery,
            format!("{} is not a branch", event.reference),
        )
        .await;
    };
    let (path, name) = (target.path.to_owned(), branch.to_owned());
    let protected = state
        .pipeline
        .blocking(move || is_protected(&path, &name))
        .await??;
    if !protected {
        return webhook::ignore(state, delivery, format!("branch {branch} is not protected")).await;
    }
    let pusher = event.pusher.as_ref().map_or("", |p| p.name.as_str());
    if event.deleted {
        tracing::warn!(repository = %target.followed.github, %branch, %pusher, "github: a protected branch was deleted on GitHub; the server keeps its own");
        let answer = delivery.answer("recorded").because(format!(
            "protected branch {branch} was deleted on GitHub; the server keeps its {branch}"
        ));
        return webhook::record(state, delivery, StatusCode::OK, &answer).await;
    }
    let after = payload::commit_id("after", &event.after)?;
    let before = payload::commit_id("before", &event.before)?;
    if let Some(url) = &target.followed.fetch_url {
        let token = target
            .github
            .api
            .token(delivery.installation, state.clock.now())
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "github: fetching without credentials");
                None
            });
        let lock = target.github.fetch_lock(target.path);
        let _one_at_a_time = lock.lock().await;
        match fetch::fetch_branch(target.path, url, branch, token.as_deref()).await {
            Ok(()) => {}
            Err(e @ fetch::FetchError::NotFastForward { .. }) => {
                tracing::warn!(repository = %target.followed.github, %branch, %pusher, forced = event.forced, error = %e, "github: a protected branch moved on GitHub in a way that is no fast-forward of the server's");
                let answer = delivery.answer("recorded").because(format!(
                    "{branch} moved to {after} on GitHub, which does not fast-forward the \
                     server's {branch}: the server keeps it and queues nothing"
                ));
                return webhook::record(state, delivery, StatusCode::OK, &answer).await;
            }
            Err(e) => return Err(ApiError::Unavailable(e.to_string())),
        }
    }
    let (path, id) = (target.path.to_owned(), after.clone());
    if !state
        .pipeline
        .blocking(move || has_commit(&path, &id))
        .await??
    {
        return Err(ApiError::Unavailable(format!(
            "commit {after} is not in the server's repository {}: nothing was recorded; \
             redeliver once it is there",
            target.followed.repo
        )));
    }
    // The plan of the change pushed, by the rules of the tip it moved from; a created
    // branch has no tip to plan from.
    let mut reason = None;
    let mut work = Vec::new();
    if payload::is_zero(&before) {
        reason = Some(format!(
            "{branch} was created: no earlier tip to plan the runs from"
        ));
    } else {
        let (pipeline, path, from, to) = (
            Arc::clone(&state.pipeline),
            target.path.to_owned(),
            before.clone(),
            after.clone(),
        );
        let system = Principal::System(GITHUB_ACTOR.trim_start_matches("system:").to_owned());
        let decided = state
            .pipeline
            .blocking_for(target.path, move || {
                pipeline.decide(&path, &from, &to, &system, None)
            })
            .await?;
        match decided {
            Ok(outcome) => work = outcome.fleet.work,
            Err(error) => {
                let error = ApiError::from(error);
                match &error {
                    ApiError::Invalid(why) => {
                        reason = Some(format!("no runs queued: {why}"));
                    }
                    _ => return Err(error),
                }
            }
        }
    }
    // The merges this push may have landed: merged proposals whose fixes wait for their
    // merged commit to reach a protected branch (a merged pull request announced before
    // its push, or a merge recorded before the commit arrived).
    let mut verifications = Vec::new();
    for awaited in state
        .store
        .awaited_verifications(&target.followed.repo)
        .await?
    {
        let Some(proposal) = state.store.proposal(&awaited.proposal).await? else {
            continue;
        };
        let planned = crate::findings::plan_verification(state, &proposal, &awaited.commit).await?;
        // Still waiting: not landed by this push. Nothing (its findings were settled
        // meanwhile): taken below with no runs, so it is not read again.
        if !matches!(planned, crate::findings::Verification::Waiting { .. }) {
            verifications.push((proposal, planned));
        }
    }
    let mut tx = match webhook::begin(state, delivery).await? {
        Ok(tx) => tx,
        Err(replayed) => return Ok(replayed),
    };
    let runs =
        crate::runs::enqueue_branch(state, &mut tx, &target.followed.repo, branch, &after, &work)
            .await?;
    let mut answer = delivery.answer("recorded");
    answer.runs = Some(runs);
    if !verifications.is_empty() {
        let mut queued = 0;
        let now = crate::runs::millis(state.clock.now());
        for (proposal, planned) in &verifications {
            if matches!(planned, crate::findings::Verification::Nothing) {
                tx.take_verification(&proposal.id, now).await?;
                continue;
            }
            queued +=
                crate::findings::queue_verification(state, &mut tx, proposal, planned).await?;
        }
        answer.verification_runs = Some(queued);
    }
    if let Some(reason) = reason {
        answer = answer.because(reason);
    }
    webhook::commit(state, tx, delivery, StatusCode::OK, &answer).await
}
