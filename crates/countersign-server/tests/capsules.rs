//! Edge capsules on the server: evidence signed by an edge runner's key counts only under a
//! capsule signed by a key the BASE trusts for capsules (`[[capsules.signers]]`), in force
//! when the evidence is received (the server's clock), and only for the capsule's runner key,
//! suites and environment within what the signer may delegate. Each refusal is a logged 422
//! naming its reason. Every scenario on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{ALICE, Db, NOW, Server, log_signer, start_with};
use countersign_audit::EventKind;
use countersign_evidence::attest;
use countersign_evidence::capsule::{self, CAPSULE_ANNOTATION};
use countersign_evidence::dsse::{Envelope, SigningKey};
use countersign_evidence::statement::{Statement, TEST_RESULT_V01};
use countersign_policy::Principal;
use countersign_repo::{CommitId, RepoWriter};
use countersign_server::{Role, create_token};
use reqwest::StatusCode;
use serde_json::{Value, json};

const REPOSITORY: &str = "github.com/acme/lab";
const ENCLAVE: &str = "eu-enclave";
const BINARY: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// `lib` is planned `lib-unit` (the `ci` runner's) and `eu-int` (only a capsule's).
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
    countersign.dev/suites: lib-unit, eu-int
spec:
  type: library
  lifecycle: production
  owner: team-lab
"#;

fn ci_key() -> SigningKey {
    SigningKey::from_seed(&[42; 32])
}
fn org_key() -> SigningKey {
    SigningKey::from_seed(&[7; 32])
}
fn edge_key() -> SigningKey {
    SigningKey::from_seed(&[9; 32])
}
fn intruder_key() -> SigningKey {
    SigningKey::from_seed(&[13; 32])
}

fn config(extra_signer: Option<&SigningKey>) -> String {
    let mut text = format!(
        "[repository]\nname = \"{REPOSITORY}\"\n\n[[runners]]\nname = \"ci\"\npublic_key = \"{}\"\nsuites = [\"lib-unit\"]\n\n[[capsules.signers]]\nname = \"acme-org\"\npublic_key = \"{}\"\nsuites = [\"eu-int\"]\nenvironments = [\"{ENCLAVE}\"]\n",
        ci_key().public_key().to_hex(),
        org_key().public_key().to_hex(),
    );
    if let Some(key) = extra_signer {
        text.push_str(&format!(
            "\n[[capsules.signers]]\nname = \"intruder\"\npublic_key = \"{}\"\nsuites = [\"eu-int\", \"lib-unit\"]\nenvironments = [\"{ENCLAVE}\", \"anywhere\"]\n",
            key.public_key().to_hex()
        ));
    }
    text
}

struct Lab {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    base: String,
    lib: String,
    /// A change to `lib` that also adds the intruder as a capsule signer in the head's config.
    lib_and_config: String,
}

fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let mut w = RepoWriter::init(dir.path()).unwrap();
    let base_config = config(None);
    w.commit(
        [
            ("countersign.toml", Some(base_config.as_str())),
            ("catalog-info.yaml", Some(CATALOG)),
            ("lib/src.rs", Some("pub fn add() {}\n")),
        ],
        "base",
        ALICE,
        NOW as i64,
    )
    .unwrap();
    let base = w.head().unwrap();
    let lib = w
        .commit_on(
            "refs/heads/lib",
            &base,
            [("lib/src.rs", Some("pub fn add() { /* faster */ }\n"))],
            "change",
            ALICE,
            NOW as i64 + 1,
        )
        .unwrap();
    let widened = config(Some(&intruder_key()));
    let lib_and_config = w
        .commit_on(
            "refs/heads/widen",
            &base,
            [
                ("lib/src.rs", Some("pub fn add() { /* mine */ }\n")),
                ("countersign.toml", Some(widened.as_str())),
            ],
            "change",
            ALICE,
            NOW as i64 + 2,
        )
        .unwrap();
    let hex = |c: CommitId| c.as_str().to_owned();
    Lab {
        path: dir.path().to_owned(),
        _dir: dir,
        base: hex(base),
        lib: hex(lib),
        lib_and_config: hex(lib_and_config),
    }
}

async fn start_lab(db: &Db) -> (Server, Lab) {
    let lab = lab();
    let path = lab.path.clone();
    let mut server = start_with(db, move |mut state| {
        Arc::make_mut(&mut state.repos).insert("lab".to_owned(), path);
        state.with_log_signer(log_signer())
    })
    .await;
    // The edge runner pushes with a runner token of its own: the token says who may push,
    // the capsule which key's evidence counts for what.
    let runner: Principal = "runner:edge".parse().unwrap();
    let (text, _) = create_token(
        &server.store,
        &runner,
        Role::Runner,
        NOW as i64 + 3600,
        [0xE6; 32],
    )
    .await
    .unwrap();
    server.tokens.insert("runner", text);
    (server, lab)
}

