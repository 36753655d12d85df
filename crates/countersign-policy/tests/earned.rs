//! Evidence-earned automation (the `earned-automation` pack module): each way a
//! high-criticality change earns notify-and-proceed, each refusal, facts failing closed, and
//! the invariants winning over any module.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::{Change, N};
use countersign_graph::{Criticality::*, Surface};
use countersign_policy::{
    Decision, DecisionInput, EvidenceFacts, PackModule, PolicyPack, ReasonEffect, ReasonSource,
    SelfValidation, Tier, decide,
};

fn earned_pack() -> PolicyPack {
    PolicyPack::default_with(&[PackModule::EarnedAutomation]).unwrap()
}

/// Trusted evidence of a full, passing plan of `planned` suites.
fn full(planned: u32) -> Option<EvidenceFacts> {
    Some(EvidenceFacts {
        coverage_percent: 100,
        planned_suites: planned,
        failed_suites: 0,
        regressions: 0,
        reachable_vulnerabilities: 0,
    })
}

fn search() -> N {
    N::new("search-api", High).owner("platform")
}

struct Case {
    author: &'static str,
    change: Change,
    evidence: Option<EvidenceFacts>,
    self_validation: SelfValidation,
}

impl Case {
    fn new(change: Change, evidence: Option<EvidenceFacts>) -> Case {
        Case {
            author: "human:alice",
            change,
            evidence,
            self_validation: SelfValidation::default(),
        }
    }
    fn by(mut self, author: &'static str) -> Case {
        self.author = author;
        self
    }
    fn self_validated(mut self, suites: &[&str], base_passed: &[&str]) -> Case {
        let names = |s: &[&str]| s.iter().map(|n| (*n).to_owned()).collect::<BTreeSet<_>>();
        self.self_validation = SelfValidation {
            suites: names(suites),
            base_suite_passed: names(base_passed),
        };
        self
    }
    fn decide(&self, pack: &PolicyPack) -> Decision {
        let impact = self.change.impact();
        let mut input = DecisionInput::new(&impact, self.author.parse().unwrap());
        input.evidence = self.evidence;
        input.self_validation = self.self_validation.clone();
        decide(pack, &input)
    }
}

