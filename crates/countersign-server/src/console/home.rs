//! `/`: the posture (runs in the last 24 hours and their pass rate, coverage across
//! modules, active runs, open findings by severity), coverage by module, the active runs
//! (kept live over SSE by the script), upcoming schedules, and the next actions of the
//! signed-in person.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use countersign_lifecycle::ProposalState;
use countersign_store::{ProposalFilter, RunFilter, RunOutcome, RunState};
use maud::{Markup, html};
use serde_json::Value;

use super::layout::{self, Nav, tier_badge};
use super::{Viewer, error_page, html, viewer_or_signin};
use crate::AppState;
use crate::auth::Role;
use crate::error::ApiError;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// `GET /`.
pub(crate) async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let viewer = match viewer_or_signin(&state, &headers, "/").await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    match home_page(&state, &viewer).await {
        Ok(markup) => html(StatusCode::OK, markup),
        Err(error) => error_page(Some(&viewer), &error),
    }
}

/// One thing the signed-in person should do next.
pub(crate) struct Action {
    pub href: String,
    pub text: String,
    pub detail: Markup,
}

/// A repository's graph as the API's `/v1/repos/{repo}/graph` reads it (`None` when its
/// protected branch cannot be read).
pub(crate) async fn graphs(
    state: &AppState,
    viewer: &Viewer,
) -> Vec<(String, Result<Value, String>)> {
    let mut out = Vec::new();
    for repo in state.repos.keys() {
        let answer = crate::repos::graph(
            State(state.clone()),
            viewer.caller.clone(),
            Path(repo.clone()),
            Ok(Query(crate::repos::RulesQuery::default())),
        )
        .await;
        out.push((
            repo.clone(),
            answer
                .map(|json| json.0.graph)
                .map_err(|e| super::error_message(&e).1),
        ));
    }
    out
}

fn nodes(graph: &Value) -> impl Iterator<Item = &Value> {
    graph["nodes"].as_array().into_iter().flatten()
}

/// The refs (the user's own and their groups') a person's components are owned by, from
/// the catalogs: `human:alice` is `user:default/alice` and the groups it is a member of.
pub(crate) fn owner_refs(
    graphs: &[(String, Result<Value, String>)],
    viewer: &Viewer,
) -> BTreeSet<String> {
    let name = viewer.caller.principal.name().to_owned();
    let mut refs = BTreeSet::new();
    for (_, graph) in graphs {
        let Ok(graph) = graph else { continue };
        for node in nodes(graph) {
            if node["kind"] == "user" && node["name"].as_str() == Some(name.as_str()) {
                if let Some(r) = node["ref"].as_str() {
                    refs.insert(r.to_owned());
                }
                for group in node["member_of"].as_array().into_iter().flatten() {
                    if let Some(g) = group.as_str() {
                        refs.insert(g.to_owned());
                    }
                }
            }
        }
    }
    refs
}