async fn propose(server: &Server, lab: &Lab, head: &str) -> String {
    let body = json!({ "repo": "lab", "base": lab.base, "head": head, "title": "change" });
    let (status, proposal) = server
        .send(
            reqwest::Method::POST,
            "/v1/proposals",
            Some("fixbot"),
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{proposal}");
    proposal["id"].as_str().unwrap().to_owned()
}

/// A capsule signed by `signer` for `runner`, valid from `issued` to `expires` (unix seconds).
fn capsule_for(
    signer: &SigningKey,
    runner: &SigningKey,
    suites: &[&str],
    issued: u64,
    expires: u64,
) -> Vec<u8> {
    let at = |s: u64| jiff::Timestamp::from_second(i64::try_from(s).unwrap()).unwrap();
    let suites: BTreeSet<String> = suites.iter().map(|s| (*s).to_owned()).collect();
    capsule::build(
        signer,
        runner.public_key(),
        BINARY,
        &suites,
        ENCLAVE,
        at(issued),
        at(expires),
    )
    .unwrap()
    .to_json()
}

fn good_capsule() -> Vec<u8> {
    capsule_for(
        &org_key(),
        &edge_key(),
        &["eu-int"],
        NOW - 3600,
        NOW + 90 * 86_400,
    )
}

/// A passing test-result for `suite` at `commit`, signed by `key` under `capsule` in `env`.
fn evidence(key: &SigningKey, capsule: &[u8], commit: &str, suite: &str, env: &str) -> Vec<u8> {
    let mut statement = Statement::for_commit(
        REPOSITORY,
        commit,
        suite,
        TEST_RESULT_V01,
        json!({ "result": "PASSED", "configuration": [], "passedTests": ["eu::works"], "failedTests": [] }),
    );
    capsule::annotate(&mut statement, capsule, env);
    attest(&statement, key).to_json()
}

async fn submit(server: &Server, id: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let response = server
        .client
        .post(format!("{}/v1/proposals/{id}/evidence", server.base))
        .bearer_auth(&server.tokens["runner"])
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

/// Submits `bytes` and expects a logged 422 naming `reason`.
async fn refused(server: &Server, id: &str, bytes: Vec<u8>, reason: &str) {
    let digest = countersign_audit::bundle::digest(&bytes);
    let (status, problem) = submit(server, id, bytes).await;
    assert_eq!(status, 422, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("{reason}:")), "{reason}: {detail}");
    let logged = server
        .store
        .entries_about(id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event().unwrap())
        .filter(|e| e.kind == EventKind::EvidenceRefused && e.data["envelope"] == digest)
        .map(|e| e.data["reasons"][0]["reason"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(logged, [reason], "the refusal is logged with its reason");
}

async fn capsule_evidence_counts(db: &Db) {
    let (server, lab) = start_lab(db).await;
    let id = propose(&server, &lab, &lab.lib).await;
    let (_, plan) = server
        .send(
            reqwest::Method::GET,
            &format!("/v1/proposals/{id}/plan"),
            Some("runner"),
            None,
        )
        .await;
    // A suite only a capsule may attest is required: the proposal waits for it.
    assert_eq!(plan["missing"], json!(["eu-int", "lib-unit"]), "{plan}");
    let (status, accepted) = submit(
        &server,
        &id,
        evidence(&edge_key(), &good_capsule(), &lab.lib, "eu-int", ENCLAVE),
    )
    .await;
    assert_eq!(status, 201, "{accepted}");
    assert_eq!(accepted["suite"], "eu-int");
    assert_eq!(accepted["binds_to"], "head");
    let runner = accepted["runner"].as_str().unwrap();
    assert!(runner.starts_with("capsule:acme-org:"), "{runner}");
    let (_, plan) = server
        .send(
            reqwest::Method::GET,
            &format!("/v1/proposals/{id}/plan"),
            Some("runner"),
            None,
        )
        .await;
    assert_eq!(plan["satisfied"], json!(["eu-int"]), "{plan}");
    assert_eq!(plan["missing"], json!(["lib-unit"]), "{plan}");
    server.stop().await;
}

async fn each_refusal_names_its_reason(db: &Db) {
    let (server, lab) = start_lab(db).await;
    let id = propose(&server, &lab, &lab.lib).await;
    let good = good_capsule();
    // Signed by another key than the capsule's runner key, even a trusted runner's.
    refused(
        &server,
        &id,
        evidence(&ci_key(), &good, &lab.lib, "eu-int", ENCLAVE),
        "capsule_wrong_key",
    )
    .await;
    // Expired before the server's clock (NOW).
    let expired = capsule_for(&org_key(), &edge_key(), &["eu-int"], NOW - 7200, NOW - 1);
    refused(
        &server,
        &id,
        evidence(&edge_key(), &expired, &lab.lib, "eu-int", ENCLAVE),
        "capsule_expired",
    )
    .await;
    // Not issued yet.
    let early = capsule_for(&org_key(), &edge_key(), &["eu-int"], NOW + 60, NOW + 7200);
    refused(
        &server,
        &id,
        evidence(&edge_key(), &early, &lab.lib, "eu-int", ENCLAVE),
        "capsule_not_yet_valid",
    )
    .await;
    // A suite outside the capsule.
    refused(
        &server,
        &id,
        evidence(&edge_key(), &good, &lab.lib, "lib-unit", ENCLAVE),
        "capsule_other_suite",
    )
    .await;
    // Another environment than the capsule's.
    refused(
        &server,
        &id,
        evidence(&edge_key(), &good, &lab.lib, "eu-int", "us-east"),
        "capsule_other_environment",
    )
    .await;
    // A capsule signed by a key the base does not trust for capsules.
    let untrusted = capsule_for(
        &intruder_key(),
        &edge_key(),
        &["eu-int"],
        NOW - 60,
        NOW + 60,
    );
    refused(
        &server,
        &id,
        evidence(&edge_key(), &untrusted, &lab.lib, "eu-int", ENCLAVE),
        "capsule_untrusted_signer",
    )
    .await;
    // A tampered capsule: its payload edited after signing (another suite), the digest
    // recomputed so only the signature can tell.
    let tampered = {
        let mut envelope = Envelope::parse(&good).unwrap();
        let text = String::from_utf8(envelope.payload.clone()).unwrap();
        envelope.payload = text.replace("\"eu-int\"", "\"lib-unit\"").into_bytes();
        envelope.to_json()
    };
    refused(
        &server,
        &id,
        evidence(&edge_key(), &tampered, &lab.lib, "lib-unit", ENCLAVE),
        "capsule_bad_signature",
    )
    .await;
    // The digest the envelope names is not its capsule's.
    let mismatched = {
        let mut statement = Statement::for_commit(
            REPOSITORY,
            &lab.lib,
            "eu-int",
            TEST_RESULT_V01,
            json!({ "result": "PASSED", "configuration": [], "passedTests": ["eu::works"], "failedTests": [] }),
        );
        capsule::annotate(&mut statement, &good, ENCLAVE);
        statement.subject[0]
            .annotations
            .get_mut(CAPSULE_ANNOTATION)
            .unwrap()["digest"] = json!(format!("sha256:{}", "0".repeat(64)));
        attest(&statement, &edge_key()).to_json()
    };
    refused(&server, &id, mismatched, "capsule_digest_mismatch").await;
    // Nothing counted: eu-int is still missing.
    let (_, plan) = server
        .send(
            reqwest::Method::GET,
            &format!("/v1/proposals/{id}/plan"),
            Some("runner"),
            None,
        )
        .await;
    assert_eq!(plan["satisfied"], json!([]), "{plan}");
    server.stop().await;
}

/// A runner key holder cannot widen what it may attest: not by minting its own capsule,
/// not with a capsule listing suites its signer may not delegate, and not by adding a
/// signer to the head's countersign.toml (trust is read from the base).
async fn a_capsule_never_widens_trust(db: &Db) {
    let (server, lab) = start_lab(db).await;
    let id = propose(&server, &lab, &lab.lib).await;
    // Self-minted: the edge key signs its own capsule.
    let own = capsule_for(
        &edge_key(),
        &edge_key(),
        &["eu-int", "lib-unit"],
        NOW - 60,
        NOW + 60,
    );
    refused(
        &server,
        &id,
        evidence(&edge_key(), &own, &lab.lib, "lib-unit", ENCLAVE),
        "capsule_untrusted_signer",
    )
    .await;
    // The trusted signer names a suite its base entry does not let it delegate.
    let wide = capsule_for(
        &org_key(),
        &edge_key(),
        &["eu-int", "lib-unit"],
        NOW - 60,
        NOW + 60,
    );
    refused(
        &server,
        &id,
        evidence(&edge_key(), &wide, &lab.lib, "lib-unit", ENCLAVE),
        "capsule_not_delegated",
    )
    .await;
    // The head's config trusts the intruder; the base's does not.
    let widened = propose(&server, &lab, &lab.lib_and_config).await;
    let intruders = capsule_for(
        &intruder_key(),
        &edge_key(),
        &["eu-int"],
        NOW - 60,
        NOW + 60,
    );
    refused(
        &server,
        &widened,
        evidence(
            &edge_key(),
            &intruders,
            &lab.lib_and_config,
            "eu-int",
            ENCLAVE,
        ),
        "capsule_untrusted_signer",
    )
    .await;
    server.stop().await;
}

on_both_backends!(
    capsule_evidence_counts,
    each_refusal_names_its_reason,
    a_capsule_never_widens_trust,
);
