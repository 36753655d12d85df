//! Invariants as properties over generated impacts: whatever the change, the author or
//! the pack, these hold.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::LazyLock;

use common::{Change, N, group, user};
use countersign_graph::{Criticality, Surface};
use countersign_policy::{
    ALL_SURFACES, Decision, DecisionInput, EvidenceFacts, OwnerGroup, PolicyPack, Principal, Tier,
    decide,
};
use proptest::prelude::*;

static DEFAULT: LazyLock<PolicyPack> = LazyLock::new(PolicyPack::default_pack);

/// A pack that permits every tier for every change: only the invariants stand between it
/// and automating everything.
static PERMIT_ALL: LazyLock<PolicyPack> = LazyLock::new(|| {
    PolicyPack::from_files(vec![(
        "yolo.cedar".to_owned(),
        r#"@id("permit-everything")
@reason("Everything may be automated.")
permit (principal, action, resource);
"#
        .to_owned(),
    )])
    .unwrap()
});

fn criticality() -> impl Strategy<Value = Criticality> {
    prop_oneof![
        Just(Criticality::Low),
        Just(Criticality::Moderate),
        Just(Criticality::High),
        Just(Criticality::Critical),
    ]
}

fn surfaces() -> impl Strategy<Value = BTreeSet<Surface>> {
    // Mostly no surface, as in real graphs.
    proptest::collection::vec(proptest::sample::select(ALL_SURFACES.to_vec()), 0..3)
        .prop_map(|v| v.into_iter().collect())
        .prop_flat_map(|s| prop_oneof![3 => Just(BTreeSet::new()), 1 => Just(s)])
}

fn node() -> impl Strategy<Value = N> {
    (
        0u8..12,
        criticality(),
        surfaces(),
        any::<bool>(),
        prop::bool::weighted(0.15),
        proptest::sample::select(vec!["docs", "payments", "platform", "data"]),
    )
        .prop_map(|(i, crit, surfaces, revenue, store, owner)| {
            let mut n = N::new(&format!("node-{i}"), crit).owner(owner);
            n.surfaces = surfaces;
            n.revenue = revenue && i % 3 == 0;
            if store {
                n = n.data_store();
            }
            n
        })
}

fn change() -> impl Strategy<Value = Change> {
    (
        proptest::collection::vec(node(), 0..4),
        proptest::collection::vec(node(), 0..4),
        proptest::collection::vec("[a-z]{1,6}/[a-z]{1,6}\\.txt", 0..2),
        proptest::collection::vec(
            proptest::sample::select(vec!["countersign.toml", "catalog-info.yaml", "CODEOWNERS"]),
            0..2,
        ),
    )
        .prop_map(|(touched, reached, unmapped, governance)| {
            Change::touch(touched)
                .reach(reached)
                .unmapped(unmapped.iter().map(String::as_str))
                .governance(governance)
        })
}

fn author() -> impl Strategy<Value = Principal> {
    prop_oneof![
        Just(Principal::Human("alice".to_owned())),
        Just(Principal::Agent("fixbot".to_owned())),
        Just(Principal::Runner("ci".to_owned())),
        Just(Principal::System("countersign".to_owned())),
    ]
}

fn never_automate() -> impl Strategy<Value = BTreeSet<Surface>> {
    prop_oneof![
        Just(ALL_SURFACES.into_iter().collect()),
        proptest::collection::btree_set(proptest::sample::select(ALL_SURFACES.to_vec()), 0..7),
    ]
}

fn evidence() -> impl Strategy<Value = Option<EvidenceFacts>> {
    proptest::option::of((0u8..=100, 0u32..3, 0u32..2, 0u32..2).prop_map(
        |(coverage, failed, regressions, vulns)| EvidenceFacts {
            coverage_percent: coverage,
            planned_suites: 3,
            failed_suites: failed,
            regressions,
            reachable_vulnerabilities: vulns,
        },
    ))
}

fn pool() -> Vec<OwnerGroup> {
    ["docs", "payments", "platform", "data"]
        .into_iter()
        .map(|g| OwnerGroup {
            owner: group(g),
            members: vec![user("alice"), user(&format!("{g}-lead")), user("fixbot")],
        })
        .collect()
}

fn run(
    pack: &PolicyPack,
    change: &Change,
    author: &Principal,
    never: &BTreeSet<Surface>,
    evidence: Option<EvidenceFacts>,
) -> Decision {
    let impact = change.impact();
    let mut input = DecisionInput::new(&impact, author.clone());
    input.never_automate = never.clone();
    input.approver_pool = pool();
    input.evidence = evidence;
    decide(pack, &input)
}

fn touches_never_automate(change: &Change, never: &BTreeSet<Surface>) -> bool {
    let impact = change.impact();
    impact.surfaces_touched.iter().any(|s| never.contains(s))
        || (!impact.governance_paths.is_empty() && never.contains(&Surface::Governance))
}

