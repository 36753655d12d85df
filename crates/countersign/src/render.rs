//! Text renderings for people. JSON output goes through `report` instead.

use std::fmt::Write;

use countersign_graph::Impact;
use countersign_graph::Severity;
use countersign_graph::check::CheckReport;

use countersign_decide::evaluate::Evaluation;
use countersign_decide::report::{EvaluationReport, EvidenceReport};

/// The full text of an evaluation: tier, why, impact, approvers, plan, versions.
pub fn evaluation(evaluation: &Evaluation) -> String {
    let report = &evaluation.report;
    let mut out = String::new();
    if let (Some(base), Some(head)) = (&report.change.base, &report.change.head) {
        let _ = writeln!(
            out,
            "change: {}..{}, judged by the rules of {}",
            short(base),
            short(head),
            short(base)
        );
    }
    let _ = writeln!(out, "{}\n", authority(report));
    out.push_str(&countersign_policy::explain_text(&evaluation.decision));
    // Only when the change's commits took approvers out: then say whom and why (the
    // server's authorship explanation).
    let approvers = &report.approvers;
    if !approvers.excluded_as_authors.is_empty() {
        let _ = writeln!(
            out,
            "not eligible, as authors of the change: {}",
            approvers.excluded_as_authors.join(", ")
        );
        for line in &approvers.authorship {
            let _ = writeln!(out, "  {line}");
        }
    }
    out.push('\n');
    out.push_str(&impact(&evaluation.impact));
    out.push('\n');
    let plan = &report.validation_plan;
    let _ = writeln!(out, "validation plan (dependents to depth {}):", plan.depth);
    if plan.suites.is_empty() {
        let _ = writeln!(out, "  no suite exercises the affected nodes");
    }
    for suite in &plan.suites {
        let _ = writeln!(out, "  {}", suite.suite);
        for why in &suite.why {
            let _ = writeln!(out, "      {why}");
        }
        if !suite.self_validated_by.is_empty() {
            let _ = writeln!(
                out,
                "      self-validated: the change edits this suite's own files ({}); its evidence cannot earn an automated tier unless its base version passes against the head",
                suite.self_validated_by.join(", ")
            );
        }
    }
    if !plan.uncovered.is_empty() {
        let _ = writeln!(
            out,
            "  touched nodes no suite exercises: {}",
            plan.uncovered.join(", ")
        );
    }
    if let Some(evidence) = &report.evidence {
        out.push('\n');
        out.push_str(&evidence_text(evidence));
    }
    if let Some(policy_change) = &report.policy_change {
        out.push_str(&crate::assurance::render_policy_change(policy_change));
    }
    if let Some(graph_change) = &report.graph_change {
        let _ = writeln!(
            out,
            "\ngraph edges: the change's workspace manifests alter the graph once it lands \
             (code, not rules: this decision used the base's graph)"
        );
        for edge in &graph_change.edges_added {
            let _ = writeln!(out, "  + {edge}");
        }
        for edge in &graph_change.edges_removed {
            let _ = writeln!(out, "  - {edge}");
        }
    }
    if let Some(what_if) = &report.what_if {
        out.push('\n');
        out.push_str(&what_if_text(what_if));
    }
    let _ = writeln!(
        out,
        "\ngraph {}  policy {}",
        short(&report.graph_version),
        short(&report.policy_version)
    );
    out
}

