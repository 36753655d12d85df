//! What accepted evidence says about a change: coverage of the validation plan (overall and
//! per node), failed suites, regressions against the base, and vulnerabilities with their
//! reachability from the internet.
//!
//! Inputs are values: the system graph of the base, the plan, and evidence already verified
//! (head evidence bound to the head commit, base evidence bound to the base commit). This
//! module verifies nothing, reads nothing and does not judge: turning an [`Assessment`] into
//! a tier is the policy's job.
//!
//! The rules (docs/evidence.md, "Evidence in the decision"):
//!
//! * **Suite status** at the head: `failed` when any head test-result for the suite is
//!   FAILED or lists a failed test; `passed` when some head test-result is PASSED or WARNED
//!   and lists a test that ran, or a vulnerability scan for the suite completed (its
//!   findings are judged by reachability, not by pass/fail); `no_tests` when head
//!   test-results arrived but none lists a test that ran (no test cases, only skipped ones):
//!   not a pass; else `missing`. A VEX document alone is a claim, not a run: it covers
//!   nothing.
//! * **Coverage** = planned suites that passed / planned suites, rounded down (99.5% is not
//!   full coverage); 100 when nothing is planned. Per node: the suites planned because of
//!   that node.
//! * **Failed suites** are planned suites whose status is `failed`.
//! * **Regressions** are tests in a base test-result's `passedTests` and a head
//!   test-result's `failedTests` of the same suite, planned or not: both sides are
//!   trusted evidence, so the change is what differs.
//! * **Where a vulnerability is**: the node its `countersign.dev/package` annotation names
//!   (an entity ref, or a purl whose name is a component's name), else every node whose
//!   `countersign.dev/suites` includes the suite the scan was attested for. A finding that
//!   lands on no node is counted as reachable: nothing shows it is not.
//! * **Reachable**: an internet-exposed node depends on the vulnerable node, transitively
//!   through graph dependents (the node itself counts); the path is the shortest such chain.
//!   Trusted head VEX saying `not_affected` with a `justification` makes it not affected,
//!   unless another statement says `affected`.
//! * **A finding is its location**: its identity is its id plus its fingerprint (the
//!   `countersign.dev/fingerprint` annotation, else its location); instances of one id in
//!   different places are different findings. Placement follows the finding's file through
//!   the graph's path map when no package annotation places it.
//! * **Pre-existing**: base evidence *of the same suite* reports the same finding (id and
//!   fingerprint) on the same node. Reported, never counted against the change. Base
//!   evidence of another suite (whose runner is not trusted for this one) proves nothing.
//! * **VEX authority**: `not_affected` counts only from a VEX authority (`vex = true`) or
//!   for a node the VEX envelope's suite exercises.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use countersign_graph::entity_ref::{self, RefContext};
use countersign_graph::{EntityRef, Exposure, Kind, NodeId, SystemGraph};
use serde_json::Value;

use crate::plan::{PlanReason, ValidationPlan};
use crate::report::ReportError;
use crate::report::vex::{VexDocument, VexStatus};
use crate::statement::{
    FINGERPRINT_ANNOTATION, LOCATION_ANNOTATION, Predicate, TestResultOutcome, VulnResult,
};
use crate::verify::AcceptedEvidence;

/// The vulns result annotation naming where a finding is.
pub const PACKAGE_ANNOTATION: &str = "countersign.dev/package";

/// What an assessment needs.
#[derive(Debug, Clone, Copy)]
pub struct AssessInput<'a> {
    /// The graph of the base commit, the one that judges the change.
    pub graph: &'a SystemGraph,
    pub plan: &'a ValidationPlan,
    /// Accepted evidence bound to the head commit.
    pub head: &'a [AcceptedEvidence],
    /// Accepted evidence bound to the base commit.
    pub base: &'a [AcceptedEvidence],
    /// The base commit, whose suite files a head run may name as its source
    /// ([`crate::statement::SUITE_SOURCE`]). `None`: no such run counts.
    pub base_commit: Option<&'a str>,
}

/// A suite's outcome at the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SuiteStatus {
    Passed,
    Failed,
    /// Test-results arrived but none lists a test that ran (no test cases, or only skipped
    /// ones): nothing was executed, so nothing is covered.
    NoTests,
    Missing,
}

