//! `/proposals`: the list with its filters, a proposal's page, and its approve and reject
//! forms, which give the verdict through the API's own path
//! ([`crate::proposals::give_verdict`]): the same role, the same lifecycle, the same event
//! naming the signed-in person.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use countersign_lifecycle::{ProposalState, Verdict};
use countersign_store::{ProposalFilter, RunFilter};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Flash, Nav, commit, state_badge, tier_badge};
use super::{Viewer, error_message, error_page, form_caller, graph_svg, html, viewer_or_signin};
use crate::AppState;
use crate::auth::Role;
use crate::error::ApiError;
use crate::proposals::{NewApproval, ProposalView};

const PAGE: u32 = 50;

#[derive(Debug, Deserialize, Default)]
pub(crate) struct ListQuery {
    state: Option<String>,
    tier: Option<String>,
    team: Option<String>,
    author: Option<String>,
    repo: Option<String>,
    before: Option<String>,
}

fn nonempty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// `GET /proposals`: newest first, filtered by state, tier, team, author kind, repository.
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let viewer = match viewer_or_signin(&state, &headers, "/proposals").await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    match list_page(&state, &viewer, &q).await {
        Ok(markup) => html(StatusCode::OK, markup),
        Err(error) => error_page(Some(&viewer), &error),
    }
}

async fn list_page(state: &AppState, viewer: &Viewer, q: &ListQuery) -> Result<Markup, ApiError> {
    let state_filter = nonempty(&q.state)
        .map(|s| {
            ProposalState::ALL
                .iter()
                .copied()
                .find(|p| p.as_str() == s)
                .ok_or_else(|| ApiError::Invalid(format!("state: unknown state {s:?}")))
        })
        .transpose()?;
    let tier_filter = nonempty(&q.tier)
        .map(|t| {
            t.parse::<countersign_policy::Tier>()
                .map_err(|e| ApiError::Invalid(format!("tier: {e}")))
        })
        .transpose()?;
    let author = nonempty(&q.author)
        .map(|a| match a {
            "human" | "agent" => Ok(a.to_owned()),
            other => Err(ApiError::Invalid(format!(
                "author: {other:?} is not an author kind (human or agent)"
            ))),
        })
        .transpose()?;
    let team = nonempty(&q.team).map(str::to_owned);
    // A team filter reads each proposal's decision: a few pages are read to fill one.
    let mut rows = Vec::new();
    let mut before = nonempty(&q.before).map(str::to_owned);
    let mut exhausted = false;
    for _ in 0..if team.is_some() { 10 } else { 1 } {
        let page = state
            .store
            .proposals(&ProposalFilter {
                state: state_filter,
                tier: tier_filter,
                repo: nonempty(&q.repo).map(str::to_owned),
                author_kind: author.clone(),
                before: before.clone(),
                limit: PAGE,
                oldest_first: false,
            })
            .await?;
        exhausted = page.len() < PAGE as usize;
        before = page.last().map(|p| p.id.clone());
        match &team {
            Some(team) => {
                let views = crate::proposals::load_views(&state.store, &page).await?;
                rows.extend(
                    page.into_iter()
                        .zip(views)
                        .filter(|(_, view)| owned_by(view, team))
                        .map(|(proposal, _)| proposal),
                );
            }
            None => rows.extend(page),
        }
        if exhausted || rows.len() >= PAGE as usize {
            break;
        }
    }
    let next = if exhausted {
        None
    } else {
        before.map(|b| {
            let mut query = vec![];
            for (name, value) in [
                ("state", &q.state),
                ("tier", &q.tier),
                ("team", &q.team),
                ("author", &q.author),
                ("repo", &q.repo),
            ] {
                if let Some(v) = nonempty(value) {
                    query.push(format!("{name}={}", super::utf8_percent(v)));
                }
            }
            query.push(format!("before={}", super::utf8_percent(&b)));
            format!("/proposals?{}", query.join("&"))
        })
    };
    let selected = |current: Option<&str>, value: &str| current == Some(value);
    let body = html! {
        h1 { "Proposals" }
        form.filters method="get" action="/proposals" {
            div {
                label for="f-state" { "State" }
                select id="f-state" name="state" {
                    option value="" { "any" }
                    @for s in ProposalState::ALL {
                        option value=(s.as_str()) selected[selected(nonempty(&q.state), s.as_str())] { (s.as_str().replace('_', " ")) }
                    }
                }
            }
            div {
                label for="f-tier" { "Tier" }
                select id="f-tier" name="tier" {
                    option value="" { "any" }
                    @for t in countersign_policy::Tier::ALL {
                        option value=(t.as_str()) selected[selected(nonempty(&q.tier), t.as_str())] { (t.as_str().replace('_', " ")) }
                    }
                }
            }
            div {
                label for="f-team" { "Team" }
                input id="f-team" name="team" type="text" value=(q.team.clone().unwrap_or_default()) placeholder="group:default/team-shop";
            }
            div {
                label for="f-author" { "Author" }
                select id="f-author" name="author" {
                    option value="" { "anyone" }
                    option value="human" selected[selected(nonempty(&q.author), "human")] { "people" }
                    option value="agent" selected[selected(nonempty(&q.author), "agent")] { "agents" }
                }
            }
            div {
                label for="f-repo" { "Repository" }
                select id="f-repo" name="repo" {
                    option value="" { "any" }
                    @for name in state.repos.keys() {
                        option value=(name) selected[selected(nonempty(&q.repo), name)] { (name) }
                    }
                }
            }
            div { button type="submit" { "Filter" } }
        }
        @if rows.is_empty() {
            p { "No proposal matches." }
        } @else {
            div.table-wrap {
                table {
                    caption.muted { "Newest first" }
                    thead { tr { th scope="col" { "Proposal" } th scope="col" { "State" } th scope="col" { "Tier" } th scope="col" { "Author" } th scope="col" { "Repository" } th scope="col" { "Opened" } } }
                    tbody {
                        @for p in &rows {
                            tr {
                                td { a href={ "/proposals/" (p.id) } { (p.title) } br; small.muted { (p.id) } }
                                td { (state_badge(p.state.as_str())) }
                                td { (tier_badge(p.tier.as_str())) }
                                td { (p.author) }
                                td { (p.repo) }
                                td { (p.created_at) }
                            }
                        }
                    }
                }
            }
        }
        (layout::pager(next))
    };
    Ok(layout::page(
        Some(viewer),
        Nav::Proposals,
        "Proposals",
        None,
        body,
    ))
}

