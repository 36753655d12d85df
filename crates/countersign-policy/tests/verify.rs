//! Verification with cvc5: the default pack's properties hold, a planted hole is found with
//! a counterexample in plain words, equivalent packs are proved equivalent, different ones
//! are told apart per tier. Needs cvc5 (`CVC5` or `PATH`): skipped with a printed reason
//! when it is absent locally, a failure under `CI=true`.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::path::PathBuf;

use countersign_policy::{
    Outcome, PackModule, PolicyPack, SolverConfig, Tier, VerifyError, default_files,
    default_files_with, diff, parse_properties, solver_version, verify,
};

fn solver() -> Option<SolverConfig> {
    let config = SolverConfig::new(std::env::var_os("CVC5").map(PathBuf::from));
    match solver_version(&config) {
        Ok(_) => Some(config),
        Err(error) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping: no usable cvc5 ({error}); CI runs this test");
            None
        }
        Err(error) => panic!("CI=true and no usable cvc5: {error}"),
    }
}

fn default_with(extra: &[(&str, &str)]) -> PolicyPack {
    let mut files: Vec<(String, String)> = default_files()
        .into_iter()
        .map(|(p, t)| (p.to_owned(), t.to_owned()))
        .collect();
    files.extend(
        extra
            .iter()
            .map(|(p, t)| ((*p).to_owned(), (*t).to_owned())),
    );
    PolicyPack::from_files(files).unwrap()
}

#[test]
fn the_default_pack_satisfies_the_builtin_properties() {
    let Some(solver) = solver() else { return };
    let verification = verify(&PolicyPack::default_pack(), &[], &solver).unwrap();
    assert!(verification.holds(), "{:#?}", verification.results);
    assert_eq!(verification.results.len(), 11);
    assert!(!verification.solver_version.is_empty());
}

/// A team pack whose permits are careful, plus a "fast lane" that lets a fully covered
/// payments change auto-merge: the hole.
const HOLED_PACK: &str = r#"
@id("auto-merge-low")
@reason("Low, mapped, safe changes auto-merge.")
permit (principal, action == Countersign::Action::"auto_merge", resource)
when {
  context.max_criticality_reached <= 1 && context.never_automate_touched.isEmpty() &&
  context.unmapped_files == 0 && context.reachable_vulnerabilities == 0 &&
  !(context.evidence_considered && context.coverage_percent < 100)
};

@id("notify-moderate")
@reason("Moderate safe changes notify.")
permit (principal, action == Countersign::Action::"notify_and_proceed", resource)
when {
  context.max_criticality_reached <= 2 && context.never_automate_touched.isEmpty() &&
  context.reachable_vulnerabilities == 0
};

@id("single-approver")
@reason("Anything else may take one approver.")
permit (principal, action == Countersign::Action::"single_approver", resource);

@id("payments-fast-lane")
@reason("Fully covered payments changes go through.")
permit (principal, action == Countersign::Action::"auto_merge", resource)
when {
  context.surfaces_touched.contains("payments") && context.evidence_considered &&
  context.coverage_percent == 100 && context.failed_suites == 0
};
"#;

#[test]
fn a_planted_hole_is_found_with_a_counterexample() {
    let Some(solver) = solver() else { return };
    let pack =
        PolicyPack::from_files(vec![("team.cedar".to_owned(), HOLED_PACK.to_owned())]).unwrap();
    let verification = verify(&pack, &[], &solver).unwrap();
    assert!(!verification.holds());
    let failed: Vec<&str> = verification
        .results
        .iter()
        .filter(|r| r.outcome != Outcome::Holds)
        .map(|r| r.id.as_str())
        .collect();
    // The fast lane also lets unmapped files, reachable vulnerabilities, an agent's build
    // files and a self-validated suite through, and automates high-criticality changes that
    // evidence has not earned (an empty plan, a regression, a data store, a critical reach).
    assert_eq!(
        failed,
        [
            "never-automate-touched-never-automated",
            "unmapped-files-never-auto-merge",
            "reachable-vulnerability-never-automated",
            "agent-build-never-automated",
            "agent-unmapped-never-automated",
            "self-validated-suite-never-automated",
            "earned-automation-needs-full-coverage",
            "earned-automation-needs-no-failure-or-regression",
            "earned-automation-never-on-never-automate-surfaces",
            "earned-automation-never-on-data-stores-or-critical-reach"
        ]
    );
    let Outcome::Fails {
        tier,
        counterexample,
    } = &verification.results[0].outcome
    else {
        panic!("the hole was not found: {:?}", verification.results[0]);
    };
    assert_eq!(*tier, Tier::AutoMerge);
    let touched = counterexample.facts["never_automate_touched"]
        .as_array()
        .unwrap();
    assert!(touched.contains(&"payments".into()), "{counterexample:?}");
    assert_eq!(counterexample.facts["coverage_percent"], 100);
    let words = counterexample.describe();
    assert!(words.contains("payments"), "{words}");
    assert!(words.contains("coverage 100%"), "{words}");
    eprintln!("counterexample: {words}");
}