impl SuiteStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SuiteStatus::Passed => "passed",
            SuiteStatus::Failed => "failed",
            SuiteStatus::NoTests => "no_tests",
            SuiteStatus::Missing => "missing",
        }
    }

    /// Why the suite has this status, for the explanation.
    pub fn explanation(self) -> &'static str {
        match self {
            SuiteStatus::Passed => {
                "a run at the head executed tests and none failed, or a scan completed"
            }
            SuiteStatus::Failed => {
                "a test failed at the head (a suite-level error or failure counts as one)"
            }
            SuiteStatus::NoTests => {
                "the head's test-result lists no test that ran (no test cases, or only skipped ones): a suite that executed nothing does not satisfy the plan"
            }
            SuiteStatus::Missing => "no accepted head evidence for this suite",
        }
    }
}

/// One suite: planned or only attested, its status and who attested it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteResult {
    pub suite: String,
    pub planned: bool,
    pub status: SuiteStatus,
    /// Runners whose head evidence is about this suite, sorted.
    pub runners: Vec<String>,
}

/// Coverage of the suites planned because of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCoverage {
    pub node: EntityRef,
    pub planned: Vec<String>,
    pub passed: Vec<String>,
    pub percent: u8,
}

/// Coverage of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    pub planned: u32,
    pub passed: u32,
    /// `passed * 100 / planned`, rounded down; 100 when nothing is planned.
    pub percent: u8,
    pub nodes: Vec<NodeCoverage>,
}

/// A test that passed in the base's evidence and does not pass in the head's own run of
/// the same suite.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Regression {
    pub suite: String,
    pub test: String,
    pub kind: RegressionKind,
}

/// How a test that passed at the base fails to pass at the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RegressionKind {
    /// It ran and failed.
    Failing,
    /// The head's run of its suite does not list it: the test was deleted, renamed or
    /// skipped (a skipped test is in no list of a test-result). A suite whose tests
    /// disappear is weaker, which is a regression until a person approves it.
    Missing,
}

impl RegressionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RegressionKind::Failing => "failing",
            RegressionKind::Missing => "missing",
        }
    }
}

/// A test that failed in the base's evidence and passes in the head's: a fix, or a test
/// weakened to pass. Shown, never counted against the change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NewlyPassing {
    pub suite: String,
    pub test: String,
}

/// Whether a vulnerability can be reached from the internet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reachability {
    /// `path` runs from the vulnerable node to an internet-exposed node that depends on it.
    Reachable { path: Vec<EntityRef> },
    /// No internet-exposed node depends on the vulnerable node.
    Unreachable,
    /// Trusted VEX says the node is not affected.
    NotAffected {
        justification: String,
        impact_statement: Option<String>,
    },
    /// The finding maps to no node, so nothing shows it is unreachable: counted as reachable.
    UnknownLocation,
}

impl Reachability {
    pub fn is_reachable(&self) -> bool {
        matches!(
            self,
            Reachability::Reachable { .. } | Reachability::UnknownLocation
        )
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Reachability::Reachable { .. } => "reachable",
            Reachability::Unreachable => "unreachable",
            Reachability::NotAffected { .. } => "not_affected",
            Reachability::UnknownLocation => "unknown_location",
        }
    }
}

/// One finding on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vulnerability {
    pub id: String,
    /// The first severity the scanner gave, as `score` (`method`).
    pub severity: Option<String>,
    pub suite: String,
    pub runner: String,
    /// The `countersign.dev/package` annotation, when the scanner gave one.
    pub package: Option<String>,
    /// Where the scanner says it is (`countersign.dev/location`, `uri:line`), when it says.
    pub location: Option<String>,
    /// What tells this finding from others of the same id: the `countersign.dev/fingerprint`
    /// annotation, else the location; `None` when the scanner gave neither.
    pub fingerprint: Option<String>,
    /// The node the finding is in; `None` when it maps to no node.
    pub node: Option<EntityRef>,
    pub reachability: Reachability,
    /// Base evidence of the same suite reports the same finding (id and fingerprint) on the
    /// same node.
    pub pre_existing: bool,
}

impl Vulnerability {
    /// Whether this finding counts against the change: introduced by it and reachable.
    pub fn blocks(&self) -> bool {
        !self.pre_existing && self.reachability.is_reachable()
    }
}