fn agent_edits_governance(change: &Change, author: &Principal) -> bool {
    let impact = change.impact();
    matches!(author, Principal::Agent(_))
        && (!impact.governance_paths.is_empty()
            || impact.surfaces_touched.contains(&Surface::Governance))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_automate_surface_is_never_automated(
        change in change(), author in author(), never in never_automate(), evidence in evidence(),
    ) {
        for pack in [&*DEFAULT, &*PERMIT_ALL] {
            let decision = run(pack, &change, &author, &never, evidence);
            if touches_never_automate(&change, &never) {
                prop_assert!(!decision.tier.is_automated(), "{:?}", decision.tier);
            }
        }
    }

    #[test]
    fn agent_editing_governance_is_change_control(
        change in change(), never in never_automate(), evidence in evidence(),
    ) {
        let agent = Principal::Agent("fixbot".to_owned());
        let change = change.governance(["countersign.toml"]);
        prop_assert!(agent_edits_governance(&change, &agent));
        for pack in [&*DEFAULT, &*PERMIT_ALL] {
            let decision = run(pack, &change, &agent, &never, evidence);
            prop_assert_eq!(decision.tier, Tier::ChangeControl);
        }
    }

    #[test]
    fn an_agents_build_files_and_unmapped_files_are_never_automated(
        change in change(), never in never_automate(), evidence in evidence(), build in any::<bool>(),
    ) {
        let agent = Principal::Agent("fixbot".to_owned());
        let change = if build {
            let mut change = change;
            change.touched.push(N::new("svc", Criticality::Low).surface(Surface::Build));
            change
        } else {
            change.unmapped(["scratch.txt"])
        };
        for pack in [&*DEFAULT, &*PERMIT_ALL] {
            let decision = run(pack, &change, &agent, &never, evidence);
            prop_assert!(!decision.tier.is_automated(), "{:?}", decision.tier);
        }
    }

    #[test]
    fn adding_a_dependent_never_lowers_the_tier(
        change in change(), extra in node(), author in author(),
        never in never_automate(), evidence in evidence(),
    ) {
        let before = run(&DEFAULT, &change, &author, &never, evidence);
        let after = run(&DEFAULT, &change.clone().reach([extra]), &author, &never, evidence);
        prop_assert!(after.tier >= before.tier, "{:?} -> {:?}", before.tier, after.tier);
    }

    #[test]
    fn invariants_beat_a_permissive_pack(change in change(), author in author()) {
        let mut payments = change;
        payments.touched.push(N::new("payments-api", Criticality::Low).surface(Surface::Payments));
        let decision = run(
            &PERMIT_ALL, &payments, &author, &ALL_SURFACES.into_iter().collect(), None,
        );
        prop_assert!(!decision.tier.is_automated());
        let raised = decision.reasons.iter().any(|r| matches!(
            &r.source,
            countersign_policy::ReasonSource::Invariant { name } if name == "never-automate-surface"
        ));
        prop_assert!(raised);
    }

    #[test]
    fn the_author_is_never_an_eligible_approver(
        change in change(), author in author(), evidence in evidence(),
    ) {
        let decision = run(&DEFAULT, &change, &author, &ALL_SURFACES.into_iter().collect(), evidence);
        prop_assert!(decision.approvals.eligible.iter().all(|u| u.name != author.name()));
        prop_assert_eq!(decision.approvals.required, decision.tier.required_approvals());
        prop_assert!(decision.approvals.shortfall <= decision.approvals.required);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Issue 22 point 1: an agent (or anyone) adding a file owned by others to a change
    /// never makes those others able to approve the original parts. Every requirement about
    /// a node of the original change is met only by that node's own owners, before and
    /// after the addition, and no requirement of the original change disappears.
    #[test]
    fn adding_a_file_owned_by_others_never_lets_them_approve_the_rest(
        change in change(), extra in node(), author in author(), never in never_automate(),
    ) {
        let outsiders = OwnerGroup {
            owner: group("outsiders"),
            members: vec![user("outsider-lead"), user("outsider-dev")],
        };
        let decide_with = |change: &Change| {
            let impact = change.impact();
            let mut input = DecisionInput::new(&impact, author.clone());
            input.never_automate = never.clone();
            input.approver_pool = pool().into_iter().chain([outsiders.clone()]).collect();
            decide(&DEFAULT, &input)
        };
        let before = decide_with(&change);
        let mut extra = extra;
        extra.entity = common::entity(countersign_graph::Kind::Component, "outsiders-file");
        extra.owner = Some(group("outsiders"));
        let mut widened = change.clone();
        widened.touched.push(extra);
        let after = decide_with(&widened);

        let is_outsider = |u: &countersign_graph::EntityRef| u.name.starts_with("outsider-");
        for n in &change.touched {
            let subject = n.entity.to_string();
            for r in after.approvals.requirements.iter().filter(|r| r.subject == subject) {
                prop_assert!(
                    !r.eligible.iter().any(is_outsider),
                    "{subject} approvable by outsiders: {:?}", r.eligible
                );
            }
        }
        for r in &before.approvals.requirements {
            if r.subject.starts_with("component:") {
                prop_assert!(
                    after.approvals.requirements.iter().any(|a| a.subject == r.subject),
                    "the requirement of {} disappeared", r.subject
                );
            }
        }
    }
}

#[test]
fn unmapped_files_never_auto_merge_even_when_permitted() {
    let change = Change::default().unmapped(["scratch.txt"]);
    let decision = run(
        &PERMIT_ALL,
        &change,
        &Principal::Human("alice".to_owned()),
        &ALL_SURFACES.into_iter().collect(),
        None,
    );
    assert_eq!(decision.tier, Tier::NotifyAndProceed);
    insta::assert_snapshot!(
        countersign_policy::explain_text(&decision).replace(PERMIT_ALL.version(), "<version>")
    );
}
