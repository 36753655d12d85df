//! The reading pages: runs, findings, schedules, the graph, the audit log and calibration.
//! Each reads through the API handler of the same data (`/v1/runs`, `/v1/findings`,
//! `/v1/schedules`, `/v1/repos/{repo}/graph`, the log), called with the viewer as caller.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use countersign_store::ProposalFilter;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Flash, Nav, commit, tier_badge};
use super::{Viewer, error_page, form_caller, html, viewer_or_signin};
use crate::AppState;
use crate::auth::Role;
use crate::error::ApiError;

/// Renders `page` for the signed-in viewer of `here`.
async fn signed_in<F, Fut>(state: &AppState, headers: &HeaderMap, here: &str, page: F) -> Response
where
    F: FnOnce(Viewer) -> Fut,
    Fut: std::future::Future<Output = (Viewer, Result<Markup, ApiError>)>,
{
    let viewer = match viewer_or_signin(state, headers, here).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let (viewer, result) = page(viewer).await;
    match result {
        Ok(markup) => html(StatusCode::OK, markup),
        Err(error) => error_page(Some(&viewer), &error),
    }
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct RunsPageQuery {
    state: Option<String>,
    suite: Option<String>,
    before: Option<String>,
}

/// `GET /runs`.
pub(crate) async fn runs(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RunsPageQuery>,
) -> Response {
    signed_in(&state, &headers, "/runs", |viewer| async {
        let result = runs_page(&state, &viewer, q).await;
        (viewer, result)
    })
    .await
}

fn filled(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

async fn runs_page(
    state: &AppState,
    viewer: &Viewer,
    q: RunsPageQuery,
) -> Result<Markup, ApiError> {
    let query = crate::runs::RunsQuery {
        state: filled(q.state.clone()),
        suite: filled(q.suite.clone()),
        before: filled(q.before),
        limit: Some(50),
        ..crate::runs::RunsQuery::default()
    };
    let view = crate::runs::list(
        State(state.clone()),
        viewer.caller.clone(),
        Ok(Query(query)),
    )
    .await?
    .0;
    let next = view.next_before.as_ref().map(|b| {
        let mut href = format!("/runs?before={}", super::utf8_percent(b));
        if let Some(s) = filled(q.state.clone()) {
            href.push_str(&format!("&state={}", super::utf8_percent(&s)));
        }
        if let Some(s) = filled(q.suite.clone()) {
            href.push_str(&format!("&suite={}", super::utf8_percent(&s)));
        }
        href
    });
    let body = html! {
        h1 { "Runs" }
        form.filters method="get" action="/runs" {
            div {
                label for="r-state" { "State" }
                select id="r-state" name="state" {
                    option value="" { "any" }
                    @for s in ["queued", "running", "finished"] {
                        option value=(s) selected[q.state.as_deref() == Some(s)] { (s) }
                    }
                }
            }
            div {
                label for="r-suite" { "Suite" }
                input id="r-suite" name="suite" type="text" value=(q.suite.clone().unwrap_or_default());
            }
            div { button type="submit" { "Filter" } }
        }
        @if view.runs.is_empty() { p { "No runs." } } @else {
            div.table-wrap { table {
                thead { tr { th scope="col" { "Run" } th scope="col" { "Suite" } th scope="col" { "For" } th scope="col" { "State" } th scope="col" { "Tests" } th scope="col" { "Queued" } } }
                tbody {
                    @for run in &view.runs {
                        tr {
                            td { a href={ "/runs/" (run.id) } { (run.id) } }
                            td { code { (run.suite) } " " small.muted { (run.environment) } }
                            td {
                                @if let Some(p) = &run.proposal { a href={ "/proposals/" (p) } { (p) } }
                                @if let Some(b) = &run.branch { "branch " (b) }
                            }
                            td { (outcome(&run.state, run.outcome.as_deref())) }
                            td { @if let Some(t) = &run.tests { (t.passed) " passed, " (t.failed) " failed" } }
                            td { (run.queued_at) }
                        }
                    }
                }
            } }
        }
        (layout::pager(next))
    };
    Ok(layout::page(Some(viewer), Nav::Runs, "Runs", None, body))
}

fn outcome(state: &str, outcome: Option<&str>) -> Markup {
    match outcome {
        Some(o) => html! { span class={ "badge outcome-" (o) } { (o) } },
        None => html! { span.badge { (state) } },
    }
}

/// `GET /runs/{id}`.
pub(crate) async fn run(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let here = format!("/runs/{id}");
    signed_in(&state, &headers, &here, |viewer| async {
        let result = async {
            let run = crate::runs::show(State(state.clone()), viewer.caller.clone(), Path(id.clone())).await?.0;
            let body = html! {
                h1 { "Run " (run.id) }
                dl.kpis {
                    div.kpi { dt { "Outcome" } dd { (outcome(&run.state, run.outcome.as_deref())) } }
                    div.kpi { dt { "Suite" } dd { code { (run.suite) } } }
                    div.kpi { dt { "Environment" } dd { (run.environment) } }
                    div.kpi { dt { "Tests" } dd { @match &run.tests { Some(t) => { (t.passed) " passed, " (t.failed) " failed, " (t.skipped) " skipped" }, None => "no results" } } }
                }
                h2 { "Details" }
                div.table-wrap { table {
                    tbody {
                        tr { th scope="row" { "Repository" } td { (run.repo) " (" (run.repository) ")" } }
                        tr { th scope="row" { "Commit" } td { (commit(&run.commit)) } }
                        tr { th scope="row" { "For" } td {
                            @if let Some(p) = &run.proposal { "proposal " a href={ "/proposals/" (p) } { (p) } }
                            @if let Some(b) = &run.branch { "branch " (b) }
                            @if let Some(c) = &run.cause { " (" (c) ")" }
                        } }
                        tr { th scope="row" { "Runner" } td { (run.runner.clone().unwrap_or_else(|| "none yet".into())) " · attempt " (run.attempt) } }
                        tr { th scope="row" { "Queued" } td { (run.queued_at) } }
                        tr { th scope="row" { "Started" } td { (run.started_at.clone().unwrap_or_default()) } }
                        tr { th scope="row" { "Finished" } td { (run.finished_at.clone().unwrap_or_default()) } }
                        tr { th scope="row" { "Duration" } td { @if let Some(ms) = run.duration_ms { (ms) " ms" } } }
                    }
                } }
                h2 { "Evidence" }
                @if run.envelopes.is_empty() { p { "No evidence submitted." } } @else {
                    ul.plain { @for e in &run.envelopes { li { code { (e) } } } }
                }
            };
            Ok(layout::page(Some(&viewer), Nav::Runs, &format!("Run {}", run.id), None, body))
        }
        .await;
        (viewer, result)
    })
    .await
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct FindingsPageQuery {
    state: Option<String>,
    before: Option<String>,
}

/// `GET /findings`.
pub(crate) async fn findings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<FindingsPageQuery>,
) -> Response {
    signed_in(&state, &headers, "/findings", |viewer| async {
        let result = async {
            let query = crate::findings::FindingsQuery {
                state: filled(q.state.clone()),
                before: filled(q.before.clone()),
                limit: Some(50),
                ..crate::findings::FindingsQuery::default()
            };
            let view = crate::findings::list(State(state.clone()), viewer.caller.clone(), Ok(Query(query))).await?.0;
            let next = view.next_before.as_ref().map(|b| format!("/findings?before={}", super::utf8_percent(b)));
            let body = html! {
                h1 { "Findings" }
                form.filters method="get" action="/findings" {
                    div {
                        label for="f-state" { "State" }
                        select id="f-state" name="state" {
                            option value="" { "any" }
                            @for s in ["open", "reopened", "verified"] {
                                option value=(s) selected[q.state.as_deref() == Some(s)] { (s) }
                            }
                        }
                    }
                    div { button type="submit" { "Filter" } }
                }
                @if view.findings.is_empty() { p { "No findings." } } @else {
                    div.table-wrap { table {
                        thead { tr { th scope="col" { "Finding" } th scope="col" { "Severity" } th scope="col" { "Component" } th scope="col" { "Test" } th scope="col" { "State" } th scope="col" { "Fix" } } }
                        tbody {
                            @for f in &view.findings {
                                tr {
                                    td { a href={ "/findings/" (f.id) } { (f.id) } " " small.muted { (f.kind) } }
                                    td { span class={ "badge severity-" (f.severity) } { (f.severity) } }
                                    td { (f.component) }
                                    td { code { (f.suite) } " " (f.test) }
                                    td { (f.state) }
                                    td { @for p in &f.fixes { a href={ "/proposals/" (p) } { (p) } " " } }
                                }
                            }
                        }
                    } }
                }
                (layout::pager(next))
            };
            Ok(layout::page(Some(&viewer), Nav::Findings, "Findings", None, body))
        }
        .await;
        (viewer, result)
    })
    .await
}

/// `GET /findings/{id}`: the loop: the failing evidence, the fix proposed, its verification.
pub(crate) async fn finding(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let here = format!("/findings/{id}");
    signed_in(&state, &headers, &here, |viewer| async {
        let result = async {
            let f = crate::findings::show(State(state.clone()), viewer.caller.clone(), Path(id.clone())).await?.0;
            let body = html! {
                h1 { "Finding " (f.id) }
                dl.kpis {
                    div.kpi { dt { "Severity" } dd { span class={ "badge severity-" (f.severity) } { (f.severity) } } }
                    div.kpi { dt { "State" } dd { (f.state) } }
                    div.kpi { dt { "Component" } dd { small { (f.component) } } }
                    div.kpi { dt { "Seen" } dd { (f.observations) " times" } }
                }
                p { (f.kind) " of " code { (f.suite) } " " (f.test) " on " (f.repo) "/" (f.branch) ", first seen " (f.first_seen) ", last " (f.last_seen) "." }
                p { "Owners: " (f.owners.join(", ")) }
                h2 { "Failing evidence" }
                pre { (serde_json::to_string_pretty(&f.evidence).unwrap_or_default()) }
                h2 { "Fix" }
                @if f.fixes.is_empty() { p { "No proposal fixes it yet." } } @else {
                    ul.plain { @for p in &f.fixes { li { a href={ "/proposals/" (p) } { (p) } } } }
                }
                h2 { "Verification" }
                @match &f.verification {
                    Some(v) => pre { (serde_json::to_string_pretty(v).unwrap_or_default()) },
                    None => p { "Not verified yet: a fix is verified when its suites pass again on the protected branch after the merge." },
                }
            };
            Ok(layout::page(Some(&viewer), Nav::Findings, &format!("Finding {}", f.id), None, body))
        }
        .await;
        (viewer, result)
    })
    .await
}

/// `GET /schedules`.
pub(crate) async fn schedules(State(state): State<AppState>, headers: HeaderMap) -> Response {
    signed_in(&state, &headers, "/schedules", |viewer| async {
        let result = async {
            let view = crate::schedules::list(State(state.clone()), viewer.caller.clone()).await?.0;
            let body = html! {
                h1 { "Schedules" }
                @if view.schedules.is_empty() { p { "No schedules in the configured repositories." } } @else {
                    div.table-wrap { table {
                        thead { tr { th scope="col" { "Schedule" } th scope="col" { "Branch" } th scope="col" { "When" } th scope="col" { "Suites" } th scope="col" { "Next" } th scope="col" { "Last fired" } } }
                        tbody {
                            @for s in &view.schedules {
                                tr {
                                    td { strong { (s.name) } " " small.muted { (s.repo) } }
                                    td { (s.branch) " " (commit(&s.commit)) }
                                    td { code { (s.cron) } " " (s.timezone) }
                                    td { (s.suites.join(", ")) @if !s.unrunnable.is_empty() { br; small { "no runner for: " (s.unrunnable.join(", ")) } } }
                                    td { (s.next_due_at.clone().unwrap_or_else(|| "never".into())) }
                                    td { @if let Some(f) = &s.last_fired { (f.fired_at) " (" (f.runs) " runs)" } @else { "never" } }
                                }
                            }
                        }
                    } }
                }
            };
            Ok(layout::page(Some(&viewer), Nav::Schedules, "Schedules", None, body))
        }
        .await;
        (viewer, result)
    })
    .await
}

/// `GET /graph`: components with their criticality, owners, suites and coverage, drawn.
pub(crate) async fn graph(State(state): State<AppState>, headers: HeaderMap) -> Response {
    signed_in(&state, &headers, "/graph", |viewer| async {
        let result = async {
            let graphs = super::home::graphs(&state, &viewer).await;
            let body = html! {
                h1 { "System graph" }
                @for (repo, graph) in &graphs {
                    section aria-labelledby={ "g-" (repo) } {
                        h2 id={ "g-" (repo) } { (repo) }
                        @match graph {
                            Err(why) => p.muted { "Cannot be read: " (why) },
                            Ok(graph) => (graph_section(repo, graph)),
                        }
                    }
                }
            };
            Ok(layout::page(Some(&viewer), Nav::Graph, "Graph", None, body))
        }
        .await;
        (viewer, result)
    })
    .await
}

fn graph_section(repo: &str, graph: &serde_json::Value) -> Markup {
    let nodes: Vec<&serde_json::Value> = graph["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| !matches!(n["kind"].as_str(), Some("user") | Some("group")))
        .collect();
    let index: BTreeMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n["ref"].as_str().map(|r| (r, i)))
        .collect();
    let drawn: Vec<super::graph_svg::Node> = nodes
        .iter()
        .map(|n| {
            let criticality = n["criticality"].as_str().unwrap_or("");
            super::graph_svg::Node {
                label: format!("{} ({criticality})", n["name"].as_str().unwrap_or("?")),
                classes: criticality.to_owned(),
            }
        })
        .collect();
    let edges: Vec<(usize, usize)> = graph["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let from = e["from"].as_str().or_else(|| e["source"].as_str())?;
            let to = e["to"].as_str().or_else(|| e["target"].as_str())?;
            Some((*index.get(from)?, *index.get(to)?))
        })
        .collect();
    let drawing = super::graph_svg::draw(
        &format!("graph-{repo}"),
        &format!("The system graph of {repo}: components and their dependencies"),
        &drawn,
        &edges,
    );
    html! {
        @if let Some(d) = drawing { figure.graph { (d) } }
        div.table-wrap { table {
            thead { tr { th scope="col" { "Node" } th scope="col" { "Criticality" } th scope="col" { "Owner" } th scope="col" { "Suites" } th scope="col" { "Surfaces" } } }
            tbody {
                @for n in &nodes {
                    tr {
                        td { code { (n["ref"].as_str().unwrap_or("")) } }
                        td { (n["criticality"].as_str().unwrap_or("")) }
                        td { (n["owner"].as_str().unwrap_or("")) }
                        td { (list(&n["suites"])) }
                        td { (list(&n["surfaces"])) }
                    }
                }
            }
        } }
    }
}

fn list(value: &serde_json::Value) -> String {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct AuditQuery {
    before: Option<u64>,
}

/// `GET /audit`: the log's entries newest first, the latest checkpoint, and for admins the
/// verify action.
pub(crate) async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Response {
    signed_in(&state, &headers, "/audit", |viewer| async {
        let result = audit_page(&state, &viewer, q.before, None).await;
        (viewer, result)
    })
    .await
}

async fn audit_page(
    state: &AppState,
    viewer: &Viewer,
    before: Option<u64>,
    flash: Option<Flash>,
) -> Result<Markup, ApiError> {
    const PAGE: u64 = 50;
    let size = state.store.log_size().await?;
    let end = before.unwrap_or(size).min(size);
    let start = end.saturating_sub(PAGE);
    let mut entries = state.store.entries(start..end).await?;
    entries.reverse();
    let checkpoint = state.store.latest_checkpoint().await?;
    let last_check = state.store.last_log_check(false).await?;
    let next = (start > 0).then(|| format!("/audit?before={start}"));
    let body = html! {
        h1 { "Audit log" }
        dl.kpis {
            div.kpi { dt { "Entries" } dd { (size) } }
            div.kpi { dt { "Latest checkpoint" } dd { @match &checkpoint { Some(c) => { (c.size) " " small { (c.created_at) } }, None => "none" } } }
            div.kpi data-testid="last-check" {
                dt { "Last check by this server" }
                dd { @match &last_check {
                    Some(c) if c.ok => { "passed " small { (crate::runs::rfc3339_ms(c.checked_at_ms)) " by " (c.checked_by) } },
                    Some(c) => { span.badge.severity-critical { "FAILED" } " " small { (crate::runs::rfc3339_ms(c.checked_at_ms)) " by " (c.checked_by) } },
                    None => { small { "never: an admin's Verify runs one" } },
                } }
            }
        }
        @if let Some(c) = &last_check {
            p data-testid="last-check-detail" {
                (if c.ok { "The last check found: " } else { "The last check FAILED: " }) (c.detail)
                @if let Some(size) = c.size { " (checkpoint of size " (size) ")" } "."
            }
        }
        p.muted {
            "A check verifies the whole stored log against the latest signed checkpoint, and that checkpoint against the one the "
            "previous passing check saw (no rollback, no fork), as " code { "countersign log monitor" } " does. It is this server "
            "checking its own database: run " code { "countersign log monitor" } " elsewhere, with its own state, for a check "
            "that does not trust it."
        }
        @if let Some(c) = &checkpoint {
            details { summary { "The signed checkpoint" } pre { (c.signed_note) } }
        }
        @if viewer.caller.role == Role::Admin {
            form method="post" action="/audit/verify" {
                input type="hidden" name="csrf" value=(viewer.csrf);
                button type="submit" data-testid="verify-button" { "Verify the whole log against the latest checkpoint" }
            }
        }
        h2 { "Entries, newest first" }
        ol.plain data-testid="log-entries" reversed start=(end) {
            @for entry in &entries {
                li data-testid="log-entry" {
                    "#" (entry.index) " "
                    @match entry.event() {
                        Ok(e) => {
                            strong { (serde_json::to_value(e.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()) }
                            " " a href={ "/proposals/" (e.subject) } { (e.subject) } " by " (e.actor) " at " (e.at)
                        },
                        Err(_) => span.muted { "an entry that is not a canonical event" },
                    }
                    " · "
                    @match &checkpoint {
                        Some(c) if entry.index < c.size => span { "included" },
                        _ => span.muted { "not yet in a signed checkpoint" },
                    }
                }
            }
        }
        (layout::pager(next))
    };
    Ok(layout::page(Some(viewer), Nav::Audit, "Audit", flash, body))
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /audit/verify`: admins verify the stored log against its latest checkpoint with
/// the log key's verifier.
pub(crate) async fn verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let viewer = match form_caller(&state, &headers, &form.csrf).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    if viewer.caller.role != Role::Admin {
        return super::forbidden(
            Some(&viewer),
            "only an admin verifies the log from the console",
        );
    }
    let by = viewer.caller.principal.to_string();
    let flash = match crate::log::check_own_log(&state, &by).await {
        Ok(None) => {
            Flash::error("this server has no log key, so it has no checkpoint to verify against")
        }
        Ok(Some(check)) if check.ok => Flash::ok(format!("The log verifies: {}.", check.detail)),
        Ok(Some(check)) => Flash::error(format!("The log does NOT verify: {}", check.detail)),
        Err(error) => return error_page(Some(&viewer), &error),
    };
    match audit_page(&state, &viewer, None, Some(flash)).await {
        Ok(markup) => html(StatusCode::OK, markup),
        Err(error) => error_page(Some(&viewer), &error),
    }
}

/// `GET /calibration`: the tier share over time, the approval load per person, the last
/// replay.
pub(crate) async fn calibration(State(state): State<AppState>, headers: HeaderMap) -> Response {
    signed_in(&state, &headers, "/calibration", |viewer| async {
        let result = calibration_page(&state, &viewer).await;
        (viewer, result)
    })
    .await
}

async fn calibration_page(state: &AppState, viewer: &Viewer) -> Result<Markup, ApiError> {
    let recent = state
        .store
        .proposals(&ProposalFilter {
            limit: 1000,
            ..ProposalFilter::default()
        })
        .await?;
    // Tier share per day (the proposal's creation date).
    let mut by_day: BTreeMap<String, BTreeMap<&'static str, usize>> = BTreeMap::new();
    for p in &recent {
        let day: String = p.created_at.chars().take(10).collect();
        *by_day
            .entry(day)
            .or_default()
            .entry(p.tier.as_str())
            .or_default() += 1;
    }
    // Approval load: who gave how many standing verdicts on these proposals.
    let mut load: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let weighed: Vec<&str> = recent.iter().take(300).map(|p| p.id.as_str()).collect();
    for a in state.store.approvals_of(&weighed).await? {
        let entry = load.entry(a.approver.clone()).or_default();
        match a.verdict {
            countersign_lifecycle::Verdict::Approve => entry.0 += 1,
            countersign_lifecycle::Verdict::Reject => entry.1 += 1,
        }
    }
    let human = recent.iter().filter(|p| !p.tier.is_automated()).count();
    let share = (!recent.is_empty()).then(|| human as f64 * 100.0 / recent.len() as f64);
    let body = html! {
        h1 { "Calibration" }
        dl.kpis {
            div.kpi { dt { "Proposals read" } dd { (recent.len()) } }
            div.kpi { dt { "Needing people" } dd { @match share { Some(s) => { (format!("{s:.0}")) "%" }, None => "none" } } }
            div.kpi { dt { "Warning above" } dd { (format!("{:.0}", state.console.human_share_warning * 100.0)) "%" } }
        }
        h2 { "Tier share by day" }
        @if by_day.is_empty() { p { "No proposals yet." } } @else {
            div.table-wrap { table {
                thead { tr { th scope="col" { "Day" } @for t in countersign_policy::Tier::ALL { th scope="col" { (tier_badge(t.as_str())) } } th scope="col" { "Needing people" } } }
                tbody {
                    @for (day, tiers) in by_day.iter().rev() {
                        @let total: usize = tiers.values().sum();
                        @let people: usize = countersign_policy::Tier::ALL.iter().filter(|t| !t.is_automated()).map(|t| tiers.get(t.as_str()).copied().unwrap_or(0)).sum();
                        tr {
                            th scope="row" { (day) }
                            @for t in countersign_policy::Tier::ALL { td { (tiers.get(t.as_str()).copied().unwrap_or(0)) } }
                            td { meter min="0" max=(total.max(1)) value=(people) aria-label={ "Share needing people on " (day) } { (people) " of " (total) } " " (people) "/" (total) }
                        }
                    }
                }
            } }
        }
        h2 { "Approval load per person" }
        @if load.is_empty() { p { "No verdicts yet." } } @else {
            div.table-wrap { table {
                thead { tr { th scope="col" { "Person" } th scope="col" { "Approvals" } th scope="col" { "Rejections" } } }
                tbody { @for (who, (a, r)) in &load { tr { th scope="row" { (who) } td { (a) } td { (r) } } } }
            } }
        }
        h2 { "Last replay" }
        p { "No replay is recorded on this server: " code { "countersign replay" } " re-decides recorded proposals under a candidate policy and prints the tier changes." }
    };
    Ok(layout::page(
        Some(viewer),
        Nav::Calibration,
        "Calibration",
        None,
        body,
    ))
}
