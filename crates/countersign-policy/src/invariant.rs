//! The invariants no policy can lift, enforced in Rust after Cedar has spoken.
//!
//! Each invariant names the least restrictive tier it allows. Approval-time invariants
//! (an agent never approves, an author never approves its own change, two distinct humans
//! for change control) live with approvals (countersign-lifecycle): here only the tier. The
//! invariants read the typed [`Facts`], never a fact by name, so renaming a fact cannot
//! switch one off.

use countersign_graph::Surface;

use crate::facts::Facts;
use crate::principal::PrincipalKind;
use crate::tier::Tier;

pub(crate) struct InvariantHit {
    pub name: &'static str,
    /// The tier the change may take at least.
    pub minimum: Tier,
    pub message: &'static str,
    /// The facts the invariant reads, by name, for the explanation.
    pub facts: &'static [&'static str],
}

/// The invariants that hold for these facts, in a fixed order.
pub(crate) fn check(facts: &Facts) -> Vec<InvariantHit> {
    let mut hits = Vec::new();
    if !facts.never_automate_touched.is_empty() {
        hits.push(InvariantHit {
            name: "never-automate-surface",
            minimum: Tier::SingleApprover,
            message: "A surface on the never-automate list is touched: the change never takes an automated route.",
            facts: &["never_automate_touched"],
        });
    }
    if facts.governance_touched && facts.author_kind == PrincipalKind::Agent {
        hits.push(InvariantHit {
            name: "agent-edits-governance",
            minimum: Tier::ChangeControl,
            message: "An agent edits countersign's own graph, policy or configuration: always change control.",
            facts: &["governance_touched", "author_kind"],
        });
    }
    if facts.surfaces_touched.contains(&Surface::Build) && facts.author_kind == PrincipalKind::Agent
    {
        hits.push(InvariantHit {
            name: "agent-edits-build",
            minimum: Tier::SingleApprover,
            message: "An agent edits a file that runs at build time (the build surface): never an automated route.",
            facts: &["surfaces_touched", "author_kind"],
        });
    }
    if facts.unmapped_files > 0 && facts.author_kind == PrincipalKind::Agent {
        hits.push(InvariantHit {
            name: "agent-unmapped-needs-owner",
            minimum: Tier::SingleApprover,
            message: "An agent changes files that map to no node: one of their CODEOWNERS owners approves.",
            facts: &["unmapped_files", "author_kind"],
        });
    }
    if facts.self_validation.unconfirmed().next().is_some()
        && facts.author_kind == PrincipalKind::Agent
    {
        hits.push(InvariantHit {
            name: "agent-self-validated-suite",
            minimum: Tier::SingleApprover,
            message: "An agent edits the tests or definition of a planned suite that judges its change, and the base's version of that suite has not passed against the head: never an automated route.",
            facts: &["self_validated_suites", "base_suite_passed", "author_kind"],
        });
    }
    if facts.unmapped_files > 0 {
        hits.push(InvariantHit {
            name: "unmapped-never-auto-merge",
            minimum: Tier::NotifyAndProceed,
            message: "Some changed files map to no node: the change never auto-merges.",
            facts: &["unmapped_files"],
        });
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    use countersign_graph::Impact;
    use std::collections::BTreeSet;

    use crate::principal::Principal;

    #[test]
    fn every_invariant_holds_and_names_only_real_facts() {
        let mut facts = Facts::derive(
            &Impact::default(),
            &Principal::Agent("a".into()),
            &BTreeSet::new(),
            None,
            &crate::facts::SelfValidation::default(),
            None,
        );
        assert!(check(&facts).is_empty());
        facts.never_automate_touched = [Surface::Payments].into();
        facts.surfaces_touched = [Surface::Build].into();
        facts.governance_touched = true;
        facts.unmapped_files = 1;
        facts.self_validation.suites = ["pay-unit".to_owned()].into();
        let hits = check(&facts);
        let names: Vec<&str> = hits.iter().map(|h| h.name).collect();
        assert_eq!(
            names,
            [
                "never-automate-surface",
                "agent-edits-governance",
                "agent-edits-build",
                "agent-unmapped-needs-owner",
                "agent-self-validated-suite",
                "unmapped-never-auto-merge"
            ]
        );
        let known = Facts::names();
        for hit in &hits {
            for name in hit.facts {
                assert!(known.contains(name), "{}: {name}", hit.name);
            }
        }
        facts.author_kind = crate::principal::PrincipalKind::Human;
        assert_eq!(
            check(&facts).len(),
            2,
            "only agents trip the governance, build, unmapped-owner and self-validation rules"
        );
        // The base's version of the suite passed against the head: confirmed.
        facts.author_kind = crate::principal::PrincipalKind::Agent;
        facts.self_validation.base_suite_passed = ["pay-unit".to_owned()].into();
        assert!(
            !check(&facts)
                .iter()
                .any(|h| h.name == "agent-self-validated-suite")
        );
    }
}