/// Per component of every graph: its ref, criticality, suites.
pub(crate) fn components(
    graphs: &[(String, Result<Value, String>)],
) -> Vec<(String, String, Vec<String>, String)> {
    let mut out = Vec::new();
    for (_, graph) in graphs {
        let Ok(graph) = graph else { continue };
        for node in nodes(graph) {
            if matches!(
                node["kind"].as_str(),
                Some("component") | Some("resource") | Some("api")
            ) {
                out.push((
                    node["ref"].as_str().unwrap_or("").to_owned(),
                    node["criticality"].as_str().unwrap_or("").to_owned(),
                    node["suites"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect(),
                    node["owner"].as_str().unwrap_or("").to_owned(),
                ));
            }
        }
    }
    out
}

async fn home_page(state: &AppState, viewer: &Viewer) -> Result<Markup, ApiError> {
    let now_ms = state.clock.unix_seconds().saturating_mul(1000);
    let since = now_ms - DAY_MS;
    // One aggregate over the window's index entries: the KPIs and the coverage below.
    let tally = state.store.run_tally(since).await?;
    let total: u64 = tally.iter().map(|t| t.count).sum();
    let finished: u64 = tally
        .iter()
        .filter(|t| t.state == RunState::Finished && t.outcome != Some(RunOutcome::Cancelled))
        .map(|t| t.count)
        .sum();
    let passed: u64 = tally
        .iter()
        .filter(|t| t.outcome == Some(RunOutcome::Passed))
        .map(|t| t.count)
        .sum();
    let pass_rate = (finished > 0).then(|| passed as f64 * 100.0 / finished as f64);
    let mut active = state
        .store
        .runs(&RunFilter {
            state: Some(RunState::Running),
            limit: 20,
            ..RunFilter::default()
        })
        .await?;
    let queued = state
        .store
        .runs(&RunFilter {
            state: Some(RunState::Queued),
            limit: 20,
            ..RunFilter::default()
        })
        .await?;
    let active_count = active.len() + queued.len();
    active.extend(queued);
    let findings = state
        .store
        .findings(&countersign_store::FindingFilter {
            limit: 1000,
            ..countersign_store::FindingFilter::default()
        })
        .await?;
    let mut by_severity: BTreeMap<String, usize> = BTreeMap::new();
    for f in findings.iter().filter(|f| f.state.is_live()) {
        *by_severity
            .entry(f.severity.as_str().to_owned())
            .or_default() += 1;
    }
    let graphs = graphs(state, viewer).await;
    let comps = components(&graphs);
    // Coverage of a module: the share of its suites with a passing run in the last 24 h.
    let passing: BTreeSet<&str> = tally
        .iter()
        .filter(|t| t.outcome == Some(RunOutcome::Passed))
        .map(|t| t.suite.as_str())
        .collect();
    let coverage: Vec<(String, usize, usize)> = comps
        .iter()
        .map(|(r, _, suites, _)| {
            (
                r.clone(),
                suites
                    .iter()
                    .filter(|s| passing.contains(s.as_str()))
                    .count(),
                suites.len(),
            )
        })
        .collect();
    let covered = coverage.iter().filter(|c| c.1 > 0).count();
    let coverage_pct = (!coverage.is_empty()).then(|| covered * 100 / coverage.len());
    let schedules = crate::schedules::list(State(state.clone()), viewer.caller.clone())
        .await
        .map(|j| j.0.schedules)
        .unwrap_or_default();
    let actions = next_actions(state, viewer, &graphs, &findings).await?;
    let body = html! {
        h1 { "Posture" }
        dl.kpis {
            div.kpi data-testid="kpi-runs" {
                dt { "Runs, last 24 h" }
                dd { (total) " " small { @match pass_rate { Some(rate) => { (format!("{rate:.0}")) "% passed" }, None => "none finished" } } }
            }
            div.kpi data-testid="kpi-coverage" {
                dt { "Coverage across modules" }
                dd { @match coverage_pct { Some(p) => { (p) "%" " " small { (covered) " of " (coverage.len()) " modules" } }, None => "no modules" } }
            }
            div.kpi data-testid="kpi-active" {
                dt { "Active runs" }
                dd data-live="active-count" { (active_count) }
            }
            div.kpi data-testid="kpi-findings" {
                dt { "Open findings" }
                dd {
                    (by_severity.values().sum::<usize>()) " "
                    small { @for (severity, n) in &by_severity { span class={ "badge severity-" (severity) } { (n) " " (severity) } " " } }
                }
            }
        }
        div.layout {
            div {
                section aria-labelledby="next-h" {
                    h2 id="next-h" { "Next actions for you" }
                    @if actions.is_empty() {
                        p data-testid="next-actions" { "Nothing waits for you." }
                    } @else {
                        ol.next-actions data-testid="next-actions" {
                            @for a in &actions {
                                li data-testid="next-action" { a href=(a.href) { (a.text) } " " (a.detail) }
                            }
                        }
                    }
                }
                section aria-labelledby="coverage-h" {
                    h2 id="coverage-h" { "Coverage by module" }
                    p.muted { "The share of each module's suites with a passing run in the last 24 hours." }
                    @if coverage.is_empty() {
                        p { "No modules in the configured repositories' graphs." }
                    } @else {
                        ul.bars {
                            @for (module, ok, all) in &coverage {
                                li {
                                    span { (module) }
                                    meter min="0" max=(all.max(&1)) value=(ok) aria-label={ "Coverage of " (module) } { (ok) " of " (all) }
                                    span { (ok) "/" (all) }
                                }
                            }
                        }
                    }
                }
                section aria-labelledby="sched-h" {
                    h2 id="sched-h" { "Upcoming schedules" }
                    @if schedules.is_empty() {
                        p { "No schedules." }
                    } @else {
                        ul.plain {
                            @for s in &schedules {
                                li { strong { (s.name) } " on " (s.repo) "/" (s.branch) ": next " (s.next_due_at.clone().unwrap_or_else(|| "never".into())) " (" (s.suites.join(", ")) ")" }
                            }
                        }
                    }
                }
            }
            aside aria-labelledby="active-h" {
                h2 id="active-h" { "Active runs" }
                ul.plain data-live="active-runs" {
                    @if active.is_empty() { li { "No active runs." } }
                    @for run in &active {
                        li { a href={ "/runs/" (run.id) } { (run.suite) " (" (run.environment) ")" } " " (run.state.as_str()) }
                    }
                }
            }
        }
    };
    Ok(layout::page(Some(viewer), Nav::Home, "Home", None, body))
}

/// The most proposal actions the home page lists (the oldest first); the proposals list
/// shows the rest.
const MAX_PROPOSAL_ACTIONS: usize = 25;

/// What the signed-in person should do next, most pressing first: proposals waiting for
/// their verdict (oldest first, with the tier and why), their lapsed approvals, evidence
/// missing on their team's proposals, findings on their components; for admins, a
/// calibration warning.
async fn next_actions(
    state: &AppState,
    viewer: &Viewer,
    graphs: &[(String, Result<Value, String>)],
    findings: &[countersign_store::Finding],
) -> Result<Vec<Action>, ApiError> {
    let me = viewer.caller.principal.to_string();
    let mut actions = Vec::new();
    let judges = matches!(viewer.caller.role, Role::Approver | Role::Admin)
        && viewer.caller.principal.is_human();
    for (wanted, evidence) in [
        (ProposalState::AwaitingApproval, false),
        (ProposalState::AwaitingEvidence, true),
    ] {
        // Oldest first, read that way: with more waiting than the limit, the ones that
        // waited longest are the ones shown.
        let open = state
            .store
            .proposals(&ProposalFilter {
                state: Some(wanted),
                limit: 200,
                oldest_first: true,
                ..ProposalFilter::default()
            })
            .await?;
        // Weighed a chunk at a time (two queries a chunk, for the decisions and verdicts),
        // stopping once the page of actions is full.
        for chunk in open.chunks(MAX_PROPOSAL_ACTIONS) {
            if actions.len() >= MAX_PROPOSAL_ACTIONS {
                break;
            }
            for view in crate::proposals::load_views(&state.store, chunk).await? {
                if actions.len() >= MAX_PROPOSAL_ACTIONS {
                    break;
                }
                let eligible = view.eligible_approvers.contains(&me);
                if !eligible {
                    continue;
                }
                let standing = view
                    .approvals
                    .iter()
                    .any(|a| a.approver == me && !a.lapsed && a.head == view.head);
                let lapsed = view.approvals.iter().any(|a| a.approver == me && a.lapsed);
                let href = format!("/proposals/{}", view.id);
                if evidence {
                    actions.push(Action {
                    href,
                    text: format!("Evidence missing for {}", view.title),
                    detail: html! { (tier_badge(&view.tier)) " " small.muted { "planned suites have no accepted evidence for head " (view.head.chars().take(12).collect::<String>()) } },
                });
                } else if judges && !standing {
                    let why: Vec<String> = view
                        .open_requirements
                        .iter()
                        .filter(|r| r.eligible.contains(&me))
                        .map(|r| format!("{} needs {} more", r.subject, r.needed))
                        .collect();
                    let text = if lapsed {
                        format!(
                            "Your approval of {} lapsed when its head moved: review it again",
                            view.title
                        )
                    } else {
                        format!("Approve or reject {}", view.title)
                    };
                    actions.push(Action {
                    href,
                    text,
                    detail: html! { (tier_badge(&view.tier)) " " small.muted { (if why.is_empty() { format!("{} of {} approvals", view.approvals_counted, view.approvals_required) } else { why.join("; ") }) " · opened " (view.created_at) } },
                });
                }
            }
        }
    }
    let mine = owner_refs(graphs, viewer);
    for finding in findings.iter().filter(|f| f.state.is_live()) {
        if finding.owners.iter().any(|o| mine.contains(o)) {
            actions.push(Action {
                href: format!("/findings/{}", finding.id),
                text: format!("Finding {} on {}: {} {}", finding.id, finding.component, finding.kind.as_str(), finding.test),
                detail: html! { span class={ "badge severity-" (finding.severity.as_str()) } { (finding.severity.as_str()) } },
            });
        }
    }
    if viewer.caller.role == Role::Admin {
        let recent = state
            .store
            .proposals(&ProposalFilter {
                limit: 500,
                ..ProposalFilter::default()
            })
            .await?;
        if !recent.is_empty() {
            let human = recent.iter().filter(|p| !p.tier.is_automated()).count();
            let share = human as f64 / recent.len() as f64;
            if share > state.console.human_share_warning {
                actions.push(Action {
                    href: "/calibration".into(),
                    text: format!(
                        "Calibration: {:.0}% of the last {} proposals needed people (above {:.0}%)",
                        share * 100.0,
                        recent.len(),
                        state.console.human_share_warning * 100.0
                    ),
                    detail: html! { small.muted { "the policy may route too much to humans" } },
                });
            }
        }
    }
    Ok(actions)
}
