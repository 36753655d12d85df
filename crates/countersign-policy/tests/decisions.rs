//! Decisions of the default pack for hand-made impacts, as one snapshot table, plus a few
//! full explanations.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::{Change, N, group, user};
use countersign_graph::{Criticality::*, Surface};
use countersign_policy::{
    Decision, DecisionInput, EvidenceFacts, OwnerGroup, PolicyPack, ReasonSource, Tier, decide,
    explain_text,
};

struct Case {
    name: &'static str,
    author: &'static str,
    change: Change,
    declared: Option<&'static str>,
    evidence: Option<EvidenceFacts>,
}

fn case(name: &'static str, author: &'static str, change: Change) -> Case {
    Case {
        name,
        author,
        change,
        declared: None,
        evidence: None,
    }
}

fn pool() -> Vec<OwnerGroup> {
    vec![
        OwnerGroup {
            owner: group("docs"),
            members: vec![user("dana"), user("alice")],
        },
        OwnerGroup {
            owner: group("payments"),
            members: vec![user("pat"), user("quinn"), group("payments-oncall")],
        },
        OwnerGroup {
            owner: group("platform"),
            members: vec![user("alice"), user("bob")],
        },
        OwnerGroup {
            owner: group("data"),
            members: vec![user("dora")],
        },
    ]
}

fn run(pack: &PolicyPack, case: &Case) -> Decision {
    let impact = case.change.impact();
    let mut input = DecisionInput::new(&impact, case.author.parse().unwrap());
    input.declared_tier = case.declared.map(str::to_owned);
    input.approver_pool = pool();
    input.evidence = case.evidence;
    decide(pack, &input)
}

fn cases() -> Vec<Case> {
    let docs = N::new("docs-site", Low).owner("docs");
    let web = N::new("web-frontend", Moderate).owner("platform");
    let mut cases = vec![
        case(
            "docs typo on a low node",
            "human:alice",
            Change::touch([docs.clone()]),
        ),
        case(
            "agent docs typo on a low node",
            "agent:fixbot",
            Change::touch([docs.clone()]),
        ),
        case(
            "moderate node",
            "agent:fixbot",
            Change::touch([web.clone()]),
        ),
        case(
            "low library reaching a moderate service",
            "agent:fixbot",
            Change::touch([N::new("strings-lib", Low).owner("platform")]).reach([web.clone()]),
        ),
        case(
            "payments surface",
            "human:alice",
            Change::touch([N::new("payments-api", High)
                .owner("payments")
                .surface(Surface::Payments)
                .revenue()]),
        ),
        case(
            "high criticality",
            "human:alice",
            Change::touch([N::new("search-api", High).owner("platform")]),
        ),
        case(
            "data store touched",
            "agent:fixbot",
            Change::touch([N::new("orders-db", Low).owner("data").data_store()]),
        ),
        case(
            "unmapped files only",
            "human:alice",
            Change::default().unmapped(["scratch/notes.txt"]),
        ),
        case(
            "unmapped file beside a low node",
            "human:alice",
            Change::touch([docs.clone()]).unmapped(["scratch/notes.txt"]),
        ),
        case(
            "agent edits governance",
            "agent:fixbot",
            Change::default().governance([".countersign/policy/tiers.cedar"]),
        ),
        case(
            "human edits governance",
            "human:alice",
            Change::default().governance(["catalog-info.yaml"]),
        ),
        case(
            "critical node reached",
            "agent:fixbot",
            Change::touch([N::new("http-lib", Low).owner("platform")])
                .reach([N::new("checkout", Critical).owner("payments")]),
        ),
        case(
            "revenue path reached",
            "agent:fixbot",
            Change::touch([N::new("http-lib", Low).owner("platform")]).reach([N::new(
                "pricing", Moderate,
            )
            .owner("payments")
            .revenue()]),
        ),
        case(
            "auth surface reached, not touched",
            "agent:fixbot",
            Change::touch([N::new("http-lib", Low).owner("platform")]).reach([N::new(
                "login", Moderate,
            )
            .owner("platform")
            .surface(Surface::Auth)]),
        ),
        case(
            "ci-cd surface touched by a runner",
            "runner:ci",
            Change::touch([N::new("pipeline", Low)
                .owner("platform")
                .surface(Surface::CiCd)]),
        ),
        case(
            "payments change with no eligible approvers",
            "human:pat",
            Change::touch([N::new("refunds", Moderate)
                .owner("payments")
                .surface(Surface::Payments)]),
        ),
    ];
    let mut declared = case(
        "declared tier is ignored",
        "agent:fixbot",
        Change::touch([N::new("search-api", High).owner("platform")]),
    );
    declared.declared = Some("auto_merge");
    cases.push(declared);

    let evidence = |coverage, failed, vulns| EvidenceFacts {
        coverage_percent: coverage,
        planned_suites: 4,
        failed_suites: failed,
        regressions: 0,
        reachable_vulnerabilities: vulns,
    };
    let mut full = case(
        "docs typo with full coverage",
        "agent:fixbot",
        Change::touch([docs.clone()]),
    );
    full.evidence = Some(evidence(100, 0, 0));
    cases.push(full);
    let mut partial = case(
        "docs typo with partial coverage",
        "agent:fixbot",
        Change::touch([docs.clone()]),
    );
    partial.evidence = Some(evidence(60, 0, 0));
    cases.push(partial);
    let mut vuln = case(
        "reachable vulnerability",
        "agent:fixbot",
        Change::touch([docs]),
    );
    vuln.evidence = Some(evidence(100, 0, 1));
    cases.push(vuln);
    cases
}