/// Everything the evidence says about the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// Planned suites first (in plan order), then suites only attested, by name.
    pub suites: Vec<SuiteResult>,
    pub coverage: Coverage,
    /// Planned suites that failed at the head.
    pub failed_suites: Vec<String>,
    pub regressions: Vec<Regression>,
    pub newly_passing: Vec<NewlyPassing>,
    /// Suites whose base version (the base commit's suite files, run against the head)
    /// passed: what confirms a self-validated suite.
    pub base_suite_passed: Vec<String>,
    /// Sorted by id, then node.
    pub vulnerabilities: Vec<Vulnerability>,
}

impl Assessment {
    /// Introduced, reachable vulnerabilities: what `reachable_vulnerabilities` counts.
    pub fn blocking_vulnerabilities(&self) -> usize {
        self.vulnerabilities.iter().filter(|v| v.blocks()).count()
    }
}

/// Assesses accepted evidence against the plan (see the module doc for the rules).
pub fn assess(input: &AssessInput<'_>) -> Assessment {
    // A head run of another commit's suite files says nothing about the head's own suite:
    // it only confirms a self-validated suite (base_suite_passed).
    fn source(e: &AcceptedEvidence) -> Option<&str> {
        match &e.predicate {
            Predicate::TestResult(r) => r.suite_source(),
            _ => None,
        }
    }
    let own: Vec<AcceptedEvidence> = input
        .head
        .iter()
        .filter(|e| source(e).is_none_or(|s| s == e.commit))
        .cloned()
        .collect();
    // The suites whose base-version runs all passed (with a test that ran): one failing run
    // of a suite cancels any passing one.
    let mut base_version: BTreeMap<&str, bool> = BTreeMap::new();
    for e in input.head {
        if input.base_commit.is_none() || source(e) != input.base_commit {
            continue;
        }
        if let Predicate::TestResult(r) = &e.predicate {
            let passed = r.result == crate::statement::TestResultOutcome::Passed
                && !r.passed_tests.is_empty();
            *base_version.entry(e.suite.as_str()).or_insert(true) &= passed;
        }
    }
    let base_suite_passed = base_version
        .into_iter()
        .filter(|(_, passed)| *passed)
        .map(|(suite, _)| suite.to_owned())
        .collect();
    let own_input = AssessInput {
        head: &own,
        ..*input
    };
    let input = &own_input;
    let suites = suite_results(input);
    let status: BTreeMap<&str, SuiteStatus> = suites
        .iter()
        .map(|s| (s.suite.as_str(), s.status))
        .collect();
    let passed = |suite: &str| status.get(suite) == Some(&SuiteStatus::Passed);

    let planned_names: Vec<&str> = input.plan.suites.iter().map(|s| s.suite.as_str()).collect();
    let planned_passed = planned_names.iter().filter(|s| passed(s)).count();
    let mut by_node: BTreeMap<EntityRef, BTreeSet<&str>> = BTreeMap::new();
    for planned in &input.plan.suites {
        for reason in &planned.reasons {
            let node = match reason {
                PlanReason::Touched { node }
                | PlanReason::Dependent { node, .. }
                | PlanReason::DevDependent { node, .. } => node,
            };
            by_node
                .entry(node.clone())
                .or_default()
                .insert(planned.suite.as_str());
        }
    }
    let nodes = by_node
        .into_iter()
        .map(|(node, planned)| {
            let passed_here: Vec<String> = planned
                .iter()
                .filter(|s| passed(s))
                .map(|s| (*s).to_owned())
                .collect();
            NodeCoverage {
                node,
                percent: percent(passed_here.len(), planned.len()),
                planned: planned.into_iter().map(str::to_owned).collect(),
                passed: passed_here,
            }
        })
        .collect();
    let coverage = Coverage {
        planned: count(planned_names.len()),
        passed: count(planned_passed),
        percent: percent(planned_passed, planned_names.len()),
        nodes,
    };
    let failed_suites = suites
        .iter()
        .filter(|s| s.planned && s.status == SuiteStatus::Failed)
        .map(|s| s.suite.clone())
        .collect();

    Assessment {
        suites,
        coverage,
        failed_suites,
        regressions: regressions(input.head, input.base),
        newly_passing: newly_passing(input.head, input.base),
        base_suite_passed,
        vulnerabilities: vulnerabilities(input),
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn percent(passed: usize, planned: usize) -> u8 {
    if planned == 0 {
        return 100;
    }
    // Rounded down, so a plan with one suite missing never reads as 100.
    u8::try_from(passed.min(planned) * 100 / planned).unwrap_or(100)
}

fn suite_results(input: &AssessInput<'_>) -> Vec<SuiteResult> {
    #[derive(Default)]
    struct Seen {
        failed: bool,
        ran: bool,
        empty: bool,
        runners: BTreeSet<String>,
    }
    let mut seen: BTreeMap<&str, Seen> = BTreeMap::new();
    for evidence in input.head {
        let entry = seen.entry(evidence.suite.as_str()).or_default();
        entry.runners.insert(evidence.runner.clone());
        match &evidence.predicate {
            // A failed test fails the suite whatever `result` says; a result that lists no
            // test that ran is no run at all, whatever `result` says.
            Predicate::TestResult(result) => {
                if result.result == TestResultOutcome::Failed || !result.failed_tests.is_empty() {
                    entry.failed = true;
                } else if result.passed_tests.is_empty() && result.warned_tests.is_empty() {
                    entry.empty = true;
                } else {
                    entry.ran = true;
                }
            }
            Predicate::Vulns(_) => entry.ran = true,
            Predicate::OpenVex(_) => {}
        }
    }
    let status_of = |seen: Option<&Seen>| match seen {
        Some(s) if s.failed => SuiteStatus::Failed,
        Some(s) if s.ran => SuiteStatus::Passed,
        Some(s) if s.empty => SuiteStatus::NoTests,
        _ => SuiteStatus::Missing,
    };
    let runners_of = |seen: Option<&Seen>| {
        seen.map(|s| s.runners.iter().cloned().collect())
            .unwrap_or_default()
    };
    let planned: BTreeSet<&str> = input.plan.suites.iter().map(|s| s.suite.as_str()).collect();
    let mut out: Vec<SuiteResult> = input
        .plan
        .suites
        .iter()
        .map(|s| SuiteResult {
            suite: s.suite.clone(),
            planned: true,
            status: status_of(seen.get(s.suite.as_str())),
            runners: runners_of(seen.get(s.suite.as_str())),
        })
        .collect();
    for (suite, s) in &seen {
        if !planned.contains(suite) {
            out.push(SuiteResult {
                suite: (*suite).to_owned(),
                planned: false,
                status: status_of(Some(s)),
                runners: runners_of(Some(s)),
            });
        }
    }
    out
}

fn regressions(head: &[AcceptedEvidence], base: &[AcceptedEvidence]) -> Vec<Regression> {
    let passed_at_base = tests_by(base, |r| &r.passed_tests);
    // Every test the head's runs list, by suite: a suite the head has no test-result for
    // is a coverage gap, not a regression.
    let mut listed: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut failing: BTreeSet<(&str, &str)> = BTreeSet::new();
    for evidence in head {
        if let Predicate::TestResult(result) = &evidence.predicate {
            let here = listed.entry(evidence.suite.as_str()).or_default();
            for test in result
                .passed_tests
                .iter()
                .chain(&result.warned_tests)
                .chain(&result.failed_tests)
            {
                here.insert(test.as_str());
            }
            for test in &result.failed_tests {
                failing.insert((evidence.suite.as_str(), test.as_str()));
            }
        }
    }
    let mut found = BTreeSet::new();
    for (suite, test) in passed_at_base {
        let Some(here) = listed.get(suite) else {
            continue;
        };
        let kind = if failing.contains(&(suite, test)) {
            RegressionKind::Failing
        } else if !here.contains(test) {
            RegressionKind::Missing
        } else {
            continue;
        };
        found.insert(Regression {
            suite: suite.to_owned(),
            test: test.to_owned(),
            kind,
        });
    }
    found.into_iter().collect()
}

/// Tests that failed at the base and pass at the head, by suite.
fn newly_passing(head: &[AcceptedEvidence], base: &[AcceptedEvidence]) -> Vec<NewlyPassing> {
    let failed_at_base = tests_by(base, |r| &r.failed_tests);
    let passed_at_head = tests_by(head, |r| &r.passed_tests);
    failed_at_base
        .intersection(&passed_at_head)
        .map(|(suite, test)| NewlyPassing {
            suite: (*suite).to_owned(),
            test: (*test).to_owned(),
        })
        .collect()
}

/// (suite, test) pairs of one list of the test-results in `evidence`.
fn tests_by<'a>(
    evidence: &'a [AcceptedEvidence],
    list: impl Fn(&'a crate::statement::TestResult) -> &'a Vec<String>,
) -> BTreeSet<(&'a str, &'a str)> {
    let mut out = BTreeSet::new();
    for e in evidence {
        if let Predicate::TestResult(result) = &e.predicate {
            for test in list(result) {
                out.insert((e.suite.as_str(), test.as_str()));
            }
        }
    }
    out
}

/// The node a product or package string names: an entity ref (`component:default/cart`,
/// `cart`, defaulting to a Component in `default`), or a purl (`pkg:cargo/cart@1.2.0`) whose
/// name is the name of exactly one component of the graph.
pub fn resolve_product(graph: &SystemGraph, text: &str) -> Option<NodeId> {
    let text = text.trim();
    if let Some(purl) = text.strip_prefix("pkg:") {
        let name = purl_name(purl)?;
        let mut matches = graph
            .nodes()
            .iter()
            .filter(|n| n.entity.kind == Kind::Component && n.entity.name == name);
        let first = matches.next()?;
        // Two components of that name (in different namespaces): the purl does not say
        // which, so it names neither.
        return matches.next().is_none().then_some(first.id);
    }
    let reference = entity_ref::parse(
        text,
        RefContext {
            default_kind: Some(Kind::Component),
            default_namespace: "default",
        },
    )
    .ok()?;
    graph.find(&reference)
}

/// The lower-cased, percent-decoded name of a purl without its `pkg:` prefix:
/// `type/namespace/name@version?qualifiers#subpath` → `name`.
fn purl_name(purl: &str) -> Option<String> {
    let path = purl.split(['?', '#']).next()?;
    let path = path.split('@').next().filter(|p| !p.is_empty())?;
    let last = path.rsplit('/').next()?;
    // npm scopes are percent-encoded (`%40acme/ui`); the name part rarely is, but decode
    // the one escape that appears in practice so `ui` and `%75i` do not differ.
    let name = last.replace("%40", "@").to_ascii_lowercase();
    (!name.is_empty() && path.contains('/')).then_some(name)
}

/// The nodes whose `countersign.dev/suites` include `suite`.
fn nodes_of_suite(graph: &SystemGraph, suite: &str) -> Vec<NodeId> {
    graph
        .nodes()
        .iter()
        .filter(|n| n.suites.iter().any(|s| s == suite))
        .map(|n| n.id)
        .collect()
}

fn package_of(result: &VulnResult) -> Option<String> {
    annotation(result, PACKAGE_ANNOTATION)
}

/// A string annotation of a finding, trimmed; `None` when absent or empty.
fn annotation(result: &VulnResult, key: &str) -> Option<String> {
    result.annotations.iter().find_map(|a| match a.get(key) {
        Some(Value::String(p)) if !p.trim().is_empty() => Some(p.trim().to_owned()),
        _ => None,
    })
}

/// What tells a finding from others of its id: the fingerprint annotation, else its
/// location (what SARIF's file + region gives for producers that send no fingerprint).
fn fingerprint_of(result: &VulnResult) -> Option<String> {
    annotation(result, FINGERPRINT_ANNOTATION).or_else(|| annotation(result, LOCATION_ANNOTATION))
}

/// The repository path a finding's location names, as the graph's path map reads paths:
/// `uri:line` with the line cut off, a relative path without `./`. `None` for a URI with a
/// scheme or an absolute path, which the path map cannot place.
fn located_path(result: &VulnResult) -> Option<String> {
    let location = annotation(result, LOCATION_ANNOTATION)?;
    let path = match location.rsplit_once(':') {
        Some((path, line)) if !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()) => path,
        _ => location.as_str(),
    };
    let path = path.trim_start_matches("./");
    let relative = !path.is_empty() && !path.starts_with('/') && !path.contains("://");
    relative.then(|| path.to_owned())
}

/// One finding placed on nodes: `None` when it lands on no node.
struct Placed<'e> {
    evidence: &'e AcceptedEvidence,
    result: &'e VulnResult,
    package: Option<String>,
    fingerprint: Option<String>,
    nodes: Vec<Option<NodeId>>,
}

