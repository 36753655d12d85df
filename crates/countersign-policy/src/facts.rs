//! Decision facts: what the engine knows about a change (its impact, its author and its
//! evidence) as one typed [`Facts`], plus the never-automate list they are judged against.
//!
//! Facts are plain values; this module does not judge them. The invariants match on the
//! struct's fields, never on names. [`Facts::to_cedar_context`] is the one place a fact
//! gets its name: the Cedar request context, explanations and records all read that view,
//! and a test checks that it is exactly the schema's `Facts` record (`schema.cedarschema`).

use std::collections::{BTreeMap, BTreeSet};

use countersign_graph::{Criticality, Impact, Surface};
use serde_json::Value;

use crate::principal::{Principal, PrincipalKind};

/// Every surface, in order.
pub const ALL_SURFACES: [Surface; 8] = [
    Surface::Auth,
    Surface::Authz,
    Surface::Payments,
    Surface::RegulatedData,
    Surface::Irreversible,
    Surface::CiCd,
    Surface::Governance,
    Surface::Build,
];

/// The default never-automate list: every surface but `build`. The `build` surface is
/// never automated for an agent whatever the list says (an invariant); for a person, a
/// build script is reviewed like other code unless the list names it.
pub fn default_never_automate() -> BTreeSet<Surface> {
    ALL_SURFACES
        .into_iter()
        .filter(|s| *s != Surface::Build)
        .collect()
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

/// The planned suites a change defines itself (it edits their tests, fixtures or script:
/// countersign-decide's `selfval`), and the suites whose *base* version (the base commit's
/// suite files run against the head's code) passed in accepted evidence. A self-validated
/// suite not in `base_suite_passed` never earns an automated tier (docs/policy.md).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SelfValidation {
    pub suites: BTreeSet<String>,
    pub base_suite_passed: BTreeSet<String>,
}

impl SelfValidation {
    /// The self-validated suites the base's version has not confirmed.
    pub fn unconfirmed(&self) -> impl Iterator<Item = &String> {
        self.suites.difference(&self.base_suite_passed)
    }
}

/// Every fact the engine derives about one change. Counts are counts of distinct things
/// in the impact; sets are surfaces. Built only by [`Facts::derive`] in production (tests
/// and the verifier may build one by hand), so a fact cannot be missing: there is no
/// default to fall back on, and a renamed field is a compile error wherever it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub surfaces_touched: BTreeSet<Surface>,
    pub surfaces_reached: BTreeSet<Surface>,
    pub never_automate_touched: BTreeSet<Surface>,
    pub never_automate_reached: BTreeSet<Surface>,
    pub max_criticality_touched: Option<Criticality>,
    pub max_criticality_reached: Option<Criticality>,
    pub critical_reached: u64,
    pub revenue_path_reached: u64,
    pub data_stores_touched: u64,
    pub unmapped_files: u64,
    pub touched_nodes: u64,
    pub reached_nodes: u64,
    pub governance_touched: bool,
    pub author_kind: PrincipalKind,
    /// `None` when no evidence was considered (`evidence_considered` is false).
    pub evidence: Option<EvidenceFacts>,
    /// `self_validated_suites` and `base_suite_passed`.
    pub self_validation: SelfValidation,
    /// The human who dispatched the proposing agent (agent provenance: the agent token is
    /// bound to them), `None` for a change nobody dispatched. `dispatched_by` in Cedar: a
    /// set of zero or one principal, so a policy never reads an absent attribute.
    pub dispatched_by: Option<Principal>,
}

impl Facts {
    /// Derive the facts of a change. Defensive about the impact's own bookkeeping: touched
    /// surfaces and criticality are folded into the "reached" facts even if the impact left
    /// them out, and governance paths count as the `governance` surface even when no node
    /// carries it, so a sloppy impact can only make facts stricter.
    pub fn derive(
        impact: &Impact,
        author: &Principal,
        never_automate: &BTreeSet<Surface>,
        evidence: Option<&EvidenceFacts>,
        self_validation: &SelfValidation,
        dispatched_by: Option<&Principal>,
    ) -> Facts {
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
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        Facts {
            never_automate_touched: touched.intersection(never_automate).copied().collect(),
            never_automate_reached: reached.intersection(never_automate).copied().collect(),
            surfaces_touched: touched,
            surfaces_reached: reached,
            max_criticality_touched: impact.max_criticality_touched,
            max_criticality_reached: impact
                .max_criticality_reached
                .max(impact.max_criticality_touched),
            critical_reached: count(impact.critical_reached.len()),
            revenue_path_reached: count(impact.revenue_path_reached.len()),
            data_stores_touched: count(impact.data_stores_touched.len()),
            unmapped_files: count(impact.unmapped.len()),
            touched_nodes: count(impact.touched.len()),
            reached_nodes: count(impact.blast_radius.len()),
            governance_touched,
            author_kind: author.kind_of(),
            evidence: evidence.copied(),
            self_validation: self_validation.clone(),
            dispatched_by: dispatched_by.cloned(),
        }
    }

