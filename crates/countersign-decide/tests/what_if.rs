//! What would lower the tier, held to its promises over generated changes: every
//! suggestion, applied to the change (its files left out, or signed passing evidence for its
//! suites put in place of what those suites had), is decided again by the ordinary pipeline
//! and takes exactly the tier it promised; a change touching a never-automate surface is
//! never promised an automated tier unless those files are left out; a suggestion called
//! minimal has no smaller one, and "nothing reaches this tier" is said only when nothing
//! does (checked by brute force); a search cut short by its budget says so and claims no
//! "nothing".
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use countersign_decide::evaluate::{Evaluation, Proposer, decide_loaded};
use countersign_decide::governed::{self, GovernedState};
use countersign_decide::report::{WhatIfOutcome, WhatIfReport, WhatIfSuggestionReport};
use countersign_decide::what_if::Budget;
use countersign_evidence::Statement;
use countersign_evidence::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE, SigningKey};
use countersign_evidence::statement::TEST_RESULT_V01;
use countersign_graph::MemorySource;
use countersign_policy::Tier;
use countersign_repo::{ChangeKind, ChangedPath};
use proptest::prelude::*;
use serde_json::json;

const REPO: &str = "example.com/shop";
const BASE: &str = "1111111111111111111111111111111111111111";
const HEAD: &str = "2222222222222222222222222222222222222222";

fn runner_key() -> SigningKey {
    SigningKey::from_seed(&[7; 32])
}

const SUITES: [&str; 5] = ["auth-unit", "pay-unit", "web-unit", "web-e2e", "lib-unit"];

/// The base: a few components of every kind of rule, a team, a runner for every suite.
fn governed_files() -> Vec<(String, Vec<u8>)> {
    let component = |name: &str, extra: &str, suites: &str, deps: &str| {
        format!(
            "---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n  annotations:\n    countersign.dev/paths: svc/{name}/**\n    countersign.dev/suites: {suites}\n{extra}spec:\n  type: service\n  owner: group:team-a\n  lifecycle: production\n{deps}"
        )
    };
    let mut catalog = String::new();
    catalog.push_str(&component(
        "auth",
        "    countersign.dev/surfaces: auth\n",
        "auth-unit",
        "",
    ));
    catalog.push_str(&component(
        "pay",
        "    countersign.dev/criticality: high\n",
        "pay-unit",
        "",
    ));
    catalog.push_str(&component(
        "web",
        "",
        "web-unit, web-e2e",
        "  dependsOn: [component:lib]\n",
    ));
    catalog.push_str(&component("lib", "", "lib-unit", ""));
    catalog.push_str("---\napiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: team-a\nspec:\n  type: team\n  children: []\n");
    for user in ["alice", "bob"] {
        catalog.push_str(&format!("---\napiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: {user}\nspec:\n  profile:\n    email: {user}@example.com\n  memberOf: [team-a]\n"));
    }
    let config = format!(
        "[repository]\nname = \"{REPO}\"\n\n[[runners]]\nname = \"ci\"\npublic_key = \"{}\"\nsuites = [{}]\n",
        runner_key().public_key().to_hex(),
        SUITES.map(|s| format!("\"{s}\"")).join(", ")
    );
    vec![
        ("catalog-info.yaml".to_owned(), catalog.into_bytes()),
        ("countersign.toml".to_owned(), config.into_bytes()),
    ]
}

struct Base {
    state: GovernedState,
    read_paths: Vec<String>,
}

fn base() -> &'static Base {
    static BASE_STATE: OnceLock<Base> = OnceLock::new();
    BASE_STATE.get_or_init(|| {
        let files = governed_files();
        let read_paths = files.iter().map(|(p, _)| p.clone()).collect();
        let state = governed::load(&MemorySource::new(files)).unwrap();
        Base { state, read_paths }
    })
}