#[test]
fn a_team_property_is_checked_and_its_violation_explained() {
    let Some(solver) = solver() else { return };
    // The team forbids automating changes that reach payments while payments is on the
    // never-automate list: the default pack rules that out (never-automate-surface-reached).
    // Without the list condition it would fail: the list is configurable.
    let properties = parse_properties(
        "team.cedar",
        r#"
@id("payments-reached-needs-a-human")
@reason("Anything reaching payments is seen by a human.")
forbid (principal, action in [Countersign::Action::"auto_merge", Countersign::Action::"notify_and_proceed"], resource)
when { context.never_automate_reached.contains("payments") };

@id("agents-never-auto-merge")
@reason("Agent changes at least notify their owners.")
forbid (principal, action == Countersign::Action::"auto_merge", resource)
when { principal.kind == "agent" };
"#,
    )
    .unwrap();
    let verification = verify(&PolicyPack::default_pack(), &properties, &solver).unwrap();
    let outcome = |id: &str| {
        verification
            .results
            .iter()
            .find(|r| r.id == id)
            .unwrap()
            .outcome
            .clone()
    };
    assert_eq!(outcome("payments-reached-needs-a-human"), Outcome::Holds);
    let Outcome::Fails {
        tier,
        counterexample,
    } = outcome("agents-never-auto-merge")
    else {
        panic!("the default pack lets agents auto-merge low changes");
    };
    assert_eq!(tier, Tier::AutoMerge);
    assert_eq!(counterexample.facts["author_kind"], "agent");
    assert!(counterexample.describe().contains("by a agent author"));
}

#[test]
fn differently_written_equivalent_packs_are_equivalent() {
    let Some(solver) = solver() else { return };
    // The same rules, one file, with `in` lists split into single-action policies and the
    // negations moved around.
    let rewritten = default_with(&[]);
    let other = PolicyPack::from_files(vec![(
        "all.cedar".to_owned(),
        r#"
@id("a") @reason("r") permit (principal, action == Countersign::Action::"auto_merge", resource) unless { context.max_criticality_reached > 1 };
@id("b") @reason("r") permit (principal, action == Countersign::Action::"notify_and_proceed", resource) unless { context.max_criticality_reached >= 3 };
@id("c") @reason("r") permit (principal, action == Countersign::Action::"single_approver", resource);
@id("d") @reason("r") forbid (principal, action in [Countersign::Action::"auto_merge", Countersign::Action::"notify_and_proceed", Countersign::Action::"single_approver"], resource) when { context.never_automate_touched.isEmpty() == false || (context.governance_touched && principal.kind == "agent") || context.reachable_vulnerabilities >= 1 };
@id("e") @reason("r") forbid (principal, action in [Countersign::Action::"auto_merge", Countersign::Action::"notify_and_proceed"], resource) when { !context.never_automate_reached.isEmpty() || context.critical_reached > 0 || context.revenue_path_reached > 0 || context.max_criticality_touched > 2 || context.data_stores_touched > 0 || (context.evidence_considered && !(context.coverage_percent >= 100)) || context.failed_suites > 0 || context.regressions > 0 || !context.base_suite_passed.containsAll(context.self_validated_suites) };
@id("f") @reason("r") forbid (principal, action == Countersign::Action::"auto_merge", resource) when { context.surfaces_reached.isEmpty() == false || context.unmapped_files > 0 };
@id("g") @reason("r") forbid (principal, action in [Countersign::Action::"auto_merge", Countersign::Action::"notify_and_proceed"], resource) when { principal.kind == "agent" && (context.surfaces_touched.contains("build") || context.unmapped_files >= 1) };
"#
        .to_owned(),
    )])
    .unwrap();
    let result = diff(&rewritten, &other, &solver).unwrap();
    assert!(result.equivalent(), "{:#?}", result.differences);
}

#[test]
fn different_packs_differ_on_the_tiers_they_route_differently() {
    let Some(solver) = solver() else { return };
    let stricter = default_with(&[(
        "agents.cedar",
        r#"
@id("agents-notify-at-least")
@reason("Changes written by agents always notify their owners.")
forbid (principal, action == Countersign::Action::"auto_merge", resource)
when { principal.kind == "agent" };
"#,
    )]);
    let result = diff(&PolicyPack::default_pack(), &stricter, &solver).unwrap();
    assert!(!result.equivalent());
    let tiers: Vec<Tier> = result.differences.iter().map(|d| d.tier).collect();
    assert_eq!(tiers, [Tier::AutoMerge]);
    let difference = &result.differences[0];
    assert!(difference.old_permits && !difference.new_permits);
    assert_eq!(difference.counterexample.facts["author_kind"], "agent");
}