/// Whether `team` (a group ref, or its bare name) is among the proposal's requirements'
/// subjects' owners as the decision recorded them: its eligible approvers come from it.
fn owned_by(view: &ProposalView, team: &str) -> bool {
    let team = team.trim();
    let matches = |owner: &str| {
        owner == team
            || owner.rsplit('/').next() == Some(team)
            || owner.ends_with(&format!(":{team}"))
    };
    let owners = view.decision.get("owners").and_then(|o| o.as_array());
    if let Some(owners) = owners
        && owners.iter().filter_map(|o| o.as_str()).any(matches)
    {
        return true;
    }
    view.decision
        .get("requirements")
        .and_then(|r| r.as_array())
        .is_some_and(|reqs| {
            reqs.iter().any(|r| {
                r.get("owners")
                    .and_then(|o| o.as_array())
                    .is_some_and(|o| o.iter().filter_map(|v| v.as_str()).any(matches))
            })
        })
}

/// `GET /proposals/{id}`.
pub(crate) async fn detail(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let viewer = match viewer_or_signin(&state, &headers, &format!("/proposals/{id}")).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let flash = match (q.done.as_deref(), q.refused.as_deref()) {
        (Some("approved"), _) => Some(Flash::ok("Your approval is recorded in the log.")),
        (Some("rejected"), _) => Some(Flash::ok("Your rejection is recorded in the log.")),
        (_, Some("head-moved")) => Some(head_moved(&state, &id, q.judged.as_deref()).await),
        _ => None,
    };
    match detail_page(&state, &viewer, &id, flash).await {
        Ok(markup) => html(StatusCode::OK, markup),
        Err(error) => error_page(Some(&viewer), &error),
    }
}

