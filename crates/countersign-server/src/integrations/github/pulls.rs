//! Pull requests and their reviews, as proposals and verdicts.
//!
//! A followed pull request has one live proposal (`github_pulls`):
//! - opened, reopened, ready for review, synchronize: the proposal is opened (or its head
//!   moved) at the pull request's head. Its base is the merge base of the pull request's base
//!   tip and head (the diff GitHub shows), which must be protected history of the server's
//!   repository like any proposal's; its proposer is the author's catalog User, an agent when
//!   none is (`people`). A proposal that is final (closed, merged) is replaced by a new one.
//! - edited to another base: a new proposal for the new base supersedes the old one.
//! - closed: merged when GitHub merged it and the proposal authorized that very head;
//!   otherwise closed, and a merge countersign did not authorize is said so, loudly.
//! - a review `approved` or `changes_requested` is the reviewer's verdict on the review's
//!   `commit_id`, given as the reviewer's catalog User through the lifecycle (the same
//!   rules as `POST /v1/proposals/{id}/approvals`): a bot, an agent, an unmapped or
//!   ambiguous login, the author, someone ineligible or another commit gives no verdict
//!   (`not_counted`, with the reason).
//!
//! What the proposal layer refuses (a base outside protected history, an empty diff, a
//! malformed catalog at the base) is answered `refused` and recorded: the same delivery
//! again changes nothing. A commit the server cannot get is a 503, recorded nowhere.

use std::path::Path;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use countersign_lifecycle::Verdict;
use countersign_policy::Principal;
use countersign_repo::{CommitId, Repo};
use countersign_store::{GithubPull, Proposal};
use serde_json::json;

use super::config::GithubRepository;
use super::payload::{self, PullRequest, PullRequestEvent, ReviewEvent};
use super::people::{self, Account};
use super::webhook::{self, Delivery};
use super::{GITHUB_ACTOR, Github, fetch, fixes};
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::proposals::{self, Moved, NewApproval, NewProposal};

/// The longest title and description a proposal takes from a pull request.
const TITLE_BYTES: usize = 1024;
const DESCRIPTION_BYTES: usize = 16 * 1024;

/// How many times a delivery starts over when another one changed the same pull request's
/// proposal while it was prepared.
const RACES: usize = 3;

/// The repository a delivery is about.
pub(crate) struct Target<'a> {
    pub github: &'a Arc<Github>,
    pub followed: &'a GithubRepository,
    /// The server's repository.
    pub path: &'a Path,
}

impl Target<'_> {
    /// The key of its pull requests in the store: `owner/name` as configured (deliveries
    /// are matched to the configuration case-insensitively first), which is also what
    /// reports name in GitHub's API.
    fn key(&self) -> String {
        self.followed.github.clone()
    }
}

/// What the proposal layer refused, as a reason to answer with; `None` for a failure of the
/// server (answered as it is, recorded nowhere).
fn refusal(error: &ApiError) -> Option<String> {
    match error {
        ApiError::Invalid(why)
        | ApiError::Conflict(why)
        | ApiError::Forbidden(why)
        | ApiError::NotFound(why) => Some(why.clone()),
        _ => None,
    }
}

