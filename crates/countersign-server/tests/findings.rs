//! The closed loop on the server (issue 17, points 5-7): a scheduled run on main finds
//! failing tests, which open findings (and count observations on them); an agent proposes a
//! fix `fixes` them (the reproducing suite is required of it, the plan says whether the
//! reproducing test passes at the head, and the agent never approves it); merged, the
//! reproducing suite runs again on main: passing verifies the finding, failing reopens it
//! and notifies its owners. Abuse first: only the runner holding a branch run pushes its
//! evidence, and only evidence about that run's commit and suite counts. Every scenario on
//! SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{ALICE, Db, NOW, Server, start_with};
use countersign_audit::EventKind;
use countersign_evidence::attest;
use countersign_evidence::dsse::SigningKey;
use countersign_evidence::statement::{OPENVEX_V020, Statement, TEST_RESULT_V01, VULNS_V02};
use countersign_policy::Principal;
use countersign_repo::{CommitId, RepoWriter};
use countersign_server::{ManualClock, Role, Target, WebhookConfig, create_token, tick_schedules};
use reqwest::{Method as M, StatusCode};
use serde_json::{Value, json};

const REPOSITORY: &str = "github.com/acme/pay";

const CATALOG: &str = r#"apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team-pay
spec:
  type: team
  children: []
  members: [alice, bob, carol]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: alice
spec:
  memberOf: [team-pay]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: bob
spec:
  memberOf: [team-pay]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: carol
spec:
  memberOf: [team-pay]
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: payments
  annotations:
    countersign.dev/criticality: critical
    countersign.dev/surfaces: payments
    countersign.dev/exposure: internet
    countersign.dev/paths: /pay/**
    countersign.dev/suites: pay-unit
spec:
  type: service
  lifecycle: production
  owner: team-pay
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: docs
  annotations:
    countersign.dev/criticality: low
    countersign.dev/paths: /docs/**
spec:
  type: website
  lifecycle: production
  owner: team-pay
"#;

fn runner_key() -> SigningKey {
    SigningKey::from_seed(&[42; 32])
}

/// main: the base, scheduling pay-unit every half hour. `fix1` (off main) fixes `pay::charge`;
/// `fix2` (off fix1) says it fixes `pay::void`; `docs` (off main) touches only docs.
struct Lab {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    base: String,
    fix1: String,
    fix2: String,
    docs: String,
}

fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"[repository]
name = "{REPOSITORY}"

[[runners]]
name = "ci"
public_key = "{}"
suites = ["pay-unit"]

[[runners]]
name = "other"
public_key = "{}"
suites = ["pay-unit"]

[suites.pay-unit]
command = ["cargo", "test", "-p", "pay"]
reports = {{ junit = ["junit.xml"] }}

[schedules.nightly]
cron = "*/30 * * * *"
branch = "main"
suites = ["pay-unit"]
"#,
        runner_key().public_key().to_hex(),
        SigningKey::from_seed(&[43; 32]).public_key().to_hex(),
    );
    let mut w = RepoWriter::init(dir.path()).unwrap();
    w.commit(
        [
            ("countersign.toml", Some(config.as_str())),
            ("catalog-info.yaml", Some(CATALOG)),
            ("pay/src.rs", Some("pub fn charge() { bug() }\n")),
            ("docs/index.md", Some("# Pay\n")),
        ],
        "base",
        ALICE,
        NOW as i64,
    )
    .unwrap();
    let base = w.head().unwrap();
    let fix1 = w
        .commit_on(
            "refs/heads/fix1",
            &base,
            [("pay/src.rs", Some("pub fn charge() { fixed() }\n"))],
            "fix charge",
            ALICE,
            NOW as i64 + 1,
        )
        .unwrap();
    let fix2 = w
        .commit_on(
            "refs/heads/fix2",
            &fix1,
            [(
                "pay/src.rs",
                Some("pub fn charge() { fixed() } fn void() {}\n"),
            )],
            "fix void",
            ALICE,
            NOW as i64 + 2,
        )
        .unwrap();
    let docs = w
        .commit_on(
            "refs/heads/docs",
            &base,
            [("docs/index.md", Some("# Payments\n"))],
            "docs",
            ALICE,
            NOW as i64 + 3,
        )
        .unwrap();
    let hex = |c: CommitId| c.as_str().to_owned();
    Lab {
        path: dir.path().to_owned(),
        _dir: dir,
        base: hex(base),
        fix1: hex(fix1),
        fix2: hex(fix2),
        docs: hex(docs),
    }
}

/// A test-result of pay-unit at `commit`; each failed test says why, as a runner's
/// `attest` carries the JUnit `<failure message>`.
fn envelope(commit: &str, passed: &[&str], failed: &[&str]) -> Vec<u8> {
    let result = if failed.is_empty() {
        "PASSED"
    } else {
        "FAILED"
    };
    let messages: serde_json::Map<String, Value> = failed
        .iter()
        .map(|t| {
            (
                (*t).to_owned(),
                json!(format!("{t}: expected 200, got 500")),
            )
        })
        .collect();
    let statement = Statement::for_commit(
        REPOSITORY,
        commit,
        "pay-unit",
        TEST_RESULT_V01,
        json!({
            "result": result,
            "configuration": [],
            "passedTests": passed,
            "failedTests": failed,
            "countersign.dev/failureMessages": messages,
        }),
    );
    attest(&statement, &runner_key()).to_json()
}

struct Loop {
    server: Server,
    lab: Lab,
    clock: ManualClock,
    state: countersign_server::AppState,
}