/// What a proposal's page was redirected with after a form: `done` (`approved`,
/// `rejected`) or `refused` (`head-moved`, with the head the form `judged`). Only these fixed
/// words become messages: nothing of the query is shown but a commit id checked to be one.
#[derive(Debug, Deserialize)]
pub(crate) struct DoneQuery {
    done: Option<String>,
    refused: Option<String>,
    judged: Option<String>,
}

/// The message after a verdict refused because the head moved under the page: the head
/// judged (when the query names a plausible one) and the head the page now shows.
async fn head_moved(state: &AppState, id: &str, judged: Option<&str>) -> Flash {
    let judged = judged
        .filter(|h| !h.is_empty() && h.len() <= 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|h| format!(" you judged {}, but", short(h)))
        .unwrap_or_default();
    let now = match state.store.proposal(id).await {
        Ok(Some(p)) => format!(" it is now at {}", short(&p.head)),
        _ => " it has a new head".to_owned(),
    };
    Flash::error(format!(
        "The head moved since this page was loaded:{judged}{now}. Your verdict was not \
         recorded; review the new head below and decide again."
    ))
}

/// Whether `viewer` may give a verdict on `view`'s head, as far as the page can tell: the
/// buttons show only then (the verdict path decides again, under lock).
fn may_judge(viewer: &Viewer, view: &ProposalView) -> bool {
    let caller = &viewer.caller;
    (caller.role == Role::Approver || caller.role == Role::Admin)
        && caller.principal.is_human()
        && !view.state.is_final()
        && view
            .eligible_approvers
            .iter()
            .any(|p| *p == caller.principal.to_string())
}