fn forbidden_by(decision: &Decision, tier: Tier) -> Vec<String> {
    decision
        .reasons
        .iter()
        .filter(|r| r.tier == Some(tier) && r.effect == ReasonEffect::Forbid)
        .filter_map(|r| match &r.source {
            ReasonSource::Policy { id } => Some(id.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn full_passing_evidence_earns_notify_and_proceed_for_a_high_node() {
    let case = Case::new(Change::touch([search()]), full(2));
    let decision = case.decide(&earned_pack());
    assert_eq!(
        decision.tier,
        Tier::NotifyAndProceed,
        "{:#?}",
        decision.reasons
    );
    assert!(
        decision
            .reasons
            .iter()
            .any(|r| r.effect == ReasonEffect::Permit
                && r.source
                    == ReasonSource::Policy {
                        id: "earned-notify-high-criticality".to_owned()
                    })
    );
    // Never further: a high node never auto-merges.
    assert!(forbidden_by(&decision, Tier::AutoMerge).contains(&"high-criticality-touched".into()));
    // The same change without the module keeps its human.
    assert_eq!(
        case.decide(&PolicyPack::default_pack()).tier,
        Tier::SingleApprover
    );
}

#[test]
fn an_agent_earns_it_too_and_a_confirmed_self_validated_suite_does_not_stop_it() {
    let case = Case::new(Change::touch([search()]), full(1))
        .by("agent:fixbot")
        .self_validated(&["search-unit"], &["search-unit"]);
    assert_eq!(case.decide(&earned_pack()).tier, Tier::NotifyAndProceed);
}

#[test]
fn a_high_node_reaching_other_high_nodes_earns_it() {
    let case = Case::new(
        Change::touch([search()]).reach([N::new("ranking", High).owner("platform")]),
        full(3),
    );
    assert_eq!(case.decide(&earned_pack()).tier, Tier::NotifyAndProceed);
}

/// A moderate change whose blast radius reaches a high node needs a person by default
/// (nothing permits notify above moderate); full evidence earns it too.
#[test]
fn a_moderate_change_reaching_a_high_node_earns_it() {
    let change = || {
        Change::touch([N::new("web", Moderate).owner("platform")]).reach([N::new(
            "search-api",
            High,
        )
        .owner("platform")])
    };
    assert_eq!(
        Case::new(change(), None).decide(&earned_pack()).tier,
        Tier::SingleApprover
    );
    assert_eq!(
        Case::new(change(), full(2)).decide(&earned_pack()).tier,
        Tier::NotifyAndProceed
    );
    assert_eq!(
        Case::new(change(), full(2))
            .decide(&PolicyPack::default_pack())
            .tier,
        Tier::SingleApprover
    );
}

/// Every refusal: the change keeps (at least) its human, and the unearned rule says why.
#[test]
fn each_refusal_keeps_a_human() {
    let high = || Change::touch([search()]);
    let evidence = |coverage, planned, failed, regressions, vulns| {
        Some(EvidenceFacts {
            coverage_percent: coverage,
            planned_suites: planned,
            failed_suites: failed,
            regressions,
            reachable_vulnerabilities: vulns,
        })
    };
    let cases: Vec<(&str, Case)> = vec![
        // Facts fail closed: no evidence considered earns nothing.
        ("no evidence considered", Case::new(high(), None)),
        (
            "partial coverage",
            Case::new(high(), evidence(99, 2, 0, 0, 0)),
        ),
        (
            "an empty plan",
            Case::new(high(), evidence(100, 0, 0, 0, 0)),
        ),
        (
            "a failed suite",
            Case::new(high(), evidence(100, 2, 1, 0, 0)),
        ),
        (
            "a regression (or a test that disappeared: the count dropped)",
            Case::new(high(), evidence(100, 2, 0, 1, 0)),
        ),
        (
            "a reachable vulnerability",
            Case::new(high(), evidence(100, 2, 0, 0, 1)),
        ),
        (
            "a self-validated suite without a passing base run",
            Case::new(high(), full(2)).self_validated(&["search-unit"], &[]),
        ),
        (
            "a self-validated suite, another suite's base passed",
            Case::new(high(), full(2)).self_validated(&["search-unit", "e2e"], &["e2e"]),
        ),
        (
            "a critical node touched",
            Case::new(
                Change::touch([N::new("ledger", Critical).owner("payments")]),
                full(2),
            ),
        ),
        (
            "a critical node reached",
            Case::new(
                high().reach([N::new("checkout", Critical).owner("payments")]),
                full(2),
            ),
        ),
        (
            "a revenue path reached",
            Case::new(
                high().reach([N::new("pricing", Moderate).owner("payments").revenue()]),
                full(2),
            ),
        ),
        (
            "a data store touched",
            Case::new(
                Change::touch([
                    search(),
                    N::new("orders-db", Low).owner("data").data_store(),
                ]),
                full(2),
            ),
        ),
        (
            "a never-automate surface touched",
            Case::new(
                Change::touch([N::new("login", High)
                    .owner("platform")
                    .surface(Surface::Auth)]),
                full(2),
            ),
        ),
        (
            "a never-automate surface reached",
            Case::new(
                high().reach([N::new("login", Moderate)
                    .owner("platform")
                    .surface(Surface::Auth)]),
                full(2),
            ),
        ),
    ];
    let pack = earned_pack();
    for (name, case) in cases {
        let decision = case.decide(&pack);
        assert!(
            !decision.tier.is_automated(),
            "{name}: {:?} {:#?}",
            decision.tier,
            decision.reasons
        );
        assert!(
            forbidden_by(&decision, Tier::NotifyAndProceed)
                .contains(&"high-criticality-unearned".to_owned()),
            "{name}: {:#?}",
            decision.reasons
        );
    }
}

/// The module changes nothing for changes that are not high-criticality: a moderate change
/// still notifies without evidence, a low one still auto-merges, and partial evidence still
/// holds a moderate change back.
#[test]
fn the_module_only_touches_high_criticality_changes() {
    let web = || Change::touch([N::new("web", Moderate).owner("platform")]);
    let docs = || Change::touch([N::new("docs", Low).owner("docs")]);
    let partial = Some(EvidenceFacts {
        coverage_percent: 50,
        planned_suites: 2,
        ..EvidenceFacts::default()
    });
    for (case, tier) in [
        (Case::new(web(), None), Tier::NotifyAndProceed),
        (Case::new(docs(), None), Tier::AutoMerge),
        (Case::new(web(), partial), Tier::SingleApprover),
    ] {
        assert_eq!(case.decide(&earned_pack()).tier, tier);
        assert_eq!(case.decide(&PolicyPack::default_pack()).tier, tier);
    }
}

/// The invariants hold whatever the module (or a module rewritten to permit everything)
/// says: evidence never lifts them.
#[test]
fn the_invariants_win_over_any_module() {
    let permit_all = PolicyPack::from_files(vec![(
        "earned_automation.cedar".to_owned(),
        r#"@id("permit-everything")
@reason("A module gone wrong.")
permit (principal, action, resource);"#
            .to_owned(),
    )])
    .unwrap();
    let cases = [
        (
            "a never-automate surface touched",
            Case::new(
                Change::touch([N::new("login", High)
                    .owner("platform")
                    .surface(Surface::Auth)]),
                full(2),
            ),
            Tier::SingleApprover,
        ),
        (
            "an agent edits governance",
            Case::new(
                Change::touch([search()]).governance([".countersign/policy/earned.cedar"]),
                full(2),
            )
            .by("agent:fixbot"),
            Tier::ChangeControl,
        ),
        (
            "an agent edits a build file",
            Case::new(Change::touch([search().surface(Surface::Build)]), full(2))
                .by("agent:fixbot"),
            Tier::SingleApprover,
        ),
        (
            "an agent's unconfirmed self-validated suite",
            Case::new(Change::touch([search()]), full(2))
                .by("agent:fixbot")
                .self_validated(&["search-unit"], &[]),
            Tier::SingleApprover,
        ),
        (
            "unmapped files",
            Case::new(
                Change::touch([search()]).unmapped(["scratch/x.txt"]),
                full(2),
            ),
            Tier::NotifyAndProceed,
        ),
    ];
    for (name, case, minimum) in cases {
        for pack in [&permit_all, &earned_pack()] {
            let decision = case.decide(pack);
            assert!(
                decision.tier >= minimum,
                "{name}: {:?} below {minimum:?}",
                decision.tier
            );
        }
        let decision = case.decide(&permit_all);
        assert!(
            decision
                .reasons
                .iter()
                .any(|r| matches!(r.source, ReasonSource::Invariant { .. })),
            "{name}: no invariant spoke: {:#?}",
            decision.reasons
        );
    }
}

#[test]
fn the_module_files_replace_and_add() {
    let files = countersign_policy::default_files_with(&[PackModule::EarnedAutomation]);
    let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "blast_radius.cedar",
            "criticality.cedar",
            "earned_automation.cedar",
            "evidence.cedar",
            "never_automate.cedar",
            "tiers.cedar"
        ]
    );
    assert_ne!(
        earned_pack().version(),
        PolicyPack::default_pack().version()
    );
    assert_eq!(
        "earned-automation".parse::<PackModule>(),
        Ok(PackModule::EarnedAutomation)
    );
    let error = "earned".parse::<PackModule>().unwrap_err();
    assert!(error.contains("earned-automation"), "{error}");
}
