//! Decision facts: the Cedar request context derived from a change's impact, its author
//! and its evidence, plus the never-automate list they are judged against.
//!
//! Facts are plain values; this module does not judge them. Every attribute here is
//! declared in `schema.cedarschema` (a test checks they agree) and documented in
//! docs/policy.md.

use std::collections::{BTreeMap, BTreeSet};

use countersign_graph::{Criticality, Impact, Surface};
use serde_json::Value;

use crate::principal::Principal;

/// Every surface, in order: the default never-automate list.
pub const ALL_SURFACES: [Surface; 7] = [
    Surface::Auth,
    Surface::Authz,
    Surface::Payments,
    Surface::RegulatedData,
    Surface::Irreversible,
    Surface::CiCd,
    Surface::Governance,
];

/// The default never-automate list: all seven surfaces.
pub fn default_never_automate() -> BTreeSet<Surface> {
    ALL_SURFACES.into_iter().collect()
}

/// A surface's name as written in catalogs, configuration and Cedar facts (the graph's
/// spelling).
pub fn surface_name(surface: Surface) -> &'static str {
    surface.as_str()
}

/// Criticality as the number policies compare: 0 none, 1 low, 2 moderate, 3 high, 4 critical.
pub fn criticality_level(criticality: Option<Criticality>) -> i64 {
    match criticality {
        None => 0,
        Some(Criticality::Low) => 1,
        Some(Criticality::Moderate) => 2,
        Some(Criticality::High) => 3,
        Some(Criticality::Critical) => 4,
    }
}

/// What accepted evidence says about a change. Filled by countersign-evidence from
/// signed runner statements; `None` in [`crate::DecisionInput`] means no evidence was
/// considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EvidenceFacts {
    /// Share of the validation plan covered by accepted evidence, 0 to 100 (clamped).
    pub coverage_percent: u8,
    pub planned_suites: u32,
    pub failed_suites: u32,
    pub regressions: u32,
    pub reachable_vulnerabilities: u32,
}

/// The names of every context attribute, in schema order. Kept next to `derive` so the
/// two are edited together; a test compares both with the schema.
pub const FACT_NAMES: [&str; 20] = [
    "surfaces_touched",
    "surfaces_reached",
    "never_automate_touched",
    "never_automate_reached",
    "max_criticality_touched",
    "max_criticality_reached",
    "critical_reached",
    "revenue_path_reached",
    "data_stores_touched",
    "unmapped_files",
    "touched_nodes",
    "reached_nodes",
    "governance_touched",
    "author_kind",
    "evidence_considered",
    "coverage_percent",
    "planned_suites",
    "failed_suites",
    "regressions",
    "reachable_vulnerabilities",
];