pub(crate) async fn detail_page(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    flash: Option<Flash>,
) -> Result<Markup, ApiError> {
    let view = crate::proposals::load_view_of(&state.store, id).await?;
    let explanation = crate::proposals::explain(state, id).await;
    let runs = state
        .store
        .runs(&RunFilter {
            proposal: Some(id.to_owned()),
            limit: 200,
            ..RunFilter::default()
        })
        .await?;
    let entries = state.store.entries_about(id).await?;
    let checkpoint = state.store.latest_checkpoint().await?.map(|c| c.size);
    let events: Vec<(u64, Option<countersign_audit::Event>)> =
        entries.iter().map(|e| (e.index, e.event().ok())).collect();
    let heads: Vec<(String, String, String)> = events
        .iter()
        .filter_map(|(_, e)| e.as_ref())
        .filter(|e| {
            serde_json::to_value(e.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .as_deref()
                == Some("head_moved")
        })
        .map(|e| {
            (
                e.data["from"].as_str().unwrap_or("").to_owned(),
                e.data["to"].as_str().unwrap_or("").to_owned(),
                e.at.clone(),
            )
        })
        .collect();
    let judge = may_judge(viewer, &view);
    // An authorized head is not final until it merges: an eligible person's rejection still
    // revokes it (docs/server.md, "Proposal states"), so the form says that is what it does.
    let authorized = view.state == ProposalState::Authorized;
    let mut suite_runs: BTreeMap<&str, Vec<&countersign_store::Run>> = BTreeMap::new();
    for run in &runs {
        suite_runs.entry(run.suite.as_str()).or_default().push(run);
    }
    let body = html! {
        h1 { (view.title) }
        dl.kpis {
            div.kpi { dt { "State" } dd data-testid="proposal-state" { (view.state.as_str()) } }
            div.kpi { dt { "Tier" } dd data-testid="proposal-tier" { (view.tier) } }
            div.kpi { dt { "Approvals" } dd { (view.approvals_counted) " / " (view.approvals_required) } }
            div.kpi { dt { "Author" } dd { small { (view.author) } } }
        }
        p {
            "Proposal " code { (view.id) } " on " strong { (view.repo) } ": "
            (commit(&view.base)) " → " (commit(&view.head)) ", opened " (view.created_at) "."
            " " a href={ "/proposals/" (view.id) "/bundle" } download { "Download the bundle" }
        }
        @if !view.description.is_empty() { p { (view.description) } }
        @if judge {
            section aria-labelledby="verdict-h" {
                h2 id="verdict-h" { "Your verdict" }
                p.muted { "Bound to head " (commit(&view.head)) ": if the head moves before you send it, it is refused." }
                @if let Some(mine) = view.approvals.iter().rev().find(|a| !a.lapsed && a.head == view.head && a.approver == viewer.caller.principal.to_string()) {
                    p { "You " (match mine.verdict { Verdict::Approve => "approved", Verdict::Reject => "rejected" }) " this head; a new verdict replaces it." }
                }
                div.actions {
                    form method="post" action={ "/proposals/" (view.id) "/approve" } {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        input type="hidden" name="head" value=(view.head);
                        label for="approve-comment" { "Comment (optional)" }
                        input id="approve-comment" name="comment" type="text";
                        p { button.primary type="submit" data-testid="approve-button" { "Approve" } }
                    }
                    form method="post" action={ "/proposals/" (view.id) "/reject" } {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        input type="hidden" name="head" value=(view.head);
                        label for="reject-comment" { "Why (required to reject)" }
                        input id="reject-comment" name="comment" type="text" required;
                        @if authorized {
                            p.muted id="revoke-note" data-testid="revoke-note" {
                                "This head is authorized but not merged. Rejecting it revokes the authorization: "
                                "the proposal becomes rejected and nothing may merge it until you approve this head again "
                                "or a new head is decided."
                            }
                            p { button.danger type="submit" data-testid="reject-button" aria-describedby="revoke-note" { "Reject and revoke the authorization" } }
                        } @else {
                            p { button.danger type="submit" data-testid="reject-button" { "Reject" } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="why-h" {
            h2 id="why-h" { "Why " (tier_badge(&view.tier)) }
            @match &explanation {
                Ok(ex) => {
                    ul.plain {
                        @for reason in &ex.explanation.reasons {
                            li {
                                strong { (reason.effect) }
                                @if let Some(tier) = &reason.tier { " " (tier_badge(&serde_json::to_value(tier).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())) }
                                ": " (reason.message)
                                @if let Some(policy) = &reason.id { " " small.muted { "(" (reason.source) " " code { (policy) } ")" } }
                                @if !reason.facts.is_empty() {
                                    details {
                                        summary { "Facts" }
                                        ul.plain {
                                            @for (name, value) in &reason.facts {
                                                li { code { (name) } " = " code { (value.to_string()) } }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    details {
                        summary { "The explanation as text" }
                        pre { (ex.text) }
                    }
                }
                Err(error) => p.muted { "The explanation cannot be shown: " (error_message(error).1) }
            }
        }
        @if let Ok(ex) = &explanation {
            section aria-labelledby="blast-h" {
                h2 id="blast-h" { "Blast radius" }
                (blast_radius(&ex.explanation.impact))
            }
            section aria-labelledby="plan-h" {
                h2 id="plan-h" { "Validation plan" }
                @if ex.explanation.validation_plan.suites.is_empty() {
                    p { "No suite is planned." }
                } @else {
                    div.table-wrap { table {
                        thead { tr { th scope="col" { "Suite" } th scope="col" { "Why" } th scope="col" { "Evidence" } th scope="col" { "Runs" } } }
                        tbody {
                            @for suite in &ex.explanation.validation_plan.suites {
                                tr {
                                    td { code { (suite.suite) } }
                                    td { @for why in &suite.why { (why) br; } }
                                    td { (evidence_status(ex, &suite.suite)) }
                                    td {
                                        @for run in suite_runs.get(suite.suite.as_str()).map(Vec::as_slice).unwrap_or(&[]) {
                                            a href={ "/runs/" (run.id) } { (run.environment) } " "
                                            (run_status(run)) br;
                                        }
                                    }
                                }
                            }
                        }
                    } }
                }
            }
        }
        section aria-labelledby="approvers-h" {
            h2 id="approvers-h" { "Who may approve" }
            @if view.eligible_approvers.is_empty() {
                p { "Nobody: " (if view.approvals_required == 0 { "no approval is needed." } else { "no eligible person is left." }) }
            } @else {
                ul.plain { @for p in &view.eligible_approvers { li { (p) } } }
            }
            @if !view.approver_pool.excluded_as_authors.is_empty() {
                p.muted { "Left out as authors of the change: " (view.approver_pool.excluded_as_authors.join(", ")) }
            }
            @for open in &view.open_requirements {
                p { (open.subject) " needs " (open.needed) " more from " (open.eligible.join(", ")) }
            }
        }
        section aria-labelledby="verdicts-h" {
            h2 id="verdicts-h" { "Verdicts" }
            @if view.approvals.is_empty() {
                p { "None yet." }
            } @else {
                ul.plain {
                    @for a in &view.approvals {
                        li {
                            strong { (a.approver) } " "
                            (match a.verdict { Verdict::Approve => "approved", Verdict::Reject => "rejected" })
                            " " (commit(&a.head))
                            @if a.lapsed { " " span.badge { "lapsed" } }
                            @if !a.comment.is_empty() { ": " (a.comment) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="heads-h" {
            h2 id="heads-h" { "Head history" }
            ul.plain {
                li { "Opened at " (commit(heads.first().map_or(view.head.as_str(), |h| h.0.as_str()))) }
                @for (from, to, at) in &heads { li { (commit(from)) " → " (commit(to)) " at " (at) } }
            }
        }
        section aria-labelledby="log-h" {
            h2 id="log-h" { "Log entries" }
            ol.plain data-testid="log-entries" {
                @for (index, event) in &events {
                    li data-testid="log-entry" {
                        "#" (index) " "
                        @if let Some(e) = event {
                            strong { (serde_json::to_value(e.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()) }
                            " by " (e.actor) " at " (e.at)
                        }
                        " · "
                        @match checkpoint {
                            Some(size) if *index < size => span { "included in checkpoint " (size) },
                            _ => span.muted { "not yet in a signed checkpoint" },
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(
        Some(viewer),
        Nav::Proposals,
        &view.title,
        flash,
        body,
    ))
}

fn evidence_status(ex: &crate::proposals::ExplanationView, suite: &str) -> Markup {
    let status = ex
        .explanation
        .evidence
        .as_ref()
        .and_then(|e| e.suites.iter().find(|s| s.suite == suite))
        .map(|s| (s.status.clone(), s.explanation.clone()));
    match status {
        Some((status, why)) => {
            html! { span class={ "badge outcome-" (status) } { (status) } " " small.muted { (why) } }
        }
        None => html! { span.badge { "missing" } },
    }
}

pub(crate) fn run_status(run: &countersign_store::Run) -> Markup {
    match run.outcome {
        Some(outcome) => {
            html! { span class={ "badge outcome-" (outcome.as_str()) } { (outcome.as_str()) } }
        }
        None => html! { span.badge { (run.state.as_str()) } },
    }
}

/// The blast radius drawn: touched nodes and every reached one, with the chains that reach
/// them as edges.
fn blast_radius(impact: &countersign_decide::report::ImpactReport) -> Markup {
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut nodes = Vec::new();
    let mut add =
        |name: &str, criticality: &str, touched: bool, nodes: &mut Vec<graph_svg::Node>| -> usize {
            if let Some(&i) = index.get(name) {
                return i;
            }
            let i = nodes.len();
            index.insert(name.to_owned(), i);
            nodes.push(graph_svg::Node {
                label: format!("{name} ({criticality})"),
                classes: format!("{}{criticality}", if touched { "touched " } else { "" }),
            });
            i
        };
    for t in &impact.touched {
        add(&t.node, &t.criticality, true, &mut nodes);
    }
    let mut edges = Vec::new();
    for r in &impact.blast_radius {
        let to = add(&r.node, &r.criticality, false, &mut nodes);
        // The chain's last hop: the node before it reached it.
        if r.via.len() >= 2 {
            let from_name = &r.via[r.via.len() - 2];
            let from = add(from_name, "", false, &mut nodes);
            edges.push((from, to));
        } else if let Some(first) = r.via.first()
            && first != &r.node
        {
            let from = add(first, "", false, &mut nodes);
            edges.push((from, to));
        }
    }
    let drawing = graph_svg::draw(
        "blast-radius",
        "Blast radius: touched and reached nodes",
        &nodes,
        &edges,
    );
    html! {
        p {
            (impact.changed_files) " changed files touch " (impact.touched_count) " nodes and reach "
            (impact.reached_count) "."
            @if !impact.surfaces_touched.is_empty() { " Surfaces touched: " (impact.surfaces_touched.join(", ")) "." }
            @if !impact.surfaces_reached.is_empty() { " Surfaces reached: " (impact.surfaces_reached.join(", ")) "." }
            @if !impact.unmapped.is_empty() { " Unmapped files: " (impact.unmapped.len()) "." }
        }
        @if let Some(drawing) = drawing {
            figure.graph { (drawing) figcaption.muted { "Touched nodes have a thick outline; the colour of an outline is the node's criticality." } }
        }
        @if !impact.touched.is_empty() {
            ul.plain {
                @for t in &impact.touched { li { "touched " code { (t.node) } " (" (t.criticality) ")" } }
                @for r in &impact.blast_radius { li { "reached " code { (r.node) } " (" (r.criticality) ") via " (r.via.join(" → ")) } }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct VerdictForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    head: String,
    #[serde(default)]
    comment: String,
}

/// `POST /proposals/{id}/approve`.
pub(crate) async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<VerdictForm>,
) -> Response {
    verdict(&state, &headers, &id, form, Verdict::Approve).await
}

/// `POST /proposals/{id}/reject`.
pub(crate) async fn reject(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<VerdictForm>,
) -> Response {
    verdict(&state, &headers, &id, form, Verdict::Reject).await
}

async fn verdict(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    form: VerdictForm,
    verdict: Verdict,
) -> Response {
    let viewer = match form_caller(state, headers, &form.csrf).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    // The clear message for the common case of a stale page; the lifecycle refuses a stale
    // head again under lock whatever this read saw.
    let stale = match state.store.proposal(id).await {
        Ok(Some(p)) => p.head != form.head,
        Ok(None) => {
            return error_page(
                Some(&viewer),
                &ApiError::NotFound(format!("no proposal {id}")),
            );
        }
        Err(error) => return error_page(Some(&viewer), &error.into()),
    };
    if stale {
        // Post/Redirect/Get: the refusal is shown by the proposal's page at its current
        // head, so a reload neither resends the form nor shows an error document. (The JSON
        // API still answers a stale head with 409: this is the console's form only.)
        let judged: String = form
            .head
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(12)
            .collect();
        return super::see_other(&format!(
            "/proposals/{}?refused=head-moved&judged={judged}",
            super::utf8_percent(id)
        ));
    }
    let body = NewApproval {
        head: form.head,
        verdict,
        comment: form.comment,
    };
    let outcome = crate::proposals::give_verdict(state, &viewer.caller, id, &body).await;
    match outcome {
        Ok(_) => {
            let done = match verdict {
                Verdict::Approve => "approved",
                Verdict::Reject => "rejected",
            };
            super::see_other(&format!(
                "/proposals/{}?done={done}",
                super::utf8_percent(id)
            ))
        }
        Err(error) => {
            let (status, message) = error_message(&error);
            match detail_page(state, &viewer, id, Some(Flash::error(message.clone()))).await {
                Ok(markup) => html(status, markup),
                Err(_) => error_page(Some(&viewer), &error),
            }
        }
    }
}

fn short(commit: &str) -> String {
    commit.chars().take(12).collect()
}

/// `GET /proposals/{id}/bundle`: the API's bundle export, for the signed-in viewer.
pub(crate) async fn bundle(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let viewer = match viewer_or_signin(&state, &headers, &format!("/proposals/{id}")).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    match crate::bundle::export(
        State(state.clone()),
        viewer.caller.clone(),
        Path(id.clone()),
    )
    .await
    {
        Ok(mut response) => {
            if let Ok(value) = axum::http::HeaderValue::from_str(&format!(
                "attachment; filename=\"{}.bundle.json\"",
                id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
            )) {
                response
                    .headers_mut()
                    .insert(axum::http::header::CONTENT_DISPOSITION, value);
            }
            response.into_response()
        }
        Err(error) => error_page(Some(&viewer), &error),
    }
}
