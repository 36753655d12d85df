//! The OpenAPI document is the server: schemathesis (PyPI) generates requests from the
//! document `countersign serve` publishes, over the demo's data, with a token of every role,
//! and fails on any 5xx, any response whose body does not match the document, and any
//! status or content type the document does not list for the operation.
//!
//! Bounded: 50 examples per operation and phase (examples, coverage, fuzzing, stateful), one
//! worker, about 20 s a role on the CI machine. The seed is random, so each run explores
//! other cases; a failure prints the seed and a `curl` line that reproduces it.
//!
//! Needs `st` (schemathesis 4) on the PATH, as `.ci/run` installs it: without it the test
//! is skipped with the reason printed, except under CI=true, where it fails.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;

/// The checks that make the document a contract; the others judge the API's design
/// (whether it accepts what the schema allows, say) rather than the document's truth.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance,response_headers_conformance";

#[test]
fn the_server_answers_as_its_openapi_document_says() {
    let Some(st) = schemathesis() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "schemathesis (`st`) is not installed; .ci/run installs it"
        );
        eprintln!("skipped: schemathesis (`st`) is not installed (pip install schemathesis)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("shop");
    ok(countersign(&[
        "demo",
        "--dir",
        repo.to_str().unwrap(),
        "--no-serve",
    ]));
    let roles = [
        ("agent:fixbot", "proposer"),
        ("human:dave", "approver"),
        ("runner:ci", "runner"),
        ("system:auditor", "auditor"),
        ("human:root", "admin"),
    ];
    let tokens: Vec<(&str, String)> = roles
        .iter()
        .map(|(principal, role)| {
            let token = token_in(&repo, principal, role);
            (*role, token)
        })
        .collect();
    let (mut server, url) = serve(&repo);
    let mut failures = Vec::new();
    for (role, token) in &tokens {
        let output = Command::new(&st)
            .args([
                "run",
                &format!("{url}/openapi.json"),
                "--header",
                &format!("Authorization: Bearer {token}"),
                "--checks",
                CHECKS,
                "--max-examples",
                "50",
                "--workers",
                "1",
                "--request-timeout",
                "30",
                "--generation-database",
                "none",
                "--no-color",
            ])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        let summary = text.lines().last().unwrap_or_default().to_owned();
        eprintln!("{role}: {summary}");
        if !output.status.success() {
            failures.push(format!(
                "with the {role} token:\n{text}\n{}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The schemathesis command, if installed.
fn schemathesis() -> Option<String> {
    ["st", "schemathesis"]
        .into_iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(str::to_owned)
}

/// `token create` in `dir`, on the database the demo left there.
fn token_in(dir: &Path, principal: &str, role: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["token", "create", "--principal", principal, "--role", role])
        .current_dir(dir)
        .env_remove("COUNTERSIGN_DATABASE")
        .output()
        .unwrap();
    ok(output).trim().to_owned()
}

/// `countersign serve` of the demo repository on a free port, and its URL. Its log lines are
/// read on a thread of their own for as long as it runs (a closed pipe would fail its next
/// write).
fn serve(dir: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["serve", "--listen", "127.0.0.1:0", "--repo", "shop=."])
        .current_dir(dir)
        .env_remove("COUNTERSIGN_DATABASE")
        .env_remove("COUNTERSIGN_LOG_KEY")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if let Some(url) = line.strip_prefix("countersign serving on ") {
            let url = url.trim().to_owned();
            std::thread::spawn(move || lines.for_each(drop));
            return (child, url);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("serve did not start: {seen}");
}