    /// The facts as the Cedar request context: every attribute of the schema's `Facts`
    /// record by its name. The only place a fact gets a name; explanations and records use
    /// this view too.
    pub fn to_cedar_context(&self) -> BTreeMap<&'static str, Value> {
        // Destructured without `..`: a new field that is not given a name here does not
        // compile, so no fact can be derived and then silently not reach the policies.
        let Facts {
            surfaces_touched,
            surfaces_reached,
            never_automate_touched,
            never_automate_reached,
            max_criticality_touched,
            max_criticality_reached,
            critical_reached,
            revenue_path_reached,
            data_stores_touched,
            unmapped_files,
            touched_nodes,
            reached_nodes,
            governance_touched,
            author_kind,
            evidence,
            self_validation,
            dispatched_by,
        } = self;
        let SelfValidation {
            suites: self_validated_suites,
            base_suite_passed,
        } = self_validation;
        let names = |names: &BTreeSet<String>| {
            Value::Array(names.iter().map(|n| Value::from(n.as_str())).collect())
        };
        let set = |surfaces: &BTreeSet<Surface>| {
            Value::Array(
                surfaces
                    .iter()
                    .map(|s| Value::from(surface_name(*s)))
                    .collect(),
            )
        };
        // Cedar's integers are i64; a count beyond it cannot be written, so it saturates
        // (only ever upwards, the strict direction for every count a policy compares).
        let long = |n: u64| Value::from(i64::try_from(n).unwrap_or(i64::MAX));
        // No evidence considered: coverage reads 0, the pessimistic value, so a policy that
        // forgets the `evidence_considered` guard fails closed; counts read 0 because
        // nothing was observed. `evidence_considered` tells the two apart.
        let observed = evidence.unwrap_or_default();
        BTreeMap::from([
            ("surfaces_touched", set(surfaces_touched)),
            ("surfaces_reached", set(surfaces_reached)),
            ("never_automate_touched", set(never_automate_touched)),
            ("never_automate_reached", set(never_automate_reached)),
            (
                "max_criticality_touched",
                Value::from(criticality_level(*max_criticality_touched)),
            ),
            (
                "max_criticality_reached",
                Value::from(criticality_level(*max_criticality_reached)),
            ),
            ("critical_reached", long(*critical_reached)),
            ("revenue_path_reached", long(*revenue_path_reached)),
            ("data_stores_touched", long(*data_stores_touched)),
            ("unmapped_files", long(*unmapped_files)),
            ("touched_nodes", long(*touched_nodes)),
            ("reached_nodes", long(*reached_nodes)),
            ("governance_touched", Value::Bool(*governance_touched)),
            ("author_kind", Value::from(author_kind.as_str())),
            ("evidence_considered", Value::Bool(evidence.is_some())),
            (
                "coverage_percent",
                Value::from(i64::from(observed.coverage_percent.min(100))),
            ),
            (
                "planned_suites",
                Value::from(i64::from(observed.planned_suites)),
            ),
            (
                "failed_suites",
                Value::from(i64::from(observed.failed_suites)),
            ),
            ("regressions", Value::from(i64::from(observed.regressions))),
            (
                "reachable_vulnerabilities",
                Value::from(i64::from(observed.reachable_vulnerabilities)),
            ),
            ("self_validated_suites", names(self_validated_suites)),
            ("base_suite_passed", names(base_suite_passed)),
            (
                "dispatched_by",
                Value::Array(
                    dispatched_by
                        .iter()
                        .map(|p| Value::from(p.to_string()))
                        .collect(),
                ),
            ),
        ])
    }

    /// The facts' names, as policies write them (`context.<name>`).
    pub fn names() -> BTreeSet<&'static str> {
        Facts::derive(
            &Impact::default(),
            &Principal::System("names".to_owned()),
            &BTreeSet::new(),
            None,
            &SelfValidation::default(),
            None,
        )
        .to_cedar_context()
        .into_keys()
        .collect()
    }

    /// The named values of `names`, for an explanation; a name that is not a fact is left out
    /// (the callers' names are the invariants' and the pack's, both checked against
    /// [`Facts::names`] by tests).
    pub fn pick(&self, names: &[&str]) -> BTreeMap<String, Value> {
        let context = self.to_cedar_context();
        names
            .iter()
            .filter_map(|name| context.get(name).map(|v| ((*name).to_owned(), v.clone())))
            .collect()
    }
}

