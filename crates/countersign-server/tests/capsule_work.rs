//! Capsule work on the server: a planned suite that a `[[capsules.signers]]` entry of the
//! BASE delegates is queued like any other (for proposals and for a protected branch's
//! schedule), and leased only by a runner that presents a capsule covering it, with its
//! runner key's proof that the capsule is this token's. The capsule is judged on every
//! lease: the proof, the server's clock, the environment, a signer of the repository's
//! protected tip delegating it; and an item is leased only when its own base named that
//! signer. Each refusal is a 403 problem naming its reason; a refusal leases nothing. Every
//! scenario on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ALICE, Db, NOW, Server, log_signer, start_with};
use countersign_evidence::attest;
use countersign_evidence::capsule::{self, sha256_hex};
use countersign_evidence::dsse::{Envelope, SigningKey};
use countersign_evidence::statement::{Statement, TEST_RESULT_V01};
use countersign_policy::Principal;
use countersign_repo::{CommitId, RepoWriter};
use countersign_server::{AppState, ManualClock, Role, create_token, tick_schedules};
use reqwest::{Method as M, StatusCode};
use serde_json::{Value, json};

const REPOSITORY: &str = "github.com/acme/lab";
const OTHER: &str = "github.com/acme/other";
const ENCLAVE: &str = "eu-enclave";
const BINARY: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// `lib` plans `lib-unit` (the `ci` runner's) and `eu-int`, `eu-b` (only capsules');
/// `enclave` plans `eu-int` alone.
const CATALOG: &str = r#"apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team-lab
spec:
  type: team
  children: []
  members: [alice]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: alice
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
    countersign.dev/suites: lib-unit, eu-int, eu-b