fn place<'e>(graph: &SystemGraph, evidence: &'e [AcceptedEvidence]) -> Vec<Placed<'e>> {
    let mut out = Vec::new();
    for e in evidence {
        let Predicate::Vulns(vulns) = &e.predicate else {
            continue;
        };
        for result in &vulns.scanner.result {
            let package = package_of(result);
            // The package it names; else the file it is in, through the path map; else
            // what its suite exercises.
            let by_file = || {
                located_path(result)
                    .map(|path| graph.map_path(&path))
                    .filter(|nodes| !nodes.is_empty())
            };
            let mut nodes: Vec<Option<NodeId>> =
                match package.as_deref().and_then(|p| resolve_product(graph, p)) {
                    Some(id) => vec![Some(id)],
                    None => by_file()
                        .unwrap_or_else(|| nodes_of_suite(graph, &e.suite))
                        .into_iter()
                        .map(Some)
                        .collect(),
                };
            if nodes.is_empty() {
                nodes.push(None);
            }
            out.push(Placed {
                evidence: e,
                result,
                package,
                fingerprint: fingerprint_of(result),
                nodes,
            });
        }
    }
    out
}

/// What makes a base finding the same as a head one: the suite it was attested for (so base
/// evidence vouches only for its own suite, whose runners are the ones trusted for it), the
/// id (case-insensitive), the fingerprint and the node.
type BaseKey = (String, String, Option<String>, Option<NodeId>);

