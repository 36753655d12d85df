//! Evidence on the server: runners submit DSSE envelopes for a proposal's head, the decision
//! is re-derived with them, refusals are logged and answered 422, and only runner (and admin)
//! tokens may submit. Every scenario on SQLite and PostgreSQL, against a repository of this
//! file whose base trusts one runner.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{ALICE, Db, NOW, Server, log_signer, start_with};
use countersign_audit::bundle::verify_bundle;
use countersign_audit::{Event, EventKind};
use countersign_evidence::attest;
use countersign_evidence::dsse::SigningKey;
use countersign_evidence::statement::{Statement, TEST_RESULT_V01};
use countersign_policy::Principal;
use countersign_repo::{CommitId, RepoWriter};
use countersign_server::{EVIDENCE_BODY_LIMIT, MAX_REFUSED_PER_HEAD, Role, create_token};
use reqwest::{Method as M, StatusCode};
use serde_json::{Value, json};

const REPOSITORY: &str = "github.com/acme/lab";

/// `lib` is planned one suite the runner may attest; `tool` two, of which the runner may
/// attest only `tool-unit` (so `tool-e2e` is unattestable); `notes` none.
const CATALOG: &str = r#"apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team-lab
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
  memberOf: [team-lab]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: bob
spec:
  memberOf: [team-lab]
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
  owner: team-lab
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: tool
  annotations:
    countersign.dev/criticality: low
    countersign.dev/paths: /tool/**
    countersign.dev/suites: tool-unit, tool-e2e
spec:
  type: library
  lifecycle: production
  owner: team-lab
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: notes
  annotations:
    countersign.dev/criticality: low
    countersign.dev/paths: /notes/**
spec:
  type: website
  lifecycle: production
  owner: team-lab
"#;

fn runner_key() -> SigningKey {
    SigningKey::from_seed(&[42; 32])
}

/// The lab repository: a base trusting `runner_key()` as `ci`, and one commit per component.
struct Lab {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    base: String,
    lib: String,
    tool: String,
    /// A second commit on `tool`'s branch: where the head moves.
    tool2: String,
    notes: String,
}

fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[repository]\nname = \"{REPOSITORY}\"\n\n[[runners]]\nname = \"ci\"\npublic_key = \"{}\"\nsuites = [\"lib-unit\", \"tool-unit\"]\n",
        runner_key().public_key().to_hex()
    );
    let mut w = RepoWriter::init(dir.path()).unwrap();
    w.commit(
        [
            ("countersign.toml", Some(config.as_str())),
            ("catalog-info.yaml", Some(CATALOG)),
            ("lib/src.rs", Some("pub fn add() {}\n")),
            ("tool/main.rs", Some("fn main() {}\n")),
            ("notes/index.md", Some("# Notes\n")),
        ],
        "base",
        ALICE,
        NOW as i64,
    )
    .unwrap();
    let base = w.head().unwrap();
    // Each change on its own branch off the base, so each diff is only its own.
    let mut change = |branch: &str, parent: &CommitId, path: &str, text: &str, n: i64| {
        w.commit_on(
            branch,
            parent,
            [(path, Some(text))],
            "change",
            ALICE,
            NOW as i64 + n,
        )
        .unwrap()
    };
    let lib = change(
        "refs/heads/lib",
        &base,
        "lib/src.rs",
        "pub fn add() { /* faster */ }\n",
        1,
    );
    let tool = change(
        "refs/heads/tool",
        &base,
        "tool/main.rs",
        "fn main() { run() }\n",
        2,
    );
    let tool2 = change(
        "refs/heads/tool",
        &tool,
        "tool/main.rs",
        "fn main() { run(); }\n",
        3,
    );
    let notes = change(
        "refs/heads/notes",
        &base,
        "notes/index.md",
        "# Lab notes\n",
        4,
    );
    let hex = |c: CommitId| c.as_str().to_owned();
    Lab {
        path: dir.path().to_owned(),
        _dir: dir,
        base: hex(base),
        lib: hex(lib),
        tool: hex(tool),
        tool2: hex(tool2),
        notes: hex(notes),
    }
}