async fn start(db: &Db) -> Loop {
    let lab = lab();
    let clock = ManualClock::new(NOW); // 2026-01-05T09:00:00Z
    let path = lab.path.clone();
    let clock2 = clock.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut server = start_with(db, move |mut state| {
        Arc::make_mut(&mut state.repos).insert("pay".to_owned(), path);
        state.clock = clock2.clock();
        let hooks = WebhookConfig::new(vec![
            Target::new(
                "team-pay",
                "http://127.0.0.1:9/hook",
                "test-secret-0123456789abcdef",
            )
            .unwrap(),
        ])
        .unwrap();
        let state = state
            .with_lease(Duration::from_secs(600))
            .with_schedule_tick(None)
            .with_webhooks(hooks)
            .with_log_signer(common::log_signer());
        tx.send(state.clone()).unwrap();
        state
    })
    .await;
    let state = rx.recv().unwrap();
    for (i, (name, principal)) in [("ci", "runner:ci"), ("other", "runner:other")]
        .into_iter()
        .enumerate()
    {
        let principal: Principal = principal.parse().unwrap();
        let mut secret = [0xD7; 32];
        secret[1] = u8::try_from(i).unwrap();
        let (text, _) = create_token(
            &server.store,
            &principal,
            Role::Runner,
            NOW as i64 + 86_400 * 30,
            secret,
        )
        .await
        .unwrap();
        server.tokens.insert(name, text);
    }
    Loop {
        server,
        lab,
        clock,
        state,
    }
}