/// One head finding: its id, node and fingerprint.
type FoundKey = (String, Option<EntityRef>, Option<String>);

fn vulnerabilities(input: &AssessInput<'_>) -> Vec<Vulnerability> {
    let graph = input.graph;
    let base_keys: BTreeSet<BaseKey> = place(graph, input.base)
        .into_iter()
        .flat_map(|p| {
            let suite = p.evidence.suite.clone();
            let id = p.result.id.to_ascii_lowercase();
            let fingerprint = p.fingerprint.clone();
            p.nodes
                .into_iter()
                .map(move |n| (suite.clone(), id.clone(), fingerprint.clone(), n))
        })
        .collect();
    let vex: Vec<(&AcceptedEvidence, &VexDocument)> = input
        .head
        .iter()
        .filter_map(|e| match &e.predicate {
            Predicate::OpenVex(doc) => Some((e, doc)),
            _ => None,
        })
        .collect();

    // One finding per id, node and fingerprint: instances of one rule in different places
    // are different findings, the same one reported twice is one.
    let mut found: BTreeMap<FoundKey, Vulnerability> = BTreeMap::new();
    for placed in place(graph, input.head) {
        for node in &placed.nodes {
            let entity = node.and_then(|id| graph.node(id)).map(|n| n.entity.clone());
            let key = (
                placed.result.id.clone(),
                entity.clone(),
                placed.fingerprint.clone(),
            );
            if found.contains_key(&key) {
                continue;
            }
            let reachability = match node {
                None => Reachability::UnknownLocation,
                Some(id) => match vex_verdict(graph, &vex, &placed, *id) {
                    Some(not_affected) => not_affected,
                    None => match internet_path(graph, *id) {
                        Some(path) => Reachability::Reachable { path },
                        None => Reachability::Unreachable,
                    },
                },
            };
            let pre_existing = base_keys.contains(&(
                placed.evidence.suite.clone(),
                placed.result.id.to_ascii_lowercase(),
                placed.fingerprint.clone(),
                *node,
            ));
            found.insert(
                key,
                Vulnerability {
                    id: placed.result.id.clone(),
                    severity: placed
                        .result
                        .severity
                        .first()
                        .map(|s| format!("{} ({})", s.score, s.method)),
                    suite: placed.evidence.suite.clone(),
                    runner: placed.evidence.runner.clone(),
                    package: placed.package.clone(),
                    location: annotation(placed.result, LOCATION_ANNOTATION),
                    fingerprint: placed.fingerprint.clone(),
                    node: entity,
                    reachability,
                    pre_existing,
                },
            );
        }
    }
    found.into_values().collect()
}

