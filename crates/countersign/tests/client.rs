//! The CLI client against a real server: `propose`, `status`, `approve`, `reject`,
//! `evidence push` and `bundle fetch` run as the real binary, with the server in-process on
//! 127.0.0.1:0 (SQLite) over a repository written with `RepoWriter`. What is checked is what
//! a user sees: the text, the JSON, the `error: <title>: <detail>` line and the exit code.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::*;

use std::path::{Path, PathBuf};

use countersign_repo::RepoWriter;
use countersign_server::Role;
use serde_json::Value;

const REPOSITORY: &str = "github.com/acme/shop";

/// `docs` is low criticality (automated); `payments` is high, so it waits for one of its
/// owners, and has a suite the trusted runner `ci` may attest, so it first awaits evidence.
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
  name: docs
  annotations:
    countersign.dev/criticality: low
    countersign.dev/paths: /docs/**
spec:
  type: documentation
  lifecycle: production
  owner: team-shop
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: payments
  annotations:
    countersign.dev/criticality: high
    countersign.dev/paths: /payments/**
    countersign.dev/suites: payments-unit
spec:
  type: service
  lifecycle: production
  owner: team-shop
"#;

const JUNIT_PASS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="payments" tests="1">
  <testcase classname="payments" name="captures" time="0.01"/>
</testsuite></testsuites>
"#;

/// A governed repository served as `shop`, with a trusted runner key and two changes.
struct Fixture {
    dir: tempfile::TempDir,
    repo: PathBuf,
    ci_key: PathBuf,
    /// The full id of the `payments` change's head.
    payments_head: String,
    /// The full id of the base.
    base: String,
    server: TestServer,
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let keys = dir.path().join("keys");
    let out = ok(countersign(&[
        "runner",
        "keygen",
        "--name",
        "ci",
        "--out",
        s(&keys),
    ]));
    let public = out
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .unwrap()
        .trim()
        .to_owned();
    let config = format!(
        "[repository]\nname = \"{REPOSITORY}\"\n\n[[runners]]\nname = \"ci\"\npublic_key = \"{public}\"\nsuites = [\"payments-unit\"]\n"
    );
    let mut writer = RepoWriter::init(&repo).unwrap();
    let base = writer
        .commit(
            [
                ("countersign.toml", Some(config.as_str())),
                ("catalog-info.yaml", Some(CATALOG)),
                ("docs/index.md", Some("# Shop\n")),
                ("payments/capture.rs", Some("pub fn capture() {}\n")),
            ],
            "base",
            ALICE,
            TIME,
        )
        .unwrap();
    writer
        .commit_on(
            "refs/heads/docs",
            &base,
            [("docs/index.md", Some("# The shop\n"))],
            "docs: title",
            "docsbot <docsbot@agents.example.com>",
            TIME + 60,
        )
        .unwrap();
    let payments = writer
        .commit_on(
            "refs/heads/payments",
            &base,
            [(
                "payments/capture.rs",
                Some("pub fn capture() { retry(); }\n"),
            )],
            "payments: retry",
            "fixbot <fixbot@agents.example.com>",
            TIME + 120,
        )
        .unwrap();
    // A second take of the payments change, for head moves.
    writer
        .commit_on(
            "refs/heads/payments-v2",
            &base,
            [(
                "payments/capture.rs",
                Some("pub fn capture() { retry_once(); }\n"),
            )],
            "payments: retry once",
            "fixbot <fixbot@agents.example.com>",
            TIME + 180,
        )
        .unwrap();
    let server = TestServer::start(&[("shop", &repo)]);
    Fixture {
        ci_key: keys.join("ci.key"),
        payments_head: payments.as_str().to_owned(),
        base: base.as_str().to_owned(),
        repo,
        dir,
        server,
    }
}

impl Fixture {
    fn run(&self, token: &str, args: &[&str]) -> std::process::Output {
        client(&self.server.url, Some(token), args)
    }

    /// Opens a proposal for `head` as `token` and returns the JSON the client printed.
    fn propose(&self, token: &str, head: &str) -> Value {
        json(&self.run(
            token,
            &[
                "propose", "--repo", "shop", "--base", "main", "--head", head, "--title", head,
                "--format", "json",
            ],
        ))
    }

    /// Signs a passing `payments-unit` result for `commit` and returns the envelope file.
    fn attest(&self, commit: &str, name: &str) -> PathBuf {
        let junit = self.dir.path().join(format!("{name}.xml"));
        std::fs::write(&junit, JUNIT_PASS).unwrap();
        let out = self.dir.path().join(format!("{name}.dsse.json"));
        ok(countersign(&[
            "attest",
            "--repo",
            s(&self.repo),
            "--repository",
            REPOSITORY,
            "--key",
            s(&self.ci_key),
            "--commit",
            commit,
            "--suite",
            "payments-unit",
            "--junit",
            s(&junit),
            "--out",
            s(&out),
        ]));
        out
    }
}

/// Exit 1 and exactly one `error: <title>: <detail>` line on stderr.
fn problem(output: &std::process::Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
    let err = stderr(output);
    let line = err.trim_end();
    assert!(
        line.starts_with("error: ") && !line.contains('\n'),
        "not one error line: {err:?}"
    );
    line.to_owned()
}

#[test]
fn propose_status_and_two_verdicts_through_the_client() {
    let f = fixture();
    let fixbot = f.server.token("agent:fixbot", Role::Proposer);
    let alice = f.server.token("human:alice", Role::Approver);

    // An automated change is authorized at once; the text says so.
    let out = ok(f.run(
        &fixbot,
        &[
            "propose",
            "--repo",
            "shop",
            "--base",
            "main",
            "--head",
            "docs",
            "--title",
            "docs: title",
        ],
    ));
    assert!(out.contains(": authorized (auto_merge tier)"), "{out}");
    assert!(out.contains("author     agent:fixbot"), "{out}");

    // The same idempotency key replays the first answer: one proposal, not two.
    let key_args = |key: &str| {
        vec![
            "propose".to_owned(),
            "--repo".into(),
            "shop".into(),
            "--base".into(),
            "main".into(),
            "--head".into(),
            "payments".into(),
            "--title".into(),
            "payments: retry".into(),
            "--idempotency-key".into(),
            key.into(),
            "--format".into(),
            "json".into(),
        ]
    };
    let args = key_args("retry-1");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = json(&f.run(&fixbot, &args));
    let again = json(&f.run(&fixbot, &args));
    assert_eq!(first["id"], again["id"]);
    let id = first["id"].as_str().unwrap();
    assert_eq!(first["head"], f.payments_head.as_str());
    assert_eq!(first["base"], f.base.as_str());
    assert_eq!(first["tier"], "single_approver");
    assert_eq!(first["state"], "awaiting_evidence");

    // Evidence for the head moves it on to people.
    let envelope = f.attest(&f.payments_head, "unit");
    let runner = f.server.token("runner:ci", Role::Runner);
    let out = ok(f.run(&runner, &["evidence", "push", id, s(&envelope)]));
    assert!(
        out.starts_with(&format!("ACCEPTED {}: ", envelope.display())),
        "{out}"
    );
    assert!(
        out.contains(": awaiting_approval (single_approver tier)"),
        "{out}"
    );

    let status = ok(f.run(&fixbot, &["status", id]));
    assert!(status.contains("approvals  0 of 1 on head"), "{status}");
    assert!(
        status.contains("eligible   human:alice, human:bob"),
        "{status}"
    );
    assert!(status.contains("plan       payments-unit"), "{status}");

    // Approving a head that is not the current one is a conflict, shown as the server said.
    let stale = problem(&f.run(&alice, &["approve", id, "--head", &f.base]));
    assert_eq!(
        stale,
        format!(
            "error: Conflict: head {} is not the proposal's current head {}",
            f.base, f.payments_head
        )
    );

    // A head is given in full or by at least 12 hex digits (as `status` prints it); a
    // shorter or foreign prefix is refused before anything is recorded.
    let short = f.run(&alice, &["approve", id, "--head", &f.payments_head[..7]]);
    assert_eq!(short.status.code(), Some(2), "{}", stderr(&short));
    assert!(
        stderr(&short).contains("at least 12 hex digits"),
        "{}",
        stderr(&short)
    );
    let foreign = problem(&f.run(&alice, &["approve", id, "--head", &f.base[..12]]));
    assert!(
        foreign.starts_with("error: Conflict: ") && foreign.contains(&f.payments_head),
        "{foreign}"
    );
    let approved = json(&f.run(
        &alice,
        &[
            "approve",
            id,
            "--head",
            &f.payments_head[..12],
            "--comment",
            "checked the retry bound",
            "--format",
            "json",
        ],
    ));
    assert_eq!(approved["state"], "authorized");
    assert_eq!(approved["approvals_counted"], 1);
    // The verdict is bound to the full id the prefix named.
    assert_eq!(
        approved["approvals"][0]["head"],
        f.payments_head.as_str(),
        "{approved}"
    );
    let text = ok(f.run(&alice, &["status", id]));
    assert!(
        text.contains("approve    human:alice on ") && text.contains(": checked the retry bound"),
        "{text}"
    );
}

#[test]
fn a_rejection_needs_a_comment_and_blocks() {
    let f = fixture();
    let fixbot = f.server.token("agent:fixbot", Role::Proposer);
    let bob = f.server.token("human:bob", Role::Approver);
    let proposal = f.propose(&fixbot, "payments");
    let id = proposal["id"].as_str().unwrap();
    let runner = f.server.token("runner:ci", Role::Runner);
    let envelope = f.attest(&f.payments_head, "unit");
    ok(f.run(&runner, &["evidence", "push", id, s(&envelope)]));

    // Without --comment it is a usage error: exit 2, nothing sent.
    let out = f.run(&bob, &["reject", id, "--head", &f.payments_head]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--comment"), "{}", stderr(&out));
    let out = f.run(
        &bob,
        &["reject", id, "--head", &f.payments_head, "--comment", " "],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    let out = ok(f.run(
        &bob,
        &[
            "reject",
            id,
            "--head",
            &f.payments_head,
            "--comment",
            "retries double-charge",
        ],
    ));
    assert!(out.contains(": rejected (single_approver tier)"), "{out}");
    assert!(out.contains("reject     human:bob on "), "{out}");
    // Blocked: a later approval of the same head is refused.
    let alice = f.server.token("human:alice", Role::Approver);
    let refused = problem(&f.run(&alice, &["approve", id, "--head", &f.payments_head]));
    assert!(refused.starts_with("error: Conflict: "), "{refused}");
}

#[test]
fn server_refusals_print_title_and_detail_and_exit_1() {
    let f = fixture();
    let fixbot = f.server.token("agent:fixbot", Role::Proposer);
    let proposal = f.propose(&fixbot, "payments");
    let id = proposal["id"].as_str().unwrap();

    // An agent can never approve, whatever its token.
    let line = problem(&f.run(&fixbot, &["approve", id, "--head", &f.payments_head]));
    assert_eq!(
        line,
        "error: Forbidden: a proposer token may not approve or reject"
    );
    assert_eq!(
        problem(&f.run(&fixbot, &["status", "p-0000000000000000"])),
        "error: Not Found: no proposal p-0000000000000000"
    );
    assert_eq!(
        problem(&f.run("cst_not-a-real-token", &["status", id])),
        "error: Unauthorized: unknown token"
    );
    let unknown = problem(&f.run(
        &fixbot,
        &[
            "propose",
            "--repo",
            "elsewhere",
            "--base",
            "main",
            "--head",
            "docs",
            "--title",
            "t",
        ],
    ));
    assert!(
        unknown.starts_with("error: Unprocessable Entity: repo: \"elsewhere\" is not configured"),
        "{unknown}"
    );
    // An id cannot escape its path segment.
    let climbing = problem(&f.run(&fixbot, &["status", "../authorizations"]));
    assert!(climbing.starts_with("error: Not Found: "), "{climbing}");
}

#[test]
fn usage_problems_exit_2_and_an_unreachable_server_exits_1() {
    let f = fixture();
    let fixbot = f.server.token("agent:fixbot", Role::Proposer);

    let out = client(&f.server.url, None, &["status", "p-1"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim_end(),
        "error: COUNTERSIGN_TOKEN is not set; set it to an API token (`countersign token create`)"
    );
    // The token is never a flag.
    let out = client(&f.server.url, None, &["status", "p-1", "--token", &fixbot]);
    assert_eq!(out.status.code(), Some(2));

    let out = f.run(&fixbot, &["status", "p-1", "--server", "ftp://example.com"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("expected an http:// or https:// URL"),
        "{}",
        stderr(&out)
    );

    let not_json = f.dir.path().join("notes.txt");
    std::fs::write(&not_json, "hello").unwrap();
    let out = f.run(&fixbot, &["evidence", "push", "p-1", s(&not_json)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is not JSON; expected a DSSE envelope"),
        "{}",
        stderr(&out)
    );

    // Nothing listens on port 1 of loopback.
    let out = client("http://127.0.0.1:1", Some(&fixbot), &["status", "p-1"]);
    let line = problem(&out);
    assert!(
        line.starts_with("error: server unreachable: no answer from http://127.0.0.1:1: "),
        "{line}"
    );
}

#[test]
fn evidence_push_reports_each_envelope_and_exits_1_on_a_refusal() {
    let f = fixture();
    let fixbot = f.server.token("agent:fixbot", Role::Proposer);
    let runner = f.server.token("runner:ci", Role::Runner);
    let proposal = f.propose(&fixbot, "payments");
    let id = proposal["id"].as_str().unwrap();
    // One envelope about the head, one about an unrelated commit (the `docs` change).
    let good = f.attest(&f.payments_head, "good");
    let wrong = f.attest("docs", "wrong");

    let out = f.run(&runner, &["evidence", "push", id, s(&good), s(&wrong)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(&format!("ACCEPTED {}: ", good.display())),
        "{text}"
    );
    assert!(
        lines[1].starts_with(&format!("REFUSED  {}: ", wrong.display())),
        "{text}"
    );
    // The proposal after the last accepted envelope follows.
    assert!(
        text.contains(": awaiting_approval (single_approver tier)"),
        "{text}"
    );

    let out = f.run(
        &runner,
        &["evidence", "push", id, s(&wrong), "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["results"][0]["accepted"], false);
    assert_eq!(
        report["results"][0]["problem"]["title"],
        "Unprocessable Entity"
    );

    // A proposer may not submit evidence: that stops the push with the server's word.
    let line = problem(&f.run(&fixbot, &["evidence", "push", id, s(&good)]));
    assert!(line.starts_with("error: Forbidden: "), "{line}");
}

#[test]
fn a_fetched_bundle_verifies_offline() {
    let f = fixture();
    let fixbot = f.server.token("agent:fixbot", Role::Proposer);
    let auditor = f.server.token("human:auditor", Role::Auditor);
    let proposal = f.propose(&fixbot, "docs");
    let id = proposal["id"].as_str().unwrap();
    assert_eq!(proposal["state"], "authorized");

    let file = f.dir.path().join("docs.bundle.json");
    let out = f.run(&auditor, &["bundle", "fetch", id, "-o", s(&file)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("wrote the bundle of proposal {id}")));
    let verified = ok(countersign(&[
        "bundle",
        "verify",
        s(&file),
        "--log-key",
        s(&f.server.verifier_key),
    ]));
    assert!(
        verified.contains("re-derived: same tier, reasons and versions"),
        "{verified}"
    );

    // Without -o it goes to stdout, the same bundle.
    let out = ok(f.run(&auditor, &["bundle", "fetch", id]));
    let printed: Value = serde_json::from_str(&out).unwrap();
    let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(printed["subject"], id);
    assert_eq!(printed["entries"], written["entries"]);
    assert_eq!(printed["blobs"], written["blobs"]);
    assert_eq!(
        problem(&f.run(&auditor, &["bundle", "fetch", "p-0000000000000000"])),
        "error: Not Found: no proposal p-0000000000000000"
    );
}

#[test]
fn the_author_moves_the_head_and_closes_the_proposal() {
    let f = fixture();
    let fixbot = f.server.token("agent:fixbot", Role::Proposer);
    let other = f.server.token("agent:docsbot", Role::Proposer);
    let proposal = f.propose(&fixbot, "payments");
    let id = proposal["id"].as_str().unwrap();

    // Only the author (or an admin) may move it.
    let line = problem(&f.run(&other, &["update", id, "--head", "payments-v2"]));
    assert!(line.starts_with("error: Forbidden: "), "{line}");

    let moved = json(&f.run(
        &fixbot,
        &["update", id, "--head", "payments-v2", "--format", "json"],
    ));
    assert_eq!(moved["id"], id);
    assert_ne!(moved["head"], f.payments_head.as_str());
    // The old head's evidence would not count: the new head waits for its own.
    assert_eq!(moved["state"], "awaiting_evidence");
    let new_head = moved["head"].as_str().unwrap().to_owned();

    let out = ok(f.run(
        &fixbot,
        &["close", id, "--reason", "split into two changes"],
    ));
    assert!(out.contains(": closed ("), "{out}");
    assert!(out.contains("closed     split into two changes"), "{out}");
    // Closed is final.
    let line = problem(&f.run(&fixbot, &["update", id, "--head", "payments"]));
    assert!(line.starts_with("error: Conflict: "), "{line}");
    let alice = f.server.token("human:alice", Role::Approver);
    let line = problem(&f.run(&alice, &["approve", id, "--head", &new_head]));
    assert!(line.starts_with("error: Conflict: "), "{line}");
}

#[test]
fn the_demo_serves_what_it_replayed_until_interrupted() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args([
            "demo",
            "--dir",
            s(&dir.path().join("shop")),
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("COUNTERSIGN_SERVER")
        .env_remove("COUNTERSIGN_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A failing assertion must not leave the demo serving.
    let mut demo = KillOnDrop(Some(child));
    let stdout = demo.0.as_mut().unwrap().stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let (mut server, mut token, mut id) = (None, None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        let line = line.trim();
        if let Some(url) = line.strip_prefix("export COUNTERSIGN_SERVER=") {
            server = Some(url.to_owned());
        } else if let Some(t) = line.strip_prefix("export COUNTERSIGN_TOKEN=") {
            token = Some(t.to_owned());
        } else if let Some(p) = line.strip_prefix("countersign status ") {
            id = Some(p.to_owned());
        } else if line.starts_with("The server's log: ") {
            break;
        }
    }
    let (server, token, id) = (server.unwrap(), token.unwrap(), id.unwrap());
    // The printed auditor token reads the replayed proposal from the running demo.
    let out = ok(client(&server, Some(&token), &["status", &id]));
    assert!(
        out.starts_with(&format!("proposal {id}: authorized (")),
        "{out}"
    );
    assert!(out.contains("approve    human:"), "{out}");
    // An auditor may read, not approve.
    let line = problem(&client(
        &server,
        Some(&token),
        &["approve", &id, "--head", &"0".repeat(40)],
    ));
    assert!(line.starts_with("error: Forbidden: "), "{line}");

    // Ctrl-C stops it cleanly.
    let child = demo.0.take().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("countersign demo serving on {server}")),
        "{}",
        stderr(&output)
    );
}

/// SIGTERM (a service manager, `timeout`) stops the serving demo as Ctrl-C does: its
/// runners stop first, then the server, and it exits 0.
#[test]
fn sigterm_stops_the_serving_demo_and_its_runners() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args([
            "demo",
            "--dir",
            s(&dir.path().join("shop")),
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("COUNTERSIGN_SERVER")
        .env_remove("COUNTERSIGN_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut demo = KillOnDrop(Some(child));
    let stdout = demo.0.as_mut().unwrap().stdout.take().unwrap();
    let mut server = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(url) = line.trim().strip_prefix("export COUNTERSIGN_SERVER=") {
            server = Some(url.to_owned());
        } else if line.starts_with("The server's log: ") {
            break;
        }
    }
    let server = server.unwrap();
    let address = server.strip_prefix("http://").unwrap().to_owned();
    // Serving (its runners leasing from it).
    assert!(std::net::TcpStream::connect(&address).is_ok());

    let child = demo.0.take().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("with its two runners"),
        "{}",
        stderr(&output)
    );
    // Stopped: nothing listens any more.
    assert!(std::net::TcpStream::connect(&address).is_err());
}

struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
