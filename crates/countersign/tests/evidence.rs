//! Black-box tests of signed evidence: `runner keygen`, `attest`, `evidence verify` and
//! `evaluate --evidence`, the real binary against repositories written with `RepoWriter`.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::*;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use countersign_repo::{CommitId, RepoWriter};
use serde_json::Value;

const REPOSITORY: &str = "github.com/acme/shop";

/// `lib` (low, two suites) is what changes; `web` (internet-exposed) depends on it, so a
/// vulnerability in `lib` is reachable; `batch` stands alone, so one there is not.
const CATALOG: &str = r#"apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team-shop
spec:
  type: team
  children: []
  members: [alice, bob]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: alice
spec:
  memberOf: [team-shop]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: bob
spec:
  memberOf: [team-shop]
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: lib
  annotations:
    countersign.dev/criticality: low
    countersign.dev/paths: /lib/**
    countersign.dev/suites: lib-unit, lib-scan
spec:
  type: library
  lifecycle: production
  owner: team-shop
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: web
  annotations:
    countersign.dev/criticality: low
    countersign.dev/paths: /web/**
    countersign.dev/exposure: internet
spec:
  type: website
  lifecycle: production
  owner: team-shop
  dependsOn: [component:lib]
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: batch
  annotations:
    countersign.dev/criticality: low
    countersign.dev/paths: /batch/**
    countersign.dev/suites: batch-scan
spec:
  type: service
  lifecycle: production
  owner: team-shop
"#;

const JUNIT_PASS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="lib" tests="2">
  <testcase classname="lib" name="adds" time="0.01"/>
  <testcase classname="lib" name="subtracts" time="0.01"/>
</testsuite></testsuites>
"#;

const JUNIT_FAIL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="lib" tests="2">
  <testcase classname="lib" name="adds" time="0.01"/>
  <testcase classname="lib" name="subtracts" time="0.01"><failure message="off by one">assert</failure></testcase>
</testsuite></testsuites>
"#;

const SARIF_CLEAN: &str = r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "Semgrep", "version": "1.90.0"}}, "results": []}]}"#;

const SARIF_FINDING: &str = r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "Semgrep", "version": "1.90.0"}}, "results": [
  {"ruleId": "CVE-2026-0001", "level": "error", "message": {"text": "tainted input reaches a query"},
   "locations": [{"physicalLocation": {"artifactLocation": {"uri": "lib/src.rs"}, "region": {"startLine": 1}}}]}]}]}"#;

const VEX_NOT_AFFECTED: &str = r#"{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://acme.example/vex/1",
  "author": "security@acme", "timestamp": "2026-01-05T09:00:00Z", "version": 1,
  "statements": [{"vulnerability": {"name": "CVE-2026-0001"}, "products": [{"@id": "component:default/lib"}],
    "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path"}]}"#;

/// A governed repository with trusted runners, and the keys to sign as them.
struct Fixture {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    work: PathBuf,
    writer: RepoWriter,
    base: CommitId,
    head: CommitId,
    ci_key: PathBuf,
    other_key: PathBuf,
    /// A VEX authority (`vex = true`), trusted for no suite the plan has.
    security_key: PathBuf,
}

/// Runs `runner keygen` and returns the key file and the public key it printed.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let keys = dir.path().join("keys");
    let (ci_key, ci_public) = keygen("ci", &keys);
    let (other_key, other_public) = keygen("other", &keys);
    let (security_key, security_public) = keygen("security", &keys);
    let config = format!(
        "[repository]\nname = \"{REPOSITORY}\"\n\n[[runners]]\nname = \"ci\"\npublic_key = \"{ci_public}\"\nsuites = [\"lib-unit\", \"lib-scan\", \"batch-scan\"]\n\n[[runners]]\nname = \"other\"\npublic_key = \"{other_public}\"\nsuites = [\"batch-scan\"]\n\n[[runners]]\nname = \"security\"\npublic_key = \"{security_public}\"\nsuites = [\"security-review\"]\nvex = true\n"
    );
    let mut writer = RepoWriter::init(&repo).unwrap();
    let base = writer
        .commit(
            [
                ("countersign.toml", Some(config.as_str())),
                ("catalog-info.yaml", Some(CATALOG)),
                ("lib/src.rs", Some("pub fn add() {}\n")),
                ("web/index.html", Some("<html></html>\n")),
                ("batch/job.sh", Some("echo\n")),
            ],
            "base",
            ALICE,
            TIME,
        )
        .unwrap();
    let head = writer
        .commit(
            [("lib/src.rs", Some("pub fn add() { 1 + 1; }\n"))],
            "lib change",
            ALICE,
            TIME + 1,
        )
        .unwrap();
    Fixture {
        _dir: dir,
        repo,
        work,
        writer,
        base,
        head,
        ci_key,
        other_key,
        security_key,
    }
}

impl Fixture {
    fn repo(&self) -> &str {
        self.repo.to_str().unwrap()
    }

    /// Writes `content` as a report file and returns its path.
    fn report(&self, name: &str, content: &str) -> String {
        let path = self.work.join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// `countersign attest` with `flag report` for `suite` at `commit`, signed by `key`;
    /// returns the envelope file.
    fn attest(
        &self,
        key: &Path,
        commit: &CommitId,
        suite: &str,
        flag: &str,
        content: &str,
    ) -> String {
        let n = std::fs::read_dir(&self.work).unwrap().count();
        let report = self.report(&format!("report-{n}"), content);
        let out = self.work.join(format!("envelope-{n}.json"));
        let output = countersign(&[
            "attest",
            "--repo",
            self.repo(),
            "--repository",
            REPOSITORY,
            "--key",
            key.to_str().unwrap(),
            "--commit",
            commit.as_str(),
            "--suite",
            suite,
            flag,
            &report,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        out.to_str().unwrap().to_owned()
    }

    fn evaluate(&self, evidence: &[String]) -> Value {
        self.evaluate_between(&self.base, &self.head, evidence)
    }

    fn evaluate_between(&self, base: &CommitId, head: &CommitId, evidence: &[String]) -> Value {
        let mut args = vec![
            "evaluate",
            "--repo",
            self.repo(),
            "--base",
            base.as_str(),
            "--head",
            head.as_str(),
            "--author",
            "agent:fixbot",
            "--format",
            "json",
        ];
        if !evidence.is_empty() {
            args.push("--evidence");
            args.extend(evidence.iter().map(String::as_str));
        }
        let output = countersign(&args);
        assert!(output.status.success(), "{}", stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// Passing evidence for both planned suites at the head.
    fn full_coverage(&self) -> Vec<String> {
        vec![
            self.attest(&self.ci_key, &self.head, "lib-unit", "--junit", JUNIT_PASS),
            self.attest(&self.ci_key, &self.head, "lib-scan", "--sarif", SARIF_CLEAN),
        ]
    }
}

/// The `evidence.suites` entry of `suite`.
fn suite_status<'r>(report: &'r Value, suite: &str) -> &'r Value {
    report["evidence"]["suites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["suite"] == suite)
        .unwrap_or_else(|| panic!("no suite {suite}: {report:#}"))
}

fn refused_reasons(report: &Value) -> Vec<String> {
    report["evidence"]["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn keygen_writes_a_private_key_0600_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen("ci", dir.path());
    assert_eq!(public.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    let pub_json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("ci.pub")).unwrap()).unwrap();
    assert_eq!(pub_json["keyval"]["public"], public.as_str());
    let before = std::fs::read(&key).unwrap();
    let again = countersign(&[
        "runner",
        "keygen",
        "--name",
        "ci",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("refusing to overwrite"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read(&key).unwrap(), before);
}

#[test]
fn without_evidence_the_decision_is_unchanged() {
    let f = fixture();
    let report = f.evaluate(&[]);
    assert_eq!(report["tier"], "auto_merge", "{report:#}");
    assert_eq!(report["facts"]["evidence_considered"], false);
    assert!(report.get("evidence").is_none());
}

#[test]
fn full_passing_coverage_keeps_auto_merge() {
    let f = fixture();
    let report = f.evaluate(&f.full_coverage());
    assert_eq!(report["tier"], "auto_merge", "{report:#}");
    assert_eq!(report["facts"]["evidence_considered"], true);
    assert_eq!(report["facts"]["coverage_percent"], 100);
    assert_eq!(report["facts"]["planned_suites"], 2);
    let evidence = &report["evidence"];
    assert_eq!(evidence["accepted"].as_array().unwrap().len(), 2);
    assert_eq!(evidence["accepted"][0]["binds_to"], "head");
    assert_eq!(
        evidence["coverage"]["nodes"][0]["node"],
        "component:default/lib"
    );
    assert_eq!(evidence["coverage"]["nodes"][0]["percent"], 100);
    assert!(refused_reasons(&report).is_empty());
}

#[test]
fn partial_coverage_needs_an_approver() {
    let f = fixture();
    let unit = f.attest(&f.ci_key, &f.head, "lib-unit", "--junit", JUNIT_PASS);
    let report = f.evaluate(&[unit]);
    assert_eq!(report["facts"]["coverage_percent"], 50);
    assert_eq!(report["tier"], "single_approver", "{report:#}");
}

#[test]
fn a_failing_suite_blocks_automation() {
    let f = fixture();
    let evidence = vec![
        f.attest(&f.ci_key, &f.head, "lib-unit", "--junit", JUNIT_FAIL),
        f.attest(&f.ci_key, &f.head, "lib-scan", "--sarif", SARIF_CLEAN),
    ];
    // The signed predicate carries the JUnit failure message for a finding to show.
    let envelope: Value = serde_json::from_slice(&std::fs::read(&evidence[0]).unwrap()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    let statement: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        statement["predicate"]["countersign.dev/failureMessages"],
        serde_json::json!({"lib::subtracts": "off by one"})
    );
    let report = f.evaluate(&evidence);
    assert_eq!(report["facts"]["failed_suites"], 1);
    assert_eq!(
        report["evidence"]["failed_suites"],
        serde_json::json!(["lib-unit"])
    );
    assert_eq!(report["automated"], false, "{report:#}");
}

#[test]
fn a_test_passing_at_base_and_failing_at_head_is_a_regression() {
    let f = fixture();
    let evidence = vec![
        f.attest(&f.ci_key, &f.base, "lib-unit", "--junit", JUNIT_PASS),
        f.attest(&f.ci_key, &f.head, "lib-unit", "--junit", JUNIT_FAIL),
        f.attest(&f.ci_key, &f.head, "lib-scan", "--sarif", SARIF_CLEAN),
    ];
    let report = f.evaluate(&evidence);
    assert_eq!(report["evidence"]["accepted"][0]["binds_to"], "base");
    assert_eq!(report["facts"]["regressions"], 1);
    assert_eq!(
        report["evidence"]["regressions"],
        serde_json::json!([{"suite": "lib-unit", "test": "lib::subtracts", "kind": "failing"}])
    );
    assert_eq!(report["automated"], false);
}

#[test]
fn evidence_for_another_commit_is_refused_and_does_not_count() {
    let mut f = fixture();
    let elsewhere = f
        .writer
        .commit_on(
            "refs/heads/topic",
            &f.base,
            [("batch/job.sh", Some("echo other\n"))],
            "unrelated",
            ALICE,
            TIME + 2,
        )
        .unwrap();
    let mut evidence = f.full_coverage();
    evidence[0] = f.attest(&f.ci_key, &elsewhere, "lib-unit", "--junit", JUNIT_PASS);
    let report = f.evaluate(&evidence);
    assert_eq!(refused_reasons(&report), ["other_commit"]);
    let message = report["evidence"]["refused"][0]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains(elsewhere.as_str()), "{message}");
    assert_eq!(report["facts"]["coverage_percent"], 50);
    assert_ne!(report["tier"], "auto_merge");
}

#[test]
fn a_runner_attesting_a_suite_it_may_not_is_refused() {
    let f = fixture();
    let mut evidence = f.full_coverage();
    evidence[0] = f.attest(&f.other_key, &f.head, "lib-unit", "--junit", JUNIT_PASS);
    let report = f.evaluate(&evidence);
    assert_eq!(refused_reasons(&report), ["suite_not_allowed"]);
    assert_eq!(report["facts"]["coverage_percent"], 50);
}

#[test]
fn runners_are_trusted_from_the_base_not_the_head() {
    let mut f = fixture();
    // The head trusts a new key and signs its own evidence with it.
    let keys = f.work.join("rogue");
    let (rogue_key, rogue_public) = keygen("rogue", &keys);
    let config = format!(
        "[repository]\nname = \"{REPOSITORY}\"\n\n[[runners]]\nname = \"rogue\"\npublic_key = \"{rogue_public}\"\nsuites = [\"lib-unit\", \"lib-scan\"]\n"
    );
    let head = f
        .writer
        .commit(
            [
                ("countersign.toml", Some(config.as_str())),
                ("lib/src.rs", Some("pub fn add() { 2 + 2; }\n")),
            ],
            "trust me",
            ALICE,
            TIME + 3,
        )
        .unwrap();
    let evidence = vec![
        f.attest(&rogue_key, &head, "lib-unit", "--junit", JUNIT_PASS),
        f.attest(&rogue_key, &head, "lib-scan", "--sarif", SARIF_CLEAN),
    ];
    let report = f.evaluate_between(&f.base, &head, &evidence);
    assert_eq!(refused_reasons(&report), ["unknown_key", "unknown_key"]);
    assert_eq!(report["facts"]["coverage_percent"], 0);
}

#[test]
fn a_reachable_introduced_vulnerability_needs_change_control() {
    let f = fixture();
    let evidence = vec![
        f.attest(&f.ci_key, &f.head, "lib-unit", "--junit", JUNIT_PASS),
        f.attest(&f.ci_key, &f.head, "lib-scan", "--sarif", SARIF_FINDING),
    ];
    let report = f.evaluate(&evidence);
    assert_eq!(report["tier"], "change_control", "{report:#}");
    assert_eq!(report["facts"]["reachable_vulnerabilities"], 1);
    let vuln = &report["evidence"]["vulnerabilities"][0];
    assert_eq!(vuln["id"], "CVE-2026-0001");
    assert_eq!(vuln["node"], "component:default/lib");
    assert_eq!(vuln["reachability"], "reachable");
    assert_eq!(
        vuln["path"],
        serde_json::json!(["component:default/lib", "component:default/web"])
    );
    assert_eq!(vuln["blocking"], true);
    assert!(
        report["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "reachable-vulnerability"),
        "{report:#}"
    );
}

#[test]
fn trusted_vex_not_affected_makes_it_unreachable() {
    let f = fixture();
    let evidence = vec![
        f.attest(&f.ci_key, &f.head, "lib-unit", "--junit", JUNIT_PASS),
        f.attest(&f.ci_key, &f.head, "lib-scan", "--sarif", SARIF_FINDING),
        f.attest(&f.ci_key, &f.head, "lib-scan", "--vex", VEX_NOT_AFFECTED),
    ];
    let report = f.evaluate(&evidence);
    let vuln = &report["evidence"]["vulnerabilities"][0];
    assert_eq!(vuln["reachability"], "not_affected", "{report:#}");
    assert_eq!(vuln["justification"], "vulnerable_code_not_in_execute_path");
    assert_eq!(report["facts"]["reachable_vulnerabilities"], 0);
    assert_eq!(report["tier"], "auto_merge", "{report:#}");
}

#[test]
fn vex_about_an_unknown_product_is_refused() {
    let f = fixture();
    let ghost = VEX_NOT_AFFECTED.replace("component:default/lib", "pkg:npm/ghost@1.0.0");
    let mut evidence = f.full_coverage();
    evidence.push(f.attest(&f.ci_key, &f.head, "lib-scan", "--vex", &ghost));
    let report = f.evaluate(&evidence);
    assert_eq!(refused_reasons(&report), ["unknown_product"]);
}

#[test]
fn a_pre_existing_vulnerability_is_reported_and_does_not_block() {
    let f = fixture();
    let evidence = vec![
        f.attest(&f.ci_key, &f.base, "lib-scan", "--sarif", SARIF_FINDING),
        f.attest(&f.ci_key, &f.head, "lib-unit", "--junit", JUNIT_PASS),
        f.attest(&f.ci_key, &f.head, "lib-scan", "--sarif", SARIF_FINDING),
    ];
    let report = f.evaluate(&evidence);
    let vuln = &report["evidence"]["vulnerabilities"][0];
    assert_eq!(vuln["pre_existing"], true);
    assert_eq!(vuln["reachability"], "reachable");
    assert_eq!(vuln["blocking"], false);
    assert_eq!(report["facts"]["reachable_vulnerabilities"], 0);
    assert_eq!(report["tier"], "auto_merge", "{report:#}");
}

#[test]
fn an_unreachable_vulnerability_does_not_block() {
    let f = fixture();
    let mut evidence = f.full_coverage();
    // In batch's file: placed on batch through the path map.
    evidence.push(f.attest(
        &f.ci_key,
        &f.head,
        "batch-scan",
        "--sarif",
        &sarif(&[("CVE-2026-0001", "batch/job.sh", 1)]),
    ));
    let report = f.evaluate(&evidence);
    let vuln = &report["evidence"]["vulnerabilities"][0];
    assert_eq!(vuln["node"], "component:default/batch");
    assert_eq!(vuln["reachability"], "unreachable");
    assert_eq!(report["tier"], "auto_merge", "{report:#}");
    let text = countersign(&[
        "evaluate",
        "--repo",
        f.repo(),
        "--base",
        f.base.as_str(),
        "--head",
        f.head.as_str(),
        "--author",
        "human:visitor",
        "--evidence",
        &evidence[0],
        &evidence[1],
        &evidence[2],
    ]);
    let text = stdout(&text);
    assert!(text.contains("evidence: 3 accepted, 0 refused"), "{text}");
    assert!(
        text.contains("coverage: 2/2 planned suite(s) passed (100%)"),
        "{text}"
    );
    assert!(
        text.contains("unreachable: no internet-exposed node depends on it"),
        "{text}"
    );
}

#[test]
fn evidence_verify_says_accepted_or_refused_per_file() {
    let f = fixture();
    let good = f.attest(&f.ci_key, &f.head, "lib-unit", "--junit", JUNIT_PASS);
    let not_allowed = f.attest(&f.other_key, &f.head, "lib-unit", "--junit", JUNIT_PASS);
    let truncated = f.report("truncated.json", "{\"payload\": \"abc");
    let verify = |files: &[&str]| {
        let mut args = vec![
            "evidence",
            "verify",
            "--repo",
            f.repo(),
            "--rev",
            f.base.as_str(),
            "--commit",
            f.head.as_str(),
        ];
        args.extend_from_slice(files);
        countersign(&args)
    };
    let ok = verify(&[&good]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).starts_with("ACCEPTED"), "{}", stdout(&ok));
    assert!(stdout(&ok).contains("suite lib-unit, test-result PASSED: 2 passed"));

    let mixed = verify(&[&good, &not_allowed, &truncated]);
    assert_eq!(mixed.status.code(), Some(1));
    let lines: Vec<String> = stdout(&mixed).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("ACCEPTED"));
    assert!(
        lines[1].starts_with("REFUSED") && lines[1].contains("suite_not_allowed"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("REFUSED") && lines[2].contains("malformed"),
        "{}",
        lines[2]
    );

    let other_commit = countersign(&[
        "evidence",
        "verify",
        "--repo",
        f.repo(),
        "--rev",
        f.base.as_str(),
        "--commit",
        f.base.as_str(),
        &good,
    ]);
    assert_eq!(other_commit.status.code(), Some(1));
    assert!(stdout(&other_commit).contains("other_commit"));
}

#[test]
fn attest_run_records_the_command_and_the_junit_it_leaves() {
    let f = fixture();
    let junit = f.work.join("run-junit.xml");
    let script = format!(
        "cat > '{}' <<'EOF'\n{JUNIT_PASS}EOF\nexit 3",
        junit.display()
    );
    let out = f.work.join("run.json");
    let output = countersign(&[
        "attest",
        "--repo",
        f.repo(),
        "--repository",
        REPOSITORY,
        "--key",
        f.ci_key.to_str().unwrap(),
        "--commit",
        "HEAD",
        "--suite",
        "lib-unit",
        "--junit",
        junit.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--run",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("exit status 3"),
        "{}",
        stderr(&output)
    );
    let envelope: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(envelope["payloadType"], "application/vnd.in-toto+json");

    let report = f.evaluate(&[out.to_str().unwrap().to_owned()]);
    let accepted = &report["evidence"]["accepted"][0];
    assert_eq!(
        accepted["binds_to"], "head",
        "HEAD resolves to the full head id"
    );
    assert_eq!(
        accepted["summary"], "test-result FAILED: 2 passed, 0 warned, 1 failed",
        "the two JUnit tests passed, the command's own test failed"
    );
    assert_eq!(report["facts"]["failed_suites"], 1);
}

#[test]
fn evidence_needs_commits_and_a_repository_name() {
    let f = fixture();
    let good = f.attest(&f.ci_key, &f.head, "lib-unit", "--junit", JUNIT_PASS);
    let listed = countersign(&[
        "evaluate",
        "--repo",
        f.repo(),
        "--files",
        "-",
        "--author",
        "human:visitor",
        "--evidence",
        &good,
    ]);
    assert_eq!(listed.status.code(), Some(2));
    assert!(stderr(&listed).contains("--base"), "{}", stderr(&listed));

    let dir = tempfile::tempdir().unwrap();
    let mut writer = RepoWriter::init(dir.path()).unwrap();
    let commit = writer
        .commit([("a.txt", Some("a\n"))], "a", ALICE, TIME)
        .unwrap();
    let nameless = countersign(&[
        "attest",
        "--repo",
        dir.path().to_str().unwrap(),
        "--repository",
        REPOSITORY,
        "--key",
        f.ci_key.to_str().unwrap(),
        "--commit",
        commit.as_str(),
        "--suite",
        "lib-unit",
        "--junit",
        &f.report("j.xml", JUNIT_PASS),
    ]);
    assert_eq!(nameless.status.code(), Some(2));
    assert!(
        stderr(&nameless).contains("[repository] name"),
        "{}",
        stderr(&nameless)
    );
}

/// A decision made with evidence records the accepted envelopes, and its bundle re-derives
/// the same decision offline: the envelopes are re-verified against the recorded runners.
#[test]
fn a_decision_with_evidence_re_derives_from_its_bundle() {
    let f = fixture();
    let evidence = f.full_coverage();
    let log_key = f.work.join("log.key");
    let out = countersign(&[
        "log",
        "keygen",
        "--origin",
        "countersign.test/lib",
        "--out",
        log_key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut args = vec![
        "evaluate",
        "--repo",
        f.repo(),
        "--base",
        f.base.as_str(),
        "--head",
        f.head.as_str(),
        "--author",
        "agent:fixbot",
        "--record",
        "--log-key",
        log_key.to_str().unwrap(),
        "--evidence",
    ];
    args.extend(evidence.iter().map(String::as_str));
    let out = countersign(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let proposal = stderr(&out)
        .split_whitespace()
        .find(|w| w.starts_with("p-"))
        .unwrap()
        .to_owned();
    let bundle = f.work.join("bundle.json");
    let out = countersign(&[
        "bundle",
        "export",
        "--repo",
        f.repo(),
        &proposal,
        "--out",
        bundle.to_str().unwrap(),
        "--log-key",
        log_key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&bundle).unwrap();
    let decided = text
        .lines()
        .find(|l| l.contains("\\\"kind\\\":\\\"decided\\\""))
        .unwrap_or_default();
    assert!(
        decided.contains("evidence_considered"),
        "the automated decision records its facts"
    );
    let out = countersign(&[
        "bundle",
        "verify",
        bundle.to_str().unwrap(),
        "--log-key",
        f.work.join("log.pub").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("re-derived: same tier"),
        "{}",
        stdout(&out)
    );
}

/// Issue 23 point 8: the runner names the repository it vouches for; a commit whose
/// countersign.toml names another repository cannot borrow the runner's signature for it.
#[test]
fn the_runner_names_the_repository_not_the_commit() {
    let mut f = fixture();
    let borrowed = f
        .writer
        .commit(
            [(
                "countersign.toml",
                Some("[repository]\nname = \"github.com/acme/payments\"\n"),
            )],
            "claim another repository",
            ALICE,
            TIME + 2,
        )
        .unwrap();
    let report = f.report("borrowed.xml", JUNIT_PASS);
    let out = f.work.join("borrowed.dsse.json");
    let attest = |repository: Option<&str>| {
        let mut args = vec![
            "attest",
            "--repo",
            f.repo(),
            "--key",
            f.ci_key.to_str().unwrap(),
            "--commit",
            borrowed.as_str(),
            "--suite",
            "lib-unit",
            "--junit",
            &report,
            "--out",
            out.to_str().unwrap(),
        ];
        if let Some(repository) = repository {
            args.extend(["--repository", repository]);
        }
        countersign(&args)
    };
    let refused = attest(Some(REPOSITORY));
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let message = stderr(&refused);
    assert!(
        message.contains("github.com/acme/payments") && message.contains(REPOSITORY),
        "{message}"
    );
    assert!(!out.exists(), "nothing is signed");
    // The name is required: without it nothing says which repository the runner serves.
    let unnamed = attest(None);
    assert_eq!(unnamed.status.code(), Some(2), "{}", stderr(&unnamed));
    assert!(
        stderr(&unnamed).contains("--repository"),
        "{}",
        stderr(&unnamed)
    );
    assert!(!out.exists());

    // From the environment, for a runner configured once.
    let args = [
        "attest",
        "--repo",
        f.repo(),
        "--key",
        f.ci_key.to_str().unwrap(),
        "--commit",
        f.head.as_str(),
        "--suite",
        "lib-unit",
        "--junit",
        &report,
        "--out",
        out.to_str().unwrap(),
    ];
    let from_env = countersign_env(&args, "COUNTERSIGN_REPOSITORY", REPOSITORY);
    assert!(from_env.status.success(), "{}", stderr(&from_env));
    let mismatched = countersign_env(&args, "COUNTERSIGN_REPOSITORY", "github.com/acme/payments");
    assert_eq!(mismatched.status.code(), Some(2), "{}", stderr(&mismatched));
}

/// Adds a signature by `key` to the envelope file `path`, with an empty key id, before the
/// signatures already there: what an independent DSSE signer may write.
fn cosign_without_keyid(path: &str, key: &Path, out: &str) {
    use countersign_evidence::dsse::{Envelope, SigningKey};
    let mut envelope = Envelope::parse(&std::fs::read(path).unwrap()).unwrap();
    let key = SigningKey::from_pkcs8_pem(&std::fs::read_to_string(key).unwrap()).unwrap();
    let mut extra = Envelope::sign(&envelope.payload_type, envelope.payload.clone(), &key)
        .signatures
        .remove(0);
    extra.keyid = String::new();
    envelope.signatures.insert(0, extra);
    std::fs::write(out, envelope.to_json()).unwrap();
}

/// Issue 23 point 9: one envelope signed by `ci` (named) and `other` (no key id), for a suite
/// only `ci` may attest, gets one verdict from `evidence verify` and `evaluate`: refused,
/// because every trusted signer must be allowed the suite.
#[test]
fn one_verdict_for_one_envelope_with_two_signatures() {
    let f = fixture();
    let unit = f.attest(&f.ci_key, &f.head, "lib-unit", "--junit", JUNIT_PASS);
    let scan = f.attest(&f.ci_key, &f.head, "lib-scan", "--sarif", SARIF_CLEAN);
    let both = f.work.join("both.dsse.json").to_str().unwrap().to_owned();
    cosign_without_keyid(&unit, &f.other_key, &both);

    let verify = countersign(&[
        "evidence",
        "verify",
        "--repo",
        f.repo(),
        "--rev",
        f.base.as_str(),
        "--commit",
        f.head.as_str(),
        &both,
    ]);
    assert_eq!(verify.status.code(), Some(1), "{}", stdout(&verify));
    assert!(
        stdout(&verify).contains("suite_not_allowed") && stdout(&verify).contains("other"),
        "{}",
        stdout(&verify)
    );
    // The same file through the decision, alone and batched with another envelope.
    for evidence in [vec![both.clone()], vec![both.clone(), scan.clone()]] {
        let report = f.evaluate(&evidence);
        assert_eq!(
            refused_reasons(&report)[0],
            "suite_not_allowed",
            "{report:#}"
        );
        assert_eq!(
            suite_status(&report, "lib-unit")["status"],
            "missing",
            "{report:#}"
        );
    }
    // Both signers allowed the suite: accepted on both paths.
    let shared = f.attest(&f.ci_key, &f.head, "batch-scan", "--sarif", SARIF_CLEAN);
    let shared_both = f.work.join("shared.dsse.json").to_str().unwrap().to_owned();
    cosign_without_keyid(&shared, &f.other_key, &shared_both);
    let verify = countersign(&[
        "evidence",
        "verify",
        "--repo",
        f.repo(),
        "--rev",
        f.base.as_str(),
        "--commit",
        f.head.as_str(),
        &shared_both,
    ]);
    assert!(verify.status.success(), "{}", stdout(&verify));
    let report = f.evaluate(&[shared_both, scan]);
    assert!(refused_reasons(&report).is_empty(), "{report:#}");
}

const JUNIT_EMPTY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="lib" tests="0"></testsuite></testsuites>
"#;

const JUNIT_ONLY_SKIPPED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="lib" tests="2" skipped="2">
  <testcase classname="lib" name="adds"><skipped/></testcase>
  <testcase classname="lib" name="subtracts"><skipped message="later"/></testcase>
</testsuite></testsuites>
"#;

const JUNIT_SUITE_ERROR: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="lib" tests="0" errors="1">
  <error message="collection failed">ImportError: no module named lib</error>
</testsuite></testsuites>
"#;

/// Issue 23 point 7: a report that executed no test is not a pass. No test cases and only
/// skipped ones are `no_tests` (the plan is not satisfied, the explanation says why); a
/// suite-level `<error>` is a failure.
#[test]
fn no_tests_run_is_not_a_pass() {
    let f = fixture();
    let scan = f.attest(&f.ci_key, &f.head, "lib-scan", "--sarif", SARIF_CLEAN);
    for junit in [JUNIT_EMPTY, JUNIT_ONLY_SKIPPED] {
        let unit = f.attest(&f.ci_key, &f.head, "lib-unit", "--junit", junit);
        let report = f.evaluate(&[unit, scan.clone()]);
        let suite = suite_status(&report, "lib-unit");
        assert_eq!(suite["status"], "no_tests", "{report:#}");
        assert!(
            suite["explanation"]
                .as_str()
                .unwrap()
                .contains("does not satisfy the plan"),
            "{suite}"
        );
        assert_eq!(report["facts"]["coverage_percent"], 50, "{report:#}");
        assert_ne!(report["tier"], "auto_merge", "{report:#}");
    }
    let unit = f.attest(&f.ci_key, &f.head, "lib-unit", "--junit", JUNIT_SUITE_ERROR);
    let report = f.evaluate(&[unit.clone(), scan.clone()]);
    assert_eq!(
        suite_status(&report, "lib-unit")["status"],
        "failed",
        "{report:#}"
    );
    assert_eq!(
        report["evidence"]["failed_suites"],
        serde_json::json!(["lib-unit"])
    );
    assert!(
        report["evidence"]["accepted"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("FAILED"),
        "{report:#}"
    );
    assert_eq!(report["automated"], false, "{report:#}");
    let text = stdout(&countersign(&[
        "evaluate",
        "--repo",
        f.repo(),
        "--base",
        f.base.as_str(),
        "--head",
        f.head.as_str(),
        "--author",
        "human:visitor",
        "--evidence",
        &f.attest(&f.ci_key, &f.head, "lib-unit", "--junit", JUNIT_EMPTY),
        &scan,
    ]));
    assert!(text.contains("suite lib-unit no_tests"), "{text}");
    assert!(text.contains("does not satisfy the plan"), "{text}");
}

/// A SARIF log with one result per `(rule, uri, line)`.
fn sarif(results: &[(&str, &str, u32)]) -> String {
    let results: Vec<String> = results
        .iter()
        .map(|(rule, uri, line)| {
            format!(
                r#"{{"ruleId": "{rule}", "level": "error", "message": {{"text": "tainted input reaches a query"}},
   "locations": [{{"physicalLocation": {{"artifactLocation": {{"uri": "{uri}"}}, "region": {{"startLine": {line}}}}}}}]}}"#
            )
        })
        .collect();
    format!(
        r#"{{"version": "2.1.0", "runs": [{{"tool": {{"driver": {{"name": "Semgrep", "version": "1.90.0"}}}}, "results": [{}]}}]}}"#,
        results.join(",")
    )
}

/// Issue 23 point 6: a finding is its rule and its location. An old result of a rule in one
/// file does not make new results of that rule elsewhere pre-existing; two head results of
/// one rule are two findings; a finding is placed on the node its file maps to.
#[test]
fn a_finding_is_its_location_not_its_rule() {
    let f = fixture();
    let base = f.attest(
        &f.ci_key,
        &f.base,
        "lib-scan",
        "--sarif",
        &sarif(&[("sql-injection", "lib/changelog.rs", 10)]),
    );
    let head = f.attest(
        &f.ci_key,
        &f.head,
        "lib-scan",
        "--sarif",
        &sarif(&[
            ("sql-injection", "lib/changelog.rs", 10),
            ("sql-injection", "lib/src.rs", 99),
            ("sql-injection", "lib/src.rs", 120),
            ("sql-injection", "batch/job.sh", 1),
        ]),
    );
    let unit = f.attest(&f.ci_key, &f.head, "lib-unit", "--junit", JUNIT_PASS);
    let report = f.evaluate(&[base, head, unit]);
    let vulns = report["evidence"]["vulnerabilities"].as_array().unwrap();
    assert_eq!(vulns.len(), 4, "one per result: {report:#}");
    let at = |location: &str| {
        vulns
            .iter()
            .find(|v| v["location"] == location)
            .unwrap_or_else(|| panic!("no finding at {location}: {report:#}"))
    };
    assert_eq!(at("lib/changelog.rs:10")["pre_existing"], true);
    for new in ["lib/src.rs:99", "lib/src.rs:120"] {
        assert_eq!(at(new)["pre_existing"], false, "{new}");
        assert_eq!(at(new)["blocking"], true, "{new}");
        assert_eq!(at(new)["node"], "component:default/lib");
    }
    // Attested under lib-scan, but its file is batch's: placed there, unreachable.
    assert_eq!(at("batch/job.sh:1")["node"], "component:default/batch");
    assert_eq!(at("batch/job.sh:1")["reachability"], "unreachable");
    assert_eq!(
        report["facts"]["reachable_vulnerabilities"], 2,
        "{report:#}"
    );
    assert_eq!(report["tier"], "change_control", "{report:#}");
}

/// With `partialFingerprints` the tool's identity wins over the line: a result that moved
/// down the file is still the base's.
#[test]
fn partial_fingerprints_follow_a_finding_that_moved() {
    let f = fixture();
    let with_fingerprint = |line: u32| {
        sarif(&[("sql-injection", "lib/src.rs", line)]).replace(
            r#""level": "error""#,
            r#""level": "error", "partialFingerprints": {"primaryLocationLineHash": "39fa2ee980eb94b0:1"}"#,
        )
    };
    let evidence = vec![
        f.attest(
            &f.ci_key,
            &f.base,
            "lib-scan",
            "--sarif",
            &with_fingerprint(10),
        ),
        f.attest(
            &f.ci_key,
            &f.head,
            "lib-scan",
            "--sarif",
            &with_fingerprint(14),
        ),
        f.attest(&f.ci_key, &f.head, "lib-unit", "--junit", JUNIT_PASS),
    ];
    let report = f.evaluate(&evidence);
    let vuln = &report["evidence"]["vulnerabilities"][0];
    assert_eq!(vuln["pre_existing"], true, "{report:#}");
    assert_eq!(
        vuln["fingerprint"],
        "partialFingerprints:primaryLocationLineHash=39fa2ee980eb94b0:1"
    );
    assert_eq!(report["tier"], "auto_merge", "{report:#}");
}

/// Signs a vulns predicate for `suite` at `commit` with `key` directly, as an independent
/// signer may (attest writes no package annotation from SARIF).
fn sign_vulns(f: &Fixture, key: &Path, commit: &CommitId, suite: &str, results: Value) -> String {
    use countersign_evidence::Statement;
    use countersign_evidence::dsse::SigningKey;
    use countersign_evidence::statement::VULNS_V02;
    let key = SigningKey::from_pkcs8_pem(&std::fs::read_to_string(key).unwrap()).unwrap();
    let predicate = serde_json::json!({
        "scanner": {"uri": "pkg:generic/forged", "result": results},
    });
    let statement = Statement::for_commit(REPOSITORY, commit.as_str(), suite, VULNS_V02, predicate);
    let n = std::fs::read_dir(&f.work).unwrap().count();
    let out = f.work.join(format!("signed-{n}.json"));
    std::fs::write(
        &out,
        countersign_evidence::attest(&statement, &key).to_json(),
    )
    .unwrap();
    out.to_str().unwrap().to_owned()
}

/// Issue 23 point 5: base evidence vouches only for its own suite. A runner trusted only
/// for `batch-scan` signs a base finding placed on `lib` (package annotation, same id and
/// location as the scanner's real head finding): the head finding stays introduced.
#[test]
fn base_evidence_vouches_only_for_its_own_suite() {
    let f = fixture();
    let forged = sign_vulns(
        &f,
        &f.other_key,
        &f.base,
        "batch-scan",
        serde_json::json!([{
            "id": "CVE-2026-0001",
            "severity": [{"method": "sarif-level", "score": "error"}],
            "annotations": [
                {"countersign.dev/package": "component:default/lib"},
                {"countersign.dev/location": "lib/src.rs:1"}
            ]
        }]),
    );
    let evidence = vec![
        forged.clone(),
        f.attest(&f.ci_key, &f.head, "lib-unit", "--junit", JUNIT_PASS),
        f.attest(&f.ci_key, &f.head, "lib-scan", "--sarif", SARIF_FINDING),
    ];
    let report = f.evaluate(&evidence);
    assert!(refused_reasons(&report).is_empty(), "{report:#}");
    assert_eq!(report["evidence"]["accepted"][0]["binds_to"], "base");
    let vuln = &report["evidence"]["vulnerabilities"][0];
    assert_eq!(vuln["node"], "component:default/lib");
    assert_eq!(vuln["pre_existing"], false, "{report:#}");
    assert_eq!(vuln["blocking"], true);
    assert_eq!(report["tier"], "change_control", "{report:#}");

    // The same base finding from the suite's own runner is pre-existing.
    let own = sign_vulns(
        &f,
        &f.ci_key,
        &f.base,
        "lib-scan",
        serde_json::json!([{
            "id": "CVE-2026-0001",
            "severity": [{"method": "sarif-level", "score": "error"}],
            "annotations": [{"countersign.dev/location": "lib/src.rs:1"}]
        }]),
    );
    let mut evidence = evidence;
    evidence[0] = own;
    let report = f.evaluate(&evidence);
    assert_eq!(
        report["evidence"]["vulnerabilities"][0]["pre_existing"], true,
        "{report:#}"
    );
}

/// Issue 22 point 3: a runner's VEX reaches only what its suites validate. `other` (trusted
/// for `batch-scan` only) says `not_affected` about `lib`: refused with a reason, the
/// finding stays reachable. A VEX authority (`vex = true`) may say it.
#[test]
fn a_runners_vex_reaches_only_what_its_suites_validate() {
    let f = fixture();
    let mut evidence = vec![
        f.attest(&f.ci_key, &f.head, "lib-unit", "--junit", JUNIT_PASS),
        f.attest(&f.ci_key, &f.head, "lib-scan", "--sarif", SARIF_FINDING),
        f.attest(
            &f.other_key,
            &f.head,
            "batch-scan",
            "--vex",
            VEX_NOT_AFFECTED,
        ),
    ];
    let report = f.evaluate(&evidence);
    assert_eq!(
        refused_reasons(&report),
        ["vex_not_authorized"],
        "{report:#}"
    );
    let message = report["evidence"]["refused"][0]["message"]
        .as_str()
        .unwrap();
    assert!(
        message.contains("component:default/lib") && message.contains("vex = true"),
        "{message}"
    );
    assert_eq!(
        report["evidence"]["vulnerabilities"][0]["reachability"],
        "reachable"
    );
    assert_eq!(report["tier"], "change_control", "{report:#}");

    // The security team's key, trusted for VEX, clears it.
    evidence[2] = f.attest(
        &f.security_key,
        &f.head,
        "security-review",
        "--vex",
        VEX_NOT_AFFECTED,
    );
    let report = f.evaluate(&evidence);
    assert!(refused_reasons(&report).is_empty(), "{report:#}");
    assert_eq!(
        report["evidence"]["vulnerabilities"][0]["reachability"], "not_affected",
        "{report:#}"
    );
    assert_eq!(report["tier"], "auto_merge", "{report:#}");
}