/// `NotAffected` when a trusted VEX statement says so, with a justification, for this
/// vulnerability on this node and no statement says `affected`.
fn vex_verdict(
    graph: &SystemGraph,
    vex: &[(&AcceptedEvidence, &VexDocument)],
    placed: &Placed<'_>,
    node: NodeId,
) -> Option<Reachability> {
    let id = &placed.result.id;
    let mut not_affected = None;
    for (evidence, doc) in vex {
        for statement in &doc.statements {
            let names_id = statement.vulnerability.eq_ignore_ascii_case(id)
                || statement.aliases.iter().any(|a| a.eq_ignore_ascii_case(id));
            if !names_id {
                continue;
            }
            let about_node = if statement.products.is_empty() {
                // No product named: the statement is about what its suite exercises.
                nodes_of_suite(graph, &evidence.suite).contains(&node)
            } else {
                statement.products.iter().any(|p| {
                    placed.package.as_deref() == Some(p.as_str())
                        || resolve_product(graph, p) == Some(node)
                })
            };
            if !about_node {
                continue;
            }
            // Only a VEX authority, or a runner whose suite exercises the node, may clear
            // it (refused at verification too; checked here so no path skips it).
            let authorized =
                evidence.vex_authority || nodes_of_suite(graph, &evidence.suite).contains(&node);
            if statement.status == VexStatus::NotAffected && !authorized {
                continue;
            }
            match statement.status {
                // One trusted voice saying "affected" outweighs any "not affected".
                VexStatus::Affected => return None,
                VexStatus::NotAffected => {
                    if let Some(justification) = &statement.justification {
                        not_affected.get_or_insert_with(|| Reachability::NotAffected {
                            justification: justification.clone(),
                            impact_statement: statement.impact_statement.clone(),
                        });
                    }
                }
                VexStatus::Fixed | VexStatus::UnderInvestigation => {}
            }
        }
    }
    not_affected
}