/// Files a change can hold: every kind of node, a build file, an unmapped file, a rule.
const POOL: [&str; 10] = [
    "svc/auth/src/login.rs",
    "svc/auth/src/token.rs",
    "svc/pay/src/charge.rs",
    "svc/web/src/main.rs",
    "svc/web/src/page.rs",
    "svc/web/build.rs",
    "svc/lib/src/lib.rs",
    "misc/notes.txt",
    "catalog-info.yaml",
    "svc/lib/src/util.rs",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    Passed,
    Failed,
}

fn envelope(suite: &str, run: Run) -> Vec<u8> {
    let predicate = match run {
        Run::Passed => json!({"result": "PASSED", "configuration": [], "passedTests": ["t::ok"]}),
        Run::Failed => {
            json!({"result": "FAILED", "configuration": [], "passedTests": [], "failedTests": ["t::bad"]})
        }
    };
    let statement = Statement::for_commit(REPO, HEAD, suite, TEST_RESULT_V01, predicate);
    Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement.to_json(), &runner_key()).to_json()
}

/// A change and its evidence: `None` when no evidence is weighed.
#[derive(Debug, Clone)]
struct Case {
    files: BTreeSet<&'static str>,
    author: &'static str,
    evidence: Option<BTreeMap<&'static str, Run>>,
}

fn case() -> impl Strategy<Value = Case> {
    let files = proptest::sample::subsequence(POOL.to_vec(), 1..=5);
    let author = prop_oneof![Just("human:alice"), Just("agent:fixbot")];
    let run = prop_oneof![Just(Run::Passed), Just(Run::Failed)];
    let evidence = proptest::option::of(proptest::collection::btree_map(
        proptest::sample::select(SUITES.to_vec()),
        run,
        0..=4,
    ));
    (files, author, evidence).prop_map(|(files, author, evidence)| Case {
        files: files.into_iter().collect(),
        author,
        evidence,
    })
}

fn changes(files: &BTreeSet<&str>) -> Vec<ChangedPath> {
    files
        .iter()
        .map(|path| ChangedPath {
            path: (*path).to_owned(),
            kind: ChangeKind::Modified,
        })
        .collect()
}

/// The ordinary decision of `files` with `evidence` (no what-if).
fn decide(
    files: &BTreeSet<&str>,
    author: &str,
    evidence: Option<&BTreeMap<&str, Run>>,
    what_if: Option<&Budget>,
) -> Evaluation {
    let base = base();
    let envelopes: Vec<Vec<u8>> = evidence
        .into_iter()
        .flatten()
        .map(|(suite, run)| envelope(suite, *run))
        .collect();
    let proposer = Proposer {
        author: author.to_owned(),
        declared_tier: None,
        dispatched_by: None,
    };
    decide_loaded(
        &base.state,
        &base.read_paths,
        changes(files),
        &proposer,
        Some(BASE.to_owned()),
        Some(HEAD.to_owned()),
        envelopes,
        what_if,
    )
    .unwrap()
}