/// Records `refused` with the refusal's reason, or passes a server failure on.
///
/// When `shown_on` names a pull request's head, the refusal is shown there as a failing
/// `countersign` check (`checks::report_refusal`): nothing else would report that head.
async fn refused(
    state: &AppState,
    delivery: &Delivery,
    outcome: &str,
    proposal: Option<&Proposal>,
    error: ApiError,
    shown_on: Option<(&Target<'_>, &str)>,
) -> Result<Response, ApiError> {
    let Some(why) = refusal(&error) else {
        return Err(error);
    };
    if let Some((target, head)) = shown_on {
        super::checks::report_refusal(
            target.github,
            &state.clock,
            &target.key(),
            head,
            delivery.installation,
            &why,
        );
    }
    let mut answer = delivery.answer(outcome).because(why);
    if let Some(p) = proposal {
        answer = answer.about(p);
    }
    webhook::record(state, delivery, StatusCode::OK, &answer).await
}

/// Whether the server's repository has `commit`. Blocking (git).
pub(crate) fn has_commit(path: &Path, commit: &str) -> Result<bool, ApiError> {
    let repo = Repo::open_shared(path).map_err(|e| ApiError::Internal(e.to_string()))?;
    let id = CommitId::from_hex(commit).map_err(|e| ApiError::Invalid(e.to_string()))?;
    Ok(repo.commit_info(&id).is_ok())
}

/// Whether `branch` is a protected branch of the server's repository. Blocking (git).
pub(crate) fn is_protected(path: &Path, branch: &str) -> Result<bool, ApiError> {
    let repo = Repo::open_shared(path).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(countersign_decide::protected::protected_branches(&repo)?.contains(branch))
}

/// Brings pull request `number`'s head (and its `base` branch, when protected, fast-forward
/// only) into the server's repository, then makes sure every commit of `need` is there: a
/// 503 otherwise, so the delivery is recorded nowhere and a redelivery tries again.
async fn fetch_for(
    state: &AppState,
    target: &Target<'_>,
    delivery: &Delivery,
    number: Option<u64>,
    base: Option<&str>,
    need: &[&str],
) -> Result<(), ApiError> {
    if let Some(url) = &target.followed.fetch_url {
        let token = match target
            .github
            .api
            .token(delivery.installation, state.clock.now())
            .await
        {
            Ok(token) => token,
            Err(e) => {
                tracing::warn!(error = %e, "github: fetching without credentials");
                None
            }
        };
        let lock = target.github.fetch_lock(target.path);
        let _one_at_a_time = lock.lock().await;
        if let Some(branch) = base {
            let path = target.path.to_owned();
            let name = branch.to_owned();
            let protected = state
                .pipeline
                .blocking(move || is_protected(&path, &name))
                .await??;
            if protected {
                match fetch::fetch_branch(target.path, url, branch, token.as_deref()).await {
                    Ok(()) => {}
                    Err(e @ fetch::FetchError::NotFastForward { .. }) => {
                        tracing::warn!(repo = %target.followed.repo, error = %e, "github: a protected branch on GitHub is not a fast-forward of the server's");
                    }
                    Err(e) => return Err(ApiError::Unavailable(e.to_string())),
                }
            }
        }
        if let Some(number) = number {
            fetch::fetch_pull(target.path, url, number, token.as_deref())
                .await
                .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        }
    }
    for commit in need {
        let (path, id) = (target.path.to_owned(), (*commit).to_owned());
        let present = state
            .pipeline
            .blocking(move || has_commit(&path, &id))
            .await??;
        if !present {
            let how = if target.followed.fetch_url.is_some() {
                "even after fetching"
            } else {
                "and the repository has no fetch_url to get it from"
            };
            return Err(ApiError::Unavailable(format!(
                "commit {commit} is not in the server's repository {} {how}: nothing was \
                 recorded; redeliver once it is there",
                target.followed.repo
            )));
        }
    }
    Ok(())
}

/// `X-GitHub-Event: pull_request`.
pub(crate) async fn pull_request(
    state: &AppState,
    target: &Target<'_>,
    delivery: &Delivery,
    body: &[u8],
) -> Result<Response, ApiError> {
    let event: PullRequestEvent = payload::parse("pull_request", body)?;
    let pr = &event.pull_request;
    let head = payload::commit_id("pull_request.head.sha", &pr.head.sha)?;
    let base_tip = payload::commit_id("pull_request.base.sha", &pr.base.sha)?;
    let retargeted = event.action == "edited"
        && event
            .changes
            .as_ref()
            .is_some_and(|changes| changes.get("base").is_some());
    let follows = matches!(
        event.action.as_str(),
        "opened" | "reopened" | "synchronize" | "ready_for_review"
    ) || retargeted;
    if follows {
        let (path, branch) = (target.path.to_owned(), pr.base.branch.clone());
        let protected = state
            .pipeline
            .blocking(move || is_protected(&path, &branch))
            .await??;
        if !protected {
            return unprotected(state, target, delivery, pr).await;
        }
    }
    match event.action.as_str() {
        "opened" | "reopened" | "synchronize" | "ready_for_review" => {
            follow(state, target, delivery, pr, &head, &base_tip, false).await
        }
        "edited" if retargeted => follow(state, target, delivery, pr, &head, &base_tip, true).await,
        "edited"
            if event
                .changes
                .as_ref()
                .is_some_and(|changes| changes.get("body").is_some()) =>
        {
            relink(state, target, delivery, pr, &head, &base_tip).await
        }
        "closed" => close(state, target, delivery, pr, &head).await,
        other => {
            webhook::ignore(
                state,
                delivery,
                format!("a pull request {other} event changes nothing countersign judges"),
            )
            .await
        }
    }
}

/// A pull request into a branch that is not protected is not judged: nothing stops its
/// merge there, and its proposal (when it was moved there from a protected branch) is closed.
async fn unprotected(
    state: &AppState,
    target: &Target<'_>,
    delivery: &Delivery,
    pr: &PullRequest,
) -> Result<Response, ApiError> {
    let why = format!(
        "pull request #{} targets {}, which is not a protected branch of {}",
        pr.number, pr.base.branch, target.followed.repo
    );
    if payload::commit_id("pull_request.head.sha", &pr.head.sha).is_ok() {
        super::checks::report_refusal(
            target.github,
            &state.clock,
            &target.key(),
            &pr.head.sha,
            delivery.installation,
            &why,
        );
    }
    let Some(current) = followed(state, target, pr.number)
        .await?
        .filter(|p| !p.state.is_final())
    else {
        return webhook::ignore(state, delivery, why).await;
    };
    let mut tx = match webhook::begin(state, delivery).await? {
        Ok(tx) => tx,
        Err(replayed) => return Ok(replayed),
    };
    let closed = proposals::apply_close(
        state,
        &mut tx,
        &current.id,
        GITHUB_ACTOR,
        Some(why.clone()),
        None,
        |_| Ok(()),
    )
    .await?;
    let answer = delivery.answer("closed").about(&closed).because(why);
    webhook::commit(state, tx, delivery, StatusCode::OK, &answer).await
}

/// The live proposal following pull request `number`, and the one recorded (final or not).
async fn followed(
    state: &AppState,
    target: &Target<'_>,
    number: u64,
) -> Result<Option<Proposal>, ApiError> {
    let Some(link) = state.store.github_pull(&target.key(), number).await? else {
        return Ok(None);
    };
    Ok(state.store.proposal(&link.proposal).await?)
}

/// The pull request at `head` has a live proposal at `head` afterwards: opened, moved, or
/// (for a new base, `retarget`) replaced by one that supersedes it.
async fn follow(
    state: &AppState,
    target: &Target<'_>,
    delivery: &Delivery,
    pr: &PullRequest,
    head: &str,
    base_tip: &str,
    retarget: bool,
) -> Result<Response, ApiError> {
    for _ in 0..RACES {
        let current = followed(state, target, pr.number).await?;
        let attempt = match current {
            Some(current) if !current.state.is_final() && !retarget => {
                if current.head == head {
                    let answer = delivery
                        .answer("unchanged")
                        .about(&current)
                        .because(format!("the proposal is at {head} already"));
                    return webhook::record(state, delivery, StatusCode::OK, &answer).await;
                }
                move_head(state, target, delivery, pr, current, head).await?
            }
            current => open(state, target, delivery, pr, head, base_tip, current).await?,
        };
        if let Some(response) = attempt {
            return Ok(response);
        }
    }
    Err(ApiError::Conflict(format!(
        "pull request #{} kept changing while this delivery was handled; redeliver it",
        pr.number
    )))
}

/// Opens a proposal for the pull request, in place of `replacing` (closed as superseded when
/// it is still live). `None` when another delivery followed the pull request meanwhile.
async fn open(
    state: &AppState,
    target: &Target<'_>,
    delivery: &Delivery,
    pr: &PullRequest,
    head: &str,
    base_tip: &str,
    replacing: Option<Proposal>,
) -> Result<Option<Response>, ApiError> {
    fetch_for(
        state,
        target,
        delivery,
        Some(pr.number),
        Some(&pr.base.branch),
        &[head, base_tip],
    )
    .await?;
    // The diff GitHub shows is merge-base(base, head)..head; the merge base, an ancestor of
    // the base branch's tip, is the base whose rules judge it.
    let (path, one, two) = (target.path.to_owned(), base_tip.to_owned(), head.to_owned());
    let merge_base = state
        .pipeline
        .blocking(move || {
            let repo = Repo::open_shared(&path).map_err(|e| ApiError::Internal(e.to_string()))?;
            let one = CommitId::from_hex(&one).map_err(|e| ApiError::Invalid(e.to_string()))?;
            let two = CommitId::from_hex(&two).map_err(|e| ApiError::Invalid(e.to_string()))?;
            repo.merge_base(&one, &two)
                .map_err(|e| ApiError::Internal(e.to_string()))
        })
        .await??;
    let Some(base) = merge_base else {
        let error = ApiError::Invalid(format!(
            "the pull request's head {head} shares no history with its base {base_tip}"
        ));
        return refused(
            state,
            delivery,
            "refused",
            None,
            error,
            Some((target, head)),
        )
        .await
        .map(Some);
    };
    let base = base.as_str().to_owned();
    let (github, path, at) = (
        Arc::clone(target.github),
        target.path.to_owned(),
        base.clone(),
    );
    let users = state
        .pipeline
        .blocking(move || github.people.users(&path, &at))
        .await??;
    let account = people::account(&users, &pr.user);
    let Some(author) = account.proposer(&pr.user) else {
        let Account::Ambiguous(names) = &account else {
            return Err(ApiError::Internal("an account with no proposer".into()));
        };
        let error = ApiError::Invalid(format!(
            "GitHub login {} is the github.com/user-login of several catalog Users ({}): it \
             must name one person",
            pr.user.login,
            names.join(", ")
        ));
        return refused(
            state,
            delivery,
            "refused",
            None,
            error,
            Some((target, head)),
        )
        .await
        .map(Some);
    };
    let title = {
        let title = payload::storable(pr.title.trim(), TITLE_BYTES);
        if title.trim().is_empty() {
            format!("{} #{}", target.followed.github, pr.number)
        } else {
            title
        }
    };
    let description = payload::storable(
        &format!(
            "{}\n\nGitHub pull request {}#{} by {}",
            pr.body.as_deref().unwrap_or("").trim(),
            target.followed.github,
            pr.number,
            pr.user.login
        ),
        DESCRIPTION_BYTES,
    );
    // The findings its description says it fixes: each must be live and of this
    // repository, as `POST /v1/proposals` requires of `fixes`; one that is not refuses the
    // pull request (its check fails, naming it) rather than drop the link unseen.
    let links = fixes::linked(pr.body.as_deref().unwrap_or(""));
    // Either refusal (a link, or the decision) is answered alike, once, below.
    let judged = async {
        let fixed = to_fix(state, target, pr, &links).await?;
        let fix_suites = crate::findings::suites_of(&fixed);
        let request = NewProposal {
            repo: target.followed.repo.clone(),
            base,
            head: head.to_owned(),
            title,
            description,
            fixes: links,
        };
        let prepared = {
            let (pipeline, path, clock, signer) = (
                std::sync::Arc::clone(&state.pipeline),
                target.path.to_owned(),
                state.clock.clone(),
                state.log_signer.clone(),
            );
            let author = author.clone();
            state
                .pipeline
                .blocking_for(target.path, move || {
                    proposals::open::prepare(
                        &pipeline,
                        &path,
                        request,
                        &author,
                        None,
                        &clock,
                        signer,
                        &fix_suites,
                    )
                })
                .await
        };
        Ok::<_, ApiError>((fixed, prepared??))
    }
    .await;
    let (fixed, prepared) = match judged {
        Ok(judged) => judged,
        Err(error) => {
            return refused(
                state,
                delivery,
                "refused",
                None,
                error,
                Some((target, head)),
            )
            .await
            .map(Some);
        }
    };
    let proposals::open::Prepared {
        proposal,
        mut decision,
        blobs,
        leaves,
        decided,
        work,
        ..
    } = prepared;
    let mut tx = match webhook::begin(state, delivery).await? {
        Ok(tx) => tx,
        Err(replayed) => return Ok(Some(replayed)),
    };
    let link = GithubPull {
        repository: target.key(),
        number: pr.number,
        proposal: proposal.id.clone(),
        installation: delivery.installation,
    };
    proposals::write_opened(
        state,
        &mut tx,
        &proposal,
        &mut decision,
        &blobs,
        &leaves,
        decided,
        &work,
    )
    .await?;
    crate::findings::link(
        &mut tx,
        &fixed,
        &proposal.id,
        &proposal.head,
        &proposal.author,
        &proposal.created_at,
    )
    .await?;
    if !tx
        .follow_github_pull(&link, replacing.as_ref().map(|p| p.id.as_str()))
        .await?
    {
        // Another delivery followed this pull request meanwhile: start over from theirs.
        tx.rollback().await?;
        return Ok(None);
    }
    let mut answer = delivery.answer("proposed");
    if let Some(old) = replacing.as_ref().filter(|p| !p.state.is_final()) {
        let reason = format!(
            "the pull request now targets {}: {} supersedes it",
            pr.base.branch, proposal.id
        );
        proposals::apply_close(
            state,
            &mut tx,
            &old.id,
            GITHUB_ACTOR,
            Some(reason.clone()),
            Some(&proposal),
            |_| Ok(()),
        )
        .await?;
        answer = answer.because(format!("{reason} ({})", old.id));
    }
    super::changed(state, &mut tx, &proposal.id, &proposal.head).await?;
    let answer = answer.about(&proposal);
    webhook::commit(state, tx, delivery, StatusCode::OK, &answer)
        .await
        .map(Some)
}

/// Moves `current` to `head`, linking the findings its description names that it did not
/// link before. `None` when another delivery changed it meanwhile.
async fn move_head(
    state: &AppState,
    target: &Target<'_>,
    delivery: &Delivery,
    pr: &PullRequest,
    current: Proposal,
    head: &str,
) -> Result<Option<Response>, ApiError> {
    fetch_for(state, target, delivery, Some(pr.number), None, &[head]).await?;
    let decided = match new_links(state, target, pr, &current).await {
        Ok(linking) => {
            let also = crate::findings::suites_of(&linking);
            proposals::decide_head_move(state, &current, head.to_owned(), &also)
                .await
                .map(|decided| (decided, linking))
        }
        Err(error) => Err(error),
    };
    let (decided, linking) = match decided {
        Ok(decided) => decided,
        Err(error) => {
            return refused(
                state,
                delivery,
                "refused",
                Some(&current),
                error,
                Some((target, head)),
            )
            .await
            .map(Some);
        }
    };
    let mut tx = match webhook::begin(state, delivery).await? {
        Ok(tx) => tx,
        Err(replayed) => return Ok(Some(replayed)),
    };
    let moved =
        proposals::apply_head_move(state, &mut tx, &current.id, &decided, GITHUB_ACTOR).await;
    let answer = match moved {
        Ok(Moved::Moved { proposal, .. }) => {
            crate::findings::link(
                &mut tx,
                &linking,
                &proposal.id,
                &proposal.head,
                GITHUB_ACTOR,
                &state.clock.rfc3339(),
            )
            .await?;
            delivery.answer("head_moved").about(&proposal)
        }
        Ok(Moved::Unchanged(proposal)) => delivery.answer("unchanged").about(&proposal),
        Err(error) => {
            tx.rollback().await?;
            if matches!(error, ApiError::Conflict(_)) {
                // Closed or moved by another request meanwhile: look again.
                return Ok(None);
            }
            return refused(
                state,
                delivery,
                "refused",
                Some(&current),
                error,
                Some((target, head)),
            )
            .await
            .map(Some);
        }
    };
    webhook::commit(state, tx, delivery, StatusCode::OK, &answer)
        .await
        .map(Some)
}

/// The findings of `links` (ids a pull request's description names), each live and of the
/// followed repository, or why not (a 422 naming the pull request and the id).
async fn to_fix(
    state: &AppState,
    target: &Target<'_>,
    pr: &PullRequest,
    links: &[String],
) -> Result<Vec<countersign_store::Finding>, ApiError> {
    crate::findings::to_fix(state, &target.followed.repo, links)
        .await
        .map_err(|error| match error {
            ApiError::Invalid(why) => ApiError::Invalid(format!(
                "pull request #{}'s description says it fixes findings ({}), but {}",
                pr.number,
                links.join(", "),
                why.trim_start_matches("fixes: ")
            )),
            other => other,
        })
}

/// The findings `pr`'s description names that `current` does not fix yet, checked as
/// [`to_fix`] checks them. A link, once made, stays: a description that stops naming a
/// finding does not unlink it (its suites stay required).
async fn new_links(
    state: &AppState,
    target: &Target<'_>,
    pr: &PullRequest,
    current: &Proposal,
) -> Result<Vec<countersign_store::Finding>, ApiError> {
    let linked: Vec<String> = state
        .store
        .fixed_by(&current.id)
        .await?
        .into_iter()
        .map(|f| f.id)
        .collect();
    let links: Vec<String> = fixes::linked(pr.body.as_deref().unwrap_or(""))
        .into_iter()
        .filter(|id| !linked.contains(id))
        .collect();
    if links.len() + linked.len() > crate::findings::MAX_FIXES {
        return Err(ApiError::Invalid(format!(
            "pull request #{}'s description says it fixes more than {} findings",
            pr.number,
            crate::findings::MAX_FIXES
        )));
    }
    to_fix(state, target, pr, &links).await
}

/// The description was edited: the findings it names that the proposal does not fix yet
/// are linked, and the decision is re-derived at the same head requiring their reproducing
/// suites too (as a head move would). A finding it cannot link (unknown, settled, of
/// another repository) is answered `refused` and logged, the proposal unchanged; no failing
/// check is shown for it, since the head's check is the proposal's and a refusal run would
/// hide it; the next push (synchronize) is refused on its new head, visibly, while the
/// description still names it.
async fn relink(
    state: &AppState,
    target: &Target<'_>,
    delivery: &Delivery,
    pr: &PullRequest,
    head: &str,
    base_tip: &str,
) -> Result<Response, ApiError> {
    for _ in 0..RACES {
        let current = match followed(state, target, pr.number).await? {
            Some(current) if !current.state.is_final() => current,
            None if pr.state.as_deref() == Some("open") => {
                // No proposal ever followed this open pull request: its opening was refused
                // (a finding its description named, perhaps). The edit may have fixed that.
                let (path, branch) = (target.path.to_owned(), pr.base.branch.clone());
                let protected = state
                    .pipeline
                    .blocking(move || is_protected(&path, &branch))
                    .await??;
                if !protected {
                    return unprotected(state, target, delivery, pr).await;
                }
                return follow(state, target, delivery, pr, head, base_tip, false).await;
            }
            _ => {
                return webhook::ignore(
                    state,
                    delivery,
                    format!("no open proposal follows pull request #{}", pr.number),
                )
                .await;
            }
        };
        let linking = match new_links(state, target, pr, &current).await {
            Ok(linking) => linking,
            Err(error) => {
                if let Some(why) = refusal(&error) {
                    tracing::warn!(proposal = %current.id, pull_request = pr.number, repository = %target.followed.github, %why, "github: an edited description names findings the proposal cannot fix");
                }
                return refused(state, delivery, "refused", Some(&current), error, None).await;
            }
        };
        if linking.is_empty() {
            let answer = delivery.answer("unchanged").about(&current).because(
                "the description names no finding the proposal does not fix already (a link, \
                 once made, stays)",
            );
            return webhook::record(state, delivery, StatusCode::OK, &answer).await;
        }
        let also = crate::findings::suites_of(&linking);
        let (outcome, weighed) = match crate::evidence::redecide(state, &current, &also).await {
            Ok(redecided) => redecided,
            Err(error) => {
                return refused(state, delivery, "refused", Some(&current), error, None).await;
            }
        };
        let mut tx = match webhook::begin(state, delivery).await? {
            Ok(tx) => tx,
            Err(replayed) => return Ok(replayed),
        };
        let loaded = proposals::Loaded::lock(&mut tx, &current.id).await?;
        let evidence: Vec<String> = tx
            .evidence_for_head(&current.id, &current.head)
            .await?
            .into_iter()
            .map(|(row, _)| row.digest)
            .collect();
        if loaded.proposal.head != current.head
            || loaded.proposal.state != current.state
            || evidence != weighed
        {
            // Moved, settled or given evidence meanwhile: look again.
            tx.rollback().await?;
            continue;
        }
        let now = state.clock.rfc3339();
        crate::findings::link(
            &mut tx,
            &linking,
            &current.id,
            &current.head,
            GITHUB_ACTOR,
            &now,
        )
        .await?;
        crate::evidence::rederive(state, &mut tx, &loaded, &outcome, &now).await?;
        // The fleet's work for the suites this link made required (those required before
        // were queued with the head).
        let before = &loaded.record.required_suites;
        let work: Vec<crate::pipeline::WorkSpec> = outcome
            .fleet
            .work
            .iter()
            .filter(|w| !before.contains(&w.suite))
            .cloned()
            .collect();
        crate::runs::enqueue(
            state,
            &mut tx,
            &current.repo,
            &current.id,
            &current.head,
            &work,
        )
        .await?;
        let after = tx.lock_proposal(&current.id).await?.unwrap_or(current);
        let ids: Vec<&str> = linking.iter().map(|f| f.id.as_str()).collect();
        let answer = delivery.answer("linked").about(&after).because(format!(
            "the description now says it fixes {}",
            ids.join(", ")
        ));
        return webhook::commit(state, tx, delivery, StatusCode::OK, &answer).await;
    }
    Err(ApiError::Conflict(format!(
        "pull request #{} kept changing while this delivery was handled; redeliver it",
        pr.number
    )))
}

/// The pull request was closed: merged, or closed.
async fn close(
    state: &AppState,
    target: &Target<'_>,
    delivery: &Delivery,
    pr: &PullRequest,
    head: &str,
) -> Result<Response, ApiError> {
    let Some(current) = followed(state, target, pr.number)
        .await?
        .filter(|p| !p.state.is_final())
    else {
        return webhook::ignore(
            state,
            delivery,
            format!("no open proposal follows pull request #{}", pr.number),
        )
        .await;
    };
    let merged = pr.merged == Some(true);
    let merge_commit = pr
        .merge_commit_sha
        .as_deref()
        .map(|sha| payload::commit_id("pull_request.merge_commit_sha", sha))
        .transpose()?;
    // The fixes it links are verified by their reproducing suites on the base branch at
    // the merge commit (the head, when GitHub names none): the branch is fetched first so
    // the merge commit is there; when it is not (yet), the push that lands it queues them
    // (`push`), and whichever comes first queues them once (`findings::queue_verification`).
    let fixes_live = merged
        && state
            .store
            .fixed_by(&current.id)
            .await?
            .iter()
            .any(|f| f.state.is_live());
    let verification = if fixes_live {
        if let Err(error) =
            fetch_for(state, target, delivery, None, Some(&pr.base.branch), &[]).await
        {
            tracing::warn!(repository = %target.followed.github, branch = %pr.base.branch, %error, "github: the merged pull request's base branch could not be fetched; its fixes wait for the push");
        }
        let landed = merge_commit.as_deref().unwrap_or(head);
        crate::findings::plan_verification(state, &current, landed).await?
    } else {
        crate::findings::Verification::Nothing
    };
    let mut tx = match webhook::begin(state, delivery).await? {
        Ok(tx) => tx,
        Err(replayed) => return Ok(replayed),
    };
    if merged {
        let details = json!({
            "pull_request": pr.number,
            "repository": target.followed.github,
            "merge_commit": merge_commit,
            "delivery": delivery.id,
        });
        match proposals::apply_merged(
            state,
            &mut tx,
            &current.id,
            GITHUB_ACTOR,
            head,
            Some(("github", details)),
        )
        .await
        {
            Ok(proposal) => {
                let mut answer = delivery.answer("merged").about(&proposal);
                if !matches!(verification, crate::findings::Verification::Nothing) {
                    let runs = crate::findings::queue_verification(
                        state,
                        &mut tx,
                        &proposal,
                        &verification,
                    )
                    .await?;
                    answer.verification_runs = Some(runs);
                }
                return webhook::commit(state, tx, delivery, StatusCode::OK, &answer).await;
            }
            Err(error) => {
                let Some(why) = refusal(&error) else {
                    return Err(error);
                };
                tx.rollback().await?;
                tracing::warn!(
                    proposal = %current.id, pull_request = pr.number, repository = %target.followed.github,
                    merge_commit = merge_commit.as_deref().unwrap_or(""), %why,
                    "github: a pull request was merged on GitHub without countersign's authorization"
                );
                let reason = format!(
                    "merged on GitHub without countersign's authorization of {head} \
                     (merge commit {}): {why}",
                    merge_commit.as_deref().unwrap_or("unknown")
                );
                tx = match webhook::begin(state, delivery).await? {
                    Ok(tx) => tx,
                    Err(replayed) => return Ok(replayed),
                };
                let closed = proposals::apply_close(
                    state,
                    &mut tx,
                    &current.id,
                    GITHUB_ACTOR,
                    Some(reason.clone()),
                    None,
                    |_| Ok(()),
                )
                .await?;
                let answer = delivery.answer("closed").about(&closed).because(reason);
                return webhook::commit(state, tx, delivery, StatusCode::OK, &answer).await;
            }
        }
    }
    let closed = proposals::apply_close(
        state,
        &mut tx,
        &current.id,
        GITHUB_ACTOR,
        Some(format!("pull request #{} was closed on GitHub", pr.number)),
        None,
        |_| Ok(()),
    )
    .await;
    match closed {
        Ok(closed) => {
            let answer = delivery.answer("closed").about(&closed);
            webhook::commit(state, tx, delivery, StatusCode::OK, &answer).await
        }
        Err(error) => {
            tx.rollback().await?;
            refused(state, delivery, "refused", Some(&current), error, None).await
        }
    }
}

/// `X-GitHub-Event: pull_request_review`.
pub(crate) async fn review(
    state: &AppState,
    target: &Target<'_>,
    delivery: &Delivery,
    body: &[u8],
) -> Result<Response, ApiError> {
    let event: ReviewEvent = payload::parse("pull_request_review", body)?;
    let review = &event.review;
    // A dismissal withdraws the verdict the review gave; an edit changes the review's text,
    // never its state (GitHub keeps it), so it gives no new verdict.
    let verdict = match (
        event.action.as_str(),
        review.state.to_ascii_lowercase().as_str(),
    ) {
        ("submitted", "approved") => Some(Verdict::Approve),
        ("submitted", "changes_requested") => Some(Verdict::Reject),
        ("submitted", other) => {
            return webhook::ignore(
                state,
                delivery,
                format!("a {other} review is no verdict: only approved and changes_requested are"),
            )
            .await;
        }
        ("dismissed", _) => None,
        ("edited", _) => {
            return webhook::ignore(
                state,
                delivery,
                "an edited review keeps its verdict: editing its text gives no new one \
                 (a dismissal withdraws it, a new review replaces it)",
            )
            .await;
        }
        (other, _) => {
            return webhook::ignore(
                state,
                delivery,
                format!("a review {other} event gives no verdict"),
            )
            .await;
        }
    };
    let number = event.pull_request.number;
    let Some(proposal) = followed(state, target, number)
        .await?
        .filter(|p| !p.state.is_final())
    else {
        return webhook::ignore(
            state,
            delivery,
            format!("no open proposal follows pull request #{number}"),
        )
        .await;
    };
    let not_counted = |why: String| {
        let answer = delivery.answer("not_counted").about(&proposal).because(why);
        async move { webhook::record(state, delivery, StatusCode::OK, &answer).await }
    };
    let Some(commit) = review.commit_id.as_deref() else {
        return not_counted("the review names no commit".into()).await;
    };
    let commit = payload::commit_id("review.commit_id", commit)?;
    let Some(user) = &review.user else {
        return not_counted("the review's account was deleted".into()).await;
    };
    let (github, path, base) = (
        Arc::clone(target.github),
        target.path.to_owned(),
        proposal.base.clone(),
    );
    let users = state
        .pipeline
        .blocking(move || github.people.users(&path, &base))
        .await??;
    let principal: Principal = match people::account(&users, user) {
        Account::Person(principal) => principal,
        Account::Agent(agent) => {
            return not_counted(format!(
                "{} ({agent}) is not a person: only people approve or reject",
                user.login
            ))
            .await;
        }
        Account::Unmapped => {
            return not_counted(format!(
                "no catalog User of {} at the proposal's base declares GitHub login {} \
                 (github.com/user-login): nobody countersign knows gave this review",
                target.followed.repo, user.login
            ))
            .await;
        }
        Account::Ambiguous(names) => {
            return not_counted(format!(
                "GitHub login {} is the github.com/user-login of several catalog Users ({}): \
                 it names nobody",
                user.login,
                names.join(", ")
            ))
            .await;
        }
    };
    let caller = Caller {
        principal: principal.clone(),
        role: Role::Approver,
        identity: Some(crate::oidc::Person {
            principal,
            issuer: target.github.config.api_url.origin().ascii_serialization(),
            subject: user.id.to_string(),
            email: String::new(),
        }),
        dispatched_by: None,
        token_sha256: None,
    };
    let Some(verdict) = verdict else {
        return withdraw(state, delivery, &event, &proposal, &caller.principal, user).await;
    };
    let comment = payload::storable(
        &format!(
            "{}{}",
            review_marker(review.id, &user.login),
            review.body.as_deref().unwrap_or("").trim()
        ),
        DESCRIPTION_BYTES,
    );
    let request = NewApproval {
        head: commit,
        verdict,
        comment,
    };
    let mut tx = match webhook::begin(state, delivery).await? {
        Ok(tx) => tx,
        Err(replayed) => return Ok(replayed),
    };
    match proposals::apply_verdict(state, &mut tx, &proposal.id, &caller, &request).await {
        Ok(t) => {
            let after = Proposal {
                state: t.next,
                ..proposal.clone()
            };
            let outcome = match (t.unchanged, verdict) {
                (true, _) => "unchanged",
                (false, Verdict::Approve) => "approved",
                (false, Verdict::Reject) => "rejected",
            };
            let answer = delivery.answer(outcome).about(&after);
            webhook::commit(state, tx, delivery, StatusCode::OK, &answer).await
        }
        Err(error) => {
            tx.rollback().await?;
            let Some(why) = refusal(&error) else {
                return Err(error);
            };
            not_counted(format!("{}: {why}", caller.principal)).await
        }
    }
}

/// How a verdict from a GitHub review begins its comment: what ties the verdict to the
/// review, so its dismissal withdraws that verdict and no other.
fn review_marker(review: u64, login: &str) -> String {
    format!("GitHub review {review} by {login}: ")
}

/// A dismissed review: the verdict it gave is withdrawn if it still stands on the head (a
/// later review by the same person replaced it, or a head move lapsed it: nothing to do).
/// The proposal settles again: an authorization it completed falls back to awaiting
/// approval. A final proposal is not reopened: a merge is not undone.
async fn withdraw(
    state: &AppState,
    delivery: &Delivery,
    event: &ReviewEvent,
    proposal: &Proposal,
    reviewer: &Principal,
    user: &payload::User,
) -> Result<Response, ApiError> {
    let review = &event.review;
    let marker = review_marker(review.id, &user.login);
    let details = json!({
        "github": {
            "review": review.id,
            "pull_request": event.pull_request.number,
            "delivery": delivery.id,
        },
    });
    let mut tx = match webhook::begin(state, delivery).await? {
        Ok(tx) => tx,
        Err(replayed) => return Ok(replayed),
    };
    let withdrawn = proposals::apply_withdrawal(
        state,
        &mut tx,
        &proposal.id,
        &reviewer.to_string(),
        GITHUB_ACTOR,
        |standing| standing.comment.starts_with(&marker),
        details,
    )
    .await;
    match withdrawn {
        Ok(Some(t)) => {
            let after = Proposal {
                state: t.next,
                ..proposal.clone()
            };
            let answer = delivery.answer("withdrawn").about(&after);
            webhook::commit(state, tx, delivery, StatusCode::OK, &answer).await
        }
        Ok(None) => {
            tx.rollback().await?;
            let answer = delivery
                .answer("unchanged")
                .about(proposal)
                .because(format!(
                    "no verdict of review {} by {reviewer} stands on the proposal's head",
                    review.id
                ));
            webhook::record(state, delivery, StatusCode::OK, &answer).await
        }
        Err(error) => {
            tx.rollback().await?;
            let Some(why) = refusal(&error) else {
                return Err(error);
            };
            let answer = delivery.answer("unchanged").about(proposal).because(why);
            webhook::record(state, delivery, StatusCode::OK, &answer).await
        }
    }
}