/// The shared server with the lab repository configured as `lab`, and a runner token
/// besides the harness's personas.
async fn start_lab(db: &Db) -> (Server, Lab) {
    let lab = lab();
    let path = lab.path.clone();
    let mut server = start_with(db, move |mut state| {
        Arc::make_mut(&mut state.repos).insert("lab".to_owned(), path);
        state.with_log_signer(log_signer())
    })
    .await;
    let runner: Principal = "runner:ci".parse().unwrap();
    let (text, _) = create_token(
        &server.store,
        &runner,
        Role::Runner,
        NOW as i64 + 3600,
        [0xE5; 32],
    )
    .await
    .unwrap();
    server.tokens.insert("runner", text);
    (server, lab)
}

async fn propose(server: &Server, lab: &Lab, head: &str) -> Value {
    let body = json!({ "repo": "lab", "base": lab.base, "head": head, "title": "change" });
    let (status, proposal) = server
        .send(M::POST, "/v1/proposals", Some("fixbot"), Some(body))
        .await;
    assert_eq!(status, 201, "{proposal}");
    proposal
}

fn test_result(result: &str) -> Value {
    let (passed, failed) = match result {
        "FAILED" => (json!(["lib::adds"]), json!(["lib::subtracts"])),
        // PASSED with no test listed: what a report of skipped tests only is signed as.
        "EMPTY" => return json!({ "result": "PASSED", "configuration": [] }),
        _ => (json!(["lib::adds", "lib::subtracts"]), json!([])),
    };
    json!({ "result": result, "configuration": [], "passedTests": passed, "failedTests": failed })
}

/// An envelope as `countersign attest` writes it: a test-result for `suite` at `commit`.
fn envelope(key: &SigningKey, commit: &str, suite: &str, result: &str) -> Vec<u8> {
    let statement = Statement::for_commit(
        REPOSITORY,
        commit,
        suite,
        TEST_RESULT_V01,
        test_result(result),
    );
    attest(&statement, key).to_json()
}

/// Posts raw bytes as the evidence of `id`; the problem (or body) as JSON.
async fn submit(server: &Server, token: &str, id: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let response = server
        .client
        .post(format!("{}/v1/proposals/{id}/evidence", server.base))
        .bearer_auth(&server.tokens[token])
        .header("content-type", "application/json")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let problem = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("application/problem+json"));
    let text = response.text().await.unwrap();
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if !status.is_success() {
        assert!(problem, "{status} is not problem+json: {value}");
        assert_eq!(value["status"], status.as_u16(), "{value}");
    }
    (status, value)
}