/// The evidence section: which envelopes counted, coverage, failures, vulnerabilities.
fn evidence_text(evidence: &EvidenceReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "evidence: {} accepted, {} refused",
        evidence.accepted.len(),
        evidence.refused.len()
    );
    for a in &evidence.accepted {
        let _ = writeln!(
            out,
            "  accepted ({})  {}  runner {}, suite {}: {}",
            a.binds_to, a.file, a.runner, a.suite, a.summary
        );
    }
    for r in &evidence.refused {
        let _ = writeln!(out, "  REFUSED  {}  {}: {}", r.file, r.reason, r.message);
    }
    let coverage = &evidence.coverage;
    let _ = writeln!(
        out,
        "coverage: {}/{} planned suite(s) passed ({}%)",
        coverage.passed, coverage.planned, coverage.percent
    );
    for node in &coverage.nodes {
        let _ = writeln!(
            out,
            "  {}  {}/{} ({}%)  planned: {}",
            node.node,
            node.passed.len(),
            node.planned.len(),
            node.percent,
            node.planned.join(", ")
        );
    }
    for suite in &evidence.suites {
        let _ = writeln!(
            out,
            "  suite {} {}{}",
            suite.suite,
            suite.status,
            if suite.planned { "" } else { " (not planned)" }
        );
        if suite.status == "no_tests" {
            let _ = writeln!(out, "    {}", suite.explanation);
        }
    }
    if !evidence.failed_suites.is_empty() {
        let _ = writeln!(out, "failed suites: {}", evidence.failed_suites.join(", "));
    }
    if !evidence.regressions.is_empty() {
        let _ = writeln!(
            out,
            "regressions (pass at base; fail, or missing from the run, at head):"
        );
        for r in &evidence.regressions {
            let how = if r.kind == "missing" {
                " (missing: deleted, renamed or skipped)"
            } else {
                " (failing)"
            };
            let _ = writeln!(out, "  {}: {}{how}", r.suite, r.test);
        }
    }
    if !evidence.newly_passing.is_empty() {
        let _ = writeln!(
            out,
            "newly passing (fail at base, pass at head; a fix or a weakened test):"
        );
        for n in &evidence.newly_passing {
            let _ = writeln!(out, "  {}: {}", n.suite, n.test);
        }
    }
    if !evidence.base_suite_passed.is_empty() {
        let _ = writeln!(
            out,
            "base version passed against the head: {}",
            evidence.base_suite_passed.join(", ")
        );
    }
    if !evidence.vulnerabilities.is_empty() {
        let _ = writeln!(out, "vulnerabilities:");
        for v in &evidence.vulnerabilities {
            let _ = writeln!(
                out,
                "  {}{} {} in {}{}: {}",
                if v.blocking { "[blocks] " } else { "" },
                v.id,
                v.severity.as_deref().unwrap_or("(no severity)"),
                v.node.as_deref().unwrap_or("no known node"),
                v.location
                    .as_deref()
                    .map(|at| format!(" at {at}"))
                    .unwrap_or_default(),
                v.explanation
            );
        }
    }
    out
}

fn authority(report: &EvaluationReport) -> String {
    let approvers = &report.approvers;
    match approvers.required {
        0 if approvers.notify.is_empty() => {
            "authority: the system, with a recorded decision".into()
        }
        0 => format!(
            "authority: the system, notifying {}",
            approvers.notify.join(", ")
        ),
        1 => "authority: one named human from the owning team".into(),
        n => format!("authority: {n} distinct humans"),
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Touched nodes, blast radius and the sensitive facts of an impact.
pub fn impact(impact: &Impact) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "impact: {} file(s), {} node(s) touched, {} reached{}",
        impact.changed_paths.len(),
        impact.touched.len(),
        impact.blast_radius.len(),
        impact
            .max_criticality_reached
            .map(|c| format!(", highest criticality {}", c.as_str()))
            .unwrap_or_default()
    );
    for touched in &impact.touched {
        let _ = writeln!(
            out,
            "  touched  {} ({})  {}",
            touched.entity,
            touched.criticality.as_str(),
            touched.paths.join(", ")
        );
    }
    let chains = impact.chains(countersign_graph::impact::CHAIN_SHOWN);
    for (reached, chain) in impact.blast_radius.iter().zip(&chains) {
        let _ = writeln!(
            out,
            "  reached  {} ({})  via {}",
            reached.entity,
            reached.criticality.as_str(),
            countersign_decide::report::chain_text(chain, |e| e.name.clone())
        );
    }
    let list = |items: Vec<String>| items.join(", ");
    if !impact.surfaces_touched.is_empty() {
        let _ = writeln!(
            out,
            "  surfaces touched: {}",
            list(
                impact
                    .surfaces_touched
                    .iter()
                    .map(|s| s.as_str().into())
                    .collect()
            )
        );
    }
    let reached_only: Vec<String> = impact
        .surfaces_reached
        .difference(&impact.surfaces_touched)
        .map(|s| s.as_str().into())
        .collect();
    if !reached_only.is_empty() {
        let _ = writeln!(out, "  surfaces reached: {}", list(reached_only));
    }
    let refs = |entities: &[countersign_graph::EntityRef]| {
        list(entities.iter().map(ToString::to_string).collect())
    };
    if !impact.critical_reached.is_empty() {
        let _ = writeln!(out, "  critical nodes: {}", refs(&impact.critical_reached));
    }
    if !impact.revenue_path_reached.is_empty() {
        let _ = writeln!(
            out,
            "  revenue path: {}",
            refs(&impact.revenue_path_reached)
        );
    }
    if !impact.data_stores_touched.is_empty() {
        let _ = writeln!(
            out,
            "  data stores touched: {}",
            refs(&impact.data_stores_touched)
        );
    }
    if !impact.governance_paths.is_empty() {
        let _ = writeln!(
            out,
            "  governance files: {}",
            list(impact.governance_paths.clone())
        );
    }
    if !impact.unmapped.is_empty() {
        let _ = writeln!(out, "  unmapped files: {}", list(impact.unmapped.clone()));
    }
    if !impact.owners.is_empty() {
        let _ = writeln!(out, "  owners: {}", refs(&impact.owners));
    }
    out
}

