//! `countersign runner serve`, black-box: the real binary as runners against a real server
//! on 127.0.0.1:0 and a real git repository. A proposal's plan is run (a passing suite, a
//! failing one whose failing evidence the decision counts, one that times out), SIGTERM
//! ends a runner with exit 0, and a runner killed with `kill -9` mid-run loses its item to
//! the other runner once its (short) lease expires.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::*;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use countersign_evidence::SigningKey;
use countersign_repo::{CommitId, RepoWriter};
use countersign_server::Role;
use serde_json::Value;

const REPOSITORY: &str = "github.com/acme/fleet";

const CATALOG: &str = "apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team-lab
spec:
  type: team
  children: []
  members: [alice]
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: lib
  annotations:
    countersign.dev/criticality: low
    countersign.dev/paths: /lib/**
    countersign.dev/suites: pass, fail, slow
spec:
  type: library
  lifecycle: production
  owner: team-lab
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: svc
  annotations:
    countersign.dev/criticality: low
    countersign.dev/paths: /svc/**
    countersign.dev/suites: hang
spec:
  type: library
  lifecycle: production
  owner: team-lab
";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed(&[seed; 32])
}

struct Lab {
    dir: tempfile::TempDir,
    repo: PathBuf,
    lib: String,
    svc: String,
}

fn lab() -> Lab {
    lab_with("")
}

/// [`lab`] with `extra` appended to its `countersign.toml` (a schedule).
fn lab_with(extra: &str) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let junit_pass = r#"<testsuite name="s"><testcase classname="lib" name="adds"/></testsuite>"#;
    let junit_fail = r#"<testsuite name="s"><testcase classname="lib" name="subtracts"><failure message="2 != 3"/></testcase></testsuite>"#;
    let config = format!(
        r#"[repository]
name = "{REPOSITORY}"

[[runners]]
name = "ci"
public_key = "{}"
suites = ["pass", "fail", "slow", "hang"]

[[runners]]
name = "ci2"
public_key = "{}"
suites = ["hang"]

[suites.pass]
command = ["sh", "scripts/pass.sh"]
reports = {{ junit = ["out/junit.xml"] }}

[suites.fail]
command = ["sh", "scripts/fail.sh"]
reports = {{ junit = ["out/junit.xml"] }}

[suites.slow]
command = ["sh", "-c", "sleep 30 & sleep 30"]
timeout = "1s"

[suites.hang]
command = ["sh", "../scripts/hang.sh"]
workdir = "svc"
reports = {{ junit = ["svc/junit.xml"] }}
{extra}"#,
        key(1).public_key().to_hex(),
        key(2).public_key().to_hex(),
    );
    let mut w = RepoWriter::init(&repo).unwrap();
    w.commit(
        [
            ("countersign.toml", Some(config.as_str())),
            ("catalog-info.yaml", Some(CATALOG)),
            ("lib/src.rs", Some("pub fn add() {}\n")),
            ("out/.keep", Some("")),
            (
                "scripts/pass.sh",
                Some(format!("cat > out/junit.xml <<'EOF'\n{junit_pass}\nEOF\n").as_str()),
            ),
            (
                "scripts/fail.sh",
                Some(format!("cat > out/junit.xml <<'EOF'\n{junit_fail}\nEOF\nexit 3\n").as_str()),
            ),
            (
                "scripts/hang.sh",
                Some(format!("sleep 4\ncat > junit.xml <<'EOF'\n{junit_pass}\nEOF\n").as_str()),
            ),
            ("svc/main.rs", Some("fn main() {}\n")),
        ],
        "base",
        ALICE,
        TIME,
    )
    .unwrap();
    let base = w.head().unwrap();
    let mut change = |branch: &str, parent: &CommitId, path: &str, text: &str| {
        w.commit_on(
            branch,
            parent,
            [(path, Some(text))],
            "change",
            ALICE,
            TIME + 1,
        )
        .unwrap()
        .as_str()
        .to_owned()
    };
    let lib = change(
        "refs/heads/lib",
        &base,
        "lib/src.rs",
        "pub fn add() { 1 }\n",
    );
    let svc = change("refs/heads/svc", &base, "svc/main.rs", "fn main() { 1 }\n");
    for (seed, name) in [(1, "ci"), (2, "ci2")] {
        std::fs::write(
            dir.path().join(format!("{name}.key")),
            key(seed).to_pkcs8_pem(),
        )
        .unwrap();
    }
    Lab {
        dir,
        repo,
        lib,
        svc,
    }
}

/// A runner child, SIGKILLed when dropped so a failing test leaves none behind.
struct Runner(Child);

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn runner(server: &TestServer, lab: &Lab, name: &str, token: &str) -> Runner {
    let dir = lab.dir.path();
    let child = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["runner", "serve", "--server", &server.url, "--key"])
        .arg(dir.join(format!("{name}.key")))
        .args(["--repository", REPOSITORY, "--repo"])
        .arg(&lab.repo)
        .arg("--clone")
        .arg(dir.join(format!("{name}-clone")))
        .args(["--poll", "1s"])
        .env("COUNTERSIGN_TOKEN", token)
        .env_remove("COUNTERSIGN_SERVER")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary runs");
    Runner(child)
}

fn propose(server: &TestServer, token: &str, base: &str, head: &str) -> String {
    let out = client(
        &server.url,
        Some(token),
        &[
            "propose", "--repo", "lab", "--base", base, "--head", head, "--title", "change",
            "--format", "json",
        ],
    );
    json(&out)["id"].as_str().unwrap().to_owned()
}

/// Polls `GET /v1/runs?proposal=` until `done` holds, for at most `limit`.
fn wait_for(
    server: &TestServer,
    token: &str,
    proposal: &str,
    limit: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let runs = server.get(&format!("/v1/runs?proposal={proposal}"), token)["runs"]
            .as_array()
            .unwrap()
            .clone();
        if done(&runs) {
            return runs;
        }
        assert!(start.elapsed() < limit, "runs never got there: {runs:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn by_suite<'a>(runs: &'a [Value], suite: &str) -> &'a Value {
    runs.iter().find(|r| r["suite"] == suite).unwrap()
}

#[test]
fn a_runner_runs_the_plan_and_signs_what_it_saw() {
    let lab = lab();
    let mut server = TestServer::start(&[("lab", lab.repo.as_path())]);
    let fixbot = server.token("agent:fixbot", Role::Proposer);
    let auditor = server.token("human:erin", Role::Auditor);
    let ci = server.token("runner:ci", Role::Runner);
    let id = propose(&server, &fixbot, "main", &lab.lib);
    let mut runner = runner(&server, &lab, "ci", &ci);
    let runs = wait_for(&server, &auditor, &id, Duration::from_secs(90), |runs| {
        runs.len() == 3 && runs.iter().all(|r| r["state"] == "finished")
    });
    assert_eq!(by_suite(&runs, "pass")["outcome"], "passed", "{runs:#?}");
    assert_eq!(
        by_suite(&runs, "pass")["tests"],
        serde_json::json!({ "passed": 1, "failed": 0, "skipped": 0 }),
        "the JUnit test case, not the command's exit"
    );
    let fail = by_suite(&runs, "fail");
    assert_eq!(fail["outcome"], "failed", "{runs:#?}");
    assert_eq!(
        fail["tests"],
        serde_json::json!({ "passed": 0, "failed": 1, "skipped": 0 }),
        "the failed test case; the command's exit 3 is the run's outcome, not a test"
    );
    assert_eq!(by_suite(&runs, "slow")["outcome"], "timed_out", "{runs:#?}");
    // Each run's evidence was pushed and accepted for the head: the plan shows it, the
    // failing suite's included, and the decision weighs it as failed.
    let plan = server.get(&format!("/v1/proposals/{id}/plan"), &auditor);
    for suite in plan["suites"].as_array().unwrap() {
        let name = suite["suite"].as_str().unwrap();
        let run = by_suite(&runs, name);
        let digests: Vec<&Value> = suite["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["digest"])
            .collect();
        assert_eq!(
            run["envelopes"]
                .as_array()
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            digests,
            "{name}: {plan:#}"
        );
        assert_eq!(suite["status"], "satisfied", "{name}: {plan:#}");
        assert_eq!(suite["runnable"], true);
    }
    let proposal = server.get(&format!("/v1/proposals/{id}"), &auditor);
    let text = proposal.to_string();
    assert!(
        text.contains("\"fail\"") && proposal["state"] != "authorized",
        "a failed suite never authorizes: {proposal:#}"
    );
    // SIGTERM with nothing in hand: exit 0.
    let status = sigterm(&mut runner.0);
    assert!(status.success(), "{status:?}");
    server.stop();
}

#[test]
fn a_runner_killed_mid_run_loses_its_item_to_another() {
    let lab = lab();
    let mut server = TestServer::start_with(&[("lab", lab.repo.as_path())], |state| {
        state.with_lease(Duration::from_secs(2))
    });
    let fixbot = server.token("agent:fixbot", Role::Proposer);
    let auditor = server.token("human:erin", Role::Auditor);
    let ci = server.token("runner:ci", Role::Runner);
    let ci2 = server.token("runner:ci2", Role::Runner);
    let id = propose(&server, &fixbot, "main", &lab.svc);
    let mut first = runner(&server, &lab, "ci", &ci);
    wait_for(&server, &auditor, &id, Duration::from_secs(60), |runs| {
        runs.len() == 1 && runs[0]["state"] == "running"
    });
    // kill -9: no return, no finish; the lease lapses by itself.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let _second = runner(&server, &lab, "ci2", &ci2);
    let runs = wait_for(&server, &auditor, &id, Duration::from_secs(90), |runs| {
        runs.len() == 1 && runs[0]["state"] == "finished"
    });
    let run = &runs[0];
    assert_eq!(run["outcome"], "passed", "{run:#}");
    assert_eq!(run["runner"], "runner:ci2");
    assert_eq!(run["attempt"], 2);
    assert_eq!(run["envelopes"].as_array().unwrap().len(), 1);
    server.stop();
}

/// SIGTERM with a run in hand: the command is stopped, the lease given back (the run is
/// queued again, its attempt logged as returned) and the runner exits 0.
#[test]
fn sigterm_gives_the_lease_back_and_exits_0() {
    let lab = lab();
    let mut server = TestServer::start(&[("lab", lab.repo.as_path())]);
    let fixbot = server.token("agent:fixbot", Role::Proposer);
    let auditor = server.token("human:erin", Role::Auditor);
    let ci = server.token("runner:ci", Role::Runner);
    let id = propose(&server, &fixbot, "main", &lab.svc);
    let mut runner = runner(&server, &lab, "ci", &ci);
    wait_for(&server, &auditor, &id, Duration::from_secs(60), |runs| {
        runs.len() == 1 && runs[0]["state"] == "running"
    });
    let status = sigterm(&mut runner.0);
    assert!(status.success(), "{status:?}");
    let runs = wait_for(&server, &auditor, &id, Duration::from_secs(10), |runs| {
        runs[0]["state"] == "queued"
    });
    assert_eq!(runs[0]["attempt"], 1, "{runs:#?}");
    assert_eq!(runs[0]["outcome"], Value::Null);
    server.stop();
}

/// The loop's first half, black-box: a schedule on main fires at once (its latest due time),
/// the real runner runs the failing suite on main's tip and pushes its evidence to the run,
/// the failed test opens a finding that `countersign findings list|show` shows, and the
/// finding's bundle verifies offline with `countersign bundle verify`.
#[test]
fn a_scheduled_failure_opens_a_finding() {
    let lab = lab_with(
        "\n[schedules.minutely]\ncron = \"* * * * *\"\nbranch = \"main\"\nsuites = [\"fail\"]\n",
    );
    let mut server = TestServer::start_with(&[("lab", lab.repo.as_path())], |state| {
        state.with_schedule_tick(Some(Duration::from_millis(200)))
    });
    let auditor = server.token("human:erin", Role::Auditor);
    let ci = server.token("runner:ci", Role::Runner);
    let _runner = runner(&server, &lab, "ci", &ci);
    let start = Instant::now();
    let findings = loop {
        let findings = server.get("/v1/findings", &auditor)["findings"]
            .as_array()
            .unwrap()
            .clone();
        if !findings.is_empty() {
            break findings;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no finding: {:#}",
            server.get("/v1/runs?branch=main", &auditor)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let subtracts = findings
        .iter()
        .find(|f| f["test"].as_str().unwrap().contains("subtracts"))
        .unwrap_or_else(|| panic!("{findings:#?}"));
    let id = subtracts["id"].as_str().unwrap();
    assert_eq!(subtracts["suite"], "fail");
    assert_eq!(subtracts["component"], "component:default/lib");
    assert_eq!(subtracts["severity"], "low");
    assert_eq!(subtracts["branch"], "main");
    assert_eq!(subtracts["evidence"]["cause"], "schedule:minutely");

    let listed = ok(client(&server.url, Some(&auditor), &["findings", "list"]));
    assert!(
        listed.contains(id) && listed.contains("subtracts"),
        "{listed}"
    );
    let shown = ok(client(
        &server.url,
        Some(&auditor),
        &["findings", "show", id],
    ));
    assert!(shown.contains("reproduce:  git checkout"), "{shown}");
    assert!(shown.contains("sh scripts/fail.sh"), "{shown}");
    let as_json = json(&client(
        &server.url,
        Some(&auditor),
        &["findings", "show", id, "--format", "json"],
    ));
    assert_eq!(as_json["id"], id);
    let missing = client(&server.url, Some(&auditor), &["findings", "show", "F-999"]);
    assert_eq!(missing.status.code(), Some(1));

    // An agent proposes a fix of it: `--fixes` links it, and the plan reports on it.
    let fixbot = server.token("agent:fixbot", Role::Proposer);
    let unknown = client(
        &server.url,
        Some(&fixbot),
        &[
            "propose", "--repo", "lab", "--base", "main", "--head", &lab.lib, "--title", "fix",
            "--fixes", "F-999",
        ],
    );
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("there is no finding F-999"),
        "{}",
        stderr(&unknown)
    );
    let fix = json(&client(
        &server.url,
        Some(&fixbot),
        &[
            "propose", "--repo", "lab", "--base", "main", "--head", &lab.lib, "--title", "fix",
            "--fixes", id, "--format", "json",
        ],
    ));
    let fix_id = fix["id"].as_str().unwrap();
    let plan = server.get(&format!("/v1/proposals/{fix_id}/plan"), &auditor);
    assert_eq!(plan["fixes"][0]["finding"], id, "{plan:#}");
    assert_eq!(
        server.get(&format!("/v1/findings/{id}"), &auditor)["fixes"][0],
        fix_id
    );

    let bundle = server.get(&format!("/v1/findings/{id}/bundle"), &auditor);
    let file = lab.dir.path().join("finding.bundle.json");
    std::fs::write(&file, serde_json::to_vec(&bundle).unwrap()).unwrap();
    let verified = ok(countersign(&[
        "bundle",
        "verify",
        file.to_str().unwrap(),
        "--log-key",
        server.verifier_key.to_str().unwrap(),
    ]));
    assert!(
        verified.contains(&format!("finding {id}: open")),
        "{verified}"
    );
    server.stop();
}