/// Raw bytes POSTed as `token`; the problem (or body) as JSON.
async fn post_bytes(
    server: &Server,
    token: &str,
    path: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    let response = server
        .client
        .post(format!("{}{path}", server.base))
        .bearer_auth(&server.tokens[token])
        .header("content-type", "application/json")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Leases the one item `runner` may take now.
async fn lease_one(server: &Server, runner: &str) -> Value {
    let (status, leased) = server
        .send(
            M::POST,
            "/v1/work/lease",
            Some(runner),
            Some(json!({ "repository": REPOSITORY, "environments": ["default"], "max": 1 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{leased}");
    let items = leased["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{leased}");
    items[0].clone()
}

async fn finish(server: &Server, item: &Value, outcome: &str) {
    let (status, run) = server
        .send(
            M::POST,
            &format!("/v1/work/{}/finish", item["id"].as_str().unwrap()),
            Some("ci"),
            Some(json!({ "attempt": item["attempt"], "outcome": outcome })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
}

async fn finding(server: &Server, id: &str) -> Value {
    let (status, finding) = server
        .send(M::GET, &format!("/v1/findings/{id}"), Some("auditor"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{finding}");
    finding
}

fn changes(answer: &Value) -> Vec<(String, String)> {
    answer["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["finding"].as_str().unwrap().to_owned(),
                c["change"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The scheduled run on main: its failures open findings, a later run's count on them.
/// Nobody but the runner holding the run pushes its evidence, and only evidence of its
/// commit and suite counts.
async fn scheduled_failures_open_findings(db: &Db) {
    let Loop {
        server,
        lab,
        clock,
        state,
    } = start(db).await;
    assert_eq!(tick_schedules(&state).await.unwrap().len(), 1);
    let item = lease_one(&server, "ci").await;
    let run = item["id"].as_str().unwrap().to_owned();
    assert_eq!(item["branch"], "main");
    assert_eq!(item["commit"], json!(lab.base));
    let route = format!("/v1/runs/{run}/evidence");
    let failing = envelope(&lab.base, &["pay::refund"], &["pay::charge", "pay::void"]);

    // Abuse: a proposer (an agent) pushes; another runner, which does not hold the run;
    // evidence about another commit; a proposal's route for a branch run.
    for token in ["fixbot", "admin", "alice"] {
        let (status, problem) = post_bytes(&server, token, &route, failing.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{token}: {problem}");
    }
    let (status, problem) = post_bytes(&server, "other", &route, failing.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let (status, problem) = post_bytes(
        &server,
        "ci",
        &route,
        envelope(&lab.fix1, &[], &["pay::charge"]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("other_commit"),
        "{problem}"
    );
    let forged = attest(
        &Statement::for_commit(
            REPOSITORY,
            &lab.base,
            "pay-unit",
            TEST_RESULT_V01,
            json!({ "result": "FAILED", "configuration": [], "failedTests": ["pay::x"] }),
        ),
        &SigningKey::from_seed(&[7; 32]),
    )
    .to_json();
    let (status, problem) = post_bytes(&server, "ci", &route, forged).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("unknown_key"),
        "{problem}"
    );
    // The holder's refusals are logged about the run, as a proposal's are about it: the
    // envelope's digest and size, the run, its branch and commit, and each reason. The same
    // envelope refused again is not logged twice; a caller that does not hold the run gets
    // no entry at all.
    let (status, _) = post_bytes(
        &server,
        "ci",
        &route,
        envelope(&lab.fix1, &[], &["pay::charge"]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let refused: Vec<Value> = server
        .store
        .entries_about(&run)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event().unwrap())
        .filter(|e| e.kind == EventKind::EvidenceRefused)
        .map(|e| {
            assert_eq!(e.actor, "runner:ci");
            e.data
        })
        .collect();
    assert_eq!(refused.len(), 2, "{refused:#?}");
    let other_commit =
        countersign_audit::bundle::digest(&envelope(&lab.fix1, &[], &["pay::charge"]));
    assert_eq!(refused[0]["envelope"], json!(other_commit));
    assert_eq!(refused[0]["run"], json!(run));
    assert_eq!(refused[0]["branch"], "main");
    assert_eq!(refused[0]["commit"], json!(lab.base));
    assert!(refused[0]["size"].as_u64().unwrap() > 0);
    assert_eq!(refused[0]["reasons"][0]["reason"], "other_commit");
    assert_eq!(refused[1]["reasons"][0]["reason"], "unknown_key");
    let (status, _) = post_bytes(&server, "ci", "/v1/runs/r-none/evidence", failing.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, nothing) = server
        .send(M::GET, "/v1/findings", Some("auditor"), None)
        .await;
    assert_eq!(nothing["findings"], json!([]), "refusals open nothing");

    let (status, answer) = post_bytes(&server, "ci", &route, failing.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        changes(&answer),
        [
            ("F-1".to_owned(), "opened".to_owned()),
            ("F-2".to_owned(), "opened".to_owned())
        ]
    );
    // The same envelope again: nothing new.
    let (status, again) = post_bytes(&server, "ci", &route, failing.clone()).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["recorded"], false);
    // A run takes at most 16 envelopes: a runner key cannot grow the log without bound.
    for n in 1..16 {
        let passing = envelope(&lab.base, &[&format!("pay::t{n}")], &[]);
        let (status, answer) = post_bytes(&server, "ci", &route, passing).await;
        assert_eq!(status, StatusCode::CREATED, "{n}: {answer}");
    }
    let (status, problem) = post_bytes(
        &server,
        "ci",
        &route,
        envelope(&lab.base, &["pay::t99"], &[]),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    finish(&server, &item, "failed").await;

    let f1 = finding(&server, "F-1").await;
    assert_eq!(f1["kind"], "test_failure");
    assert_eq!(f1["suite"], "pay-unit");
    assert_eq!(f1["test"], "pay::charge");
    assert_eq!(f1["component"], "component:default/payments");
    assert_eq!(
        f1["severity"], "critical",
        "critical component, failed test"
    );
    assert_eq!(f1["state"], "open");
    assert_eq!(f1["branch"], "main");
    assert_eq!(f1["owners"], json!(["group:default/team-pay"]));
    assert_eq!(f1["first_seen"], json!(lab.base));
    assert_eq!(f1["observations"], 1);
    assert_eq!(f1["evidence"]["run"], json!(run));
    assert_eq!(
        f1["evidence"]["command"],
        json!(format!(
            "git checkout {} && cd . && cargo test -p pay",
            lab.base
        ))
    );
    // The finding says why the test failed, in the report's own (quoted) words.
    let message = f1["evidence"]["message"].as_str().unwrap();
    assert!(
        message.contains("pay::charge")
            && message.contains(r#""pay::charge: expected 200, got 500""#),
        "{message}"
    );

    // Half an hour later: the same failures count on the same findings.
    clock.advance(Duration::from_secs(1800));
    assert_eq!(tick_schedules(&state).await.unwrap().len(), 1);
    let item = lease_one(&server, "ci").await;
    let route = format!("/v1/runs/{}/evidence", item["id"].as_str().unwrap());
    let (status, answer) = post_bytes(
        &server,
        "ci",
        &route,
        envelope(&lab.base, &["pay::refund", "pay::void"], &["pay::charge"]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        changes(&answer),
        [("F-1".to_owned(), "observed".to_owned())]
    );
    assert_eq!(finding(&server, "F-1").await["observations"], 2);
    let (_, open) = server
        .send(M::GET, "/v1/findings?state=open", Some("auditor"), None)
        .await;
    let ids: Vec<&str> = open["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["F-2", "F-1"]);
    // Runners read no findings; bad queries are 422.
    let (status, _) = server.send(M::GET, "/v1/findings", Some("ci"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for query in ["?state=closed", "?limit=0", "?before=12"] {
        let (status, _) = server
            .send(
                M::GET,
                &format!("/v1/findings{query}"),
                Some("auditor"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
    }
    let (status, _) = server
        .send(M::GET, "/v1/findings/F-99", Some("auditor"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The log holds the finding's life.
    let kinds: Vec<EventKind> = server
        .store
        .entries_about("F-1")
        .await
        .unwrap()
        .iter()
        .map(|e| e.event().unwrap().kind)
        .collect();
    assert_eq!(
        kinds,
        [EventKind::FindingOpened, EventKind::FindingObserved]
    );
    server.stop().await;
}

/// A scan on a scheduled run: a vulnerability in internet-exposed payments code is reachable
/// and opens a finding (critical: one step above the critical component's failed test); one
/// in the internal docs site, which nothing exposed depends on, opens none.
async fn reachable_vulnerabilities_open_findings(db: &Db) {
    let Loop {
        server,
        lab,
        clock: _clock,
        state,
    } = start(db).await;
    tick_schedules(&state).await.unwrap();
    let item = lease_one(&server, "ci").await;
    let result = |id: &str, location: &str| {
        json!({
            "id": id,
            "severity": [{ "method": "sarif-level", "score": "error" }],
            "annotations": [{ "countersign.dev/location": location }],
        })
    };
    let scan = attest(
        &Statement::for_commit(
            REPOSITORY,
            &lab.base,
            "pay-unit",
            VULNS_V02,
            json!({ "scanner": { "uri": "https://example.com/scanner", "result": [
                result("CVE-2026-0001", "pay/src.rs:1"),
                result("CVE-2026-0002", "docs/index.md:1"),
            ] } }),
        ),
        &runner_key(),
    )
    .to_json();
    let (status, answer) = post_bytes(
        &server,
        "ci",
        &format!("/v1/runs/{}/evidence", item["id"].as_str().unwrap()),
        scan,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(changes(&answer), [("F-1".to_owned(), "opened".to_owned())]);
    let f1 = finding(&server, "F-1").await;
    assert_eq!(f1["kind"], "vulnerability");
    assert_eq!(f1["test"], "CVE-2026-0001");
    assert_eq!(f1["component"], "component:default/payments");
    assert_eq!(f1["severity"], "critical");
    assert!(
        f1["evidence"]["message"]
            .as_str()
            .unwrap()
            .contains("reachable"),
        "{f1}"
    );
    server.stop().await;
}

/// A vulnerability's fix is verified only once the post-merge scan no longer reports it:
/// one still reported, though now in code nothing exposed reaches (the docs site), reopens
/// the finding. That is what the finding's bundle can show offline (the scan, not the graph
/// that judged reachability), and the bundle re-derives the same state.
async fn a_vulnerability_still_reported_is_not_fixed(db: &Db) {
    let Loop {
        server,
        lab,
        clock: _clock,
        state,
    } = start(db).await;
    tick_schedules(&state).await.unwrap();
    let item = lease_one(&server, "ci").await;
    let route = format!("/v1/runs/{}/evidence", item["id"].as_str().unwrap());
    let opened = accepted(
        &server,
        &route,
        scan(&lab.base, &["CVE-2026-0001"], &runner_key()),
    )
    .await;
    assert_eq!(opened, [("F-1".to_owned(), "opened".to_owned())]);
    finish(&server, &item, "failed").await;

    let (status, fix) = propose_fix(&server, &lab.base, &lab.fix1, &["F-1"]).await;
    assert_eq!(status, StatusCode::CREATED, "{fix}");
    let fix_id = fix["id"].as_str().unwrap().to_owned();
    let item = lease_one(&server, "ci").await;
    let (status, answer) = post_bytes(
        &server,
        "ci",
        &format!("/v1/proposals/{fix_id}/evidence"),
        envelope(&lab.fix1, &["pay::charge", "pay::refund", "pay::void"], &[]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    finish(&server, &item, "passed").await;
    for person in ["alice", "bob"] {
        let (status, view) = server.verdict(person, &fix_id, &lab.fix1, "approve").await;
        assert_eq!(status, StatusCode::OK, "{view}");
    }
    merge(&server, &lab, &fix_id, &lab.fix1).await;

    // The post-merge scan still reports the CVE, now only in the docs site: unreachable,
    // and still not fixed.
    let item = lease_one(&server, "ci").await;
    assert_eq!(item["commit"], json!(lab.fix1));
    let moved = attest(
        &Statement::for_commit(
            REPOSITORY,
            &lab.fix1,
            "pay-unit",
            VULNS_V02,
            json!({ "scanner": { "uri": "https://example.com/scanner", "result": [{
                "id": "CVE-2026-0001",
                "severity": [{ "method": "sarif-level", "score": "error" }],
                "annotations": [{ "countersign.dev/location": "docs/index.md:1" }],
            }] } }),
        ),
        &runner_key(),
    )
    .to_json();
    let settled = accepted(
        &server,
        &format!("/v1/runs/{}/evidence", item["id"].as_str().unwrap()),
        moved,
    )
    .await;
    assert_eq!(settled, [("F-1".to_owned(), "reopened".to_owned())]);
    let f1 = finding(&server, "F-1").await;
    assert_eq!(f1["state"], "reopened", "{f1}");
    assert_eq!(f1["verification"]["passed"], false);

    // Offline, the bundle says the same.
    let bundle = finding_bundle(&server, "F-1").await;
    let outcome =
        countersign_decide::bundle::verify_finding(&bundle, &common::log_signer().verifier())
            .unwrap();
    assert_eq!(outcome.state, "reopened");
    assert_eq!(outcome.verified_by, None);
    server.stop().await;
}

/// A pay-unit scan at `commit` reporting each of `ids` in the payments code (internet
/// exposed: reachable), signed by `key`.
fn scan(commit: &str, ids: &[&str], key: &SigningKey) -> Vec<u8> {
    let results: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({
                "id": id,
                "severity": [{ "method": "sarif-level", "score": "error" }],
                "annotations": [{ "countersign.dev/location": "pay/src.rs:1" }],
            })
        })
        .collect();
    attest(
        &Statement::for_commit(
            REPOSITORY,
            commit,
            "pay-unit",
            VULNS_V02,
            json!({ "scanner": { "uri": "https://example.com/scanner", "result": results } }),
        ),
        key,
    )
    .to_json()
}

/// A pay-unit OpenVEX document at `commit`: each of `ids` is `status` in the payments
/// component.
fn vex(commit: &str, ids: &[&str], status: &str) -> Vec<u8> {
    let statements: Vec<Value> = ids
        .iter()
        .map(|id| {
            let mut statement = json!({
                "vulnerability": { "name": id },
                "products": [{ "@id": "component:default/payments" }],
                "status": status,
            });
            if status == "not_affected" {
                statement["justification"] = json!("vulnerable_code_not_in_execute_path");
            }
            statement
        })
        .collect();
    attest(
        &Statement::for_commit(
            REPOSITORY,
            commit,
            "pay-unit",
            OPENVEX_V020,
            json!({
                "@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex/1",
                "author": "team-pay", "timestamp": "2026-01-05T09:00:00Z", "version": 1,
                "statements": statements,
            }),
        ),
        &runner_key(),
    )
    .to_json()
}

/// A VEX envelope of a branch run is weighed with the run's scan, as a proposal's head
/// evidence is weighed whole: a reachable vulnerability it says does not affect the
/// payments component (its suite exercises it) opens no finding; one it does not name
/// does. Abuse: a VEX of another run of the same commit clears nothing, "affected" clears
/// nothing, and a VEX pushed after the scan does not take back the finding the scan
/// opened (an observation is a logged fact).
async fn vex_of_the_run_keeps_its_scan_from_opening_findings(db: &Db) {
    let Loop {
        server,
        lab,
        clock,
        state,
    } = start(db).await;
    tick_schedules(&state).await.unwrap();
    let item = lease_one(&server, "ci").await;
    let route = format!("/v1/runs/{}/evidence", item["id"].as_str().unwrap());
    let not_affected = vex(&lab.base, &["CVE-2026-0001"], "not_affected");
    assert_eq!(accepted(&server, &route, not_affected).await, []);
    let affected = vex(&lab.base, &["CVE-2026-0002"], "affected");
    assert_eq!(accepted(&server, &route, affected).await, []);
    let ids = ["CVE-2026-0001", "CVE-2026-0002", "CVE-2026-0003"];
    assert_eq!(
        accepted(&server, &route, scan(&lab.base, &ids, &runner_key())).await,
        [
            ("F-1".to_owned(), "opened".to_owned()),
            ("F-2".to_owned(), "opened".to_owned())
        ],
        "CVE-2026-0001 is not affected; 0002 and 0003 open findings"
    );
    assert_eq!(finding(&server, "F-1").await["test"], "CVE-2026-0002");
    assert_eq!(finding(&server, "F-2").await["test"], "CVE-2026-0003");
    // Pushed after the scan: the findings the scan opened stay open.
    let late = vex(&lab.base, &["CVE-2026-0003"], "not_affected");
    assert_eq!(accepted(&server, &route, late).await, []);
    assert_eq!(finding(&server, "F-2").await["state"], "open");
    finish(&server, &item, "failed").await;

    // The next run of the same commit: the earlier run's VEX is not this run's evidence.
    clock.advance(Duration::from_secs(1800));
    tick_schedules(&state).await.unwrap();
    let item = lease_one(&server, "ci").await;
    let route = format!("/v1/runs/{}/evidence", item["id"].as_str().unwrap());
    let again = scan(&lab.base, &["CVE-2026-0001"], &runner_key());
    assert_eq!(
        accepted(&server, &route, again).await,
        [("F-3".to_owned(), "opened".to_owned())]
    );
    assert_eq!(finding(&server, "F-3").await["test"], "CVE-2026-0001");
    server.stop().await;
}

/// Pushes `bytes` as the runner `ci` to `route`, which must accept it: what it did to
/// findings.
async fn accepted(server: &Server, route: &str, bytes: Vec<u8>) -> Vec<(String, String)> {
    let (status, answer) = post_bytes(server, "ci", route, bytes).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    changes(&answer)
}

/// Opens F-1 (`pay::charge`) and F-2 (`pay::void`) from a scheduled run on main.
async fn found(server: &Server, state: &countersign_server::AppState, lab: &Lab) {
    tick_schedules(state).await.unwrap();
    let item = lease_one(server, "ci").await;
    let route = format!("/v1/runs/{}/evidence", item["id"].as_str().unwrap());
    let (status, answer) = post_bytes(
        server,
        "ci",
        &route,
        envelope(&lab.base, &["pay::refund"], &["pay::charge", "pay::void"]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    finish(server, &item, "failed").await;
}

/// Opens a proposal of `head` on `base` that fixes `fixes`.
async fn propose_fix(
    server: &Server,
    base: &str,
    head: &str,
    fixes: &[&str],
) -> (StatusCode, Value) {
    let body = json!({ "repo": "pay", "base": base, "head": head, "title": "fix", "fixes": fixes });
    server
        .send(M::POST, "/v1/proposals", Some("fixbot"), Some(body))
        .await
}

/// Moves main to `commit` (the merge) and records it.
async fn merge(server: &Server, lab: &Lab, id: &str, commit: &str) {
    let moved = std::process::Command::new("git")
        .arg("-C")
        .arg(&lab.path)
        .args(["update-ref", "refs/heads/main", commit])
        .status()
        .unwrap();
    assert!(moved.success());
    let (status, merged) = server
        .send(
            M::POST,
            &format!("/v1/proposals/{id}/merged"),
            Some("admin"),
            Some(json!({ "commit": commit })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    assert_eq!(merged["state"], "merged");
}

/// The whole loop: found, fixed under governance, merged, verified; a second fix that does
/// not hold reopens its finding and notifies the owners.
async fn fixes_are_verified_or_reopened(db: &Db) {
    let Loop {
        server,
        lab,
        clock: _clock,
        state,
    } = start(db).await;
    found(&server, &state, &lab).await;

    // Bad links are 422, and open nothing.
    for (fixes, why) in [
        (vec!["F-99"], "there is no finding F-99"),
        (vec!["12"], "is not a finding id"),
        (vec!["F-0"], "is not a finding id"),
    ] {
        let (status, problem) = propose_fix(&server, &lab.base, &lab.fix1, &fixes).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(why),
            "{problem}"
        );
    }

    // A docs-only change that says it fixes F-1: the reproducing suite is required of it
    // anyway, though its blast radius plans nothing.
    let (status, docs) = propose_fix(&server, &lab.base, &lab.docs, &["F-1"]).await;
    assert_eq!(status, StatusCode::CREATED, "{docs}");
    let docs_id = docs["id"].as_str().unwrap();
    assert_eq!(docs["state"], "awaiting_evidence", "{docs}");
    let (_, plan) = server
        .send(
            M::GET,
            &format!("/v1/proposals/{docs_id}/plan"),
            Some("ci"),
            None,
        )
        .await;
    assert_eq!(plan["missing"], json!(["pay-unit"]), "{plan}");
    assert_eq!(plan["fixes"][0]["finding"], "F-1");
    assert_eq!(plan["fixes"][0]["status"], "awaiting");
    let (status, _) = server
        .send(
            M::POST,
            &format!("/v1/proposals/{docs_id}/close"),
            Some("fixbot"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // The agent's real fix of F-1.
    let (status, fix) = propose_fix(&server, &lab.base, &lab.fix1, &["F-1", "F-1"]).await;
    assert_eq!(status, StatusCode::CREATED, "{fix}");
    let fix_id = fix["id"].as_str().unwrap().to_owned();
    let mut linked = vec![docs_id.to_owned(), fix_id.clone()];
    linked.sort();
    assert_eq!(finding(&server, "F-1").await["fixes"], json!(linked));
    // Its head's run: the reproducing test passes there.
    let item = lease_one(&server, "ci").await;
    assert_eq!(item["proposal"], json!(fix_id));
    let (status, accepted) = post_bytes(
        &server,
        "ci",
        &format!("/v1/proposals/{fix_id}/evidence"),
        envelope(&lab.fix1, &["pay::charge", "pay::refund"], &["pay::void"]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{accepted}");
    finish(&server, &item, "failed").await;
    let (_, plan) = server
        .send(
            M::GET,
            &format!("/v1/proposals/{fix_id}/plan"),
            Some("ci"),
            None,
        )
        .await;
    assert_eq!(plan["fixes"][0]["status"], "passes", "{plan}");
    // A pre-merge failure (pay::void) belongs to the proposal, not to the findings.
    assert_eq!(finding(&server, "F-2").await["observations"], 1);
    // The tier is derived as for any change (payments: change control), and the agent that
    // wrote the fix can never approve it.
    let (_, view) = server
        .send(
            M::GET,
            &format!("/v1/proposals/{fix_id}"),
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(view["tier"], "change_control", "{view}");
    let (status, problem) = server
        .verdict("agent-approver", &fix_id, &lab.fix1, "approve")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    for person in ["alice", "bob"] {
        let (status, view) = server.verdict(person, &fix_id, &lab.fix1, "approve").await;
        assert_eq!(status, StatusCode::OK, "{view}");
    }
    let (_, view) = server
        .send(
            M::GET,
            &format!("/v1/proposals/{fix_id}"),
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(view["state"], "authorized", "{view}");

    // Merged: the reproducing suite runs on main at the merged commit and passes.
    merge(&server, &lab, &fix_id, &lab.fix1).await;
    let item = lease_one(&server, "ci").await;
    assert_eq!(item["branch"], "main");
    assert_eq!(item["commit"], json!(lab.fix1));
    assert!(item["proposal"].is_null());
    let (_, runs) = server
        .send(
            M::GET,
            "/v1/runs?branch=main&state=running",
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(runs["runs"][0]["cause"], json!(format!("merge:{fix_id}")));
    let (status, answer) = post_bytes(
        &server,
        "ci",
        &format!("/v1/runs/{}/evidence", item["id"].as_str().unwrap()),
        envelope(&lab.fix1, &["pay::charge", "pay::refund"], &["pay::void"]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        changes(&answer),
        [
            ("F-1".to_owned(), "verified".to_owned()),
            ("F-2".to_owned(), "observed".to_owned())
        ]
    );
    finish(&server, &item, "failed").await;
    let f1 = finding(&server, "F-1").await;
    assert_eq!(f1["state"], "verified");
    assert_eq!(f1["verification"]["passed"], true);
    assert_eq!(f1["verification"]["proposal"], json!(fix_id));
    assert_eq!(f1["verification"]["commit"], json!(lab.fix1));
    // A verified finding takes no more fixes.
    let (status, problem) = propose_fix(&server, &lab.fix1, &lab.fix2, &["F-1"]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");

    // The fix of F-2: it passes at its head, but not once merged (flaky): reopened.
    let (status, fix2) = propose_fix(&server, &lab.fix1, &lab.fix2, &["F-2"]).await;
    assert_eq!(status, StatusCode::CREATED, "{fix2}");
    let fix2_id = fix2["id"].as_str().unwrap().to_owned();
    let item = lease_one(&server, "ci").await;
    let (status, _) = post_bytes(
        &server,
        "ci",
        &format!("/v1/proposals/{fix2_id}/evidence"),
        envelope(&lab.fix2, &["pay::charge", "pay::void"], &[]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    finish(&server, &item, "passed").await;
    for person in ["alice", "carol"] {
        let (status, view) = server.verdict(person, &fix2_id, &lab.fix2, "approve").await;
        assert_eq!(status, StatusCode::OK, "{view}");
    }
    merge(&server, &lab, &fix2_id, &lab.fix2).await;
    let item = lease_one(&server, "ci").await;
    let (status, answer) = post_bytes(
        &server,
        "ci",
        &format!("/v1/runs/{}/evidence", item["id"].as_str().unwrap()),
        envelope(&lab.fix2, &["pay::charge"], &["pay::void"]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        changes(&answer),
        [
            ("F-2".to_owned(), "reopened".to_owned()),
            ("F-2".to_owned(), "observed".to_owned())
        ]
    );
    let f2 = finding(&server, "F-2").await;
    assert_eq!(f2["state"], "reopened");
    assert_eq!(f2["verification"]["passed"], false);
    assert_eq!(f2["last_seen"], json!(lab.fix2));
    // The owners are told.
    let outbox = server.store.outbox(50).await.unwrap();
    let reopened: Vec<_> = outbox
        .iter()
        .filter(|row| row.item.kind == "finding_reopened")
        .collect();
    assert_eq!(reopened.len(), 1, "{outbox:#?}");
    assert_eq!(reopened[0].item.subject, "F-2");
    let payload: Value = serde_json::from_str(&reopened[0].item.payload).unwrap();
    assert_eq!(payload["finding"]["state"], "reopened");
    assert_eq!(payload["owners"], json!(["group:default/team-pay"]));
    // Every step is in the log.
    let kinds = |id: &'static str| {
        let store = server.store.clone();
        async move {
            store
                .entries_about(id)
                .await
                .unwrap()
                .iter()
                .map(|e| e.event().unwrap().kind)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        kinds("F-1").await,
        [
            EventKind::FindingOpened,
            EventKind::FindingLinked,
            EventKind::FindingLinked,
            EventKind::FindingVerified
        ]
    );
    assert_eq!(
        kinds("F-2").await,
        [
            EventKind::FindingOpened,
            EventKind::FindingObserved,
            EventKind::FindingLinked,
            EventKind::FindingReopened,
            EventKind::Notified,
            EventKind::FindingObserved
        ]
    );

    // The whole loop, exported and checked offline.
    let verifier = common::log_signer().verifier();
    let fetch = |id: &'static str| {
        let (client, base, token) = (
            server.client.clone(),
            server.base.clone(),
            server.tokens["auditor"].clone(),
        );
        async move {
            let response = client
                .get(format!("{base}/v1/findings/{id}/bundle"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.bytes().await.unwrap().to_vec()
        }
    };
    let f1_bundle = fetch("F-1").await;
    let outcome = countersign_decide::bundle::verify_finding(&f1_bundle, &verifier).unwrap();
    let outcome_as_of = outcome.as_of;
    assert_eq!(outcome.state, "verified");
    assert_eq!(outcome.observations, 1);
    assert_eq!(outcome.verified_by.as_deref(), Some(fix_id.as_str()));
    assert_eq!(outcome.fixes.len(), 2);
    for (fix, differences) in &outcome.fixes {
        assert!(differences.is_empty(), "{}: {differences:?}", fix.proposal);
    }
    let merged = outcome
        .fixes
        .iter()
        .find(|(o, _)| o.proposal == fix_id)
        .unwrap();
    assert_eq!(merged.0.state, "merged");
    let f2_bundle = fetch("F-2").await;
    let outcome = countersign_decide::bundle::verify_finding(&f2_bundle, &verifier).unwrap();
    assert_eq!(outcome.state, "reopened");
    assert_eq!(outcome.observations, 3);
    assert_eq!(outcome.verified_by, None);
    // Tampering shows: a fix's bundle left out, the verifying envelope swapped for the
    // failing one, another log key.
    let mut bundle: countersign_audit::FindingBundle = serde_json::from_slice(&f1_bundle).unwrap();
    bundle.fixes.retain(|b| b.subject != fix_id);
    let error = countersign_decide::bundle::verify_finding(&bundle.to_json(), &verifier)
        .unwrap_err()
        .to_string();
    assert!(error.contains("lacks the bundle of fix"), "{error}");
    let other = countersign_audit::Signer::from_seed("countersign.test/server", [1; 32]).unwrap();
    assert!(countersign_decide::bundle::verify_finding(&f1_bundle, &other.verifier()).is_err());
    // An entry left out of the middle breaks the chain; cut at the end, the bundle shows the
    // finding as of its last entry, as a proposal's bundle does.
    let mut bundle: countersign_audit::FindingBundle = serde_json::from_slice(&f1_bundle).unwrap();
    bundle.finding.entries.remove(1);
    let error = countersign_decide::bundle::verify_finding(&bundle.to_json(), &verifier)
        .unwrap_err()
        .to_string();
    assert!(error.contains("incomplete"), "{error}");
    let mut bundle: countersign_audit::FindingBundle = serde_json::from_slice(&f1_bundle).unwrap();
    bundle.finding.entries.pop();
    let cut = countersign_decide::bundle::verify_finding(&bundle.to_json(), &verifier).unwrap();
    assert_eq!(cut.state, "open");
    assert!(cut.as_of < outcome_as_of);
    server.stop().await;
}

/// What a server that lies would log: an observation of `finding` naming `envelope` (put
/// as a blob) with `config` (the opening event's, unless `None`), appended to the real log.
async fn log_forged_observation(
    server: &Server,
    finding: &str,
    envelope: &[u8],
    config: Option<&Value>,
) -> String {
    let opened = server.store.entries_about(finding).await.unwrap()[0]
        .event()
        .unwrap();
    let mut data = opened.data.clone();
    let digest = countersign_audit::bundle::digest(envelope);
    data["evidence"]["envelope"] = json!(digest);
    match config {
        Some(config) => data["evidence"]["config"] = config.clone(),
        None => {
            data["evidence"].as_object_mut().unwrap().remove("config");
        }
    }
    let mut tx = server.store.begin().await.unwrap();
    tx.put_blob(envelope).await.unwrap();
    let event = countersign_audit::Event::new(
        EventKind::FindingObserved,
        "2026-01-05T10:00:00Z",
        finding,
        "system:countersign",
        data,
    )
    .unwrap();
    tx.append_event(&event).await.unwrap();
    tx.commit().await.unwrap();
    digest
}

async fn finding_bundle(server: &Server, id: &str) -> Vec<u8> {
    let response = server
        .client
        .get(format!("{}/v1/findings/{id}/bundle", server.base))
        .bearer_auth(&server.tokens["auditor"])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.bytes().await.unwrap().to_vec()
}

/// A finding's bundle verifies each envelope again offline against the runner keys of the
/// `countersign.toml` at the run's commit, recorded with the event: a record that lies (the
/// log itself signed, only the envelope wrong) is refused, naming the envelope. Abuse: an
/// envelope signed by a key the recorded config does not trust, a payload altered after
/// signing, an envelope or its config left out of the bundle, an event that records no
/// config.
async fn finding_bundles_verify_their_envelopes_again(db: &Db) {
    let Loop {
        server,
        lab,
        clock,
        state,
    } = start(db).await;
    found(&server, &state, &lab).await;
    let verifier = common::log_signer().verifier();
    let verify = |bytes: &[u8]| {
        countersign_decide::bundle::verify_finding(bytes, &verifier).map_err(|e| e.to_string())
    };
    let honest = finding_bundle(&server, "F-1").await;
    assert_eq!(verify(&honest).unwrap().observations, 1);
    let opened = server.store.entries_about("F-1").await.unwrap()[0]
        .event()
        .unwrap();
    let failing = opened.data["evidence"]["envelope"]
        .as_str()
        .unwrap()
        .to_owned();
    let config = opened.data["evidence"]["config"].clone();
    assert!(config.is_string(), "{:#}", opened.data);

    // Left out of the bundle: the envelope, or the config it was verified against.
    for (gone, says) in [
        (failing.clone(), "missing from the bundle"),
        (
            config.as_str().unwrap().to_owned(),
            "is missing from the bundle",
        ),
    ] {
        let mut bundle: countersign_audit::FindingBundle = serde_json::from_slice(&honest).unwrap();
        assert!(bundle.finding.blobs.remove(&gone).is_some());
        let error = verify(&bundle.to_json()).unwrap_err();
        assert!(
            error.contains(&format!("envelope {failing}")) && error.contains(says),
            "{error}"
        );
    }

    // Signed by a key the config at the run's commit does not name (the server logged it
    // anyway): refused, naming the envelope and why.
    let foreign = attest(
        &Statement::for_commit(
            REPOSITORY,
            &lab.base,
            "pay-unit",
            TEST_RESULT_V01,
            json!({ "result": "FAILED", "configuration": [], "failedTests": ["pay::charge"] }),
        ),
        &SigningKey::from_seed(&[7; 32]),
    )
    .to_json();
    let digest = log_forged_observation(&server, "F-1", &foreign, Some(&config)).await;
    let error = verify(&finding_bundle(&server, "F-1").await).unwrap_err();
    assert!(
        error.contains(&format!("envelope {digest}")) && error.contains("unknown_key"),
        "{error}"
    );

    // The runner's own envelope, its payload altered after signing: the signature no longer
    // holds.
    let mut altered =
        countersign_evidence::Envelope::parse(&envelope_bytes(&server, &failing).await).unwrap();
    let text = String::from_utf8(altered.payload.clone()).unwrap();
    altered.payload = text.replace("pay::void", "pay::vo1d").into_bytes();
    assert_ne!(altered.payload, text.as_bytes());
    let digest = log_forged_observation(&server, "F-2", &altered.to_json(), Some(&config)).await;
    let error = verify(&finding_bundle(&server, "F-2").await).unwrap_err();
    assert!(
        error.contains(&format!("envelope {digest}")) && error.contains("does not verify"),
        "{error}"
    );

    // An honest envelope in an event that records no config (as a server that did not
    // keep it would log): fail closed. On F-3, opened by the next run.
    clock.advance(Duration::from_secs(1800));
    tick_schedules(&state).await.unwrap();
    let item = lease_one(&server, "ci").await;
    let route = format!("/v1/runs/{}/evidence", item["id"].as_str().unwrap());
    let refund = envelope(&lab.base, &[], &["pay::refund"]);
    assert_eq!(
        accepted(&server, &route, refund).await,
        [("F-3".to_owned(), "opened".to_owned())]
    );
    let honest_envelope = envelope_bytes(&server, &failing).await;
    let digest = log_forged_observation(&server, "F-3", &honest_envelope, None).await;
    let error = verify(&finding_bundle(&server, "F-3").await).unwrap_err();
    assert!(
        error.contains(&format!("envelope {digest}")) && error.contains("records no `config`"),
        "{error}"
    );
    server.stop().await;
}

async fn envelope_bytes(server: &Server, digest: &str) -> Vec<u8> {
    server.store.blob(digest).await.unwrap().unwrap()
}

on_both_backends!(
    scheduled_failures_open_findings,
    reachable_vulnerabilities_open_findings,
    a_vulnerability_still_reported_is_not_fixed,
    vex_of_the_run_keeps_its_scan_from_opening_findings,
    finding_bundles_verify_their_envelopes_again,
    fixes_are_verified_or_reopened
);
