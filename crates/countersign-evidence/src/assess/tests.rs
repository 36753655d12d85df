//! Unit tests of the assessment rules on a small graph:
//! `lib` (no exposure) ← `api` (internal) ← `web` (internet); `tool` stands alone.

use super::*;
use crate::plan::PlannedSuite;
use crate::report::vex::{VexFormat, VexStatement};
use crate::statement::{Scanner, TestResult, VulnSeverity, Vulns};
use countersign_graph::{GraphSettings, MemorySource};

const CATALOG: &str = r#"apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: lib
  annotations:
    countersign.dev/paths: /lib/**
    countersign.dev/suites: lib-unit, scan
spec: {type: library, lifecycle: production, owner: team}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: api
  annotations:
    countersign.dev/paths: /api/**
    countersign.dev/suites: api-contract
spec: {type: service, lifecycle: production, owner: team, dependsOn: [component:lib]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: web
  annotations:
    countersign.dev/paths: /web/**
    countersign.dev/exposure: internet
    countersign.dev/suites: e2e
spec: {type: website, lifecycle: production, owner: team, dependsOn: [component:api]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: tool
  annotations:
    countersign.dev/paths: /tool/**
    countersign.dev/suites: tool-scan
spec: {type: tool, lifecycle: production, owner: team}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team
spec: {type: team, children: []}
"#;

fn graph() -> SystemGraph {
    let source = MemorySource::new([("catalog-info.yaml", CATALOG)]);
    countersign_graph::build(&source, &GraphSettings::default())
        .unwrap()
        .graph
}

fn component(name: &str) -> EntityRef {
    EntityRef {
        kind: Kind::Component,
        namespace: "default".into(),
        name: name.into(),
    }
}

/// lib-unit for lib (touched), api-contract for api (a dependent).
fn plan() -> ValidationPlan {
    ValidationPlan {
        depth: 1,
        suites: vec![
            PlannedSuite {
                suite: "api-contract".into(),
                reasons: vec![PlanReason::Dependent {
                    node: component("api"),
                    distance: 1,
                    via: countersign_graph::impact::Chain {
                        head: vec![component("lib"), component("api")],
                        ..Default::default()
                    },
                }],
            },
            PlannedSuite {
                suite: "lib-unit".into(),
                reasons: vec![PlanReason::Touched {
                    node: component("lib"),
                }],
            },
        ],
        uncovered: vec![],
    }
}

fn evidence(suite: &str, predicate: Predicate) -> AcceptedEvidence {
    AcceptedEvidence {
        runner: "ci".into(),
        key_id: "k".into(),
        suite: suite.into(),
        repository: "acme/shop".into(),
        commit: "c".into(),
        predicate,
        vex_authority: false,
    }
}

fn tests(suite: &str, passed: &[&str], failed: &[&str]) -> AcceptedEvidence {
    let list = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    evidence(
        suite,
        Predicate::TestResult(TestResult {
            result: if failed.is_empty() {
                TestResultOutcome::Passed
            } else {
                TestResultOutcome::Failed
            },
            configuration: vec![],
            url: None,
            passed_tests: list(passed),
            warned_tests: vec![],
            failed_tests: list(failed),
            failure_messages: Default::default(),
        }),
    )
}

fn scan(suite: &str, findings: &[(&str, Option<&str>)]) -> AcceptedEvidence {
    evidence(
        suite,
        Predicate::Vulns(Vulns {
            scanner: Scanner {
                uri: "pkg:generic/scanner".into(),
                version: None,
                db: None,
                result: findings
                    .iter()
                    .map(|(id, package)| VulnResult {
                        id: (*id).into(),
                        severity: vec![VulnSeverity {
                            method: "nvd".into(),
                            score: "high".into(),
                        }],
                        annotations: package
                            .iter()
                            .map(|p| {
                                BTreeMap::from([(
                                    PACKAGE_ANNOTATION.to_owned(),
                                    Value::String((*p).to_owned()),
                                )])
                            })
                            .collect(),
                    })
                    .collect(),
            },
            metadata: None,
        }),
    )
}

fn vex(suite: &str, id: &str, products: &[&str], status: VexStatus) -> AcceptedEvidence {
    evidence(
        suite,
        Predicate::OpenVex(VexDocument {
            format: VexFormat::OpenVex,
            statements: vec![VexStatement {
                vulnerability: id.into(),
                aliases: vec![],
                products: products.iter().map(|p| (*p).to_owned()).collect(),
                status,
                justification: (status == VexStatus::NotAffected)
                    .then(|| "vulnerable_code_not_in_execute_path".to_owned()),
                impact_statement: None,
            }],
        }),
    )
}

fn run(head: &[AcceptedEvidence], base: &[AcceptedEvidence]) -> Assessment {
    let graph = graph();
    let plan = plan();
    assess(&AssessInput {
        graph: &graph,
        plan: &plan,
        head,
        base,
        base_commit: Some("b"),
    })
}

#[test]
fn coverage_counts_planned_suites_with_passing_head_evidence() {
    let none = run(&[], &[]);
    assert_eq!((none.coverage.planned, none.coverage.passed), (2, 0));
    assert_eq!(none.coverage.percent, 0);
    assert!(none.suites.iter().all(|s| s.status == SuiteStatus::Missing));

    let half = run(&[tests("lib-unit", &["a"], &[])], &[]);
    assert_eq!(half.coverage.percent, 50);
    let lib = half
        .coverage
        .nodes
        .iter()
        .find(|n| n.node == component("lib"))
        .unwrap();
    assert_eq!(
        (lib.percent, lib.passed.as_slice()),
        (100, &["lib-unit".to_owned()][..])
    );
    let api = half
        .coverage
        .nodes
        .iter()
        .find(|n| n.node == component("api"))
        .unwrap();
    assert_eq!(api.percent, 0);

    let full = run(
        &[
            tests("lib-unit", &["a"], &[]),
            tests("api-contract", &["b"], &[]),
        ],
        &[],
    );
    assert_eq!(full.coverage.percent, 100);
    assert!(full.failed_suites.is_empty());
}

#[test]
fn nothing_planned_is_full_coverage_and_unplanned_suites_are_listed() {
    let graph = graph();
    let empty = ValidationPlan::default();
    let head = [tests("e2e", &["x"], &[])];
    let a = assess(&AssessInput {
        graph: &graph,
        plan: &empty,
        head: &head,
        base: &[],
        base_commit: None,
    });
    assert_eq!(a.coverage.percent, 100);
    assert_eq!(a.suites.len(), 1);
    assert!(!a.suites[0].planned);
}

#[test]
fn any_failing_head_result_fails_the_suite() {
    let a = run(
        &[
            tests("lib-unit", &["a"], &[]),
            tests("lib-unit", &[], &["b"]),
            tests("api-contract", &["c"], &[]),
        ],
        &[],
    );
    assert_eq!(a.failed_suites, ["lib-unit"]);
    assert_eq!(a.coverage.percent, 50);
}

#[test]
fn rounding_never_reaches_full_coverage_early() {
    assert_eq!(percent(199, 200), 99);
    assert_eq!(percent(0, 0), 100);
    assert_eq!(percent(3, 3), 100);
}

#[test]
fn regressions_pass_at_base_and_fail_at_head_in_the_same_suite() {
    let a = run(
        &[tests("lib-unit", &["kept"], &["broke", "was-broken"])],
        &[
            tests("lib-unit", &["kept", "broke"], &["was-broken"]),
            tests("other", &["was-broken"], &[]),
        ],
    );
    assert_eq!(
        a.regressions,
        [Regression {
            suite: "lib-unit".into(),
            test: "broke".into(),
            kind: RegressionKind::Failing,
        }]
    );
    assert_eq!(
        a.newly_passing,
        [],
        "was-broken still fails; `other` has no head run"
    );
}

/// The attack of issue 21: the change deletes (or skips) the test that failed. The head's
/// run passes, but the test that passed at the base is missing from it: a regression.
#[test]
fn a_test_gone_from_the_heads_run_is_a_missing_regression() {
    let a = run(
        &[tests("lib-unit", &["kept"], &[])],
        &[tests("lib-unit", &["kept", "deleted"], &[])],
    );
    assert_eq!(
        a.regressions,
        [Regression {
            suite: "lib-unit".into(),
            test: "deleted".into(),
            kind: RegressionKind::Missing,
        }]
    );
    assert!(a.failed_suites.is_empty(), "the head's own run passed");
    // No head run of the suite at all: a coverage gap, not a regression.
    let a = run(&[], &[tests("lib-unit", &["kept", "deleted"], &[])]);
    assert!(a.regressions.is_empty());
    // A test that failed at the base and passes now is listed, not counted.
    let a = run(
        &[tests("lib-unit", &["kept", "fixed"], &[])],
        &[tests("lib-unit", &["kept"], &["fixed"])],
    );
    assert!(a.regressions.is_empty());
    assert_eq!(
        a.newly_passing,
        [NewlyPassing {
            suite: "lib-unit".into(),
            test: "fixed".into()
        }]
    );
}

fn from_source(mut e: AcceptedEvidence, commit: &str) -> AcceptedEvidence {
    if let Predicate::TestResult(r) = &mut e.predicate {
        r.configuration.push(crate::statement::ResourceDescriptor {
            name: Some(crate::statement::SUITE_SOURCE.to_owned()),
            digest: [("gitCommit".to_owned(), commit.to_owned())].into(),
            ..Default::default()
        });
    }
    e
}

/// A head run of the base's suite files confirms a self-validated suite only when it names
/// the base and passes; it never stands in for the head's own run of the suite.
#[test]
fn a_run_of_the_base_suite_confirms_and_counts_for_nothing_else() {
    let base_run = from_source(tests("lib-unit", &["kept", "deleted"], &[]), "b");
    let a = run(std::slice::from_ref(&base_run), &[]);
    assert_eq!(a.base_suite_passed, ["lib-unit"]);
    let lib = a.suites.iter().find(|s| s.suite == "lib-unit").unwrap();
    assert_eq!(lib.status, SuiteStatus::Missing, "not the head's own run");
    assert_eq!(a.coverage.passed, 0);

    // Another commit's suite, or a failing base run beside a passing one: no confirmation.
    let other = from_source(tests("lib-unit", &["kept"], &[]), "someone-else");
    assert!(run(&[other], &[]).base_suite_passed.is_empty());
    let failing = from_source(tests("lib-unit", &["kept"], &["deleted"]), "b");
    assert!(run(&[base_run, failing], &[]).base_suite_passed.is_empty());
    // A run naming the head itself is the head's own run.
    let own = from_source(tests("lib-unit", &["kept"], &[]), "c");
    let a = run(&[own], &[]);
    assert!(a.base_suite_passed.is_empty());
    assert_eq!(a.coverage.passed, 1);
}

#[test]
fn a_vulnerability_under_an_internet_node_is_reachable_with_its_path() {
    let a = run(&[scan("scan", &[("CVE-1", None)])], &[]);
    assert_eq!(a.vulnerabilities.len(), 1);
    let v = &a.vulnerabilities[0];
    assert_eq!(v.node, Some(component("lib")));
    assert_eq!(
        v.reachability,
        Reachability::Reachable {
            path: vec![component("lib"), component("api"), component("web")]
        }
    );
    assert!(v.blocks());
    assert_eq!(a.blocking_vulnerabilities(), 1);
    assert_eq!(v.severity.as_deref(), Some("high (nvd)"));
    // A completed scan counts as the suite having run.
    assert!(
        a.suites
            .iter()
            .any(|s| s.suite == "scan" && s.status == SuiteStatus::Passed)
    );
}

#[test]
fn a_vulnerability_no_internet_node_depends_on_is_unreachable() {
    let a = run(&[scan("tool-scan", &[("CVE-2", None)])], &[]);
    assert_eq!(a.vulnerabilities[0].node, Some(component("tool")));
    assert_eq!(a.vulnerabilities[0].reachability, Reachability::Unreachable);
    assert_eq!(a.blocking_vulnerabilities(), 0);
}

#[test]
fn the_package_annotation_places_a_finding_on_its_node() {
    for package in ["pkg:cargo/tool@1.0.0", "component:default/tool", "tool"] {
        let a = run(&[scan("scan", &[("CVE-3", Some(package))])], &[]);
        assert_eq!(a.vulnerabilities.len(), 1, "{package}");
        assert_eq!(
            a.vulnerabilities[0].node,
            Some(component("tool")),
            "{package}"
        );
        assert_eq!(a.vulnerabilities[0].package.as_deref(), Some(package));
    }
}

#[test]
fn a_finding_on_no_node_counts_as_reachable() {
    let a = run(&[scan("nobody-runs-this", &[("CVE-4", None)])], &[]);
    assert_eq!(a.vulnerabilities[0].node, None);
    assert_eq!(
        a.vulnerabilities[0].reachability,
        Reachability::UnknownLocation
    );
    assert!(a.vulnerabilities[0].blocks());
}

#[test]
fn vex_not_affected_with_justification_makes_it_not_reachable() {
    let head = [
        scan("scan", &[("CVE-5", Some("pkg:cargo/lib@0.1.0"))]),
        vex(
            "scan",
            "CVE-5",
            &["pkg:cargo/lib@0.1.0"],
            VexStatus::NotAffected,
        ),
    ];
    let a = run(&head, &[]);
    assert!(matches!(
        a.vulnerabilities[0].reachability,
        Reachability::NotAffected { .. }
    ));
    assert!(!a.vulnerabilities[0].blocks());

    // A product naming the node as an entity ref works too; no products means the VEX
    // suite's nodes.
    for products in [&["component:default/lib"][..], &[][..]] {
        let head = [
            scan("scan", &[("CVE-5", None)]),
            vex("scan", "CVE-5", products, VexStatus::NotAffected),
        ];
        assert_eq!(
            run(&head, &[]).blocking_vulnerabilities(),
            0,
            "{products:?}"
        );
    }

    // VEX about another vulnerability or another node changes nothing.
    for (id, products) in [("CVE-9", &["lib"][..]), ("CVE-5", &["tool"][..])] {
        let head = [
            scan("scan", &[("CVE-5", None)]),
            vex("scan", id, products, VexStatus::NotAffected),
        ];
        assert_eq!(
            run(&head, &[]).blocking_vulnerabilities(),
            1,
            "{id} {products:?}"
        );
    }
}

#[test]
fn affected_outweighs_not_affected_and_justification_is_required() {
    let head = [
        scan("scan", &[("CVE-6", None)]),
        vex("scan", "CVE-6", &["lib"], VexStatus::NotAffected),
        vex("scan", "CVE-6", &["lib"], VexStatus::Affected),
    ];
    assert_eq!(run(&head, &[]).blocking_vulnerabilities(), 1);

    let mut unjustified = vex("scan", "CVE-6", &["lib"], VexStatus::NotAffected);
    if let Predicate::OpenVex(doc) = &mut unjustified.predicate {
        doc.statements[0].justification = None;
        doc.statements[0].impact_statement = Some("trust me".into());
    }
    let head = [scan("scan", &[("CVE-6", None)]), unjustified];
    assert_eq!(run(&head, &[]).blocking_vulnerabilities(), 1);
}

#[test]
fn a_vulnerability_in_the_base_evidence_is_pre_existing_and_does_not_block() {
    let a = run(
        &[scan("scan", &[("CVE-7", None), ("CVE-8", None)])],
        &[scan("scan", &[("cve-7", None)])],
    );
    let by_id: BTreeMap<&str, &Vulnerability> = a
        .vulnerabilities
        .iter()
        .map(|v| (v.id.as_str(), v))
        .collect();
    assert!(by_id["CVE-7"].pre_existing);
    assert!(by_id["CVE-7"].reachability.is_reachable());
    assert!(!by_id["CVE-7"].blocks());
    assert!(!by_id["CVE-8"].pre_existing);
    assert_eq!(a.blocking_vulnerabilities(), 1);
}

#[test]
fn vex_products_must_be_known() {
    let graph = graph();
    let head = [scan("scan", &[("CVE-1", Some("pkg:npm/left-pad@1.0.0"))])];
    let doc = |product: &str| VexDocument {
        format: VexFormat::OpenVex,
        statements: vec![VexStatement {
            vulnerability: "CVE-1".into(),
            aliases: vec![],
            products: vec![product.into()],
            status: VexStatus::NotAffected,
            justification: Some("component_not_present".into()),
            impact_statement: None,
        }],
    };
    assert!(check_vex_products("v.json", &doc("lib"), &graph, &head).is_ok());
    assert!(check_vex_products("v.json", &doc("pkg:npm/left-pad@1.0.0"), &graph, &head).is_ok());
    let err = check_vex_products("v.json", &doc("pkg:npm/unknown@1"), &graph, &head).unwrap_err();
    assert!(matches!(err, ReportError::UnknownProduct { .. }), "{err}");
}

#[test]
fn purl_names() {
    assert_eq!(purl_name("cargo/cart@1.0").as_deref(), Some("cart"));
    assert_eq!(purl_name("npm/%40acme/ui@2?x=y#sub").as_deref(), Some("ui"));
    assert_eq!(purl_name("nonsense"), None);
    assert_eq!(purl_name("@1"), None);
}

#[test]
fn a_runners_vex_reaches_only_the_nodes_of_its_suite_unless_it_is_a_vex_authority() {
    let graph = graph();
    let outsider = vex("tool-scan", "CVE-5", &["lib"], VexStatus::NotAffected);
    let head = [scan("scan", &[("CVE-5", None)]), outsider.clone()];
    assert_eq!(run(&head, &[]).blocking_vulnerabilities(), 1);
    let Predicate::OpenVex(doc) = &outsider.predicate else {
        unreachable!()
    };
    let refused = check_vex_authority(&outsider, doc, &graph).unwrap_err();
    assert!(
        refused.contains("CVE-5") && refused.contains("lib"),
        "{refused}"
    );

    let mut authority = outsider;
    authority.vex_authority = true;
    let Predicate::OpenVex(doc) = &authority.predicate else {
        unreachable!()
    };
    assert!(check_vex_authority(&authority, doc, &graph).is_ok());
    let head = [scan("scan", &[("CVE-5", None)]), authority];
    assert_eq!(run(&head, &[]).blocking_vulnerabilities(), 0);
}

#[test]
fn base_evidence_of_another_suite_does_not_make_a_finding_pre_existing() {
    let a = run(
        &[scan("scan", &[("CVE-7", Some("lib"))])],
        &[scan("tool-scan", &[("CVE-7", Some("lib"))])],
    );
    assert!(!a.vulnerabilities[0].pre_existing);
    assert_eq!(a.blocking_vulnerabilities(), 1);
}
