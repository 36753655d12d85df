//! Durability of the real `countersign serve`, on SQLite and on PostgreSQL: a `kill -9` in
//! the middle of a load run loses no acknowledged proposal and leaves `countersign log
//! verify` green.
//!
//! The server is the binary as shipped, a child process on 127.0.0.1:0. Clients POST
//! proposals concurrently and keep the id of every `201`; while they run, the CLI signs a
//! checkpoint over the same database (a second process); then the server is killed with
//! SIGKILL, no shutdown of any kind. A restarted server on the same database must show every
//! acknowledged proposal, and the log must verify against the checkpoint signed before the
//! crash and against a fresh one. Bounded: a few hundred requests or a few seconds.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::*;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use countersign_repo::RepoWriter;
use serde_json::{Value, json};

/// Requests are stopped by the kill well before this; it only bounds a broken run.
const MAX_REQUESTS_PER_CLIENT: usize = 400;
const CLIENTS: usize = 16;

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

const CATALOG: &str = "apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team-shop
spec:
  type: team
  children: []
  members: [alice, bob]
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: shop
  annotations:
    countersign.dev/paths: /shop/**
spec:
  type: website
  lifecycle: production
  owner: team-shop
";

/// A serving child, SIGKILLed when dropped so a failing test leaves no server behind.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The serving child and the address it printed. Its log key is `key` (by default it
/// would be written under the working directory: the source tree).
fn serve(database: &str, repo: &Path, key: &Path) -> (Serving, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            database,
            "--repo",
            &format!("shop={}", repo.display()),
            "--log-key",
            s(key),
        ])
        .env_remove("COUNTERSIGN_DATABASE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("the server prints its address before anything else")
            .unwrap();
        if let Some(url) = line.strip_prefix("countersign serving on ") {
            break url.trim().to_owned();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (Serving(child), address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_load_loses_no_acknowledged_proposal_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("server.db").display()
    );
    kill_9_mid_load(&dir, &database).await;
}

/// On PostgreSQL a new proposal's write runs without a savepoint, in batches of many: the
/// connections of the killed process die with their open batch, which PostgreSQL rolls
/// back whole, and nothing it rolls back was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_load_loses_no_acknowledged_proposal_postgres() {
    let Some(schema) = countersign_testdb::PgSchema::create("kill9").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    kill_9_mid_load(&dir, &schema.url).await;
    schema.drop_schema().await;
}

async fn kill_9_mid_load(dir: &tempfile::TempDir, database: &str) {
    let repo = dir.path().join("shop");
    let mut w = RepoWriter::init(&repo).unwrap();
    w.commit(
        [
            ("catalog-info.yaml", Some(CATALOG)),
            ("shop/index.html", Some("<html></html>\n")),
        ],
        "base",
        ALICE,
        TIME,
    )
    .unwrap();
    let base = w.head().unwrap();
    let heads: Vec<String> = (0..8)
        .map(|i| {
            w.commit_on(
                &format!("refs/heads/change-{i}"),
                &base,
                [(format!("shop/page{i}.html"), Some(format!("<p>{i}</p>\n")))],
                "change",
                ALICE,
                TIME + 1 + i,
            )
            .unwrap()
            .as_str()
            .to_owned()
        })
        .collect();
    let base = base.as_str().to_owned();

    let token = ok(countersign(&[
        "token",
        "create",
        "--principal",
        "agent:fixbot",
        "--role",
        "proposer",
        "--database",
        database,
    ]));
    let token = token
        .split_whitespace()
        .find(|w| w.starts_with("cst_"))
        .unwrap_or_else(|| panic!("no token printed: {token}"))
        .to_owned();
    let key = dir.path().join("log.key");
    ok(countersign(&[
        "log",
        "keygen",
        "--origin",
        "countersign.test/kill9",
        "--out",
        s(&key),
    ]));
    let public = dir.path().join("log.pub");

    let (mut server, address) = serve(database, &repo, &key);
    let client = reqwest::Client::new();
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let deadline = Instant::now() + Duration::from_secs(20);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (client, address, token, base, heads, acknowledged) = (
                client.clone(),
                address.clone(),
                token.clone(),
                base.clone(),
                heads.clone(),
                acknowledged.clone(),
            );
            tokio::spawn(async move {
                for n in 0..MAX_REQUESTS_PER_CLIENT {
                    if Instant::now() > deadline {
                        return;
                    }
                    let body = json!({
                        "repo": "shop", "base": base, "head": heads[(c + n) % heads.len()],
                        "title": format!("client {c} request {n}"),
                    });
                    let response = client
                        .post(format!("{address}/v1/proposals"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await;
                    // After the kill: refused connections or a cut-off response, never a 201.
                    let Ok(response) = response else { return };
                    if response.status() != 201 {
                        return;
                    }
                    let Ok(proposal) = response.json::<Value>().await else {
                        return;
                    };
                    acknowledged
                        .lock()
                        .unwrap()
                        .push(proposal["id"].as_str().unwrap().to_owned());
                }
            })
        })
        .collect();

    // Let the load run, sign a checkpoint from another process meanwhile, then kill.
    let acked = || acknowledged.lock().unwrap().len();
    while acked() < 40 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ok(countersign(&[
        "log",
        "checkpoint",
        "--database",
        database,
        "--key",
        s(&key),
    ]));
    let at_checkpoint = acked();
    while acked() < at_checkpoint + 40 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.0.kill().unwrap(); // SIGKILL
    server.0.wait().unwrap();
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 80,
        "the load did not run: {} acknowledged",
        acknowledged.len()
    );

    // Restarted on the same database: every acknowledged proposal is there, with its decision.
    let (restarted, address) = serve(database, &repo, &key);
    for id in &acknowledged {
        let response = client
            .get(format!("{address}/v1/proposals/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "acknowledged {id} was lost");
        let proposal: Value = response.json().await.unwrap();
        assert_eq!(proposal["id"], id.as_str());
        assert!(proposal["decision"]["tier"].is_string(), "{proposal}");
    }
    drop(restarted);

    // The log extends the checkpoint signed before the crash, and a fresh one verifies too.
    let verified = ok(countersign(&[
        "log",
        "verify",
        "--database",
        database,
        "--log-key",
        s(&public),
    ]));
    assert!(verified.starts_with("log verified:"), "{verified}");
    ok(countersign(&[
        "log",
        "checkpoint",
        "--database",
        database,
        "--key",
        s(&key),
    ]));
    let verified = ok(countersign(&[
        "log",
        "verify",
        "--database",
        database,
        "--log-key",
        s(&public),
    ]));
    // Each proposal logs at least `proposed` and `decided`.
    let size: usize = verified
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output: {verified}"));
    eprintln!(
        "{} proposals acknowledged before the kill ({at_checkpoint} before the checkpoint), {size} log entries after restart",
        acknowledged.len()
    );
    assert!(
        size >= 2 * acknowledged.len(),
        "{size} entries for {} acknowledged proposals",
        acknowledged.len()
    );
}
