//! Evidence-earned automation on the server: with the `earned-automation` module in the
//! base's policy directory, a proposal that edits a high-criticality node waits for a
//! person until the runners' evidence covers its whole plan, then proceeds with
//! notification; a failing run keeps the person. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::catalog::team_catalog;
use common::{ALICE, Db, NOW, Server, log_signer, start_with};
use countersign_evidence::attest;
use countersign_evidence::dsse::SigningKey;
use countersign_evidence::statement::{Statement, TEST_RESULT_V01};
use countersign_policy::{PackModule, Principal};
use countersign_repo::RepoWriter;
use countersign_server::{Role, create_token};
use reqwest::Method as M;
use serde_json::{Value, json};

const REPOSITORY: &str = "github.com/acme/search";

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

fn runner_key() -> SigningKey {
    SigningKey::from_seed(&[43; 32])
}

struct Repo {
    _dir: tempfile::TempDir,
    base: String,
    head: String,
}

/// A base with the module (as `countersign init --with earned-automation` writes it), and a
/// head that edits `search`.
async fn start(db: &Db) -> (Server, Repo) {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[repository]\nname = \"{REPOSITORY}\"\n\n[[runners]]\nname = \"ci\"\npublic_key = \"{}\"\nsuites = [\"search-unit\", \"search-e2e\"]\n",
        runner_key().public_key().to_hex()
    );
    let policy: Vec<(String, String)> =
        countersign_policy::default_files_with(&[PackModule::EarnedAutomation])
            .into_iter()
            .map(|(name, text)| (format!(".countersign/policy/{name}"), text.to_owned()))
            .collect();
    let catalog = catalog();
    let mut files: Vec<(&str, Option<&str>)> = vec![
        ("countersign.toml", Some(config.as_str())),
        ("catalog-info.yaml", Some(catalog.as_str())),
        ("search/src.rs", Some("pub fn find() {}\n")),
    ];
    files.extend(policy.iter().map(|(p, t)| (p.as_str(), Some(t.as_str()))));
    let mut w = RepoWriter::init(dir.path()).unwrap();
    let base = w.commit(files, "base", ALICE, NOW as i64).unwrap();
    let head = w
        .commit(
            [("search/src.rs", Some("pub fn find() { rank() }\n"))],
            "rank",
            ALICE,
            NOW as i64 + 1,
        )
        .unwrap();
    let path = dir.path().to_owned();
    let mut server = start_with(db, move |mut state| {
        Arc::make_mut(&mut state.repos).insert("search".to_owned(), path);
        state.with_log_signer(log_signer())
    })
    .await;
    let runner: Principal = "runner:ci".parse().unwrap();
    let (text, _) = create_token(
        &server.store,
        &runner,
        Role::Runner,
        NOW as i64 + 3600,
        [0xE7; 32],
    )
    .await
    .unwrap();
    server.tokens.insert("runner", text);
    let repo = Repo {
        _dir: dir,
        base: base.as_str().to_owned(),
        head: head.as_str().to_owned(),
    };
    (server, repo)
}

fn envelope(commit: &str, suite: &str, passed: bool) -> Vec<u8> {
    let predicate = if passed {
        json!({ "result": "PASSED", "configuration": [], "passedTests": ["search::finds", "search::ranks"], "failedTests": [] })
    } else {
        json!({ "result": "FAILED", "configuration": [], "passedTests": ["search::finds"], "failedTests": ["search::ranks"] })
    };
    let statement = Statement::for_commit(REPOSITORY, commit, suite, TEST_RESULT_V01, predicate);
    attest(&statement, &runner_key()).to_json()
}

async fn submit(server: &Server, id: &str, bytes: Vec<u8>) {
    let response = server
        .client
        .post(format!("{}/v1/proposals/{id}/evidence", server.base))
        .bearer_auth(&server.tokens["runner"])
        .header("content-type", "application/json")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

async fn proposal(server: &Server, id: &str) -> Value {
    let (status, proposal) = server
        .send(
            M::GET,
            &format!("/v1/proposals/{id}"),
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{proposal}");
    proposal
}

async fn propose(server: &Server, repo: &Repo) -> String {
    let body = json!({ "repo": "search", "base": repo.base, "head": repo.head, "title": "rank" });
    let (status, proposal) = server
        .send(M::POST, "/v1/proposals", Some("fixbot"), Some(body))
        .await;
    assert_eq!(status, 201, "{proposal}");
    // Without evidence the facts fail closed: a person.
    assert_eq!(proposal["tier"], "single_approver", "{proposal}");
    proposal["id"].as_str().unwrap().to_owned()
}

async fn full_evidence_earns_notify_and_proceed(db: &Db) {
    let (server, repo) = start(db).await;
    let id = propose(&server, &repo).await;
    submit(&server, &id, envelope(&repo.head, "search-unit", true)).await;
    // Half the plan: still a person.
    assert_eq!(proposal(&server, &id).await["tier"], "single_approver");
    submit(&server, &id, envelope(&repo.head, "search-e2e", true)).await;
    let after = proposal(&server, &id).await;
    assert_eq!(after["tier"], "notify_and_proceed", "{after}");
    server.stop().await;
}

async fn a_failing_run_keeps_the_person(db: &Db) {
    let (server, repo) = start(db).await;
    let id = propose(&server, &repo).await;
    submit(&server, &id, envelope(&repo.head, "search-unit", true)).await;
    submit(&server, &id, envelope(&repo.head, "search-e2e", false)).await;
    let after = proposal(&server, &id).await;
    assert_eq!(after["tier"], "single_approver", "{after}");
    server.stop().await;
}

on_both_backends!(
    full_evidence_earns_notify_and_proceed,
    a_failing_run_keeps_the_person,
);
