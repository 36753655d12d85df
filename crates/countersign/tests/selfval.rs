//! Issue 21: evidence a change wrote for itself does not count. Black-box, through the real
//! binary with a real repository and a real runner: each run checks the commit out with
//! git, executes the suite's test scripts from that checkout, writes JUnit, and signs it
//! with `countersign attest`.

#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

use countersign_repo::{CommitId, RepoWriter};
use serde_json::{Value, json};

const REPOSITORY: &str = "github.com/acme/shop";

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
    countersign.dev/suites: lib-unit
spec:
  type: library
  lifecycle: production
  owner: team-shop
"#;

/// The runner's harness: runs every `*.sh` test of a directory from a checkout, one JUnit
/// test case per file; a test whose file says `# skip` is reported skipped, as a test
/// framework's skip marker would be.
const HARNESS: &str = r#"#!/bin/sh
dir="$1"; out="$2"; checkout="$3"
{
  echo '<?xml version="1.0" encoding="UTF-8"?>'
  echo '<testsuites><testsuite name="lib">'
  for t in "$dir"/*.sh; do
    [ -e "$t" ] || continue
    name=$(basename "$t" .sh)
    if grep -q '^# skip' "$t"; then
      echo "<testcase classname=\"lib\" name=\"$name\"><skipped/></testcase>"
    elif (cd "$checkout" && sh "$t") >/dev/null 2>&1; then
      echo "<testcase classname=\"lib\" name=\"$name\"/>"
    else
      echo "<testcase classname=\"lib\" name=\"$name\"><failure message=\"failed\">$name</failure></testcase>"
    fi
  done
  echo '</testsuite></testsuites>'
} > "$out"
"#;

/// `adds` holds for any version of the library; `limit` only while the limit is 100.
const ADDS: &str = "grep -q 'fn add' lib/src.rs\n";
const LIMIT: &str = "grep -q 'LIMIT: u32 = 100;' lib/src.rs\n";

struct Fixture {
    dir: tempfile::TempDir,
    repo: PathBuf,
    writer: RepoWriter,
    base: CommitId,
    key: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let keys = dir.path().join("keys");
    let (key, public) = keygen("ci", &keys);
    let config = format!(
        "[repository]\nname = \"{REPOSITORY}\"\n\n[[runners]]\nname = \"ci\"\npublic_key = \"{public}\"\nsuites = [\"lib-unit\"]\n"
    );
    std::fs::write(dir.path().join("harness.sh"), HARNESS).unwrap();
    let mut writer = RepoWriter::init(&repo).unwrap();
    let base = writer
        .commit(
            [
                ("countersign.toml", Some(config.as_str())),
                ("catalog-info.yaml", Some(CATALOG)),
                (
                    "lib/src.rs",
                    Some("pub const LIMIT: u32 = 100;\npub fn add() {}\n"),
                ),
                ("lib/tests/adds.sh", Some(ADDS)),
                ("lib/tests/limit.sh", Some(LIMIT)),
            ],
            "base",
            ALICE,
            TIME,
        )
        .unwrap();
    Fixture {
        key,
        dir,
        repo,
        writer,
        base,
    }
}

impl Fixture {
    fn git(&self, args: &[&str]) {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.repo)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
    }

    /// A change on top of the base (each test makes one).
    fn change(&mut self, files: &[(&str, Option<&str>)], time: i64) -> CommitId {
        self.writer
            .commit(files.iter().copied(), "change", ALICE, TIME + time)
            .unwrap()
    }

    /// The runner: checks `commit` out (with the suite files of `suite_source`, when given,
    /// restored over it), runs the suite, and signs what it found. Returns the envelope.
    fn run_suite(&self, commit: &CommitId, suite_source: Option<&CommitId>) -> String {
        let n = std::fs::read_dir(self.dir.path()).unwrap().count();
        let checkout = self.dir.path().join(format!("checkout-{n}"));
        let checkout_str = checkout.to_str().unwrap();
        self.git(&[
            "worktree",
            "add",
            "-q",
            "--detach",
            checkout_str,
            commit.as_str(),
        ]);
        if let Some(source) = suite_source {
            // The base's suite files over the head's code.
            let out = Command::new("git")
                .arg("-C")
                .arg(&checkout)
                .args(["rm", "-r", "-q", "--ignore-unmatch", "lib/tests"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            let out = Command::new("git")
                .arg("-C")
                .arg(&checkout)
                .args(["checkout", source.as_str(), "--", "lib/tests"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
        }
        let junit = self.dir.path().join(format!("junit-{n}.xml"));
        let status = Command::new("sh")
            .arg(self.dir.path().join("harness.sh"))
            .arg(checkout.join("lib/tests"))
            .arg(&junit)
            .arg(&checkout)
            .status()
            .unwrap();
        assert!(status.success());
        let envelope = self.dir.path().join(format!("envelope-{n}.json"));
        let mut args = vec![
            "attest",
            "--repo",
            self.repo.to_str().unwrap(),
            "--repository",
            REPOSITORY,
            "--key",
            self.key.to_str().unwrap(),
            "--commit",
            commit.as_str(),
            "--suite",
            "lib-unit",
            "--junit",
            junit.to_str().unwrap(),
            "--out",
            envelope.to_str().unwrap(),
        ];
        if let Some(source) = suite_source {
            args.extend(["--suite-source", source.as_str()]);
        }
        let output = countersign(&args);
        assert!(output.status.success(), "{}", stderr(&output));
        envelope.to_str().unwrap().to_owned()
    }

    fn evaluate(&self, head: &CommitId, author: &str, evidence: &[String]) -> Value {
        let mut args = vec![
            "evaluate",
            "--repo",
            self.repo.to_str().unwrap(),
            "--base",
            self.base.as_str(),
            "--head",
            head.as_str(),
            "--author",
            author,
            "--format",
            "json",
        ];
        args.push("--evidence");
        args.extend(evidence.iter().map(String::as_str));
        let output = countersign(&args);
        assert!(output.status.success(), "{}", stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    }

    fn text(&self, head: &CommitId, author: &str, evidence: &[String]) -> String {
        let mut args = vec![
            "evaluate",
            "--repo",
            self.repo.to_str().unwrap(),
            "--base",
            self.base.as_str(),
            "--head",
            head.as_str(),
            "--author",
            author,
            "--evidence",
        ];
        args.extend(evidence.iter().map(String::as_str));
        let output = countersign(&args);
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    }
}

/// The change breaks the limit; the base's run of the suite passed.
const BROKEN: &str = "pub const LIMIT: u32 = 1000;\npub fn add() {}\n";

fn planned(report: &Value) -> &Value {
    &report["validation_plan"]["suites"][0]
}

#[test]
fn an_agent_deleting_the_failing_test_is_refused_automation_and_the_deletion_is_named() {
    let mut f = fixture();
    let base_run = f.run_suite(&f.base.clone(), None);
    let head = f.change(
        &[("lib/src.rs", Some(BROKEN)), ("lib/tests/limit.sh", None)],
        1,
    );
    let head_run = f.run_suite(&head, None);
    let report = f.evaluate(&head, "agent:fixbot", &[base_run, head_run]);
    // The runner honestly signed "all passed": full coverage, nothing failed.
    assert_eq!(report["facts"]["coverage_percent"], 100, "{report:#}");
    assert_eq!(report["facts"]["failed_suites"], 0);
    // But the suite judged its own change, and the deleted test is missing from its run.
    assert_eq!(
        report["facts"]["self_validated_suites"],
        json!(["lib-unit"])
    );
    assert_eq!(
        planned(&report)["self_validated_by"],
        json!(["lib/tests/limit.sh"])
    );
    assert_eq!(
        report["evidence"]["regressions"],
        json!([{"suite": "lib-unit", "test": "lib::limit", "kind": "missing"}])
    );
    assert_eq!(report["automated"], false, "{report:#}");
    // The pack's rule names it (the agent invariant, which holds it whatever the pack says,
    // is listed only when it raises a tier the pack permitted: unit-tested in the policy
    // crate).
    let reasons = serde_json::to_string(&report["reasons"]).unwrap();
    assert!(
        reasons.contains("\"id\":\"self-validated-suite\""),
        "{reasons}"
    );

    let text = f.text(
        &head,
        "agent:fixbot",
        &[f.run_suite(&f.base.clone(), None), f.run_suite(&head, None)],
    );
    assert!(
        text.contains(
            "self-validated: the change edits this suite's own files (lib/tests/limit.sh)"
        ),
        "{text}"
    );
    assert!(
        text.contains("lib-unit: lib::limit (missing: deleted, renamed or skipped)"),
        "{text}"
    );
}

#[test]
fn an_agent_marking_the_failing_test_skipped_is_refused_the_same_way() {
    let mut f = fixture();
    let base_run = f.run_suite(&f.base.clone(), None);
    let head = f.change(
        &[
            ("lib/src.rs", Some(BROKEN)),
            ("lib/tests/limit.sh", Some(&format!("# skip\n{LIMIT}"))),
        ],
        1,
    );
    let head_run = f.run_suite(&head, None);
    let report = f.evaluate(&head, "agent:fixbot", &[base_run, head_run.clone()]);
    assert_eq!(report["facts"]["failed_suites"], 0, "{report:#}");
    assert_eq!(
        report["facts"]["self_validated_suites"],
        json!(["lib-unit"])
    );
    assert_eq!(
        report["evidence"]["regressions"],
        json!([{"suite": "lib-unit", "test": "lib::limit", "kind": "missing"}])
    );
    assert_eq!(report["automated"], false, "{report:#}");

    // Even without base evidence to compare with, the self-validated suite alone keeps the
    // change from automation; and the base's version of the suite, run against the head by
    // the runner, fails (the limit is broken), so it confirms nothing.
    let base_version = f.run_suite(&head, Some(&f.base.clone()));
    let report = f.evaluate(&head, "agent:fixbot", &[head_run, base_version]);
    assert_eq!(
        report["evidence"]["base_suite_passed"],
        json!([]),
        "{report:#}"
    );
    assert_eq!(report["facts"]["base_suite_passed"], json!([]));
    assert_eq!(report["automated"], false, "{report:#}");
}

#[test]
fn an_agent_editing_only_production_code_earns_automation() {
    let mut f = fixture();
    let base_run = f.run_suite(&f.base.clone(), None);
    let head = f.change(
        &[(
            "lib/src.rs",
            Some("pub const LIMIT: u32 = 100;\npub fn add() { let _ = 1; }\n"),
        )],
        1,
    );
    let head_run = f.run_suite(&head, None);
    let report = f.evaluate(&head, "agent:fixbot", &[base_run, head_run]);
    assert_eq!(
        report["facts"]["self_validated_suites"],
        json!([]),
        "{report:#}"
    );
    assert!(planned(&report).get("self_validated_by").is_none());
    assert_eq!(report["evidence"]["regressions"], json!([]));
    assert_eq!(report["tier"], "auto_merge", "{report:#}");
}

#[test]
fn new_tests_count_normally_once_the_base_version_of_the_suite_passes() {
    let mut f = fixture();
    let base_run = f.run_suite(&f.base.clone(), None);
    let head = f.change(
        &[
            (
                "lib/src.rs",
                Some("pub const LIMIT: u32 = 100;\npub fn add() {}\npub fn sub() {}\n"),
            ),
            ("lib/tests/subs.sh", Some("grep -q 'fn sub' lib/src.rs\n")),
        ],
        1,
    );
    let head_run = f.run_suite(&head, None);
    for author in ["human:alice", "agent:fixbot"] {
        // The new test file makes the suite self-validated: without more, no automation.
        let report = f.evaluate(&head, author, &[base_run.clone(), head_run.clone()]);
        assert_eq!(
            report["facts"]["self_validated_suites"],
            json!(["lib-unit"])
        );
        assert_eq!(
            planned(&report)["self_validated_by"],
            json!(["lib/tests/subs.sh"])
        );
        assert_eq!(
            report["evidence"]["regressions"],
            json!([]),
            "nothing weakened"
        );
        assert_eq!(report["automated"], false, "{author}: {report:#}");
    }
    // The runner runs the base's suite files against the head: they pass, so the old tests
    // still hold and the new ones were added to them. The change counts normally.
    let base_version = f.run_suite(&head, Some(&f.base.clone()));
    for author in ["human:alice", "agent:fixbot"] {
        let report = f.evaluate(
            &head,
            author,
            &[base_run.clone(), head_run.clone(), base_version.clone()],
        );
        assert_eq!(
            report["facts"]["base_suite_passed"],
            json!(["lib-unit"]),
            "{report:#}"
        );
        assert_eq!(report["facts"]["coverage_percent"], 100);
        assert_eq!(report["tier"], "auto_merge", "{author}: {report:#}");
    }
}

/// `--suite-source` names a commit of the repository and applies to test results only.
#[test]
fn suite_source_is_checked() {
    let f = fixture();
    let junit = f.dir.path().join("j.xml");
    std::fs::write(
        &junit,
        r#"<testsuites><testsuite name="s"><testcase name="t"/></testsuite></testsuites>"#,
    )
    .unwrap();
    let sarif = f.dir.path().join("s.sarif");
    std::fs::write(
        &sarif,
        r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": []}]}"#,
    )
    .unwrap();
    let base = f.base.as_str();
    let common = |report: &Path, flag: &'static str, source: &'static str| {
        countersign(&[
            "attest",
            "--repo",
            f.repo.to_str().unwrap(),
            "--repository",
            REPOSITORY,
            "--key",
            f.key.to_str().unwrap(),
            "--commit",
            base,
            "--suite",
            "lib-unit",
            flag,
            report.to_str().unwrap(),
            "--suite-source",
            source,
        ])
    };
    let unknown = common(&junit, "--junit", "no-such-rev");
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("--suite-source no-such-rev"),
        "{}",
        stderr(&unknown)
    );
    let scan = common(&sarif, "--sarif", "HEAD");
    assert!(!scan.status.success());
}

// ---- The fleet runs the base version of a self-validated suite ----
//
// The same library and tests, now with a `[suites.lib-unit]` the fleet runs (the harness,
// from the repository) and a real server and `runner serve`: for a suite the head
// self-validates the server queues a second work item, the base's suite files against the
// head's code, and the runner restores them, runs them and attests them as the base's.

/// The repository with a runnable `lib-unit`; returns the fixture, the runner's key and
/// base commit id.
fn fleet_fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let keys = dir.path().join("keys");
    let (key, public) = keygen("ci", &keys);
    let config = format!(
        "[repository]\nname = \"{REPOSITORY}\"\n\n[[runners]]\nname = \"ci\"\npublic_key = \"{public}\"\nsuites = [\"lib-unit\"]\n\n\
         [suites.lib-unit]\ncommand = [\"sh\", \"scripts/harness.sh\", \"lib/tests\", \"out/junit.xml\", \".\"]\n\
         reports = {{ junit = [\"out/junit.xml\"] }}\n"
    );
    let mut writer = RepoWriter::init(&repo).unwrap();
    let base = writer
        .commit(
            [
                ("countersign.toml", Some(config.as_str())),
                ("catalog-info.yaml", Some(CATALOG)),
                ("scripts/harness.sh", Some(HARNESS)),
                ("out/.keep", Some("")),
                (
                    "lib/src.rs",
                    Some("pub const LIMIT: u32 = 100;\npub fn add() {}\n"),
                ),
                ("lib/tests/adds.sh", Some(ADDS)),
                ("lib/tests/limit.sh", Some(LIMIT)),
            ],
            "base",
            ALICE,
            TIME,
        )
        .unwrap();
    Fixture {
        key,
        dir,
        repo,
        writer,
        base,
    }
}

impl Fixture {
    /// A change on its own branch off the base (the base stays `main`'s tip).
    fn branch(&mut self, name: &str, files: &[(&str, Option<&str>)]) -> CommitId {
        let base = self.base.clone();
        self.writer
            .commit_on(
                &format!("refs/heads/{name}"),
                &base,
                files.iter().copied(),
                "change",
                ALICE,
                TIME + 1,
            )
            .unwrap()
    }

    /// `runner serve` as runner `ci` against `server`, killed when dropped.
    fn runner(&self, server: &TestServer, token: &str) -> RunnerChild {
        let child = Command::new(env!("CARGO_BIN_EXE_countersign"))
            .args(["runner", "serve", "--server", &server.url, "--key"])
            .arg(&self.key)
            .args(["--repository", REPOSITORY, "--repo"])
            .arg(&self.repo)
            .arg("--clone")
            .arg(self.dir.path().join("ci-clone"))
            .args(["--poll", "1s"])
            .env("COUNTERSIGN_TOKEN", token)
            .env_remove("COUNTERSIGN_SERVER")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("the binary runs");
        RunnerChild(child)
    }
}

/// A runner process, SIGKILLed when dropped so a failing test leaves none behind.
struct RunnerChild(std::process::Child);

impl Drop for RunnerChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn propose(server: &TestServer, token: &str, head: &CommitId) -> String {
    let out = client(
        &server.url,
        Some(token),
        &[
            "propose",
            "--repo",
            "shop",
            "--base",
            "main",
            "--head",
            head.as_str(),
            "--title",
            "change",
            "--format",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    json(&out)["id"].as_str().unwrap().to_owned()
}

/// Polls the proposal's runs until `count` of them are finished, for at most 90 s.
fn finished_runs(server: &TestServer, token: &str, proposal: &str, count: usize) -> Vec<Value> {
    let start = std::time::Instant::now();
    loop {
        let runs = server.get(&format!("/v1/runs?proposal={proposal}"), token)["runs"]
            .as_array()
            .unwrap()
            .clone();
        if runs.len() == count && runs.iter().all(|r| r["state"] == "finished") {
            return runs;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(90),
            "runs never finished: {runs:#?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The head's own run and the base-version run of `lib-unit`, in that order.
fn two_runs(runs: &[Value], base: &CommitId) -> (Value, Value) {
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert!(runs.iter().all(|r| r["suite"] == "lib-unit"), "{runs:#?}");
    let own = runs.iter().find(|r| r["suite_source"].is_null()).unwrap();
    let base_version = runs
        .iter()
        .find(|r| r["suite_source"] == base.as_str())
        .unwrap_or_else(|| panic!("no base-version run: {runs:#?}"));
    (own.clone(), base_version.clone())
}

#[test]
fn the_fleet_runs_the_base_version_and_an_agent_deleting_the_failing_test_is_refused() {
    let mut f = fleet_fixture();
    let head = f.branch(
        "drop-limit",
        &[("lib/src.rs", Some(BROKEN)), ("lib/tests/limit.sh", None)],
    );
    let mut server = TestServer::start(&[("shop", f.repo.as_path())]);
    let fixbot = server.token("agent:fixbot", countersign_server::Role::Proposer);
    let auditor = server.token("human:erin", countersign_server::Role::Auditor);
    let ci = server.token("runner:ci", countersign_server::Role::Runner);
    let id = propose(&server, &fixbot, &head);
    let _runner = f.runner(&server, &ci);
    let runs = finished_runs(&server, &auditor, &id, 2);
    let (own, base_version) = two_runs(&runs, &f.base);
    // The head's suite, without the failing test, honestly passes; the base's, with it
    // restored, fails against the head's code.
    assert_eq!(own["outcome"], "passed", "{runs:#?}");
    assert_eq!(base_version["outcome"], "failed", "{runs:#?}");
    assert_eq!(base_version["suite_files"], json!(["lib/tests/limit.sh"]));
    assert_eq!(base_version["commit"], head.as_str());

    let proposal = server.get(&format!("/v1/proposals/{id}"), &auditor);
    assert_ne!(proposal["tier"], "auto_merge", "{proposal:#}");
    assert_ne!(proposal["tier"], "notify_and_proceed", "{proposal:#}");
    let explanation = server.get(&format!("/v1/proposals/{id}/explanation"), &auditor);
    let text = explanation.to_string();
    assert_eq!(
        explanation["explanation"]["facts"]["self_validated_suites"],
        json!(["lib-unit"]),
        "{explanation:#}"
    );
    assert_eq!(
        explanation["explanation"]["facts"]["base_suite_passed"],
        json!([])
    );
    assert!(
        text.contains("lib/tests/limit.sh"),
        "the deletion is named: {text}"
    );
    assert!(text.contains("self-validated-suite"), "{text}");
    server.stop();
}

#[test]
fn the_fleet_runs_the_base_version_and_added_tests_count_once_it_passes() {
    let mut f = fleet_fixture();
    let head = f.branch(
        "add-sub",
        &[
            (
                "lib/src.rs",
                Some("pub const LIMIT: u32 = 100;\npub fn add() {}\npub fn sub() {}\n"),
            ),
            ("lib/tests/subs.sh", Some("grep -q 'fn sub' lib/src.rs\n")),
        ],
    );
    let mut server = TestServer::start(&[("shop", f.repo.as_path())]);
    let fixbot = server.token("agent:fixbot", countersign_server::Role::Proposer);
    let auditor = server.token("human:erin", countersign_server::Role::Auditor);
    let ci = server.token("runner:ci", countersign_server::Role::Runner);
    let id = propose(&server, &fixbot, &head);
    let _runner = f.runner(&server, &ci);
    let runs = finished_runs(&server, &auditor, &id, 2);
    let (own, base_version) = two_runs(&runs, &f.base);
    assert_eq!(own["outcome"], "passed", "{runs:#?}");
    // The new test file is removed for the base's version (the base lacks it): the old
    // tests still pass against the head.
    assert_eq!(base_version["outcome"], "passed", "{runs:#?}");
    assert_eq!(base_version["suite_files"], json!(["lib/tests/subs.sh"]));
    assert_eq!(
        base_version["tests"]["passed"], 2,
        "adds and limit (the command's exit is the run's outcome, not a test)"
    );

    let explanation = server.get(&format!("/v1/proposals/{id}/explanation"), &auditor);
    assert_eq!(
        explanation["explanation"]["facts"]["base_suite_passed"],
        json!(["lib-unit"]),
        "{explanation:#}"
    );
    let proposal = server.get(&format!("/v1/proposals/{id}"), &auditor);
    assert_eq!(proposal["tier"], "auto_merge", "{proposal:#}");
    server.stop();
}