fn source(reason: &countersign_policy::Reason) -> String {
    match &reason.source {
        ReasonSource::Policy { id } => id.clone(),
        ReasonSource::Invariant { name } => format!("invariant:{name}"),
        ReasonSource::Floor => "floor".to_owned(),
        ReasonSource::DefaultDeny => "no-permit".to_owned(),
        ReasonSource::Evidence => "evidence".to_owned(),
    }
}

#[test]
fn default_pack_decisions() {
    let pack = PolicyPack::default_pack();
    let mut table = String::new();
    for case in cases() {
        let decision = run(&pack, &case);
        table.push_str(&format!(
            "## {} ({})\ntier: {}\n",
            case.name, case.author, decision.tier
        ));
        for reason in &decision.reasons {
            table.push_str(&format!(
                "  {:<18} {:<7} {}\n",
                reason.tier.map_or("-", Tier::as_str),
                reason.effect.as_str(),
                source(reason)
            ));
        }
        let a = &decision.approvals;
        let names = |refs: &[countersign_graph::EntityRef]| {
            refs.iter()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>()
                .join(",")
        };
        table.push_str(&format!(
            "  approvals: required={} eligible=[{}] notify=[{}] shortfall={}\n",
            a.required,
            names(&a.eligible),
            names(&a.notify),
            a.shortfall
        ));
        if let Some(declared) = &decision.declared_tier {
            table.push_str(&format!(
                "  declared: {} ({})\n",
                declared.value, declared.ignored
            ));
        }
        table.push('\n');
    }
    insta::assert_snapshot!(table);
}

#[test]
fn explanations() {
    let pack = PolicyPack::default_pack();
    let all = cases();
    let mut out = String::new();
    for name in [
        "docs typo on a low node",
        "unmapped file beside a low node",
        "payments change with no eligible approvers",
        "declared tier is ignored",
    ] {
        let case = all.iter().find(|c| c.name == name).unwrap();
        let decision = run(&pack, case);
        // The version changes with every edit of the pack; it is checked elsewhere.
        let text = explain_text(&decision).replace(pack.version(), "<version>");
        out.push_str(&format!("===== {name}\n{text}\n"));
    }
    insta::assert_snapshot!(out);
}
