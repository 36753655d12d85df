//! The fleet on the server: a proposal's plan queued as work items (only suites with a
//! `[suites]` entry that some runner may attest), leases given to exactly the runners that
//! may attest the suite, expiry by the server's clock (moved by hand, never slept on), only
//! the holder acting on an item, head moves cancelling old work, runs listed and logged.
//! Every scenario on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{ALICE, Db, NOW, Server, start_with};
use countersign_audit::EventKind;
use countersign_policy::Principal;
use countersign_repo::{CommitId, RepoWriter};
use countersign_server::{ManualClock, Role, create_token};
use reqwest::{Method as M, StatusCode};
use serde_json::{Value, json};

const REPOSITORY: &str = "github.com/acme/lab";

/// `lib` plans `lib-unit`; `tool` plans `tool-unit` and `tool-e2e` (no `[suites]` entry).
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
"#;

const KEY_CI: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const KEY_CI2: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";

struct Lab {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    base: String,
    lib: String,
    tool: String,
    tool2: String,
}

/// `ci` may attest `lib-unit` and `tool-unit`, `ci2` only `lib-unit`. `lib-unit` runs in
/// `default` and `staging`, `tool-unit` in `default`; `tool-e2e` is planned but undefined.
fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"[repository]
name = "{REPOSITORY}"

[[runners]]
name = "ci"
public_key = "{KEY_CI}"
suites = ["lib-unit", "tool-unit", "tool-e2e-never-defined"]

[[runners]]
name = "ci2"
public_key = "{KEY_CI2}"
suites = ["lib-unit"]

[suites.lib-unit]
command = ["sh", "-c", "true"]
timeout = "1m"
reports = {{ junit = ["junit.xml"] }}
environments = ["default", "staging"]

[suites.tool-unit]
command = ["make", "test"]
"#
    );
    let mut w = RepoWriter::init(dir.path()).unwrap();
    w.commit(
        [
            ("countersign.toml", Some(config.as_str())),
            ("catalog-info.yaml", Some(CATALOG)),
            ("lib/src.rs", Some("pub fn add() {}\n")),
            ("tool/main.rs", Some("fn main() {}\n")),
        ],
        "base",
        ALICE,
        NOW as i64,
    )
    .unwrap();
    let base = w.head().unwrap();
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
        "pub fn add() { 1 }\n",
        1,
    );
    let tool = change(
        "refs/heads/tool",
        &base,
        "tool/main.rs",
        "fn main() { a() }\n",
        2,
    );
    let tool2 = change(
        "refs/heads/tool",
        &tool,
        "tool/main.rs",
        "fn main() { b() }\n",
        3,
    );
    let hex = |c: CommitId| c.as_str().to_owned();
    Lab {
        path: dir.path().to_owned(),
        _dir: dir,
        base: hex(base),
        lib: hex(lib),
        tool: hex(tool),
        tool2: hex(tool2),
    }
}

async fn start_lab(db: &Db, clock: &ManualClock) -> (Server, Lab) {
    let lab = lab();
    let path = lab.path.clone();
    let clock = clock.clone();
    let mut server = start_with(db, move |mut state| {
        Arc::make_mut(&mut state.repos).insert("lab".to_owned(), path);
        state.clock = clock.clock();
        state.with_lease(Duration::from_secs(60))
    })
    .await;
    for (i, name) in ["ci", "ci2"].into_iter().enumerate() {
        let principal: Principal = format!("runner:{name}").parse().unwrap();
        let mut secret = [0xE5; 32];
        secret[1] = u8::try_from(i).unwrap();
        let (text, _) = create_token(
            &server.store,
            &principal,
            Role::Runner,
            NOW as i64 + 36_000,
            secret,
        )
        .await
        .unwrap();
        server.tokens.insert(name, text);
    }
    (server, lab)
}