/// `graph check` for people: one line per finding, then coverage.
pub fn check_text(report: &CheckReport) -> String {
    let mut out = String::new();
    for d in &report.diagnostics {
        let location = d
            .location
            .as_ref()
            .map(|l| format!("{}:{}: ", l.file, l.line))
            .unwrap_or_default();
        let severity = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        let _ = writeln!(out, "{location}{severity}: {}", d.message);
    }
    let coverage = &report.coverage;
    let _ = writeln!(
        out,
        "mapping coverage: {}/{} tracked files map to a node ({:.1}%)",
        coverage.mapped,
        coverage.tracked,
        coverage.ratio * 100.0
    );
    for path in &coverage.unmapped {
        let _ = writeln!(out, "  unmapped: {path}");
    }
    out
}

pub fn check_json(report: &CheckReport) -> &CheckReport {
    report
}

/// The what-if section: per more automated tier, the smallest removals and evidence that
/// reach it, or why none is listed.
pub fn what_if_text(what_if: &countersign_decide::report::WhatIfReport) -> String {
    use countersign_decide::report::{TierName, WhatIfFoundReport, WhatIfOutcome};
    let name = |tier: TierName| {
        serde_json::to_value(tier)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "what would lower the tier (now {}):",
        name(what_if.tier)
    );
    if what_if.targets.is_empty() {
        let _ = writeln!(out, "  nothing: auto_merge is the most automated tier");
    }
    let line = |out: &mut String, found: &WhatIfFoundReport, what: &str| match found.outcome {
        WhatIfOutcome::Found => {
            for s in &found.suggestions {
                let difference = if s.passing_suites.is_empty() {
                    let group = s
                        .group
                        .as_ref()
                        .map(|g| format!(" (every file of {g})"))
                        .unwrap_or_default();
                    format!("without {}{group}", s.without.join(", "))
                } else {
                    let plural = if s.passing_suites.len() == 1 { "" } else { "s" };
                    format!(
                        "with passing evidence for suite{plural} {}",
                        s.passing_suites.join(", ")
                    )
                };
                let minimal = if s.minimal {
                    ""
                } else {
                    " (not known to be the smallest)"
                };
                let _ = writeln!(out, "    {difference}: {}{minimal}", name(s.tier));
            }
        }
        WhatIfOutcome::Nothing => {
            let _ = writeln!(
                out,
                "    no {what} reaches it (every candidate was re-decided)"
            );
        }
        WhatIfOutcome::Unknown => {
            let _ = writeln!(
                out,
                "    no {what} found within the search's bounds (not every candidate was tried)"
            );
        }
    };
    for target in &what_if.targets {
        let _ = writeln!(out, "  to reach {}:", name(target.tier));
        line(
            &mut out,
            &target.removals,
            "removal of fewer than all files",
        );
        line(&mut out, &target.evidence, "passing evidence");
    }
    let search = &what_if.search;
    let cut = match search.cut.as_deref() {
        Some("deadline") => ", cut short by its deadline".to_owned(),
        Some(other) => format!(", cut short: {other} spent"),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "  ({} re-decisions of {} allowed, sets of up to {} tried exhaustively{cut})",
        search.decisions, search.budget, search.max_removed
    );
    out
}