async fn plan(server: &Server, token: &str, id: &str) -> Value {
    let (status, plan) = server
        .send(
            M::GET,
            &format!("/v1/proposals/{id}/plan"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{plan}");
    plan
}

/// The events about `id`, in log order.
async fn events(server: &Server, id: &str) -> Vec<Event> {
    server
        .store
        .entries_about(id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event().unwrap())
        .collect()
}

fn kinds(events: &[Event]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind).collect()
}

async fn passing_evidence_authorizes_an_automated_tier(db: &Db) {
    let (server, lab) = start_lab(db).await;
    let proposal = propose(&server, &lab, &lab.lib).await;
    let id = proposal["id"].as_str().unwrap();
    // Low criticality: auto_merge, but not before the planned suite has evidence.
    assert_eq!(
        (&proposal["state"], &proposal["tier"]),
        (&json!("awaiting_evidence"), &json!("auto_merge")),
        "{proposal}"
    );
    assert_eq!(proposal["decision"]["missing_suites"], json!(["lib-unit"]));
    assert_eq!(
        kinds(&events(&server, id).await),
        [EventKind::Proposed, EventKind::Decided],
        "no authorization while evidence is missing"
    );
    let before = plan(&server, "runner", id).await;
    assert_eq!(before["head"], lab.lib.as_str());
    assert_eq!(before["missing"], json!(["lib-unit"]), "{before}");
    assert_eq!(before["satisfied"], json!([]));
    // Not authorized yet, so the hook would refuse the commit.
    let (_, auth) = server
        .send(
            M::GET,
            &format!(
                "/v1/authorizations?repo=lab&old={}&commit={}",
                lab.base, lab.lib
            ),
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(auth["authorized"], false, "{auth}");

    let bytes = envelope(&runner_key(), &lab.lib, "lib-unit", "PASSED");
    let (status, accepted) = submit(&server, "runner", id, bytes.clone()).await;
    assert_eq!(status, 201, "{accepted}");
    assert_eq!(accepted["accepted"], true);
    assert_eq!(accepted["binds_to"], "head");
    assert_eq!(accepted["runner"], "ci");
    assert_eq!(accepted["suite"], "lib-unit");
    assert_eq!(accepted["recorded"], true);
    let digest = accepted["digest"].as_str().unwrap();
    assert_eq!(digest, countersign_audit::bundle::digest(&bytes));
    let after = &accepted["proposal"];
    assert_eq!(
        (&after["state"], &after["tier"]),
        (&json!("authorized"), &json!("auto_merge"))
    );
    // The re-derived decision weighed the evidence and names the envelope.
    assert_eq!(after["decision"]["evidence"], json!([digest]), "{after}");
    assert_eq!(after["decision"]["missing_suites"], json!([]));
    assert_eq!(
        after["decision"]["facts"]["evidence_considered"], true,
        "{after}"
    );
    assert_eq!(after["decision"]["facts"]["coverage_percent"], 100);
    assert_eq!(server.store.blob(digest).await.unwrap().unwrap(), bytes);
    let log = events(&server, id).await;
    assert_eq!(
        kinds(&log),
        [
            EventKind::Proposed,
            EventKind::Decided,
            EventKind::EvidenceAccepted,
            EventKind::Decided,
            EventKind::Authorized
        ]
    );
    assert_eq!(log[2].actor, "runner:ci");
    assert_eq!(log[2].data["envelope"], digest);
    assert_eq!(log[2].data["head"], lab.lib.as_str());
    assert!(
        log[4].data["verification_summary"].is_string(),
        "{:?}",
        log[4]
    );
    // The bundle re-derives the evidence-weighed decision offline, envelope included.
    let response = server
        .client
        .get(format!("{}/v1/proposals/{id}/bundle", server.base))
        .bearer_auth(&server.tokens["auditor"])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let verifier = log_signer().verifier();
    let bundle = verify_bundle(
        &response.bytes().await.unwrap(),
        std::slice::from_ref(&verifier),
    )
    .unwrap();
    assert_eq!(bundle.blobs.get(digest), Some(&bytes));
    let differences = countersign_decide::bundle::rederive(&bundle, &verifier).unwrap();
    assert!(differences.is_empty(), "{differences:?}");

    let after = plan(&server, "auditor", id).await;
    assert_eq!(after["satisfied"], json!(["lib-unit"]), "{after}");
    assert_eq!(after["missing"], json!([]));
    assert_eq!(after["suites"][0]["evidence"][0]["digest"], digest);
    let (_, auth) = server
        .send(
            M::GET,
            &format!(
                "/v1/authorizations?repo=lab&old={}&commit={}",
                lab.base, lab.lib
            ),
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(auth["authorized"], true, "{auth}");

    // The same envelope again records nothing new.
    let (status, again) = submit(&server, "runner", id, bytes).await;
    assert_eq!(
        (status, &again["recorded"]),
        (StatusCode::OK, &json!(false)),
        "{again}"
    );
    assert_eq!(events(&server, id).await.len(), 5);
    // Issue 22 point 3: evidence arriving after the authorization and before the merge is
    // still weighed (not a 409), and a failing run lapses the authorization.
    let other = envelope(&runner_key(), &lab.lib, "lib-unit", "FAILED");
    let (status, late) = submit(&server, "runner", id, other).await;
    assert_eq!(status, 201, "{late}");
    assert_eq!(late["proposal"]["state"], "awaiting_approval", "{late}");
    let (_, auth) = server
        .send(
            M::GET,
            &format!(
                "/v1/authorizations?repo=lab&old={}&commit={}",
                lab.base, lab.lib
            ),
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(auth["authorized"], false, "{auth}");
    server.stop().await;
}

async fn failing_or_partial_evidence_goes_to_people(db: &Db) {
    let (server, lab) = start_lab(db).await;
    // A failed run is evidence too: the suite is covered, and the policy routes the change
    // to a human.
    let proposal = propose(&server, &lab, &lab.lib).await;
    let id = proposal["id"].as_str().unwrap();
    let bytes = envelope(&runner_key(), &lab.lib, "lib-unit", "FAILED");
    let (status, accepted) = submit(&server, "runner", id, bytes).await;
    assert_eq!(status, 201, "{accepted}");
    let after = &accepted["proposal"];
    assert_eq!(
        (&after["state"], &after["tier"]),
        (&json!("awaiting_approval"), &json!("single_approver")),
        "{after}"
    );
    let (status, approved) = server.verdict("bob", id, &lab.lib, "approve").await;
    assert_eq!(
        (status, &approved["state"]),
        (StatusCode::OK, &json!("authorized")),
        "{approved}"
    );

    // `tool-e2e` has no runner allowed to attest it: not waited for, but it counts against
    // coverage once evidence is weighed. An admin may submit evidence too.
    let proposal = propose(&server, &lab, &lab.tool).await;
    let id = proposal["id"].as_str().unwrap();
    assert_eq!(proposal["state"], "awaiting_evidence", "{proposal}");
    let before = plan(&server, "runner", id).await;
    assert_eq!(before["missing"], json!(["tool-unit"]), "{before}");
    assert_eq!(before["unattestable"], json!(["tool-e2e"]));
    let bytes = envelope(&runner_key(), &lab.tool, "tool-unit", "PASSED");
    let (status, accepted) = submit(&server, "admin", id, bytes).await;
    assert_eq!(status, 201, "{accepted}");
    let after = &accepted["proposal"];
    assert_eq!(
        (&after["state"], &after["tier"]),
        (&json!("awaiting_approval"), &json!("single_approver")),
        "{after}"
    );
    assert_eq!(after["decision"]["evidence"].as_array().unwrap().len(), 1);
    let plan_after = plan(&server, "runner", id).await;
    assert_eq!(
        plan_after["satisfied"],
        json!(["tool-unit"]),
        "{plan_after}"
    );
    assert_eq!(plan_after["missing"], json!([]));

    // Nothing planned: nothing to wait for, authorized at once as before.
    let proposal = propose(&server, &lab, &lab.notes).await;
    assert_eq!(proposal["state"], "authorized", "{proposal}");
    server.stop().await;
}

async fn base_evidence_does_not_satisfy_the_plan(db: &Db) {
    let (server, lab) = start_lab(db).await;
    let proposal = propose(&server, &lab, &lab.lib).await;
    let id = proposal["id"].as_str().unwrap();
    // About the base: accepted (regressions compare against it), but it covers nothing.
    let bytes = envelope(&runner_key(), &lab.base, "lib-unit", "PASSED");
    let (status, accepted) = submit(&server, "runner", id, bytes).await;
    assert_eq!(status, 201, "{accepted}");
    assert_eq!(accepted["binds_to"], "base");
    assert_eq!(accepted["proposal"]["state"], "awaiting_evidence");
    let plan = plan(&server, "runner", id).await;
    assert_eq!(plan["missing"], json!(["lib-unit"]), "{plan}");
    assert_eq!(plan["suites"][0]["evidence"][0]["binds_to"], "base");
    server.stop().await;
}

/// Issue 23 point 7: a PASSED test-result that lists no test that ran (an independent
/// signer's, or a report of skipped tests) is accepted but satisfies nothing: the suite is
/// still missing and the proposal still awaits evidence.
async fn a_run_without_tests_does_not_satisfy_the_plan(db: &Db) {
    let (server, lab) = start_lab(db).await;
    let proposal = propose(&server, &lab, &lab.lib).await;
    let id = proposal["id"].as_str().unwrap();
    let bytes = envelope(&runner_key(), &lab.lib, "lib-unit", "EMPTY");
    let (status, accepted) = submit(&server, "runner", id, bytes).await;
    assert_eq!(status, 201, "{accepted}");
    assert_eq!(
        accepted["proposal"]["state"], "awaiting_evidence",
        "{accepted}"
    );
    let plan = plan(&server, "runner", id).await;
    assert_eq!(plan["missing"], json!(["lib-unit"]), "{plan}");
    let (_, auth) = server
        .send(
            M::GET,
            &format!(
                "/v1/authorizations?repo=lab&old={}&commit={}",
                lab.base, lab.lib
            ),
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(auth["authorized"], false, "{auth}");
    server.stop().await;
}

async fn refused_evidence_is_logged_and_explained(db: &Db) {
    let (server, lab) = start_lab(db).await;
    let proposal = propose(&server, &lab, &lab.lib).await;
    let id = proposal["id"].as_str().unwrap();
    let refused = |bytes: Vec<u8>| {
        let server = &server;
        async move {
            let (status, problem) = submit(server, "runner", id, bytes).await;
            assert_eq!(status, 422, "{problem}");
            assert!(
                problem["type"]
                    .as_str()
                    .unwrap()
                    .ends_with("/invalid-request"),
                "{problem}"
            );
            problem["detail"].as_str().unwrap().to_owned()
        }
    };
    // About another commit than the head (and not the base).
    let detail = refused(envelope(&runner_key(), &lab.notes, "lib-unit", "PASSED")).await;
    assert!(detail.contains("other_commit"), "{detail}");
    assert!(
        detail.contains(&lab.notes) && detail.contains(&lab.lib),
        "{detail}"
    );
    // Signed by a key the base does not trust.
    let stranger = SigningKey::from_seed(&[7; 32]);
    let detail = refused(envelope(&stranger, &lab.lib, "lib-unit", "PASSED")).await;
    assert!(detail.contains("unknown_key"), "{detail}");
    // Signed by the trusted key, then tampered with.
    let statement = Statement::for_commit(
        REPOSITORY,
        &lab.lib,
        "lib-unit",
        TEST_RESULT_V01,
        test_result("PASSED"),
    );
    let mut tampered = attest(&statement, &runner_key());
    tampered.signatures[0].sig[0] ^= 1;
    let detail = refused(tampered.to_json()).await;
    assert!(detail.contains("bad_signature"), "{detail}");
    // A suite the runner may not attest.
    let detail = refused(envelope(&runner_key(), &lab.lib, "tool-e2e", "PASSED")).await;
    assert!(detail.contains("suite_not_allowed"), "{detail}");
    // Not an envelope at all, and more than the server-wide limit: this route takes more.
    let detail = refused(vec![b'x'; 100 * 1024]).await;
    assert!(detail.contains("malformed"), "{detail}");

    // Nothing counted: still waiting, and every refusal is in the log with its reason.
    let (_, shown) = server
        .send(
            M::GET,
            &format!("/v1/proposals/{id}"),
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(shown["state"], "awaiting_evidence", "{shown}");
    let log = events(&server, id).await;
    let refusals: Vec<&str> = log
        .iter()
        .filter(|e| e.kind == EventKind::EvidenceRefused)
        .map(|e| {
            assert_eq!(e.actor, "runner:ci");
            assert_eq!(e.data["head"], lab.lib.as_str());
            e.data["reasons"][0]["reason"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        refusals,
        [
            "other_commit",
            "unknown_key",
            "bad_signature",
            "suite_not_allowed",
            "malformed"
        ]
    );
    assert!(!log.iter().any(|e| e.kind == EventKind::EvidenceAccepted));

    // The harness's `shop` repository names no repository at its base: no evidence can be
    // about it, and the refusal says why.
    let (status, payments) = server.propose("fixbot", &server.repo.payments).await;
    assert_eq!(status, 201, "{payments}");
    let id = payments["id"].as_str().unwrap();
    let (status, problem) = submit(
        &server,
        "runner",
        id,
        envelope(&runner_key(), &server.repo.payments, "unit", "PASSED"),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("unverifiable") && detail.contains("[repository] name"),
        "{detail}"
    );
    assert_eq!(
        events(&server, id).await.last().unwrap().kind,
        EventKind::EvidenceRefused
    );
    server.stop().await;
}

/// Refusals cannot grow the log without bound: the same envelope refused again for the same
/// head is answered alike and not logged again, and past `MAX_REFUSED_PER_HEAD` logged
/// refusals for a head a new one is `429`, not logged; accepted evidence still counts.
async fn refusals_are_bounded_per_head(db: &Db) {
    let (server, lab) = start_lab(db).await;
    let proposal = propose(&server, &lab, &lab.lib).await;
    let id = proposal["id"].as_str().unwrap();
    let refusals = async || {
        events(&server, id)
            .await
            .iter()
            .filter(|e| e.kind == EventKind::EvidenceRefused)
            .count()
    };
    // Malformed bodies, each different (so each is a new refusal).
    let junk = |n: usize| format!("not an envelope {n}").into_bytes();
    let (status, first) = submit(&server, "runner", id, junk(0)).await;
    assert_eq!(status, 422, "{first}");
    for _ in 0..3 {
        let (status, again) = submit(&server, "runner", id, junk(0)).await;
        assert_eq!(status, 422, "{again}");
        assert_eq!(again["detail"], first["detail"]);
    }
    assert_eq!(refusals().await, 1, "a repeated refusal is logged once");
    for n in 1..MAX_REFUSED_PER_HEAD - 4 {
        let (status, problem) = submit(&server, "runner", id, junk(n)).await;
        assert_eq!(status, 422, "{n}: {problem}");
    }
    // The last four places go to four of twelve concurrent refusals, exactly.
    let mut racing = tokio::task::JoinSet::new();
    for n in MAX_REFUSED_PER_HEAD - 4..MAX_REFUSED_PER_HEAD + 8 {
        let request = server
            .client
            .post(format!("{}/v1/proposals/{id}/evidence", server.base))
            .bearer_auth(&server.tokens["runner"])
            .header("content-type", "application/json")
            .body(junk(n));
        racing.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    let mut statuses = racing.join_all().await;
    statuses.sort_unstable();
    assert_eq!(statuses, [[422; 4].as_slice(), &[429; 8]].concat());
    assert_eq!(refusals().await, MAX_REFUSED_PER_HEAD);
    let (status, problem) = submit(&server, "runner", id, junk(MAX_REFUSED_PER_HEAD + 100)).await;
    assert_eq!(status, 429, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("malformed") && detail.contains("not logged"),
        "{detail}"
    );
    assert_eq!(refusals().await, MAX_REFUSED_PER_HEAD, "not logged");
    // Evidence that verifies is still weighed and recorded.
    let (status, accepted) = submit(
        &server,
        "runner",
        id,
        envelope(&runner_key(), &lab.lib, "lib-unit", "PASSED"),
    )
    .await;
    assert_eq!(status, 201, "{accepted}");
    server.stop().await;
}

async fn concurrent_evidence_all_counts(db: &Db) {
    let (server, lab) = start_lab(db).await;
    let proposal = propose(&server, &lab, &lab.tool).await;
    let id = proposal["id"].as_str().unwrap();
    // Two runners' envelopes at once (head and base evidence): each decision is re-derived
    // with what was accepted before it, so the last one weighs both.
    let head = envelope(&runner_key(), &lab.tool, "tool-unit", "PASSED");
    let base = envelope(&runner_key(), &lab.base, "tool-unit", "PASSED");
    let (a, b) = tokio::join!(
        submit(&server, "runner", id, head),
        submit(&server, "admin", id, base)
    );
    assert_eq!(
        (a.0, b.0),
        (StatusCode::CREATED, StatusCode::CREATED),
        "{a:?} {b:?}"
    );
    let (_, shown) = server
        .send(
            M::GET,
            &format!("/v1/proposals/{id}"),
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(
        shown["decision"]["evidence"].as_array().unwrap().len(),
        2,
        "{shown}"
    );
    assert_eq!(shown["state"], "awaiting_approval", "{shown}");
    let log = kinds(&events(&server, id).await);
    assert_eq!(
        log.iter()
            .filter(|k| **k == EventKind::EvidenceAccepted)
            .count(),
        2
    );
    assert_eq!(log.iter().filter(|k| **k == EventKind::Decided).count(), 3);
    server.stop().await;
}

async fn only_runners_submit_evidence(db: &Db) {
    let (server, lab) = start_lab(db).await;
    let proposal = propose(&server, &lab, &lab.lib).await;
    let id = proposal["id"].as_str().unwrap();
    let bytes = envelope(&runner_key(), &lab.lib, "lib-unit", "PASSED");
    // Proposers (agent or human), approvers (human or agent) and auditors: 403, even with a
    // valid envelope, and nothing is logged.
    for token in [
        "fixbot",
        "alice-proposer",
        "bob",
        "agent-approver",
        "auditor",
    ] {
        let (status, problem) = submit(&server, token, id, bytes.clone()).await;
        assert_eq!(status, 403, "{token}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("evidence"),
            "{problem}"
        );
    }
    assert_eq!(events(&server, id).await.len(), 2);
    // A runner token does nothing else: it may not propose or approve.
    let body = json!({ "repo": "lab", "base": lab.base, "head": lab.tool, "title": "t" });
    let (status, _) = server
        .send(M::POST, "/v1/proposals", Some("runner"), Some(body))
        .await;
    assert_eq!(status, 403);
    let (status, _) = server.verdict("runner", id, &lab.lib, "approve").await;
    assert_eq!(status, 403);
    // It reads the plan it runs, and nothing else.
    plan(&server, "runner", id).await;
    let (status, shown) = server
        .send(M::GET, &format!("/v1/proposals/{id}"), Some("runner"), None)
        .await;
    assert_eq!(status, 403, "{shown}");
    // 404 for an unknown proposal; 401 without a token.
    let (status, _) = submit(&server, "runner", "p-0000000000000000", bytes.clone()).await;
    assert_eq!(status, 404);
    let response = server
        .client
        .post(format!("{}/v1/proposals/{id}/evidence", server.base))
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    server.stop().await;
}

async fn oversize_bodies_are_413_problems(db: &Db) {
    let (server, lab) = start_lab(db).await;
    let proposal = propose(&server, &lab, &lab.lib).await;
    let id = proposal["id"].as_str().unwrap();
    let (status, problem) =
        submit(&server, "runner", id, vec![b' '; EVIDENCE_BODY_LIMIT + 1]).await;
    assert_eq!(status, 413, "{problem}");
    assert!(
        problem["type"].as_str().unwrap().ends_with("/too-large"),
        "{problem}"
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains(&EVIDENCE_BODY_LIMIT.to_string()),
        "{problem}"
    );
    // Nothing logged for a body never read whole.
    assert_eq!(events(&server, id).await.len(), 2);
    // The larger limit is this route's only: a proposal that size is refused at 64 KiB.
    let body = json!({ "repo": "lab", "base": lab.base, "head": lab.tool, "title": "x".repeat(100 * 1024) });
    let (status, problem) = server
        .send(M::POST, "/v1/proposals", Some("fixbot"), Some(body))
        .await;
    assert_eq!(status, 413, "{problem}");
    server.stop().await;
}

async fn evidence_lapses_when_the_head_moves(db: &Db) {
    let (server, lab) = start_lab(db).await;
    let proposal = propose(&server, &lab, &lab.tool).await;
    let id = proposal["id"].as_str().unwrap();
    let bytes = envelope(&runner_key(), &lab.tool, "tool-unit", "PASSED");
    let (status, accepted) = submit(&server, "runner", id, bytes.clone()).await;
    assert_eq!(status, 201, "{accepted}");
    assert_eq!(accepted["proposal"]["state"], "awaiting_approval");
    let move_to = |head: &str| {
        let server = &server;
        let body = json!({ "head": head });
        async move {
            let (status, moved) = server
                .send(
                    M::POST,
                    &format!("/v1/proposals/{id}/head"),
                    Some("fixbot"),
                    Some(body),
                )
                .await;
            assert_eq!(status, 200, "{moved}");
            moved
        }
    };
    // A new head waits for its own evidence; the old head's is not listed.
    let moved = move_to(&lab.tool2).await;
    assert_eq!(moved["state"], "awaiting_evidence", "{moved}");
    let after = plan(&server, "runner", id).await;
    assert_eq!(
        (&after["head"], &after["missing"]),
        (&json!(lab.tool2), &json!(["tool-unit"])),
        "{after}"
    );
    assert_eq!(after["suites"][1]["evidence"], json!([]), "{after}");
    // Evidence for the old head is refused for the new one.
    let (status, problem) = submit(&server, "runner", id, bytes.clone()).await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("other_commit"),
        "{problem}"
    );
    // Back to the first head: what was accepted there lapsed with the move and stays lapsed.
    let back = move_to(&lab.tool).await;
    assert_eq!(back["state"], "awaiting_evidence", "{back}");
    assert_eq!(
        plan(&server, "runner", id).await["missing"],
        json!(["tool-unit"])
    );
    let (status, again) = submit(&server, "runner", id, bytes).await;
    assert_eq!(
        (status, &again["recorded"]),
        (StatusCode::CREATED, &json!(true)),
        "{again}"
    );
    assert_eq!(again["proposal"]["state"], "awaiting_approval");
    assert_eq!(
        again["proposal"]["decision"]["evidence"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    server.stop().await;
}

/// The subject of the signed verification summary an `authorized` event names.
async fn summary_subject(server: &Server, authorized: &Event) -> (String, String) {
    let digest = authorized.data["verification_summary"].as_str().unwrap();
    let blob = server.store.blob(digest).await.unwrap().unwrap();
    let envelope = countersign_evidence::dsse::Envelope::parse(&blob).unwrap();
    let statement: Value = serde_json::from_slice(&envelope.payload).unwrap();
    (
        statement["subject"][0]["name"].as_str().unwrap().to_owned(),
        statement["predicate"]["resourceUri"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

/// Records and signed authorization statements name the repository as its base's
/// `[repository] name` says (`github.com/acme/lab`), not as the server calls it (`lab`) nor
/// by a directory: whether the system authorized or people did.
async fn records_name_the_configured_repository(db: &Db) {
    let (server, lab) = start_lab(db).await;
    let mut authorized_by = Vec::new();
    for (result, approve) in [("PASSED", false), ("FAILED", true)] {
        let id = propose(&server, &lab, &lab.lib).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let bytes = envelope(&runner_key(), &lab.lib, "lib-unit", result);
        assert_eq!(submit(&server, "runner", &id, bytes).await.0, 201);
        if approve {
            let (status, approved) = server.verdict("bob", &id, &lab.lib, "approve").await;
            assert_eq!(approved["state"], "authorized", "{status} {approved}");
        }
        let log = events(&server, &id).await;
        assert_eq!(log[0].kind, EventKind::Proposed);
        assert_eq!(log[0].data["repository"], REPOSITORY, "{:?}", log[0]);
        let authorized = log
            .iter()
            .find(|e| e.kind == EventKind::Authorized)
            .unwrap();
        authorized_by.push(summary_subject(&server, authorized).await);
    }
    let expected = (
        REPOSITORY.to_owned(),
        format!("git+{REPOSITORY}@{}", lab.lib),
    );
    assert_eq!(authorized_by, [expected.clone(), expected]);
    server.stop().await;
}

on_both_backends!(
    records_name_the_configured_repository,
    passing_evidence_authorizes_an_automated_tier,
    failing_or_partial_evidence_goes_to_people,
    base_evidence_does_not_satisfy_the_plan,
    a_run_without_tests_does_not_satisfy_the_plan,
    refused_evidence_is_logged_and_explained,
    refusals_are_bounded_per_head,
    only_runners_submit_evidence,
    oversize_bodies_are_413_problems,
    evidence_lapses_when_the_head_moves,
    concurrent_evidence_all_counts,
);