#[test]
fn a_missing_solver_is_reported_not_hung() {
    let solver = SolverConfig::new(Some(PathBuf::from("/nonexistent")));
    let error = verify(&PolicyPack::default_pack(), &[], &solver).unwrap_err();
    assert!(
        matches!(error, VerifyError::SolverMissing { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("/nonexistent"), "{error}");
}

#[test]
fn the_documented_properties_file_parses() {
    let doc = include_str!("../../../docs/policy.md");
    let block = doc
        .split("### A team's properties file")
        .nth(1)
        .and_then(|rest| rest.split("```cedar\n").nth(1))
        .and_then(|block| block.split("```").next())
        .unwrap();
    let properties = parse_properties("docs/policy.md", block).unwrap();
    let ids: Vec<&str> = properties.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "payments-reached-needs-a-human",
            "agents-never-auto-merge",
            "auto-merge-needs-full-coverage"
        ]
    );
}

#[test]
fn the_earned_automation_module_satisfies_the_builtin_properties() {
    let Some(solver) = solver() else { return };
    let pack = PolicyPack::default_with(&[PackModule::EarnedAutomation]).unwrap();
    let verification = verify(&pack, &[], &solver).unwrap();
    assert!(verification.holds(), "{:#?}", verification.results);
    assert!(
        verification
            .results
            .iter()
            .any(|r| r.id == "earned-automation-needs-full-coverage")
    );
}

/// The earned-automation module with one of its conditions dropped and, where another file
/// of the pack would still catch the hole, that file's rule switched off too: what a team
/// "tuning" the module could write. Each is refuted by the property that names the hole.
/// `(file, text, replacement)`.
type Edit<'a> = (&'a str, &'a str, &'a str);

fn broken_module(edits: &[Edit<'_>]) -> PolicyPack {
    let files = default_files_with(&[PackModule::EarnedAutomation])
        .into_iter()
        .map(|(path, text)| {
            let mut text = text.to_owned();
            for (file, from, to) in edits {
                if *file == path {
                    assert!(text.contains(from), "{path}: no {from:?}");
                    text = text.replace(from, to);
                }
            }
            (path.to_owned(), text)
        })
        .collect();
    PolicyPack::from_files(files).unwrap()
}

#[test]
fn a_broken_earned_automation_module_is_refuted() {
    let Some(solver) = solver() else { return };
    const MODULE: &str = "earned_automation.cedar";
    let cases: [(&str, Vec<Edit<'_>>); 4] = [
        (
            "earned-automation-needs-full-coverage",
            // An empty plan reads as 100% covered.
            vec![(MODULE, "context.planned_suites > 0 &&", "")],
        ),
        (
            "earned-automation-needs-no-failure-or-regression",
            vec![
                (MODULE, "context.failed_suites == 0 &&", ""),
                (MODULE, "context.regressions == 0 &&", ""),
                (
                    "evidence.cedar",
                    "when { context.failed_suites > 0 || context.regressions > 0 };",
                    "when { context.failed_suites < 0 };",
                ),
            ],
        ),
        (
            "earned-automation-never-on-never-automate-surfaces",
            vec![
                (
                    MODULE,
                    "  context.never_automate_reached.isEmpty()\n",
                    "  true\n",
                ),
                (
                    "never_automate.cedar",
                    "when { !context.never_automate_reached.isEmpty() };",
                    "when { context.unmapped_files < 0 };",
                ),
            ],
        ),
        (
            "self-validated-suite-never-automated",
            vec![
                (
                    MODULE,
                    "context.base_suite_passed.containsAll(context.self_validated_suites) &&",
                    "",
                ),
                (
                    "evidence.cedar",
                    "when { !context.base_suite_passed.containsAll(context.self_validated_suites) };",
                    "when { context.unmapped_files < 0 };",
                ),
            ],
        ),
    ];
    for (property, edits) in cases {
        let verification = verify(&broken_module(&edits), &[], &solver).unwrap();
        let result = verification
            .results
            .iter()
            .find(|r| r.id == property)
            .unwrap();
        let Outcome::Fails {
            tier,
            counterexample,
        } = &result.outcome
        else {
            panic!("{property}: the hole was not found");
        };
        // The self-validation property is about every change: with the pack's own rule
        // off, the solver may find a low change that auto-merges.
        if property.starts_with("earned-automation") {
            assert_eq!(*tier, Tier::NotifyAndProceed, "{property}");
            assert!(
                counterexample.facts["max_criticality_touched"].as_i64() >= Some(3),
                "{property}: {counterexample:?}"
            );
        }
        eprintln!("{property}: {}", counterexample.describe());
    }
}