/// The context attributes a policy's text refers to, as `context.name`, `context["name"]`
/// or `principal.kind` (reported as `author_kind`). Known names only, sorted, unique.
pub(crate) fn referenced_facts(policy_text: &str) -> Vec<String> {
    let known = Facts::names();
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
        if known.contains(name) {
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

    /// Every field reaches the context with its own value: changing one field changes
    /// exactly its attribute (so no two fields share a name, and none is dropped).
    #[test]
    fn every_field_reaches_its_own_attribute() {
        let base = Facts::derive(
            &Impact::default(),
            &Principal::Human("h".into()),
            &BTreeSet::new(),
            None,
            &SelfValidation::default(),
            None,
        );
        let base_context = base.to_cedar_context();
        let evidence = EvidenceFacts {
            coverage_percent: 50,
            planned_suites: 2,
            failed_suites: 1,
            regressions: 3,
            reachable_vulnerabilities: 4,
        };
        let variants: Vec<(Vec<&str>, Facts)> = vec![
            (
                vec!["surfaces_touched"],
                Facts {
                    surfaces_touched: [Surface::Auth].into(),
                    ..base.clone()
                },
            ),
            (
                vec!["surfaces_reached"],
                Facts {
                    surfaces_reached: [Surface::Auth].into(),
                    ..base.clone()
                },
            ),
            (
                vec!["never_automate_touched"],
                Facts {
                    never_automate_touched: [Surface::Auth].into(),
                    ..base.clone()
                },
            ),
            (
                vec!["never_automate_reached"],
                Facts {
                    never_automate_reached: [Surface::Auth].into(),
                    ..base.clone()
                },
            ),
            (
                vec!["max_criticality_touched"],
                Facts {
                    max_criticality_touched: Some(Criticality::High),
                    ..base.clone()
                },
            ),
            (
                vec!["max_criticality_reached"],
                Facts {
                    max_criticality_reached: Some(Criticality::High),
                    ..base.clone()
                },
            ),
            (
                vec!["critical_reached"],
                Facts {
                    critical_reached: 1,
                    ..base.clone()
                },
            ),
            (
                vec!["revenue_path_reached"],
                Facts {
                    revenue_path_reached: 1,
                    ..base.clone()
                },
            ),
            (
                vec!["data_stores_touched"],
                Facts {
                    data_stores_touched: 1,
                    ..base.clone()
                },
            ),
            (
                vec!["unmapped_files"],
                Facts {
                    unmapped_files: 1,
                    ..base.clone()
                },
            ),
            (
                vec!["touched_nodes"],
                Facts {
                    touched_nodes: 1,
                    ..base.clone()
                },
            ),
            (
                vec!["reached_nodes"],
                Facts {
                    reached_nodes: 1,
                    ..base.clone()
                },
            ),
            (
                vec!["governance_touched"],
                Facts {
                    governance_touched: true,
                    ..base.clone()
                },
            ),
            (
                vec!["author_kind"],
                Facts {
                    author_kind: PrincipalKind::Agent,
                    ..base.clone()
                },
            ),
            (
                vec![
                    "evidence_considered",
                    "coverage_percent",
                    "planned_suites",
                    "failed_suites",
                    "regressions",
                    "reachable_vulnerabilities",
                ],
                Facts {
                    evidence: Some(evidence),
                    ..base.clone()
                },
            ),
            (
                vec!["self_validated_suites"],
                Facts {
                    self_validation: SelfValidation {
                        suites: ["lib-unit".to_owned()].into(),
                        base_suite_passed: BTreeSet::new(),
                    },
                    ..base.clone()
                },
            ),
            (
                vec!["base_suite_passed"],
                Facts {
                    self_validation: SelfValidation {
                        suites: BTreeSet::new(),
                        base_suite_passed: ["lib-unit".to_owned()].into(),
                    },
                    ..base.clone()
                },
            ),
            (
                vec!["dispatched_by"],
                Facts {
                    dispatched_by: Some(Principal::Human("alice".into())),
                    ..base.clone()
                },
            ),
        ];
        let mut covered = BTreeSet::new();
        for (names, facts) in variants {
            let context = facts.to_cedar_context();
            let changed: BTreeSet<&str> = context
                .iter()
                .filter(|(name, value)| base_context.get(*name) != Some(*value))
                .map(|(name, _)| *name)
                .collect();
            assert_eq!(changed, names.iter().copied().collect::<BTreeSet<_>>());
            covered.extend(names);
        }
        assert_eq!(covered, Facts::names(), "a fact no variant changes");
    }

    #[test]
    fn counts_saturate_upwards_in_cedar() {
        let mut facts = Facts::derive(
            &Impact::default(),
            &Principal::Human("h".into()),
            &BTreeSet::new(),
            None,
            &SelfValidation::default(),
            None,
        );
        facts.unmapped_files = u64::MAX;
        assert_eq!(facts.to_cedar_context()["unmapped_files"], i64::MAX);
    }
}
