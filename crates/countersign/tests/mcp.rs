//! `countersign mcp` driven by a real MCP client from another ecosystem: the official Python
//! `mcp` package (PyPI, pinned in .ci/run) runs `tests/mcp/client.py`, which spawns the real
//! binary over stdio against the real server (in-process on 127.0.0.1:0, SQLite) and a
//! repository written with `RepoWriter`. Its checks: the exact tool list (no approve),
//! propose, status, explain, what-if, plan, evidence refused with the agent's token and
//! relayed with a runner token, a bounded wait that sees the decision change, both resources,
//! schema violations as tool errors, and the approval route refusing the agent's token (403).
//!
//! Without the `mcp` package the test is skipped with the reason printed, except under
//! CI=true, where it fails.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::catalog::team_catalog;
use common::*;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use countersign_repo::RepoWriter;
use countersign_server::Role;
use serde_json::Value;

const REPOSITORY: &str = "github.com/acme/shop";

/// `payments` is high criticality (one owner approves) and has a suite the trusted runner
/// `ci` may attest, so a proposal first awaits its evidence.
const COMPONENTS: &str = r#"---
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

fn catalog() -> String {
    team_catalog("team-shop", &["alice", "bob"], COMPONENTS)
}

const JUNIT_PASS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="payments" tests="1">
  <testcase classname="payments" name="captures" time="0.01"/>
</testsuite></testsuites>
"#;

/// How long the Python client may take in all before it is killed (its own bound is 240 s).
const CLIENT_DEADLINE: Duration = Duration::from_secs(300);

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Whether `python3` can import the `mcp` package; the reason when not.
fn python_mcp() -> Result<(), String> {
    match Command::new("python3")
        .args(["-c", "import mcp.client.stdio"])
        .output()
    {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "python3 cannot import the `mcp` package (pip install mcp): {}",
            stderr(&output).lines().last().unwrap_or_default()
        )),
        Err(error) => Err(format!("python3 does not run: {error}")),
    }
}

#[test]
fn a_python_mcp_client_proposes_explains_relays_evidence_and_cannot_approve() {
    if let Err(reason) = python_mcp() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{reason}; .ci/run installs it"
        );
        eprintln!("skipped: {reason}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let (ci_key, public) = keygen("ci", &dir.path().join("keys"));
    let config = format!(
        "[repository]\nname = \"{REPOSITORY}\"\n\n[[runners]]\nname = \"ci\"\npublic_key = \"{public}\"\nsuites = [\"payments-unit\"]\n"
    );
    let mut writer = RepoWriter::init(&repo).unwrap();
    let base = writer
        .commit(
            [
                ("countersign.toml", Some(config.as_str())),
                ("catalog-info.yaml", Some(catalog().as_str())),
                ("payments/capture.rs", Some("pub fn capture() {}\n")),
            ],
            "base",
            ALICE,
            TIME,
        )
        .unwrap();
    let head = writer
        .commit_on(
            "refs/heads/payments",
            &base,
            [(
                "payments/capture.rs",
                Some("pub fn capture() { retry(); }\n"),
            )],
            "payments: retry",
            "fixbot <fixbot@agents.example.com>",
            TIME + 60,
        )
        .unwrap();
    // What the trusted runner signed about the head: the envelope the agent relays.
    let junit = dir.path().join("unit.xml");
    std::fs::write(&junit, JUNIT_PASS).unwrap();
    let envelope = dir.path().join("unit.dsse.json");
    ok(countersign(&[
        "attest",
        "--repo",
        s(&repo),
        "--repository",
        REPOSITORY,
        "--key",
        s(&ci_key),
        "--commit",
        head.as_str(),
        "--suite",
        "payments-unit",
        "--junit",
        s(&junit),
        "--out",
        s(&envelope),
    ]));

    let mut server = TestServer::start(&[("shop", &repo)]);
    let agent = server.token("agent:fixbot", Role::Proposer);
    // The relay token: the same agent, with the runner role, which reaches only evidence and
    // plans (docs/agents.md).
    let relay = server.token("agent:fixbot", Role::Runner);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .args([
            env!("CARGO_BIN_EXE_countersign"),
            server.url.as_str(),
            "main",
            "payments",
            s(&envelope),
        ])
        .env("AGENT_TOKEN", &agent)
        .env("RELAY_TOKEN", &relay)
        .env_remove("COUNTERSIGN_TOKEN")
        .env_remove("COUNTERSIGN_EVIDENCE_TOKEN")
        .env_remove("COUNTERSIGN_SERVER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > CLIENT_DEADLINE {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "client.py failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        stdout(&output),
        stderr(&output)
    );
    // What the client did, for whoever reads the test's output.
    eprint!("{}", stderr(&output));
    let summary: Value = serde_json::from_str(
        stdout(&output)
            .lines()
            .last()
            .expect("client.py prints its summary last"),
    )
    .unwrap();

    // What the server holds agrees with what the client saw: the evidence counted, nobody
    // approved, and the approval attempt was refused as an agent's.
    let id = summary["proposal"].as_str().unwrap();
    let human = server.token("human:alice", Role::Approver);
    let proposal = server.get(&format!("/v1/proposals/{id}"), &human);
    assert_eq!(proposal["state"], "awaiting_approval", "{proposal:#}");
    assert_eq!(proposal["approvals_counted"], 0);
    assert_eq!(proposal["approvals"], serde_json::json!([]));
    let detail = summary["refusal"]["detail"].as_str().unwrap();
    assert!(detail.contains("may not approve"), "{detail}");
    server.stop();
}

#[test]
fn mcp_without_a_token_says_so_and_exits_2() {
    let output = countersign(&["mcp", "--server", "http://127.0.0.1:9"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        output.stdout.is_empty(),
        "stdout is the protocol: {}",
        stdout(&output)
    );
    assert!(
        stderr(&output).contains("COUNTERSIGN_TOKEN is not set"),
        "{}",
        stderr(&output)
    );
    let output = client(
        "not a url",
        Some("cst_0000000000000000000000000000000000000000000000000000000000000000"),
        &["mcp"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("not a URL"), "{}", stderr(&output));
}