/// Derive the context attributes. Defensive about the impact's own bookkeeping: touched
/// surfaces and criticality are folded into the "reached" facts even if the impact left
/// them out, and governance paths count as the `governance` surface even when no node
/// carries it, so a sloppy impact can only make facts stricter.
pub(crate) fn derive(
    impact: &Impact,
    author: &Principal,
    never_automate: &BTreeSet<Surface>,
    evidence: Option<&EvidenceFacts>,
) -> BTreeMap<String, Value> {
    let governance_touched = !impact.governance_paths.is_empty()
        || impact.surfaces_touched.contains(&Surface::Governance);

    let mut touched: BTreeSet<Surface> = impact.surfaces_touched.clone();
    if governance_touched {
        touched.insert(Surface::Governance);
    }
    let reached: BTreeSet<Surface> = impact
        .surfaces_reached
        .iter()
        .chain(touched.iter())
        .copied()
        .collect();
    let never_touched: BTreeSet<Surface> = touched.intersection(never_automate).copied().collect();
    let never_reached: BTreeSet<Surface> = reached.intersection(never_automate).copied().collect();

    let max_touched = impact.max_criticality_touched;
    let max_reached = impact.max_criticality_reached.max(max_touched);

    let count = |n: usize| Value::from(i64::try_from(n).unwrap_or(i64::MAX));
    let set = |surfaces: &BTreeSet<Surface>| {
        Value::Array(
            surfaces
                .iter()
                .map(|s| Value::from(surface_name(*s)))
                .collect(),
        )
    };

    let mut facts = BTreeMap::new();
    let mut put = |name: &str, value: Value| {
        facts.insert(name.to_owned(), value);
    };
    put("surfaces_touched", set(&touched));
    put("surfaces_reached", set(&reached));
    put("never_automate_touched", set(&never_touched));
    put("never_automate_reached", set(&never_reached));
    put(
        "max_criticality_touched",
        Value::from(criticality_level(max_touched)),
    );
    put(
        "max_criticality_reached",
        Value::from(criticality_level(max_reached)),
    );
    put("critical_reached", count(impact.critical_reached.len()));
    put(
        "revenue_path_reached",
        count(impact.revenue_path_reached.len()),
    );
    put(
        "data_stores_touched",
        count(impact.data_stores_touched.len()),
    );
    put("unmapped_files", count(impact.unmapped.len()));
    put("touched_nodes", count(impact.touched.len()));
    put("reached_nodes", count(impact.blast_radius.len()));
    put("governance_touched", Value::Bool(governance_touched));
    put("author_kind", Value::from(author.kind()));

    // No evidence considered: coverage reads 0, the pessimistic value, so a policy that
    // forgets the `evidence_considered` guard fails closed; counts read 0 because
    // nothing was observed. `evidence_considered` tells the two apart.
    let evidence_considered = evidence.is_some();
    let e = evidence.copied().unwrap_or_default();
    put("evidence_considered", Value::Bool(evidence_considered));
    put(
        "coverage_percent",
        Value::from(i64::from(e.coverage_percent.min(100))),
    );
    put("planned_suites", Value::from(i64::from(e.planned_suites)));
    put("failed_suites", Value::from(i64::from(e.failed_suites)));
    put("regressions", Value::from(i64::from(e.regressions)));
    put(
        "reachable_vulnerabilities",
        Value::from(i64::from(e.reachable_vulnerabilities)),
    );
    facts
}

/// The context attributes a policy's text refers to, as `context.name`, `context["name"]`
/// or `principal.kind` (reported as `author_kind`). Known names only, sorted, unique.
pub(crate) fn referenced_facts(policy_text: &str) -> Vec<String> {
    let mut found = BTreeSet::new();
    let bytes = policy_text.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while let Some(pos) = policy_text[i..].find("context") {
        let start = i + pos;
        let after = start + "context".len();
        i = after;
        // Skip identifiers that merely end in "context".
        if start > 0 && is_ident(bytes[start - 1]) {
            continue;
        }
        let rest = policy_text[after..].trim_start();
        let name = if let Some(rest) = rest.strip_prefix('.') {
            let rest = rest.trim_start();
            let end = rest
                .bytes()
                .position(|b| !is_ident(b))
                .unwrap_or(rest.len());
            &rest[..end]
        } else if let Some(rest) = rest.strip_prefix("[\"") {
            rest.split('"').next().unwrap_or("")
        } else {
            continue;
        };
        if FACT_NAMES.contains(&name) {
            found.insert(name.to_owned());
        }
    }
    if policy_text.contains("principal.kind") {
        found.insert("author_kind".to_owned());
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_referenced_facts() {
        let text = r#"forbid (principal, action, resource) when {
            context.unmapped_files > 0 || context . critical_reached > 1
            || context["regressions"] > 0 || mycontext.nope == 1 || principal.kind == "agent"
        };"#;
        assert_eq!(
            referenced_facts(text),
            [
                "author_kind",
                "critical_reached",
                "regressions",
                "unmapped_files"
            ]
        );
    }
}
