//! Black-box test of evidence-earned automation: a real git repository initialized with
//! `countersign init --with earned-automation`, evidence signed with `countersign attest`,
//! decisions by `countersign evaluate`, the module proved (and a broken copy refuted) by
//! `countersign policy verify`, and `replay --assume-evidence full`. The cvc5 parts skip
//! with a printed reason when it is absent locally and fail under `CI=true`.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::catalog::team_catalog;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const REPOSITORY: &str = "github.com/acme/search";

/// `search` is high criticality with two suites; nothing depends on it.
const COMPONENTS: &str = r#"---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: search
  annotations:
    countersign.dev/criticality: high
    countersign.dev/paths: /search/**
    countersign.dev/suites: search-unit, search-e2e
spec:
  type: service
  lifecycle: production
  owner: team-search
"#;

fn catalog() -> String {
    team_catalog("team-search", &["alice", "bob"], COMPONENTS)
}

const JUNIT_PASS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="search" tests="2">
  <testcase classname="search" name="finds" time="0.01"/>
  <testcase classname="search" name="ranks" time="0.01"/>
</testsuite></testsuites>
"#;

/// `ranks` is gone: one test fewer than at the base.
const JUNIT_ONE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="search" tests="1">
  <testcase classname="search" name="finds" time="0.01"/>
</testsuite></testsuites>
"#;

const JUNIT_FAIL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="search" tests="2">
  <testcase classname="search" name="finds" time="0.01"/>
  <testcase classname="search" name="ranks" time="0.01"><failure message="wrong order">assert</failure></testcase>
</testsuite></testsuites>
"#;

fn have_cvc5() -> bool {
    let ok = Command::new(std::env::var("CVC5").unwrap_or_else(|_| "cvc5".to_owned()))
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and no cvc5 found"
        );
        eprintln!("skipping: no cvc5 (CVC5 or PATH); CI runs this test");
    }
    ok
}

fn git(repo: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=Alice",
            "-c",
            "user.email=alice@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .env("GIT_AUTHOR_DATE", "2026-01-05T09:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-05T09:00:00Z")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn commit(repo: &Path, files: &[(&str, &str)], message: &str) -> String {
    for (path, text) in files {
        let path = repo.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

struct Fixture {
    dir: tempfile::TempDir,
    repo: PathBuf,
    key: PathBuf,
    base: String,
    /// Edits `search`'s code.
    code: String,
    /// Adds a migration to `search`: the never-automate `irreversible` surface.
    migration: String,
}

fn fixture() -> Fixture {
    fixture_with(&["--with", "earned-automation"])
}

/// A repository initialized with `countersign init` and `init_args`.
fn fixture_with(init_args: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    let mut args = vec!["init", "--repo", repo.to_str().unwrap()];
    args.extend(init_args);
    let init = ok(countersign(&args));
    assert_eq!(
        init.contains("earned_automation.cedar"),
        !init_args.is_empty(),
        "{init}"
    );
    let (key, public) = keygen("ci", &dir.path().join("keys"));
    // Trust the runner: name the repository and declare the runner in the config init wrote.
    let config_path = repo.join("countersign.toml");
    let config = std::fs::read_to_string(&config_path).unwrap().replace(
        "# name = \"github.com/acme/shop\"",
        &format!("name = \"{REPOSITORY}\""),
    );
    assert!(config.contains(REPOSITORY));
    std::fs::write(
        &config_path,
        format!(
            "{config}\n[[runners]]\nname = \"ci\"\npublic_key = \"{public}\"\nsuites = [\"search-unit\", \"search-e2e\"]\n"
        ),
    )
    .unwrap();
    let base = commit(
        &repo,
        &[
            ("catalog-info.yaml", catalog().as_str()),
            ("search/src.rs", "pub fn find() {}\n"),
        ],
        "base",
    );
    let code = commit(
        &repo,
        &[("search/src.rs", "pub fn find() { rank(); }\n")],
        "search: rank results",
    );
    let migration = commit(
        &repo,
        &[(
            "search/migrations/001.sql",
            "ALTER TABLE docs DROP COLUMN rank;\n",
        )],
        "search: drop the rank column",
    );
    Fixture {
        dir,
        repo,
        key,
        base,
        code,
        migration,
    }
}

impl Fixture {
    fn repo(&self) -> &str {
        self.repo.to_str().unwrap()
    }

    /// `countersign attest` of a JUnit report for `suite` at `commit`.
    fn attest(&self, commit: &str, suite: &str, junit: &str) -> String {
        let n = std::fs::read_dir(self.dir.path()).unwrap().count();
        let report = self.dir.path().join(format!("junit-{n}.xml"));
        std::fs::write(&report, junit).unwrap();
        let out = self.dir.path().join(format!("envelope-{n}.json"));
        ok(countersign(&[
            "attest",
            "--repo",
            self.repo(),
            "--repository",
            REPOSITORY,
            "--key",
            self.key.to_str().unwrap(),
            "--commit",
            commit,
            "--suite",
            suite,
            "--junit",
            report.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]));
        out.to_str().unwrap().to_owned()
    }

    fn full(&self, commit: &str) -> Vec<String> {
        vec![
            self.attest(commit, "search-unit", JUNIT_PASS),
            self.attest(commit, "search-e2e", JUNIT_PASS),
        ]
    }

    fn evaluate(&self, base: &str, head: &str, evidence: &[String]) -> Value {
        let mut args = vec![
            "evaluate",
            "--repo",
            self.repo(),
            "--base",
            base,
            "--head",
            head,
            "--author",
            "human:alice",
            "--format",
            "json",
        ];
        if !evidence.is_empty() {
            args.push("--evidence");
            args.extend(evidence.iter().map(String::as_str));
        }
        json(&countersign(&args))
    }
}

fn policy_ids(report: &Value, effect: &str) -> Vec<String> {
    report["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["effect"] == effect && r["source"] == "policy")
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn full_trusted_evidence_earns_notify_and_proceed_and_nothing_less_does() {
    let f = fixture();

    // Full passing evidence for the whole plan: notify and proceed.
    let report = f.evaluate(&f.base, &f.code, &f.full(&f.code));
    assert_eq!(report["tier"], "notify_and_proceed", "{report:#}");
    assert_eq!(report["facts"]["coverage_percent"], 100);
    assert_eq!(report["facts"]["planned_suites"], 2);
    let permits = policy_ids(&report, "permit");
    assert!(
        permits.contains(&"earned-notify-high-criticality".to_owned()),
        "{report:#}"
    );

    // No evidence: the facts fail closed, the change keeps its human.
    let report = f.evaluate(&f.base, &f.code, &[]);
    assert_eq!(report["tier"], "single_approver", "{report:#}");
    assert!(
        policy_ids(&report, "forbid").contains(&"high-criticality-unearned".to_owned()),
        "{report:#}"
    );

    // Partial coverage: one of the two suites.
    let partial = vec![f.attest(&f.code, "search-unit", JUNIT_PASS)];
    let report = f.evaluate(&f.base, &f.code, &partial);
    assert_eq!(report["tier"], "single_approver", "{report:#}");
    assert_eq!(report["facts"]["coverage_percent"], 50);

    // A failure.
    let failing = vec![
        f.attest(&f.code, "search-unit", JUNIT_PASS),
        f.attest(&f.code, "search-e2e", JUNIT_FAIL),
    ];
    let report = f.evaluate(&f.base, &f.code, &failing);
    assert_eq!(report["tier"], "single_approver", "{report:#}");
    assert_eq!(report["facts"]["failed_suites"], 1);

    // A test count that dropped: `ranks` passed at the base and is gone at the head (a
    // `missing` regression), though every suite of the head passed.
    let dropped = vec![
        f.attest(&f.base, "search-unit", JUNIT_PASS),
        f.attest(&f.code, "search-unit", JUNIT_ONE),
        f.attest(&f.code, "search-e2e", JUNIT_PASS),
    ];
    let report = f.evaluate(&f.base, &f.code, &dropped);
    assert_eq!(report["facts"]["coverage_percent"], 100, "{report:#}");
    assert_eq!(report["facts"]["regressions"], 1, "{report:#}");
    assert_eq!(report["tier"], "single_approver", "{report:#}");

    // Evidence for another commit does not count for this one.
    let report = f.evaluate(&f.base, &f.code, &f.full(&f.base));
    assert!(
        report["tier"] != "notify_and_proceed" && report["tier"] != "auto_merge",
        "{report:#}"
    );

    // A never-automate path (a migration: `irreversible`) with full passing evidence: a
    // human, still (change control).
    let report = f.evaluate(&f.code, &f.migration, &f.full(&f.migration));
    assert_eq!(report["facts"]["coverage_percent"], 100, "{report:#}");
    assert_eq!(report["tier"], "change_control", "{report:#}");
}

#[test]
fn without_the_module_full_evidence_keeps_the_human() {
    let f = fixture_with(&[]);
    assert!(
        !f.repo
            .join(".countersign/policy/earned_automation.cedar")
            .exists()
    );
    let report = f.evaluate(&f.base, &f.code, &f.full(&f.code));
    assert_eq!(report["facts"]["coverage_percent"], 100, "{report:#}");
    assert_eq!(report["tier"], "single_approver", "{report:#}");
    assert!(
        policy_ids(&report, "forbid").contains(&"high-criticality-touched".to_owned()),
        "{report:#}"
    );
}

#[test]
fn policy_verify_proves_the_module_and_refutes_a_broken_copy() {
    if !have_cvc5() {
        return;
    }
    let f = fixture();
    let output = countersign(&["policy", "verify", "--repo", f.repo()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("11 properties proved, 0 failed"), "{text}");

    // The module "tuned" to count an empty plan as covered: refuted.
    let broken = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(f.repo.join(".countersign/policy")).unwrap() {
        let entry = entry.unwrap();
        let text = std::fs::read_to_string(entry.path())
            .unwrap()
            .replace("context.planned_suites > 0 &&", "");
        std::fs::write(broken.path().join(entry.file_name()), text).unwrap();
    }
    let output = countersign(&[
        "policy",
        "verify",
        "--policy",
        broken.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("FAILED  earned-automation-needs-full-coverage"),
        "{text}"
    );
    assert!(text.contains("notify_and_proceed"), "{text}");
}

#[test]
fn replay_contrasts_the_actual_and_the_assumed_full_evidence_distributions() {
    let f = fixture();
    let replay = |extra: &[&str]| {
        let mut args = vec![
            "replay",
            "--repo",
            f.repo(),
            "--last",
            "2",
            "--assume-evidence",
            "full",
        ];
        args.extend(extra);
        countersign(&args)
    };
    let report = json(&replay(&["--format", "json"]));
    let commits = report["commits"].as_array().unwrap();
    let by_summary = |summary: &str| {
        commits
            .iter()
            .find(|c| c["summary"] == summary)
            .unwrap_or_else(|| panic!("{summary}: {report:#}"))
    };
    let code = by_summary("search: rank results");
    assert_eq!(code["tier"], "single_approver", "{code:#}");
    assert_eq!(code["assumed_tier"], "notify_and_proceed", "{code:#}");
    let migration = by_summary("search: drop the rank column");
    assert_eq!(migration["tier"], "change_control");
    assert_eq!(migration["assumed_tier"], "change_control");
    assert_eq!(share(&report, "tiers", "notify_and_proceed"), 0);
    assert_eq!(share(&report, "assumed_tiers", "notify_and_proceed"), 1);
    assert_eq!(report["assumed_moved"].as_array().unwrap().len(), 1);

    let text = ok(replay(&[]));
    assert!(
        text.contains("actual vs. with full passing trusted evidence"),
        "{text}"
    );
    assert!(
        text.contains("commits full evidence would move between tiers: 1"),
        "{text}"
    );

    // Without the module (the default pack as candidate), full evidence changes nothing.
    let default_dir = tempfile::tempdir().unwrap();
    for (name, text) in countersign_policy::default_files() {
        std::fs::write(default_dir.path().join(name), text).unwrap();
    }
    let report = json(&replay(&[
        "--policy",
        default_dir.path().to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert_eq!(share(&report, "assumed_tiers", "notify_and_proceed"), 0);
    assert_eq!(report["assumed_moved"].as_array().unwrap().len(), 0);

    // Without --assume-evidence the report is as before.
    let plain = json(&countersign(&[
        "replay",
        "--repo",
        f.repo(),
        "--last",
        "2",
        "--format",
        "json",
    ]));
    assert!(plain.get("assumed_tiers").is_none());
    assert!(plain["commits"][0].get("assumed_tier").is_none());
}

fn share(report: &Value, key: &str, tier: &str) -> Value {
    report[key]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["tier"] == tier)
        .unwrap()["changes"]
        .clone()
}

#[test]
fn init_refuses_an_unknown_module_and_the_module_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().to_str().unwrap();
    let output = countersign(&["init", "--repo", repo, "--with", "earned"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("unknown policy pack module \"earned\""),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("earned-automation"));
    assert!(!dir.path().join("countersign.toml").exists());
    ok(countersign(&[
        "init",
        "--repo",
        repo,
        "--with",
        "earned-automation",
    ]));
    let check = ok(countersign(&["policy", "check", "--repo", repo]));
    assert!(
        check.contains("checked 6 file(s) of the policy directory: 0 error(s)"),
        "{check}"
    );
}
