//! Schedules on the server: `[schedules.NAME]` read from each protected branch's own tip,
//! fired by the injected clock exactly once per due time with two server instances on one
//! database ticking at once (and their background tickers running), queued as branch runs
//! of the branch's tip, shown by `GET /v1/schedules`. A proposal, or an unprotected branch,
//! never schedules anything. Every scenario on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{ALICE, Db, NOW};
use countersign_policy::Principal;
use countersign_repo::{CommitId, RepoWriter};
use countersign_server::{AppState, ManualClock, Role, create_token, tick_schedules};
use countersign_store::Store;
use serde_json::{Value, json};

const REPOSITORY: &str = "github.com/acme/lab";
const KEY_CI: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

const CATALOG: &str = r#"apiVersion: backstage.io/v1alpha1
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
"#;

fn config(schedules: &str) -> String {
    format!(
        r#"[repository]
name = "{REPOSITORY}"

[[runners]]
name = "ci"
public_key = "{KEY_CI}"
suites = ["lib-unit"]

[suites.lib-unit]
command = ["sh", "-c", "true"]
environments = ["default", "staging"]

[suites.lib-lint]
command = ["true"]
{schedules}"#
    )
}

/// `main` schedules `nightly` (03:00 UTC, lib-unit in `default`, lib-lint which no runner
/// may attest) and declares `release-nightly` for `release`, which is not protected; branch
/// `side` (unprotected) declares its own; branch `evil` off main adds a schedule on main.
struct Lab {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    main: String,
    evil: String,
}

fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let main_config = config(
        r#"
[schedules.nightly]
cron = "0 3 * * *"
branch = "main"
suites = ["lib-unit", "lib-lint"]
environment = "default"

[schedules.release-nightly]
cron = "0 4 * * *"
branch = "release"
suites = ["lib-unit"]
"#,
    );
    let mut w = RepoWriter::init(dir.path()).unwrap();
    w.commit(
        [
            ("countersign.toml", Some(main_config.as_str())),
            ("catalog-info.yaml", Some(CATALOG)),
            ("lib/src.rs", Some("pub fn add() {}\n")),
        ],
        "base",
        ALICE,
        NOW as i64,
    )
    .unwrap();
    let main = w.head().unwrap();
    let side_config = config(
        "\n[schedules.side]\ncron = \"* * * * *\"\nbranch = \"side\"\nsuites = [\"lib-unit\"]\n",
    );
    w.commit_on(
        "refs/heads/side",
        &main,
        [("countersign.toml", Some(side_config.as_str()))],
        "side schedules itself",
        ALICE,
        NOW as i64 + 1,
    )
    .unwrap();
    let evil_config = config(
        "\n[schedules.evil]\ncron = \"* * * * *\"\nbranch = \"main\"\nsuites = [\"lib-unit\"]\n",
    );
    let evil = w
        .commit_on(
            "refs/heads/evil",
            &main,
            [("countersign.toml", Some(evil_config.as_str()))],
            "a proposal adds a schedule",
            ALICE,
            NOW as i64 + 2,
        )
        .unwrap();
    let hex = |c: CommitId| c.as_str().to_owned();
    Lab {
        path: dir.path().to_owned(),
        _dir: dir,
        main: hex(main),
        evil: hex(evil),
    }
}