fn tier(name: countersign_decide::report::TierName) -> Tier {
    serde_json::to_value(name)
        .unwrap()
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The change a suggestion describes, decided.
fn apply(case: &Case, suggestion: &WhatIfSuggestionReport) -> Evaluation {
    let files: BTreeSet<&str> = case
        .files
        .iter()
        .copied()
        .filter(|f| !suggestion.without.iter().any(|w| w == f))
        .collect();
    assert!(!files.is_empty(), "a suggestion never removes every file");
    if suggestion.passing_suites.is_empty() {
        return decide(&files, case.author, case.evidence.as_ref(), None);
    }
    // Passing evidence in place of whatever those suites had.
    let mut evidence = case.evidence.clone().unwrap_or_default();
    for suite in &suggestion.passing_suites {
        let suite = SUITES.iter().find(|s| *s == suite).unwrap();
        evidence.insert(suite, Run::Passed);
    }
    decide(&files, case.author, Some(&evidence), None)
}

fn what_if(evaluation: &Evaluation) -> &WhatIfReport {
    evaluation.report.what_if.as_ref().unwrap()
}

/// Every proper subset of `files` by size, with its tier.
fn removal_tiers(case: &Case) -> Vec<(usize, Tier)> {
    let files: Vec<&str> = case.files.iter().copied().collect();
    let n = files.len();
    (1..(1u32 << n) - 1)
        .map(|mask| {
            let removed = mask.count_ones() as usize;
            let kept: BTreeSet<&str> = (0..n)
                .filter(|i| mask & (1 << i) == 0)
                .map(|i| files[i])
                .collect();
            let tier = decide(&kept, case.author, case.evidence.as_ref(), None)
                .decision
                .tier;
            (removed, tier)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn every_suggestion_yields_its_tier(case in case()) {
        let complete = Budget { decisions: 10_000, max_removed: 6, deadline: None };
        let evaluation = decide(&case.files, case.author, case.evidence.as_ref(), Some(&complete));
        let report = what_if(&evaluation);
        let original = evaluation.decision.tier;
        prop_assert_eq!(tier(report.tier), original);
        prop_assert_eq!(report.search.cut.as_deref(), None);
        let never_automate_touched = !evaluation.decision.facts.never_automate_touched.is_empty();
        let brute = removal_tiers(&case);
        for target in &report.targets {
            let target_tier = tier(target.tier);
            prop_assert!(target_tier < original);
            for found in [&target.removals, &target.evidence] {
                for suggestion in &found.suggestions {
                    let promised = tier(suggestion.tier);
                    prop_assert!(promised <= target_tier);
                    let applied = apply(&case, suggestion);
                    prop_assert_eq!(applied.decision.tier, promised, "{:?}", suggestion);
                    if never_automate_touched && promised.is_automated() {
                        prop_assert!(applied.decision.facts.never_automate_touched.is_empty(),
                            "an automated tier kept a never-automate file: {:?}", suggestion);
                        prop_assert!(!suggestion.without.is_empty());
                    }
                }
            }
            // Removals, against every proper subset.
            let reaching: Vec<usize> = brute
                .iter()
                .filter(|(_, t)| *t <= target_tier)
                .map(|(size, _)| *size)
                .collect();
            match target.removals.outcome {
                WhatIfOutcome::Nothing => prop_assert!(reaching.is_empty()),
                WhatIfOutcome::Found => {
                    let smallest = reaching.iter().min().copied();
                    for s in &target.removals.suggestions {
                        prop_assert!(s.minimal);
                        prop_assert_eq!(Some(s.without.len()), smallest);
                    }
                }
                WhatIfOutcome::Unknown => prop_assert!(false, "a complete search knows"),
            }
        }
    }

    #[test]
    fn a_cut_search_says_so_and_never_claims_nothing(case in case(), decisions in 0u32..4) {
        let small = Budget { decisions, max_removed: 6, deadline: None };
        let evaluation = decide(&case.files, case.author, case.evidence.as_ref(), Some(&small));
        let report = what_if(&evaluation);
        prop_assert!(report.search.decisions <= decisions);
        let brute = removal_tiers(&case);
        for target in &report.targets {
            let target_tier = tier(target.tier);
            if target.removals.outcome == WhatIfOutcome::Nothing {
                prop_assert!(brute.iter().all(|(_, t)| *t > target_tier));
            }
            for found in [&target.removals, &target.evidence] {
                for suggestion in &found.suggestions {
                    prop_assert_eq!(apply(&case, suggestion).decision.tier, tier(suggestion.tier));
                }
            }
        }
        let unknown = report.targets.iter().any(|t| {
            t.removals.outcome == WhatIfOutcome::Unknown || t.evidence.outcome == WhatIfOutcome::Unknown
        });
        if unknown {
            prop_assert!(report.search.cut.is_some(), "unknown without a cut: {:?}", report.search);
        }
    }
}

/// The example of the docs: an agent's change to the auth service and the web page.
#[test]
fn removing_the_auth_file_lets_the_rest_through() {
    let files: BTreeSet<&str> = ["svc/auth/src/login.rs", "svc/web/src/page.rs"].into();
    let evaluation = decide(&files, "human:alice", None, Some(&Budget::default()));
    let report = what_if(&evaluation);
    let text = serde_json::to_string_pretty(report).unwrap();
    insta::assert_snapshot!(text);
}