spec:
  type: library
  lifecycle: production
  owner: team-lab
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: enclave
  annotations:
    countersign.dev/criticality: low
    countersign.dev/paths: /enclave/**
    countersign.dev/suites: eu-int
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
fn late_key() -> SigningKey {
    SigningKey::from_seed(&[21; 32])
}
fn other_org_key() -> SigningKey {
    SigningKey::from_seed(&[31; 32])
}
fn edge_key() -> SigningKey {
    SigningKey::from_seed(&[9; 32])
}
fn thief_key() -> SigningKey {
    SigningKey::from_seed(&[13; 32])
}

/// The config of repository `name`: the `ci` runner for `lib-unit`, each of `signers`
/// delegating `eu-int` and `eu-b` in the enclave, the three suites defined, and `extra`.
fn config(name: &str, signers: &[(&str, &SigningKey)], extra: &str) -> String {
    let mut text = format!(
        "[repository]\nname = \"{name}\"\n\n[[runners]]\nname = \"ci\"\npublic_key = \"{}\"\nsuites = [\"lib-unit\"]\n",
        ci_key().public_key().to_hex(),
    );
    for (signer, key) in signers {
        text.push_str(&format!(
            "\n[[capsules.signers]]\nname = \"{signer}\"\npublic_key = \"{}\"\nsuites = [\"eu-int\", \"eu-b\"]\nenvironments = [\"{ENCLAVE}\"]\n",
            key.public_key().to_hex()
        ));
    }
    text.push_str(&format!(
        "\n[suites.lib-unit]\ncommand = [\"true\"]\n\n[suites.eu-int]\ncommand = [\"true\"]\nenvironments = [\"{ENCLAVE}\"]\n\n[suites.eu-b]\ncommand = [\"true\"]\nenvironments = [\"{ENCLAVE}\"]\n{extra}"
    ));
    text
}

struct Lab {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    base: String,
    lib: String,
    enclave: String,
}

fn lab(name: &str, signers: &[(&str, &SigningKey)], extra: &str) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let mut w = RepoWriter::init(dir.path()).unwrap();
    let text = config(name, signers, extra);
    w.commit(
        [
            ("countersign.toml", Some(text.as_str())),
            ("catalog-info.yaml", Some(CATALOG)),
            ("lib/src.rs", Some("pub fn add() {}\n")),
            ("enclave/src.rs", Some("pub fn seal() {}\n")),
        ],
        "base",
        ALICE,
        NOW as i64,
    )
    .unwrap();
    let base = w.head().unwrap();
    let mut change = |branch: &str, path: &str, text: &str, n: i64| {
        w.commit_on(
            branch,
            &base,
            [(path, Some(text))],
            "change",
            ALICE,
            NOW as i64 + n,
        )
        .unwrap()
    };
    let lib = change("refs/heads/lib", "lib/src.rs", "pub fn add() { 1 }\n", 1);
    let enclave = change(
        "refs/heads/enclave",
        "enclave/src.rs",
        "pub fn seal() { 1 }\n",
        2,
    );
    let hex = |c: CommitId| c.as_str().to_owned();
    Lab {
        path: dir.path().to_owned(),
        _dir: dir,
        base: hex(base),
        lib: hex(lib),
        enclave: hex(enclave),
    }
}

/// The server with `lab` as `lab` (and `others` beside it), its clock `clock`, the runner
/// tokens `edge`, `thief` and `ci`; and its state, to tick schedules by hand.
async fn start_lab(
    db: &Db,
    clock: &ManualClock,
    lab: &Lab,
    others: &[(&str, &Lab)],
) -> (Server, AppState) {
    let mut repos = vec![("lab".to_owned(), lab.path.clone())];
    repos.extend(
        others
            .iter()
            .map(|(n, l)| ((*n).to_owned(), l.path.clone())),
    );
    let clock = clock.clone();
    let kept = Arc::new(Mutex::new(None));
    let keep = Arc::clone(&kept);
    let mut server = start_with(db, move |mut state| {
        for (name, path) in repos {
            Arc::make_mut(&mut state.repos).insert(name, path);
        }
        state.clock = clock.clock();
        let state = state
            .with_log_signer(log_signer())
            .with_lease(Duration::from_secs(60));
        *keep.lock().unwrap() = Some(state.clone());
        state
    })
    .await;
    for (i, name) in ["edge", "thief", "ci"].into_iter().enumerate() {
        let principal: Principal = format!("runner:{name}").parse().unwrap();
        let mut secret = [0xC7; 32];
        secret[1] = u8::try_from(i).unwrap();
        let (text, _) = create_token(
            &server.store,
            &principal,
            Role::Runner,
            NOW as i64 + 864_000,
            secret,
        )
        .await
        .unwrap();
        server.tokens.insert(name, text);
    }
    let state = kept.lock().unwrap().take().unwrap();
    (server, state)
}

async fn propose(server: &Server, base: &str, head: &str) -> String {
    let body = json!({ "repo": "lab", "base": base, "head": head, "title": "change" });
    let (status, view) = server
        .send(M::POST, "/v1/proposals", Some("fixbot"), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    view["id"].as_str().unwrap().to_owned()
}

/// A capsule signed by `signer` for `runner`'s key, for `suites` in the enclave, valid from
/// `issued` to `expires` (Unix seconds).
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

/// The edge runner's capsule: `org` delegates `eu-int` to the edge key for a day.
fn good_capsule() -> Vec<u8> {
    capsule_for(
        &org_key(),
        &edge_key(),
        &["eu-int"],
        NOW - 3600,
        NOW + 86_400,
    )
}

/// The `capsule` of a lease request: `capsule` with `key`'s proof for the token of `token`.
fn presented(server: &Server, token: &str, capsule: &[u8], key: &SigningKey) -> Value {
    let token_sha256 = sha256_hex(server.tokens[token].as_bytes());
    let (envelope, proof) = capsule::lease_fields(capsule, key, &token_sha256);
    json!({ "envelope": envelope, "proof": proof })
}

async fn lease_as(
    server: &Server,
    token: &str,
    repository: &str,
    envs: &[&str],
    capsule: Option<Value>,
) -> (StatusCode, Value) {
    let mut body = json!({ "repository": repository, "environments": envs, "max": 16 });
    if let Some(capsule) = capsule {
        body["capsule"] = capsule;
    }
    server
        .send(M::POST, "/v1/work/lease", Some(token), Some(body))
        .await
}

async fn lease(
    server: &Server,
    token: &str,
    envs: &[&str],
    capsule: Option<Value>,
) -> (StatusCode, Value) {
    lease_as(server, token, REPOSITORY, envs, capsule).await
}

/// The suites of the leased items, sorted.
fn suites(leased: &Value) -> Vec<String> {
    let mut suites: Vec<String> = leased["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{leased}"))
        .iter()
        .map(|i| i["suite"].as_str().unwrap().to_owned())
        .collect();
    suites.sort();
    suites
}

/// Leases as `token` with `capsule` and expects a 403 naming `reason`.
async fn refused(server: &Server, token: &str, envs: &[&str], capsule: Value, reason: &str) {
    let (status, problem) = lease(server, token, envs, Some(capsule)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reason}: {problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("capsule refused ({reason})")),
        "{reason}: {detail}"
    );
}

async fn queued(server: &Server, query: &str) -> Vec<(String, String)> {
    let (status, list) = server
        .send(M::GET, &format!("/v1/runs{query}"), Some("auditor"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let mut runs: Vec<(String, String)> = list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "queued")
        .map(|r| {
            (
                r["suite"].as_str().unwrap().to_owned(),
                r["environment"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    runs.sort();
    runs
}

/// Every way to lease capsule work without holding a covering capsule is refused, naming
/// why, and leases nothing; the capsule's holder leases exactly what it covers.
async fn only_a_proven_capsule_leases_capsule_work(db: &Db) {
    let clock = ManualClock::new(NOW);
    let lab = lab(REPOSITORY, &[("acme-org", &org_key())], "");
    let (server, _) = start_lab(db, &clock, &lab, &[]).await;
    let id = propose(&server, &lab.base, &lab.lib).await;
    let all = vec![
        ("eu-b".to_owned(), ENCLAVE.to_owned()),
        ("eu-int".to_owned(), ENCLAVE.to_owned()),
        ("lib-unit".to_owned(), "default".to_owned()),
    ];
    // Capsule-delegable suites are queued too.
    assert_eq!(queued(&server, &format!("?proposal={id}")).await, all);

    // Without a capsule, capsule work is nobody's: not a listed runner's, not the edge's.
    for token in ["ci", "edge"] {
        let (status, got) = lease(&server, token, &[ENCLAVE], None).await;
        assert_eq!(status, StatusCode::OK, "{got}");
        assert!(suites(&got).is_empty(), "{token}: {got}");
    }

    let good = good_capsule();
    // A capsule is public (every envelope carries it): another runner's token replaying
    // the edge's capsule with the edge's own proof (made for the edge's token) ...
    let replayed = presented(&server, "edge", &good, &edge_key());
    refused(&server, "thief", &[ENCLAVE], replayed, "capsule_unproven").await;
    // ... or signing the proof with its own key is refused.
    let own_proof = presented(&server, "thief", &good, &thief_key());
    refused(&server, "thief", &[ENCLAVE], own_proof, "capsule_unproven").await;
    // A proof made for another capsule does not carry over.
    let wide = capsule_for(
        &org_key(),
        &edge_key(),
        &["eu-int", "eu-b"],
        NOW - 60,
        NOW + 60,
    );
    let mut swapped = presented(&server, "edge", &wide, &edge_key());
    swapped["envelope"] = presented(&server, "edge", &good, &edge_key())["envelope"].clone();
    refused(&server, "edge", &[ENCLAVE], swapped, "capsule_unproven").await;
    // A forged capsule: its suites edited after signing, proved by its runner key.
    let forged = {
        let mut envelope = Envelope::parse(&good).unwrap();
        let text = String::from_utf8(envelope.payload.clone()).unwrap();
        envelope.payload = text.replace("\"eu-int\"", "\"eu-b\"").into_bytes();
        envelope.to_json()
    };
    let forged = presented(&server, "edge", &forged, &edge_key());
    refused(&server, "edge", &[ENCLAVE], forged, "capsule_bad_signature").await;
    // Self-minted: the edge key signs its own capsule.
    let own = capsule_for(&edge_key(), &edge_key(), &["eu-int"], NOW - 60, NOW + 60);
    let own = presented(&server, "edge", &own, &edge_key());
    refused(&server, "edge", &[ENCLAVE], own, "capsule_untrusted_signer").await;
    // Out of its validity window on the server's clock.
    let expired = capsule_for(&org_key(), &edge_key(), &["eu-int"], NOW - 7200, NOW - 1);
    let expired = presented(&server, "edge", &expired, &edge_key());
    refused(&server, "edge", &[ENCLAVE], expired, "capsule_expired").await;
    let early = capsule_for(&org_key(), &edge_key(), &["eu-int"], NOW + 60, NOW + 7200);
    let early = presented(&server, "edge", &early, &edge_key());
    refused(&server, "edge", &[ENCLAVE], early, "capsule_not_yet_valid").await;
    // Another environment than the capsule's (the capsule opens nothing there).
    let elsewhere = presented(&server, "edge", &good, &edge_key());
    refused(
        &server,
        "edge",
        &["default"],
        elsewhere,
        "capsule_other_environment",
    )
    .await;
    // A trusted signer naming only a suite its entry may not delegate.
    let undelegated = capsule_for(&org_key(), &edge_key(), &["lib-unit"], NOW - 60, NOW + 60);
    let undelegated = presented(&server, "edge", &undelegated, &edge_key());
    refused(
        &server,
        "edge",
        &[ENCLAVE],
        undelegated,
        "capsule_not_delegated",
    )
    .await;
    // Not a capsule at all.
    let (status, problem) = lease(
        &server,
        "edge",
        &[ENCLAVE],
        Some(json!({ "envelope": "%%%", "proof": "" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    // No refusal leased anything.
    assert_eq!(queued(&server, &format!("?proposal={id}")).await, all);

    // The holder of the capsule for `eu-int` leases `eu-int`: never `eu-b` (delegable, but
    // not in its capsule), never `lib-unit` (a runner's).
    let (status, got) = lease(
        &server,
        "edge",
        &[ENCLAVE],
        Some(presented(&server, "edge", &good, &edge_key())),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(suites(&got), ["eu-int"]);
    assert_eq!(got["items"][0]["proposal"], json!(id));
    let (_, again) = lease(
        &server,
        "edge",
        &[ENCLAVE],
        Some(presented(&server, "edge", &good, &edge_key())),
    )
    .await;
    assert!(suites(&again).is_empty(), "{again}");
    // The listed runner still leases its own, and only its own.
    let (_, ci) = lease(&server, "ci", &["default"], None).await;
    assert_eq!(suites(&ci), ["lib-unit"]);
    // The run's start is logged with the capsule it was leased under.
    let run = got["items"][0]["id"].as_str().unwrap();
    let started: Vec<Value> = server
        .store
        .entries_about(run)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event().unwrap())
        .filter(|e| e.kind == countersign_audit::EventKind::RunStarted)
        .map(|e| e.data)
        .collect();
    assert_eq!(
        started[0]["capsule"],
        json!(format!("sha256:{}", sha256_hex(&good)))
    );
    // A day later the same capsule has expired: judged again on every lease.
    clock.advance(Duration::from_secs(86_400));
    let stale = presented(&server, "edge", &good, &edge_key());
    refused(&server, "edge", &[ENCLAVE], stale, "capsule_expired").await;
    server.stop().await;
}

/// Trust is the base's: a capsule signed for another repository leases nothing here, a
/// signer removed from the protected tip leases nothing any more, and a signer added there
/// later leases only the items whose own base delegated to it.
async fn trust_is_the_base_s(db: &Db) {
    let clock = ManualClock::new(NOW);
    let other = lab(OTHER, &[("other-org", &other_org_key())], "");
    let lab = lab(REPOSITORY, &[("acme-org", &org_key())], "");
    let (server, _) = start_lab(db, &clock, &lab, &[("other", &other)]).await;
    let old = propose(&server, &lab.base, &lab.lib).await;

    // A capsule the other repository's signer made, presented for this repository.
    let foreign = capsule_for(
        &other_org_key(),
        &edge_key(),
        &["eu-int"],
        NOW - 60,
        NOW + 86_400,
    );
    let foreign_lease = presented(&server, "edge", &foreign, &edge_key());
    refused(
        &server,
        "edge",
        &[ENCLAVE],
        foreign_lease,
        "capsule_untrusted_signer",
    )
    .await;
    // This repository's capsule, presented for the other repository.
    let (status, problem) = lease_as(
        &server,
        "edge",
        OTHER,
        &[ENCLAVE],
        Some(presented(&server, "edge", &good_capsule(), &edge_key())),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("capsule_untrusted_signer"),
        "{problem}"
    );

    // Main replaces acme-org by late-org.
    let mut w = RepoWriter::open(&lab.path).unwrap();
    let replaced = config(REPOSITORY, &[("late-org", &late_key())], "");
    w.commit(
        [("countersign.toml", Some(replaced.as_str()))],
        "acme-org no longer signs capsules",
        ALICE,
        NOW as i64 + 10,
    )
    .unwrap();
    let new_base = w.head().unwrap().as_str().to_owned();
    let removed = presented(&server, "edge", &good_capsule(), &edge_key());
    refused(
        &server,
        "edge",
        &[ENCLAVE],
        removed,
        "capsule_untrusted_signer",
    )
    .await;
    // late-org is trusted now, but the old proposal's base never delegated to it.
    let late = capsule_for(
        &late_key(),
        &edge_key(),
        &["eu-int"],
        NOW - 60,
        NOW + 86_400,
    );
    let (status, got) = lease(
        &server,
        "edge",
        &[ENCLAVE],
        Some(presented(&server, "edge", &late, &edge_key())),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert!(suites(&got).is_empty(), "{got}");
    assert!(
        queued(&server, &format!("?proposal={old}"))
            .await
            .contains(&("eu-int".to_owned(), ENCLAVE.to_owned()))
    );
    // A proposal on the new base delegates to late-org.
    let change = {
        let base = CommitId::from_hex(&new_base).unwrap();
        w.commit_on(
            "refs/heads/late",
            &base,
            [("enclave/src.rs", Some("pub fn seal() { 2 }\n"))],
            "change",
            ALICE,
            NOW as i64 + 11,
        )
        .unwrap()
        .as_str()
        .to_owned()
    };
    let new = propose(&server, &new_base, &change).await;
    let (_, got) = lease(
        &server,
        "edge",
        &[ENCLAVE],
        Some(presented(&server, "edge", &late, &edge_key())),
    )
    .await;
    assert_eq!(suites(&got), ["eu-int"]);
    assert_eq!(got["items"][0]["proposal"], json!(new));
    server.stop().await;
}

/// A passing test-result for `suite` at `commit`, signed by the edge key under `capsule`.
fn evidence(capsule: &[u8], commit: &str, suite: &str) -> Vec<u8> {
    let mut statement = Statement::for_commit(
        REPOSITORY,
        commit,
        suite,
        TEST_RESULT_V01,
        json!({ "result": "PASSED", "configuration": [], "passedTests": ["eu::works"], "failedTests": [] }),
    );
    capsule::annotate(&mut statement, capsule, ENCLAVE);
    attest(&statement, &edge_key()).to_json()
}

/// The happy path: a proposal whose only planned suite only a capsule may attest is queued,
/// leased by the capsule runner, its evidence accepted and the decision re-derived; the run
/// finishes.
async fn a_capsule_runner_supplies_a_capsule_only_plan(db: &Db) {
    let clock = ManualClock::new(NOW);
    let lab = lab(REPOSITORY, &[("acme-org", &org_key())], "");
    let (server, _) = start_lab(db, &clock, &lab, &[]).await;
    let id = propose(&server, &lab.base, &lab.enclave).await;
    let (_, view) = server
        .send(
            M::GET,
            &format!("/v1/proposals/{id}"),
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(view["state"], "awaiting_evidence", "{view}");
    let good = good_capsule();
    let (status, got) = lease(
        &server,
        "edge",
        &[ENCLAVE],
        Some(presented(&server, "edge", &good, &edge_key())),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(suites(&got), ["eu-int"]);
    let item = &got["items"][0];
    let run = item["id"].as_str().unwrap();
    let bytes = evidence(&good, &lab.enclave, "eu-int");
    let digest = sha256_hex(&bytes);
    let response = server
        .client
        .post(format!("{}/v1/proposals/{id}/evidence", server.base))
        .bearer_auth(&server.tokens["edge"])
        .header("content-type", "application/json")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["recorded"], true, "{accepted}");
    assert!(
        accepted["runner"]
            .as_str()
            .unwrap()
            .starts_with("capsule:acme-org:"),
        "{accepted}"
    );
    assert_ne!(
        accepted["proposal"]["state"], "awaiting_evidence",
        "the decision is re-derived with the evidence: {accepted}"
    );
    let (_, plan) = server
        .send(
            M::GET,
            &format!("/v1/proposals/{id}/plan"),
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(plan["missing"], json!([]), "{plan}");
    assert_eq!(plan["satisfied"], json!(["eu-int"]), "{plan}");
    let (status, finished) = server
        .send(
            M::POST,
            &format!("/v1/work/{run}/finish"),
            Some("edge"),
            Some(json!({
                "attempt": item["attempt"],
                "outcome": "passed",
                "tests": { "passed": 1, "failed": 0 },
                "envelopes": [digest],
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{finished}");
    assert_eq!(finished["outcome"], "passed");
    assert_eq!(finished["runner"], "runner:edge");
    server.stop().await;
}

/// A protected branch's schedule queues a capsule-only suite too, for the capsule's holder.
async fn a_schedule_queues_capsule_work(db: &Db) {
    let clock = ManualClock::new(NOW + 120);
    let schedule =
        "\n[schedules.minutely]\ncron = \"* * * * *\"\nbranch = \"main\"\nsuites = [\"eu-int\"]\n";
    let lab = lab(REPOSITORY, &[("acme-org", &org_key())], schedule);
    let (server, state) = start_lab(db, &clock, &lab, &[]).await;
    tick_schedules(&state).await.unwrap();
    assert_eq!(
        queued(&server, "?branch=main").await,
        [("eu-int".to_owned(), ENCLAVE.to_owned())]
    );
    let (_, nothing) = lease(&server, "ci", &[ENCLAVE], None).await;
    assert!(suites(&nothing).is_empty(), "{nothing}");
    let (status, got) = lease(
        &server,
        "edge",
        &[ENCLAVE],
        Some(presented(&server, "edge", &good_capsule(), &edge_key())),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(suites(&got), ["eu-int"]);
    assert_eq!(got["items"][0]["branch"], "main");
    server.stop().await;
}

on_both_backends!(
    only_a_proven_capsule_leases_capsule_work,
    trust_is_the_base_s,
    a_capsule_runner_supplies_a_capsule_only_plan,
    a_schedule_queues_capsule_work,
);