/// A server instance on `db`: its state (to tick by hand), its address and its stop.
struct Instance {
    state: AppState,
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn instance(db: &Db, lab: &Lab, clock: &ManualClock) -> Instance {
    let store = Store::connect(db.url()).await.unwrap();
    let repos = BTreeMap::from([("lab".to_owned(), lab.path.clone())]);
    // Both instances also tick in the background, often, while the test ticks by hand.
    let state = AppState::new(store, repos, clock.clock())
        .with_schedule_tick(Some(Duration::from_millis(20)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(countersign_server::run(
        listener,
        state.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    Instance {
        state,
        base,
        stop,
        task,
    }
}

impl Instance {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
        self.state.store.close().await;
    }
}

async fn token(store: &Store, principal: &str, role: Role, n: u8) -> String {
    let principal: Principal = principal.parse().unwrap();
    let mut secret = [0x3C; 32];
    secret[1] = n;
    create_token(store, &principal, role, NOW as i64 + 86_400 * 3, secret)
        .await
        .unwrap()
        .0
}

async fn get(base: &str, token: &str, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Ticks both instances `n` times at once each, as the background tickers do too.
async fn tick_both(a: &AppState, b: &AppState, n: usize) -> usize {
    let mut tasks = Vec::new();
    for i in 0..n * 2 {
        let state = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            tick_schedules(&state).await.unwrap()
        }));
    }
    let mut fired = 0;
    for task in tasks {
        fired += task.await.unwrap().len();
    }
    fired
}

/// Two instances, ten ticks each at once plus their background tickers: the due time is
/// queued once, as one work item (lib-lint has no runner), for main's tip; a later due time
/// once more; `GET /v1/schedules` shows the next due time; nothing else is in force.
async fn a_due_time_fires_once_across_replicas(db: &Db) {
    let lab = lab();
    let clock = ManualClock::new(NOW); // 2026-01-05T09:00:00Z
    let a = instance(db, &lab, &clock).await;
    let b = instance(db, &lab, &clock).await;
    let auditor = token(&a.state.store, "human:erin", Role::Auditor, 1).await;
    let runner = token(&a.state.store, "runner:ci", Role::Runner, 2).await;

    tick_both(&a.state, &b.state, 10).await;
    let runs = |base: String| {
        let auditor = auditor.clone();
        async move {
            let (status, list) = get(&base, &auditor, "/v1/runs?branch=main").await;
            assert_eq!(status, 200, "{list}");
            list["runs"].as_array().unwrap().clone()
        }
    };
    let queued = runs(a.base.clone()).await;
    assert_eq!(queued.len(), 1, "one due time, one work item: {queued:#?}");
    let run = &queued[0];
    assert_eq!(run["suite"], "lib-unit");
    assert_eq!(run["environment"], "default");
    assert_eq!(run["commit"], json!(lab.main));
    assert_eq!(run["branch"], "main");
    assert_eq!(run["proposal"], Value::Null);
    assert_eq!(run["cause"], "schedule:nightly");
    assert_eq!(run["state"], "queued");

    // The same instant and an hour later: nothing new is due.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(tick_both(&a.state, &b.state, 5).await, 0);
    assert_eq!(runs(b.base.clone()).await.len(), 1);

    let (status, view) = get(&b.base, &auditor, "/v1/schedules").await;
    assert_eq!(status, 200, "{view}");
    let schedules = view["schedules"].as_array().unwrap();
    let names: Vec<&str> = schedules
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nightly"], "only main's own schedules: {view:#}");
    let nightly = &schedules[0];
    assert_eq!(nightly["branch"], "main");
    assert_eq!(nightly["cron"], "0 3 * * *");
    assert_eq!(nightly["timezone"], "UTC");
    assert_eq!(nightly["commit"], json!(lab.main));
    assert_eq!(nightly["next_due_at"], "2026-01-06T03:00:00.000Z");
    assert_eq!(nightly["last_fired"]["due_at"], "2026-01-05T03:00:00.000Z");
    assert_eq!(nightly["last_fired"]["runs"], 1);
    assert_eq!(nightly["unrunnable"], json!(["lib-lint"]));
    // A runner reads no schedules (its floor: leases, evidence, plans).
    let (status, _) = get(&a.base, &runner, "/v1/schedules").await;
    assert_eq!(status, 403);

    // Two days later (the server was down for one due time): only the latest is queued.
    clock.advance(Duration::from_secs(2 * 86_400));
    tick_both(&a.state, &b.state, 10).await;
    let queued = runs(a.base.clone()).await;
    assert_eq!(queued.len(), 2, "{queued:#?}");
    let (_, view) = get(&a.base, &auditor, "/v1/schedules").await;
    assert_eq!(
        view["schedules"][0]["last_fired"]["due_at"],
        "2026-01-07T03:00:00.000Z"
    );
    // The background tickers, given time, queue nothing more.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(runs(b.base.clone()).await.len(), 2);

    // A runner leases the scheduled run like any other: the branch, no proposal.
    let (status, leased) = {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/work/lease", a.base))
            .bearer_auth(&runner)
            .json(&json!({ "repository": REPOSITORY, "environments": ["default"], "max": 4 }))
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    };
    assert_eq!(status, 200, "{leased}");
    let items = leased["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{leased}");
    assert!(
        items
            .iter()
            .all(|i| i["branch"] == "main" && i["proposal"].is_null())
    );

    a.stop().await;
    b.stop().await;
}

/// A proposal adding a schedule on main schedules nothing: schedules are read from the
/// protected branch's tip, never from a proposal's head; once merged (main moves to it), it
/// is in force.
async fn a_proposal_never_schedules(db: &Db) {
    let lab = lab();
    let clock = ManualClock::new(NOW);
    let a = instance(db, &lab, &clock).await;
    let b = instance(db, &lab, &clock).await;
    let fixbot = token(&a.state.store, "agent:fixbot", Role::Proposer, 3).await;
    let auditor = token(&a.state.store, "human:erin", Role::Auditor, 4).await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/proposals", a.base))
        .bearer_auth(&fixbot)
        .json(&json!({ "repo": "lab", "base": lab.main, "head": lab.evil, "title": "schedule" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let fired = tick_both(&a.state, &b.state, 3).await;
    let (_, view) = get(&a.base, &auditor, "/v1/schedules").await;
    let names: Vec<&str> = view["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nightly"], "{view:#}");
    assert!(fired <= 1, "only nightly may have fired by hand: {fired}");
    // Main moves to the proposal's head (merged): its schedule is main's now.
    let moved = std::process::Command::new("git")
        .arg("-C")
        .arg(&lab.path)
        .args(["update-ref", "refs/heads/main", &lab.evil])
        .status()
        .unwrap();
    assert!(moved.success());
    let (_, view) = get(&a.base, &auditor, "/v1/schedules").await;
    let names: Vec<&str> = view["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["evil"], "{view:#}");
    a.stop().await;
    b.stop().await;
}

#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = $crate::common::Db::sqlite();
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = $crate::common::Db::postgres().await else { return };
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

on_both!(
    a_due_time_fires_once_across_replicas,
    a_proposal_never_schedules
);