/// The shortest chain from `start` to an internet-exposed node through dependents
/// (`start` first), or `None` when no internet-exposed node depends on it.
pub fn internet_path(graph: &SystemGraph, start: NodeId) -> Option<Vec<EntityRef>> {
    let exposed = |id: NodeId| {
        graph
            .node(id)
            .is_some_and(|n| n.exposure == Exposure::Internet)
    };
    let mut parent: BTreeMap<NodeId, NodeId> = BTreeMap::new();
    let mut seen = BTreeSet::from([start]);
    let mut queue = VecDeque::from([start]);
    while let Some(id) = queue.pop_front() {
        if exposed(id) {
            let mut chain = vec![id];
            let mut at = id;
            while let Some(&p) = parent.get(&at) {
                chain.push(p);
                at = p;
            }
            chain.reverse();
            return Some(
                chain
                    .into_iter()
                    .filter_map(|n| graph.node(n).map(|n| n.entity.clone()))
                    .collect(),
            );
        }
        for &next in graph.dependents(id) {
            if seen.insert(next) {
                parent.insert(next, id);
                queue.push_back(next);
            }
        }
    }
    None
}

/// Refuses a VEX document that names a product countersign cannot place: neither a node of
/// the graph nor a package some head vulnerability scan reported. Such a claim cannot be
/// applied, and must not be silently dropped.
pub fn check_vex_products(
    file: &str,
    doc: &VexDocument,
    graph: &SystemGraph,
    head: &[AcceptedEvidence],
) -> Result<(), ReportError> {
    let packages: BTreeSet<String> = head
        .iter()
        .filter_map(|e| match &e.predicate {
            Predicate::Vulns(v) => Some(v.scanner.result.iter().filter_map(package_of)),
            _ => None,
        })
        .flatten()
        .collect();
    doc.check_products(file, |p| {
        packages.contains(p) || resolve_product(graph, p).is_some()
    })
}

/// Whether the signers of a VEX document may say `not_affected` about everything it says
/// it about: a VEX authority (`vex = true`) about anything; any other runner only about the
/// nodes its envelope's suite exercises (a runner vouches for what its suites validate).
/// The error names the first statement and product out of reach. A statement with no
/// products is about the suite's own nodes, so always within reach; `affected`, `fixed`
/// and `under_investigation` clear nothing and need no authority.
pub fn check_vex_authority(
    evidence: &AcceptedEvidence,
    doc: &VexDocument,
    graph: &SystemGraph,
) -> Result<(), String> {
    if evidence.vex_authority {
        return Ok(());
    }
    let reach = nodes_of_suite(graph, &evidence.suite);
    for statement in &doc.statements {
        if statement.status != VexStatus::NotAffected {
            continue;
        }
        for product in &statement.products {
            let within = resolve_product(graph, product).is_some_and(|node| reach.contains(&node));
            if !within {
                return Err(format!(
                    "runner {} may not clear {} on {product}: its suite {:?} does not exercise it, and only runners with `vex = true` in the base's countersign.toml may say not_affected about other nodes",
                    evidence.runner, statement.vulnerability, evidence.suite
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
