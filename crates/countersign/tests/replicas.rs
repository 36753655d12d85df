//! Two `countersign serve` processes on one database, as replicas run: a token revoked
//! through either is refused by both at once, and a server whose log key is not the log's
//! refuses to start. SQLite file and PostgreSQL (a schema of the test's own).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::Value;

/// A `serve` process and the address it listens on.
struct Serve {
    child: Child,
    url: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_command(dir: &Path, database: &str, key: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_countersign"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
        .arg("--log-key")
        .arg(key)
        .current_dir(dir)
        .env_remove("COUNTERSIGN_DATABASE")
        .env_remove("COUNTERSIGN_LOG_KEY")
        .stderr(Stdio::piped());
    command
}

/// Starts `serve` in `dir` with log key `key` and waits until it listens.
fn serve(dir: &Path, database: &str, key: &Path) -> Serve {
    let mut child = serve_command(dir, database, key).spawn().unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if let Some(url) = line.strip_prefix("countersign serving on ") {
            return Serve {
                child,
                url: url.trim().to_owned(),
            };
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("serve did not start: {seen}");
}

fn keygen(dir: &Path, name: &str, origin: &str) -> std::path::PathBuf {
    let key = dir.join(format!("{name}.key"));
    ok(countersign(&[
        "log",
        "keygen",
        "--origin",
        origin,
        "--out",
        key.to_str().unwrap(),
    ]));
    key
}

/// `token create`: the token text and its id (from the message on stderr).
fn token(database: &str, principal: &str, role: &str) -> (String, String) {
    let output = countersign(&[
        "token",
        "create",
        "--principal",
        principal,
        "--role",
        role,
        "--database",
        database,
    ]);
    let said = stderr(&output);
    let id = said
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{said}"))
        .to_owned();
    (ok(output).trim().to_owned(), id)
}

async fn status(client: &reqwest::Client, url: &str, token: &str) -> u16 {
    client
        .get(format!("{url}/v1/log/entries?start=0&end=0"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn token_revocation_holds_on_every_replica(database: &str) {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "log", "countersign.test/replicas");
    let (admin, _) = token(database, "human:root", "admin");
    let (approver, approver_id) = token(database, "human:dave", "approver");
    let (runner, runner_id) = token(database, "runner:ci", "runner");
    let (auditor, auditor_id) = token(database, "human:audrey", "auditor");
    let a = serve(dir.path(), database, &key);
    let b = serve(dir.path(), database, &key);
    let client = reqwest::Client::new();
    for url in [&a.url, &b.url] {
        assert_eq!(status(&client, url, &approver).await, 200);
        assert_eq!(status(&client, url, &auditor).await, 200);
    }

    // The list shows ids, principals, roles; never a secret.
    let listed = ok(countersign(&["token", "list", "--database", database]));
    for id in [&approver_id, &runner_id, &auditor_id] {
        assert!(listed.contains(id.as_str()), "{listed}");
    }
    assert!(!listed.contains("cst_"), "a secret was printed: {listed}");
    let response = client
        .get(format!("{}/v1/tokens", b.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(
        body.contains(&approver_id) && !body.contains("cst_"),
        "{body}"
    );
    // Admins only.
    let response = client
        .get(format!("{}/v1/tokens", a.url))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let response = client
        .delete(format!("{}/v1/tokens/{approver_id}", a.url))
        .bearer_auth(&approver)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    // Revoked on A through the API: refused by A and B on the very next request.
    let response = client
        .delete(format!("{}/v1/tokens/{approver_id}", a.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let revoked: Value = response.json().await.unwrap();
    assert_eq!(revoked["revoked"], true, "{revoked}");
    for url in [&a.url, &b.url] {
        assert_eq!(status(&client, url, &approver).await, 401, "{url}");
        assert_eq!(status(&client, url, &auditor).await, 200, "{url}");
    }
    // An unknown id is a 404 problem.
    let response = client
        .delete(format!("{}/v1/tokens/t-0000000000000000", b.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );

    // Revoked with the CLI, against the database: refused by both servers at once.
    ok(countersign(&[
        "token",
        "revoke",
        &auditor_id,
        "--actor",
        "human:root",
        "--database",
        database,
    ]));
    for url in [&a.url, &b.url] {
        assert_eq!(status(&client, url, &auditor).await, 401, "{url}");
        // Not revoked: still authenticated (a runner may not read the log: 403, not 401).
        assert_eq!(status(&client, url, &runner).await, 403, "{url}");
    }
    let unknown = countersign(&["token", "revoke", "t-nope", "--database", database]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("no token t-nope"),
        "{}",
        stderr(&unknown)
    );
    let listed = ok(countersign(&["token", "list", "--database", database]));
    let line = |id: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} not in {listed}"))
            .to_owned()
    };
    assert!(line(&approver_id).ends_with("revoked"), "{listed}");
    assert!(line(&auditor_id).ends_with("revoked"), "{listed}");
    assert!(line(&runner_id).ends_with("active"), "{listed}");

    // Each revocation is an event of the audit log, by whoever revoked, once.
    let response = client
        .get(format!("{}/v1/log/entries?start=0", a.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let page: Value = response.json().await.unwrap();
    let revocations: Vec<Value> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str::<Value>(e["leaf"].as_str().unwrap()).unwrap())
        .filter(|event| event["kind"] == "token_revoked")
        .collect();
    assert_eq!(revocations.len(), 2, "{revocations:?}");
    assert_eq!(revocations[0]["subject"], approver_id.as_str());
    assert_eq!(revocations[0]["actor"], "human:root");
    assert_eq!(revocations[1]["subject"], auditor_id.as_str());
    assert_eq!(revocations[1]["actor"], "human:root");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_at_once_by_every_replica_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("shared.db").display()
    );
    token_revocation_holds_on_every_replica(&database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_at_once_by_every_replica_postgres() {
    let Some(schema) = countersign_testdb::PgSchema::create("replica_tokens").await else {
        return;
    };
    token_revocation_holds_on_every_replica(&schema.url).await;
    schema.drop_schema().await;
}

async fn a_second_key_is_refused(database: &str) {
    let dir = tempfile::tempdir().unwrap();
    let first = keygen(dir.path(), "first", "countersign.test/replicas");
    let second = keygen(dir.path(), "second", "countersign.test/replicas");
    let a = serve(dir.path(), database, &first);
    // The same key starts beside it, and after it.
    let b = serve(dir.path(), database, &first);
    drop(b);
    let refused = serve_command(dir.path(), database, &second)
        .output()
        .unwrap();
    assert!(!refused.status.success(), "a second key was accepted");
    let said = stderr(&refused);
    let id = |key: &Path| {
        let verifier = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let parts: Vec<&str> = verifier.trim().split('+').collect();
        format!("{}+{}", parts[0], parts[1])
    };
    assert!(said.contains(&id(&first)), "{said}");
    assert!(said.contains(&id(&second)), "{said}");
    assert!(said.contains("--log-key"), "{said}");
    assert!(!said.contains("countersign serving on"), "{said}");
    // Nor does a checkpoint signed from the command line with the other key.
    let checkpoint = countersign(&[
        "log",
        "checkpoint",
        "--database",
        database,
        "--key",
        second.to_str().unwrap(),
    ]);
    assert!(!checkpoint.status.success());
    assert!(
        stderr(&checkpoint).contains("sign its checkpoints with the key the server recorded"),
        "{}",
        stderr(&checkpoint)
    );
    ok(countersign(&[
        "log",
        "checkpoint",
        "--database",
        database,
        "--key",
        first.to_str().unwrap(),
    ]));
    // The first server goes on serving under its key.
    let key = reqwest::Client::new()
        .get(format!("{}/v1/log/key", a.url))
        .bearer_auth(token(database, "human:audrey", "auditor").0)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(key.starts_with(&id(&first)), "{key}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_another_log_key_refuses_to_start_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("shared.db").display()
    );
    a_second_key_is_refused(&database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_another_log_key_refuses_to_start_postgres() {
    let Some(schema) = countersign_testdb::PgSchema::create("replica_keys").await else {
        return;
    };
    a_second_key_is_refused(&schema.url).await;
    schema.drop_schema().await;
}