async fn propose(server: &Server, lab: &Lab, head: &str) -> String {
    let body = json!({ "repo": "lab", "base": lab.base, "head": head, "title": "change" });
    let (status, view) = server
        .send(M::POST, "/v1/proposals", Some("fixbot"), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    view["id"].as_str().unwrap().to_owned()
}

async fn lease(server: &Server, token: &str, envs: &[&str], max: u32) -> (StatusCode, Value) {
    server
        .send(
            M::POST,
            "/v1/work/lease",
            Some(token),
            Some(json!({ "repository": REPOSITORY, "environments": envs, "max": max })),
        )
        .await
}

fn items(leased: &Value) -> Vec<(String, String, String)> {
    let mut items: Vec<_> = leased["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["suite"].as_str().unwrap().to_owned(),
                i["environment"].as_str().unwrap().to_owned(),
                i["commit"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    items.sort();
    items
}

async fn runs(server: &Server, query: &str) -> Vec<Value> {
    let (status, list) = server
        .send(M::GET, &format!("/v1/runs{query}"), Some("auditor"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["runs"].as_array().unwrap().clone()
}

/// The plan becomes work: one item per defined, attestable suite and environment, leased
/// only by runners that may attest it, in the environments they serve; the plan says which
/// suites the fleet can run.
async fn plans_become_work_for_the_right_runners(db: &Db) {
    let clock = ManualClock::new(NOW);
    let (server, lab) = start_lab(db, &clock).await;
    let lib = propose(&server, &lab, &lab.lib).await;
    let tool = propose(&server, &lab, &lab.tool).await;
    let queued = runs(&server, "?state=queued").await;
    assert_eq!(queued.len(), 3, "{queued:?}");

    let (_, plan) = server
        .send(
            M::GET,
            &format!("/v1/proposals/{tool}/plan"),
            Some("ci"),
            None,
        )
        .await;
    let runnable: Vec<(String, bool)> = plan["suites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["suite"].as_str().unwrap().to_owned(),
                s["runnable"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        runnable,
        [
            ("tool-e2e".to_owned(), false),
            ("tool-unit".to_owned(), true)
        ]
    );

    // Other roles never lease, whatever the admin may do elsewhere.
    for token in ["fixbot", "admin", "auditor", "alice"] {
        let (status, problem) = lease(&server, token, &["default"], 1).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{token}: {problem}");
    }
    // A runner cannot read the runs list (its floor: lease, evidence, plans).
    let (status, _) = server.send(M::GET, "/v1/runs", Some("ci"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // ci2 may attest only lib-unit: never tool-unit, and only its environment.
    let (status, got) = lease(&server, "ci2", &["default"], 16).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(
        items(&got),
        [("lib-unit".to_owned(), "default".to_owned(), lab.lib.clone())]
    );
    let item = &got["items"][0];
    assert_eq!(item["definition"]["command"], json!(["sh", "-c", "true"]));
    assert_eq!(item["definition"]["timeout_seconds"], 60);
    assert_eq!(item["definition"]["reports"]["junit"], json!(["junit.xml"]));
    assert_eq!(item["proposal"], json!(lib));
    assert_eq!(item["attempt"], 1);
    let (_, got) = lease(&server, "ci2", &["default"], 16).await;
    assert!(items(&got).is_empty(), "{got}");
    // A runner of another repository is offered nothing.
    let (_, other) = server
        .send(
            M::POST,
            "/v1/work/lease",
            Some("ci"),
            Some(json!({ "repository": "github.com/acme/other", "environments": ["default", "staging"], "max": 16 })),
        )
        .await;
    assert!(items(&other).is_empty(), "{other}");
    let (_, got) = lease(&server, "ci", &["default", "staging"], 16).await;
    assert_eq!(
        items(&got),
        [
            ("lib-unit".to_owned(), "staging".to_owned(), lab.lib.clone()),
            (
                "tool-unit".to_owned(),
                "default".to_owned(),
                lab.tool.clone()
            ),
        ]
    );
    // Bad requests.
    for body in [
        json!({ "repository": REPOSITORY, "environments": [], "max": 1 }),
        json!({ "repository": REPOSITORY, "environments": ["default"], "max": 0 }),
        json!({ "repository": REPOSITORY, "environments": ["default"], "max": 17 }),
        json!({ "repository": REPOSITORY, "environments": ["a b"] }),
        json!({ "repository": REPOSITORY, "environments": ["default"], "extra": 1 }),
    ] {
        let (status, problem) = server
            .send(M::POST, "/v1/work/lease", Some("ci"), Some(body.clone()))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
    }
    assert_eq!(runs(&server, "?state=running").await.len(), 3);
    assert_eq!(runs(&server, &format!("?proposal={tool}")).await.len(), 1);
    assert_eq!(
        runs(&server, "?suite=lib-unit&environment=staging")
            .await
            .len(),
        1
    );
    let (status, _) = server
        .send(M::GET, "/v1/runs?limit=0", Some("auditor"), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = server
        .send(M::GET, "/v1/runs?state=leased", Some("auditor"), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = server
        .send(M::GET, "/v1/runs/r-nope", Some("auditor"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

/// Only the holder of the current lease acts on an item; an expired lease (the server's
/// clock moved past it) goes to the next runner that asks, and the first holder is told to
/// stop. Finishing is logged, and a runner cannot claim a cancellation.
async fn only_the_holder_acts_and_leases_expire(db: &Db) {
    let clock = ManualClock::new(NOW);
    let (server, lab) = start_lab(db, &clock).await;
    propose(&server, &lab, &lab.lib).await;
    let (_, got) = lease(&server, "ci2", &["default"], 1).await;
    let id = got["items"][0]["id"].as_str().unwrap().to_owned();
    let heartbeat = format!("/v1/work/{id}/heartbeat");
    let finish = format!("/v1/work/{id}/finish");
    // ci may attest lib-unit too, but does not hold this item.
    for path in [&heartbeat, &format!("/v1/work/{id}/return")] {
        let (status, _) = server
            .send(M::POST, path, Some("ci"), Some(json!({ "attempt": 1 })))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{path}");
    }
    let passed = json!({ "attempt": 1, "outcome": "passed", "tests": { "passed": 2, "failed": 0 }, "envelopes": [] });
    let (status, _) = server
        .send(M::POST, &finish, Some("ci"), Some(passed.clone()))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // A heartbeat at +50 s moves the expiry to +110 s.
    clock.advance(Duration::from_secs(50));
    let (status, beat) = server
        .send(
            M::POST,
            &heartbeat,
            Some("ci2"),
            Some(json!({ "attempt": 1 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{beat}");
    clock.advance(Duration::from_secs(59));
    let (_, none) = lease(&server, "ci", &["default"], 1).await;
    assert!(items(&none).is_empty(), "not expired yet: {none}");
    clock.advance(Duration::from_secs(1));
    let (_, taken) = lease(&server, "ci", &["default"], 1).await;
    assert_eq!(taken["items"][0]["id"], json!(id));
    assert_eq!(taken["items"][0]["attempt"], 2);
    // The first holder is told to stop, even naming the new attempt.
    for attempt in [1, 2] {
        let (status, _) = server
            .send(
                M::POST,
                &heartbeat,
                Some("ci2"),
                Some(json!({ "attempt": attempt })),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
    }
    let (status, _) = server
        .send(M::POST, &finish, Some("ci2"), Some(passed))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // The holder finishes; a runner may not claim a cancellation, nor send junk digests.
    for bad in [
        json!({ "attempt": 2, "outcome": "cancelled" }),
        json!({ "attempt": 2, "outcome": "skipped" }),
        json!({ "attempt": 2, "outcome": "failed", "envelopes": ["xyz"] }),
    ] {
        let (status, _) = server
            .send(M::POST, &finish, Some("ci"), Some(bad.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let digest = "ab".repeat(32);
    let (status, run) = server
        .send(
            M::POST,
            &finish,
            Some("ci"),
            Some(json!({ "attempt": 2, "outcome": "failed", "tests": { "passed": 1, "failed": 1, "skipped": 0 }, "duration_ms": 1500, "envelopes": [digest] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["state"], "finished");
    assert_eq!(run["outcome"], "failed");
    assert_eq!(run["runner"], "runner:ci");
    assert_eq!(run["tests"]["failed"], 1);
    assert_eq!(run["envelopes"], json!([digest]));
    let (_, shown) = server
        .send(M::GET, &format!("/v1/runs/{id}"), Some("auditor"), None)
        .await;
    assert_eq!(shown, run);
    // The log: two starts (each attempt) and one finish, about the run.
    let kinds: Vec<(EventKind, String)> = server
        .store
        .entries_about(&id)
        .await
        .unwrap()
        .iter()
        .map(|e| {
            let event = e.event().unwrap();
            (event.kind, event.actor)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (EventKind::RunStarted, "runner:ci2".to_owned()),
            (EventKind::RunStarted, "runner:ci".to_owned()),
            (EventKind::RunFinished, "runner:ci".to_owned()),
        ]
    );
    server.stop().await;
}

/// A head move cancels the old head's unfinished work (queued or leased) and queues the new
/// head's; the runner holding old work is told to stop. Closing cancels the rest.
async fn head_moves_cancel_old_work(db: &Db) {
    let clock = ManualClock::new(NOW);
    let (server, lab) = start_lab(db, &clock).await;
    let tool = propose(&server, &lab, &lab.tool).await;
    let lib = propose(&server, &lab, &lab.lib).await;
    let (_, got) = lease(&server, "ci", &["default"], 16).await;
    let old = got["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["suite"] == "tool-unit")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, view) = server
        .send(
            M::POST,
            &format!("/v1/proposals/{tool}/head"),
            Some("fixbot"),
            Some(json!({ "head": lab.tool2 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let (_, cancelled) = server
        .send(M::GET, &format!("/v1/runs/{old}"), Some("auditor"), None)
        .await;
    assert_eq!(cancelled["state"], "finished");
    assert_eq!(cancelled["outcome"], "cancelled");
    let (status, _) = server
        .send(
            M::POST,
            &format!("/v1/work/{old}/heartbeat"),
            Some("ci"),
            Some(json!({ "attempt": 1 })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, fresh) = lease(&server, "ci", &["default"], 16).await;
    assert_eq!(
        items(&fresh),
        [(
            "tool-unit".to_owned(),
            "default".to_owned(),
            lab.tool2.clone()
        )]
    );
    let finished = server
        .store
        .entries_about(&old)
        .await
        .unwrap()
        .last()
        .unwrap()
        .event()
        .unwrap();
    assert_eq!(finished.kind, EventKind::RunFinished);
    assert_eq!(finished.data["outcome"], "cancelled");
    assert_eq!(finished.data["reason"], "head_moved");
    // The lib proposal's queued staging item goes with its close.
    let (status, _) = server
        .send(
            M::POST,
            &format!("/v1/proposals/{lib}/close"),
            Some("fixbot"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let lib_runs = runs(&server, &format!("?proposal={lib}")).await;
    assert_eq!(lib_runs.len(), 2);
    assert!(
        lib_runs.iter().all(|r| r["outcome"] == "cancelled"),
        "{lib_runs:?}"
    );
    server.stop().await;
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::Db::sqlite();
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::Db::postgres().await else { return };
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

on_both_backends!(
    plans_become_work_for_the_right_runners,
    only_the_holder_acts_and_leases_expire,
    head_moves_cancel_old_work,
);
