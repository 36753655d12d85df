//! The GitHub integration end to end, on SQLite and PostgreSQL: GitHub's own example
//! deliveries (the npm package `@octokit/webhooks-examples`, pinned in `.ci/run`) signed with
//! the test's webhook secret and sent to the real server on 127.0.0.1:0, which fetches the
//! pull requests' commits with real `git` from a local repository standing in for GitHub and
//! reports checks to a local stand-in for GitHub's REST API (axum on 127.0.0.1:0) that
//! verifies the App's JWTs and records every call. Nothing leaves the loopback interface.
//!
//! The examples are adapted only where they must be, each edit listed at its use
//! ([`adapt`]): commit ids always (the repository is the examples' own,
//! `Codertocat/Hello-World`, followed as the server's `shop`); and where the package has no
//! example of a case (no approving review, no merged pull request, a single reviewer), the
//! fields that make that case: a review's `state` and `user` (taken from the example's own
//! requested reviewer where a person is needed), a pull request's `merged` and
//! `merge_commit_sha`, its `body` where it says which findings it fixes, and for an edited
//! description (the package has no `edited` example) an opened example's `action` and the
//! `changes` GitHub sends ([`with_field`]). The fleet's side is a runner over HTTP: it
//! leases branch and proposal runs and pushes JUnit reports read with countersign's reader
//! and signed with runner `ci`'s key ([`junit_envelope`]).
//!
//! Without the package the tests are skipped with the reason printed, except under
//! `CI=true`, where they fail.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{patch, post};
use common::{Db, NOW};
use countersign_policy::Principal;
use countersign_repo::{CommitId, RepoWriter};
use countersign_server::{
    AppState, Clock, DeliverySettings, GithubConfig, GithubReport, GithubRepository, ManualClock,
    Role, create_token, hub_signature,
};
use countersign_store::Store;
use serde_json::{Value, json};

const SECRET: &str = "github-webhook-secret-0123456789";
const APP_ID: &str = "4242";
/// The examples' `repository.full_name` and `installation.id`.
const FULL_NAME: &str = "Codertocat/Hello-World";
const INSTALLATION: u64 = 1;
const KEY: &str = include_str!("github/app-test-key.pem");
const CODERTOCAT: &str = "Codertocat <codertocat@example.com>";

// ---- GitHub's examples ----

fn examples_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("COUNTERSIGN_OCTOKIT_EXAMPLES") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/countersign-npm/node_modules/@octokit/webhooks-examples")
}

/// Every example of the package, by event name; `None` (the test skips) when the package is
/// not installed, a failure under `CI=true`.
fn examples() -> Option<BTreeMap<String, Vec<Value>>> {
    let index = examples_dir().join("api.github.com/index.json");
    let bytes = match std::fs::read(&index) {
        Ok(bytes) => bytes,
        Err(e) => {
            let why = format!(
                "{}: {e} (install it: npm install --prefix \"$HOME/.cache/countersign-npm\" \
                 @octokit/webhooks-examples, as .ci/run does)",
                index.display()
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("GitHub's webhook examples are missing under CI=true: {why}");
            }
            eprintln!("skipped: GitHub's webhook examples are missing: {why}");
            return None;
        }
    };
    let list: Vec<Value> = serde_json::from_slice(&bytes).unwrap();
    Some(
        list.into_iter()
            .map(|event| {
                let name = event["name"].as_str().unwrap().to_owned();
                let examples = event["examples"].as_array().unwrap().clone();
                (name, examples)
            })
            .collect(),
    )
}

/// The first example of `event` with `action` (any action for `None`) that names the App
/// installation, as deliveries to an App do.
fn example(all: &BTreeMap<String, Vec<Value>>, event: &str, action: Option<&str>) -> Value {
    all[event]
        .iter()
        .find(|e| {
            action.is_none_or(|a| e["action"] == a) && e["installation"]["id"] == INSTALLATION
        })
        .unwrap_or_else(|| panic!("no {event} {action:?} example with an installation"))
        .clone()
}

/// The push example to the examples' default branch (the others push tags).
fn push_example(all: &BTreeMap<String, Vec<Value>>) -> Value {
    all["push"]
        .iter()
        .find(|e| e["ref"] == "refs/heads/master" && e["installation"]["id"] == INSTALLATION)
        .expect("a push to master")
        .clone()
}

/// `payload` with each JSON-pointer field of `edits` set: the only changes made to an
/// example.
fn adapt(mut payload: Value, edits: &[(&str, Value)]) -> Value {
    for (pointer, value) in edits {
        *payload
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("the example has no {pointer}")) = value.clone();
    }
    payload
}

// ---- The repository GitHub holds, and the server's copy ----

const CATALOG: &str = r#"apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team-hello
spec:
  type: team
  children: []
  members: [codertocat, octo, bob, fixbot]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: codertocat
  annotations:
    github.com/user-login: Codertocat
spec:
  profile:
    email: codertocat@example.com
  memberOf: [team-hello]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: octo
  annotations:
    github.com/user-login: octocat
spec:
  profile:
    email: octo@example.com
  memberOf: [team-hello]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: bob
  annotations:
    github.com/user-login: bob-gh
spec:
  profile:
    email: bob@example.com
  memberOf: [team-hello]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: fixbot
  annotations:
    github.com/user-login: fixbot-gh
spec:
  memberOf: [team-hello]
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: api
  annotations:
    countersign.dev/criticality: high
    countersign.dev/paths: /api/**
spec:
  type: service
  lifecycle: production
  owner: team-hello
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
  owner: team-hello
"#;

const CONFIG: &str = r#"[repository]
name = "github.com/Codertocat/Hello-World"

[agents]
patterns = ["*[bot]", "fixbot"]

[[runners]]
name = "ci"
public_key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
suites = ["lib-unit"]

[suites.lib-unit]
command = ["sh", "-c", "true"]
"#;

/// The repository on "GitHub" (a local repository the server fetches from) and the
/// server's bare copy of its `master`.
struct World {
    _dir: tempfile::TempDir,
    github: PathBuf,
    server: PathBuf,
    /// `master` on both sides at first.
    base: String,
    /// Pull request #2's first head (an `api/` change by Codertocat), then its second.
    h1: String,
    h2: String,
    /// A `lib/` change on top of `base`, pushed to `master` directly.
    lib: String,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let github = dir.path().join("github");
    let mut w = RepoWriter::init(&github).unwrap();
    w.commit(
        [
            ("countersign.toml", Some(CONFIG)),
            ("catalog-info.yaml", Some(CATALOG)),
            ("api/handler.rs", Some("pub fn handle() {}\n")),
            ("lib/src.rs", Some("pub fn add() {}\n")),
        ],
        "base",
        CODERTOCAT,
        NOW as i64,
    )
    .unwrap();
    let base = w.head().unwrap();
    // GitHub keeps every pull request's head at refs/pull/N/head.
    let h1 = w
        .commit_on(
            "refs/pull/2/head",
            &base,
            [("api/handler.rs", Some("pub fn handle() { v1() }\n"))],
            "api: v1",
            CODERTOCAT,
            NOW as i64 + 1,
        )
        .unwrap();
    let h2 = w
        .commit_on(
            "refs/heads/changes",
            &h1,
            [("api/handler.rs", Some("pub fn handle() { v2() }\n"))],
            "api: v2",
            CODERTOCAT,
            NOW as i64 + 2,
        )
        .unwrap();
    let lib = w
        .commit_on(
            "refs/heads/direct",
            &CommitId::from_hex(base.as_str()).unwrap(),
            [("lib/src.rs", Some("pub fn add() { 1 }\n"))],
            "lib: add",
            CODERTOCAT,
            NOW as i64 + 3,
        )
        .unwrap();
    drop(w);
    // The examples' default branch.
    git(&github, &["branch", "-m", "main", "master"]);
    let server = dir.path().join("server.git");
    git(
        dir.path(),
        &[
            "clone",
            "--quiet",
            "--bare",
            "--single-branch",
            "--branch",
            "master",
            github.to_str().unwrap(),
            server.to_str().unwrap(),
        ],
    );
    World {
        _dir: dir,
        github,
        server,
        base: base.as_str().to_owned(),
        h1: h1.as_str().to_owned(),
        h2: h2.as_str().to_owned(),
        lib: lib.as_str().to_owned(),
    }
}

// ---- The stand-in for GitHub's REST API ----

#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    body: Value,
}

#[derive(Default)]
struct Api {
    calls: Vec<Call>,
    /// Installation tokens minted, in order.
    minted: Vec<String>,
    /// Requests refused (a bad JWT, an unknown token), with why.
    refused: Vec<String>,
    next_run: u64,
}

#[derive(Clone)]
struct StandIn {
    url: String,
    api: Arc<Mutex<Api>>,
    clock: ManualClock,
}

/// The public half of the test key, as the stand-in verifies JWTs with it.
fn decoding_key() -> jsonwebtoken::DecodingKey {
    use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPublicKey};
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(KEY).unwrap();
    let public = key.to_public_key().to_pkcs1_der().unwrap();
    jsonwebtoken::DecodingKey::from_rsa_der(public.as_bytes())
}

fn unix_now(clock: &ManualClock) -> i64 {
    clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn access_tokens(
    State(stand_in): State<StandIn>,
    UrlPath(installation): UrlPath<u64>,
    headers: HeaderMap,
) -> (StatusCode, axum::Json<Value>) {
    let jwt = headers["authorization"]
        .to_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_owned();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // Times are checked below against the server's clock, not this machine's.
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let now = unix_now(&stand_in.clock);
    let checked = jsonwebtoken::decode::<Value>(&jwt, &decoding_key(), &validation)
        .map_err(|e| e.to_string())
        .and_then(|token| {
            let c = token.claims;
            let (iat, exp) = (c["iat"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
            if c["iss"] != json!(4242) {
                return Err(format!("iss {}", c["iss"]));
            }
            if !(iat <= now && now < exp && exp - iat <= 660 && exp - now <= 600) {
                return Err(format!("iat {iat} exp {exp} now {now}"));
            }
            Ok(())
        });
    let mut api = stand_in.api.lock().unwrap();
    api.calls.push(Call {
        method: "POST".into(),
        path: format!("/app/installations/{installation}/access_tokens"),
        body: Value::Null,
    });
    if let Err(why) = checked {
        api.refused.push(format!("JWT: {why}"));
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": why})),
        );
    }
    let token = format!("ghs_test{}", api.minted.len());
    api.minted.push(token.clone());
    let expires = std::time::UNIX_EPOCH + Duration::from_secs((now + 3600) as u64);
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "token": token,
            "expires_at": humantime::format_rfc3339_seconds(expires).to_string(),
        })),
    )
}

/// Whether the request carries a token the stand-in minted (or the plain test token).
fn authorized(api: &mut Api, headers: &HeaderMap) -> bool {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let ok = api.minted.iter().any(|t| t == token) || token == "ghp_plain-test-token";
    if !ok {
        api.refused.push(format!("unknown token {token:?}"));
    }
    ok
}

async fn create_check_run(
    State(stand_in): State<StandIn>,
    UrlPath((owner, repo)): UrlPath<(String, String)>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> (StatusCode, axum::Json<Value>) {
    let mut api = stand_in.api.lock().unwrap();
    if !authorized(&mut api, &headers) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({})));
    }
    api.next_run += 1;
    let id = 1000 + api.next_run;
    api.calls.push(Call {
        method: "POST".into(),
        path: format!("/repos/{owner}/{repo}/check-runs"),
        body: json!({ "id": id, "sent": body }),
    });
    (StatusCode::CREATED, axum::Json(json!({ "id": id })))
}

async fn update_check_run(
    State(stand_in): State<StandIn>,
    UrlPath((owner, repo, id)): UrlPath<(String, String, u64)>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> (StatusCode, axum::Json<Value>) {
    let mut api = stand_in.api.lock().unwrap();
    if !authorized(&mut api, &headers) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({})));
    }
    api.calls.push(Call {
        method: "PATCH".into(),
        path: format!("/repos/{owner}/{repo}/check-runs/{id}"),
        body: json!({ "id": id, "sent": body }),
    });
    (StatusCode::OK, axum::Json(json!({ "id": id })))
}

async fn create_status(
    State(stand_in): State<StandIn>,
    UrlPath((owner, repo, sha)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> (StatusCode, axum::Json<Value>) {
    let mut api = stand_in.api.lock().unwrap();
    if !authorized(&mut api, &headers) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({})));
    }
    api.calls.push(Call {
        method: "POST".into(),
        path: format!("/repos/{owner}/{repo}/statuses/{sha}"),
        body: json!({ "sha": sha, "sent": body }),
    });
    (StatusCode::CREATED, axum::Json(json!({})))
}

async fn stand_in(clock: ManualClock) -> StandIn {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stand_in = StandIn {
        url: format!("http://{}", listener.local_addr().unwrap()),
        api: Arc::default(),
        clock,
    };
    let app = axum::Router::new()
        .route("/app/installations/{id}/access_tokens", post(access_tokens))
        .route("/repos/{owner}/{repo}/check-runs", post(create_check_run))
        .route(
            "/repos/{owner}/{repo}/check-runs/{id}",
            patch(update_check_run),
        )
        .route("/repos/{owner}/{repo}/statuses/{sha}", post(create_status))
        .with_state(stand_in.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    stand_in
}

impl StandIn {
    fn calls(&self) -> Vec<Call> {
        self.api.lock().unwrap().calls.clone()
    }

    /// The check runs reported, by head: each run's id and the bodies sent for it, in order.
    fn runs_by_head(&self) -> BTreeMap<String, Vec<(u64, Value)>> {
        let calls = self.calls();
        let mut head_of = BTreeMap::new();
        let mut runs: BTreeMap<String, Vec<(u64, Value)>> = BTreeMap::new();
        for call in calls
            .iter()
            .filter(|c| c.path.ends_with("/check-runs") || c.path.contains("/check-runs/"))
        {
            let id = call.body["id"].as_u64().unwrap();
            let sent = call.body["sent"].clone();
            if call.method == "POST" {
                head_of.insert(id, sent["head_sha"].as_str().unwrap().to_owned());
            }
            let head = head_of[&id].clone();
            runs.entry(head).or_default().push((id, sent));
        }
        runs
    }

    /// What GitHub shows for `head` now: the newest run's last report (GitHub takes the
    /// newest run of a name).
    fn shown(&self, head: &str) -> Option<Value> {
        let runs = self.runs_by_head();
        let reports = runs.get(head)?;
        let newest = reports.iter().map(|(id, _)| *id).max()?;
        reports
            .iter()
            .rfind(|(id, _)| *id == newest)
            .map(|(_, body)| body.clone())
    }
}

// ---- The server ----

struct Server {
    base: String,
    client: reqwest::Client,
    store: Store,
    admin: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

fn fast() -> DeliverySettings {
    DeliverySettings {
        poll_interval: Duration::from_millis(20),
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
        ..DeliverySettings::default()
    }
}

/// The server following `world`'s repository, reporting to `api` as the test App (changed
/// by `configure`), on `clock`.
async fn start(
    db: &Db,
    world: &World,
    api: &StandIn,
    configure: impl FnOnce(GithubConfig) -> GithubConfig,
) -> Server {
    let store = Store::connect(db.url()).await.unwrap();
    let principal: Principal = "human:root".parse().unwrap();
    let (admin, _) = create_token(
        &store,
        &principal,
        Role::Admin,
        NOW as i64 + 86_400,
        [7; 32],
    )
    .await
    .unwrap();
    let config = GithubConfig::new(
        SECRET,
        vec![GithubRepository {
            github: FULL_NAME.to_owned(),
            repo: "shop".to_owned(),
            fetch_url: Some(world.github.display().to_string()),
        }],
    )
    .unwrap()
    .with_api_url(&api.url)
    .unwrap()
    .with_public_url("https://countersign.example/")
    .unwrap()
    .with_app(APP_ID, KEY, None)
    .unwrap()
    .with_delivery(fast())
    .unwrap();
    let repos = BTreeMap::from([("shop".to_owned(), world.server.clone())]);
    let state = AppState::new(store.clone(), repos, Clock::manual(&api.clock))
        .with_github(configure(config))
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(countersign_server::run(listener, state, async move {
        let _ = stopped.await;
    }));
    Server {
        base,
        client: reqwest::Client::new(),
        store,
        admin,
        stop: Some(stop),
        task,
    }
}

impl Server {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
        self.store.close().await;
    }

    /// Sends `body` as GitHub would: `event`, delivery `id`, signed with `secret` (none for
    /// `None`).
    async fn send_raw(
        &self,
        event: &str,
        id: &str,
        body: &[u8],
        signature: Option<String>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .post(format!("{}/v1/integrations/github/webhook", self.base))
            .header("content-type", "application/json")
            .header("user-agent", "GitHub-Hookshot/test")
            .header("x-github-event", event)
            .header("x-github-delivery", id)
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let problem = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("application/problem+json"));
        let value: Value = response.json().await.unwrap();
        if !status.is_success() {
            assert!(problem, "{status} is not problem+json: {value}");
        }
        (status, value)
    }

    async fn deliver(&self, event: &str, id: &str, payload: &Value) -> (StatusCode, Value) {
        let body = serde_json::to_vec(payload).unwrap();
        let signature = hub_signature(SECRET.as_bytes(), &body);
        self.send_raw(event, id, &body, Some(signature)).await
    }

    async fn proposal(&self, id: &str) -> Value {
        let response = self
            .client
            .get(format!("{}/v1/proposals/{id}", self.base))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Waits until every check of `proposal` is reported (the worker runs beside).
    async fn reported(&self, proposal: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let checks = self.store.github_checks(proposal).await.unwrap();
            if !checks.is_empty() && checks.iter().all(|c| c.reported) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "checks of {proposal} not reported: {checks:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn requested_reviewer(pull_request_example: &Value) -> Value {
    // The example pull request asks `octocat` for a review: the person this test's catalog
    // maps to User `octo`.
    let reviewer = pull_request_example["pull_request"]["requested_reviewers"][0].clone();
    assert_eq!(reviewer["login"], "octocat");
    reviewer
}

// ---- The scenarios ----

/// Opened → synchronized → reviewed by everyone who must not count, then by an eligible
/// person → merged; redeliveries change nothing; the checks GitHub shows end as the
/// proposal does, through one installation token.
async fn a_pull_request_is_followed_to_its_merge(db: &Db) {
    let Some(all) = examples() else { return };
    let world = world();
    let api = stand_in(ManualClock::new(NOW)).await;
    let server = start(db, &world, &api, |c| c).await;

    // Opened: a proposal of the change GitHub shows, by its author's catalog User.
    let opened_example = example(&all, "pull_request", Some("opened"));
    let opened = adapt(
        opened_example.clone(),
        &[
            ("/pull_request/head/sha", json!(world.h1)),
            ("/pull_request/base/sha", json!(world.base)),
        ],
    );
    let (status, answer) = server.deliver("pull_request", "d-opened", &opened).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "proposed", "{answer}");
    assert_eq!(answer["state"], "awaiting_approval", "{answer}");
    let id = answer["proposal"].as_str().unwrap().to_owned();
    let proposal = server.proposal(&id).await;
    assert_eq!(proposal["head"], world.h1.as_str());
    assert_eq!(proposal["base"], world.base.as_str());
    assert_eq!(proposal["author"], "human:codertocat");
    assert_eq!(proposal["repo"], "shop");
    assert_eq!(proposal["tier"], "single_approver", "{proposal}");
    // The head was fetched from "GitHub" and is kept reachable.
    assert_eq!(
        git(&world.server, &["rev-parse", "refs/countersign/pull/2"]),
        world.h1
    );

    // A redelivery is answered alike and changes nothing.
    let size = server.store.log_size().await.unwrap();
    let (status, again) = server.deliver("pull_request", "d-opened", &opened).await;
    assert_eq!((status, &again), (StatusCode::OK, &answer));
    assert_eq!(server.store.log_size().await.unwrap(), size);

    // Synchronize: the head moves.
    git(
        &world.github,
        &["update-ref", "refs/pull/2/head", &world.h2],
    );
    let synchronize = adapt(
        example(&all, "pull_request", Some("synchronize")),
        &[
            ("/before", json!(world.h1)),
            ("/after", json!(world.h2)),
            ("/pull_request/head/sha", json!(world.h2)),
            ("/pull_request/base/sha", json!(world.base)),
        ],
    );
    let (status, answer) = server.deliver("pull_request", "d-sync", &synchronize).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "head_moved", "{answer}");
    assert_eq!(answer["proposal"], id.as_str());
    assert_eq!(server.proposal(&id).await["head"], world.h2.as_str());

    // Reviews that must not count.
    let review_example = example(&all, "pull_request_review", Some("submitted"));
    let review = |commit: &str, state: &str, user: Value| {
        adapt(
            review_example.clone(),
            &[
                ("/review/commit_id", json!(commit)),
                ("/review/state", json!(state)),
                ("/review/user", user),
                ("/pull_request/head/sha", json!(world.h2)),
            ],
        )
    };
    let author = review_example["review"]["user"].clone();
    assert_eq!(
        author["login"], "Codertocat",
        "the example's reviewer is the author"
    );
    let octocat = requested_reviewer(&opened_example);
    let mut bot = octocat.clone();
    bot["type"] = json!("Bot");
    let mut stranger = octocat.clone();
    stranger["login"] = json!("stranger");
    let mut agent = octocat.clone();
    agent["login"] = json!("fixbot-gh");
    let size = server.store.log_size().await.unwrap();
    for (n, (payload, why)) in [
        (review(&world.h2, "approved", author.clone()), "author"),
        (review(&world.h2, "approved", stranger), "no catalog User"),
        (review(&world.h2, "approved", bot), "not a person"),
        (review(&world.h2, "approved", agent), "not a person"),
        // The eligible person, but of the old head.
        (review(&world.h1, "approved", octocat.clone()), "head"),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, answer) = server
            .deliver("pull_request_review", &format!("d-bad-{n}"), &payload)
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["outcome"], "not_counted", "{why}: {answer}");
        assert!(
            answer["reason"].as_str().unwrap().contains(why),
            "{why}: {answer}"
        );
    }
    assert_eq!(
        server.store.log_size().await.unwrap(),
        size,
        "nothing was logged"
    );
    let proposal = server.proposal(&id).await;
    assert_eq!(proposal["approvals_counted"], 0, "{proposal}");
    assert_eq!(proposal["state"], "awaiting_approval");
    // A comment is no verdict (the example as it is, but for its commit).
    let commented = adapt(
        review_example.clone(),
        &[("/review/commit_id", json!(world.h2))],
    );
    let (status, answer) = server
        .deliver("pull_request_review", "d-comment", &commented)
        .await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (StatusCode::ACCEPTED, Some("ignored"))
    );

    // The eligible person approves the head: authorized.
    let approval = review(&world.h2, "approved", octocat);
    let (status, answer) = server
        .deliver("pull_request_review", "d-approve", &approval)
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "approved", "{answer}");
    assert_eq!(answer["state"], "authorized", "{answer}");
    let proposal = server.proposal(&id).await;
    assert_eq!(proposal["approvals_counted"], 1);
    assert_eq!(proposal["approvals"][0]["approver"], "human:octo");
    // Redelivered: the same answer, still one approval, nothing logged.
    let size = server.store.log_size().await.unwrap();
    let (status, again) = server
        .deliver("pull_request_review", "d-approve", &approval)
        .await;
    assert_eq!((status, &again), (StatusCode::OK, &answer));
    // The same signed body under another delivery id (the id is a header the signature does
    // not cover) is the same delivery.
    let (status, again) = server
        .deliver("pull_request_review", "d-approve-replayed", &approval)
        .await;
    assert_eq!((status, &again), (StatusCode::OK, &answer));
    assert_eq!(server.store.log_size().await.unwrap(), size);
    assert_eq!(server.proposal(&id).await["approvals_counted"], 1);

    // Merged on GitHub: merged here.
    let closed = adapt(
        example(&all, "pull_request", Some("closed")),
        &[
            ("/pull_request/head/sha", json!(world.h2)),
            ("/pull_request/base/sha", json!(world.base)),
            ("/pull_request/merged", json!(true)),
            ("/pull_request/merge_commit_sha", json!(world.h2)),
        ],
    );
    let (status, answer) = server.deliver("pull_request", "d-closed", &closed).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "merged", "{answer}");
    assert_eq!(server.proposal(&id).await["state"], "merged");

    // What GitHub shows ends as the proposal did: the merged head succeeded, the head the
    // pull request left was cancelled, both linking to the proposal.
    server.reported(&id).await;
    let shown = api.shown(&world.h2).unwrap();
    assert_eq!(shown["status"], "completed", "{shown}");
    assert_eq!(shown["conclusion"], "success", "{shown}");
    assert_eq!(shown["name"], "countersign");
    assert_eq!(shown["output"]["title"], "merged (single_approver)");
    assert_eq!(
        shown["details_url"],
        format!("https://countersign.example/proposals/{id}")
    );
    let old = api.shown(&world.h1).unwrap();
    assert_eq!(old["conclusion"], "cancelled", "{old}");
    // Every call was authenticated with the one installation token the App's JWT bought.
    {
        let stand = api.api.lock().unwrap();
        assert!(stand.refused.is_empty(), "{:?}", stand.refused);
        assert_eq!(stand.minted.len(), 1, "{:?}", stand.calls);
        assert_eq!(
            stand.calls[0].path,
            format!("/app/installations/{INSTALLATION}/access_tokens")
        );
    }
    server.stop().await;
}

/// A dismissed review withdraws the verdict it gave: the authorization it completed falls
/// back to awaiting approval, logged, and GitHub's check follows; a redelivery changes
/// nothing; dismissing a review whose verdict another review replaced withdraws nothing;
/// an edit is no verdict; and once merged, nothing is undone.
async fn a_dismissed_review_withdraws_its_verdict(db: &Db) {
    let Some(all) = examples() else { return };
    let world = world();
    let api = stand_in(ManualClock::new(NOW)).await;
    let server = start(db, &world, &api, |c| c).await;
    let opened_example = example(&all, "pull_request", Some("opened"));
    let opened = adapt(
        opened_example.clone(),
        &[
            ("/pull_request/head/sha", json!(world.h1)),
            ("/pull_request/base/sha", json!(world.base)),
        ],
    );
    let (status, answer) = server.deliver("pull_request", "d-opened", &opened).await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["proposal"].as_str().unwrap().to_owned();
    let octocat = requested_reviewer(&opened_example);
    let submitted = example(&all, "pull_request_review", Some("submitted"));
    let approve = |review: u64| {
        adapt(
            submitted.clone(),
            &[
                ("/review/id", json!(review)),
                ("/review/commit_id", json!(world.h1)),
                ("/review/state", json!("approved")),
                ("/review/user", octocat.clone()),
                ("/pull_request/head/sha", json!(world.h1)),
            ],
        )
    };
    // GitHub's dismissal of a review, as its example has it: the review's state is
    // `dismissed`, its id the one dismissed.
    let dismissed_example = example(&all, "pull_request_review", Some("dismissed"));
    assert_eq!(dismissed_example["review"]["state"], "dismissed");
    let dismiss = |review: u64| {
        adapt(
            dismissed_example.clone(),
            &[
                ("/review/id", json!(review)),
                ("/review/commit_id", json!(world.h1)),
                ("/review/user", octocat.clone()),
                ("/pull_request/head/sha", json!(world.h1)),
            ],
        )
    };

    let (_, answer) = server
        .deliver("pull_request_review", "d-approve-1", &approve(1))
        .await;
    assert_eq!(answer["state"], "authorized", "{answer}");
    server.reported(&id).await;
    assert_eq!(api.shown(&world.h1).unwrap()["conclusion"], "success");

    // Dismissed: the approval no longer counts.
    let (status, answer) = server
        .deliver("pull_request_review", "d-dismiss-1", &dismiss(1))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "withdrawn", "{answer}");
    assert_eq!(answer["state"], "awaiting_approval", "{answer}");
    let proposal = server.proposal(&id).await;
    assert_eq!(proposal["state"], "awaiting_approval", "{proposal}");
    assert_eq!(proposal["approvals_counted"], 0, "{proposal}");
    let events = server.store.entries_about(&id).await.unwrap();
    let withdrawn = events
        .iter()
        .map(|e| e.event().unwrap())
        .find(|e| e.kind == countersign_audit::EventKind::VerdictWithdrawn)
        .expect("the withdrawal is logged");
    assert_eq!(withdrawn.data["approver"], "human:octo");
    assert_eq!(withdrawn.data["head"], world.h1.as_str());
    assert_eq!(withdrawn.data["withdraws"]["verdict"], "approve");
    assert_eq!(withdrawn.data["github"]["review"], 1);
    server.reported(&id).await;
    let shown = api.shown(&world.h1).unwrap();
    assert_ne!(shown["conclusion"], "success", "{shown}");
    // Redelivered: nothing more.
    let size = server.store.log_size().await.unwrap();
    let (status, again) = server
        .deliver("pull_request_review", "d-dismiss-1", &dismiss(1))
        .await;
    assert_eq!((status, &again), (StatusCode::OK, &answer));
    assert_eq!(server.store.log_size().await.unwrap(), size);

    // Approved again by a new review: the old review's dismissal, delivered again (under
    // another id), withdraws nothing; the new review's verdict stands.
    let (_, answer) = server
        .deliver("pull_request_review", "d-approve-2", &approve(2))
        .await;
    assert_eq!(answer["state"], "authorized", "{answer}");
    let size = server.store.log_size().await.unwrap();
    server
        .deliver("pull_request_review", "d-dismiss-1-again", &dismiss(1))
        .await;
    assert_eq!(server.store.log_size().await.unwrap(), size);
    assert_eq!(server.proposal(&id).await["state"], "authorized");
    // An edited review keeps its verdict and gives none.
    let mut edited = approve(2);
    edited["action"] = json!("edited");
    let (status, answer) = server
        .deliver("pull_request_review", "d-edited", &edited)
        .await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (StatusCode::ACCEPTED, Some("ignored")),
        "{answer}"
    );

    // Merged: a later dismissal undoes nothing.
    let closed = adapt(
        example(&all, "pull_request", Some("closed")),
        &[
            ("/pull_request/head/sha", json!(world.h1)),
            ("/pull_request/base/sha", json!(world.base)),
            ("/pull_request/merged", json!(true)),
            ("/pull_request/merge_commit_sha", json!(world.h1)),
        ],
    );
    let (_, answer) = server.deliver("pull_request", "d-closed", &closed).await;
    assert_eq!(answer["outcome"], "merged", "{answer}");
    let (status, answer) = server
        .deliver("pull_request_review", "d-dismiss-2", &dismiss(2))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["outcome"], "ignored", "{answer}");
    let proposal = server.proposal(&id).await;
    assert_eq!(proposal["state"], "merged");
    assert_eq!(proposal["approvals_counted"], 1, "{proposal}");
    server.stop().await;
}

/// Forged, missing or stale signatures are 401 and record nothing; other events are
/// acknowledged and ignored; a malformed delivery names what is wrong.
async fn only_signed_deliveries_are_heard(db: &Db) {
    let Some(all) = examples() else { return };
    let world = world();
    let api = stand_in(ManualClock::new(NOW)).await;
    let server = start(db, &world, &api, |c| c).await;
    let opened = adapt(
        example(&all, "pull_request", Some("opened")),
        &[
            ("/pull_request/head/sha", json!(world.h1)),
            ("/pull_request/base/sha", json!(world.base)),
        ],
    );
    let body = serde_json::to_vec(&opened).unwrap();
    let size = server.store.log_size().await.unwrap();
    let mut tampered = body.clone();
    let at = tampered.len() - 2;
    tampered[at] = b' ';
    for (name, body, signature) in [
        (
            "another secret",
            body.clone(),
            Some(hub_signature(b"not-the-secret-0123456789", &body)),
        ),
        ("no signature", body.clone(), None),
        (
            "a tampered body",
            tampered.clone(),
            Some(hub_signature(SECRET.as_bytes(), &body)),
        ),
        ("sha1", body.clone(), Some("sha1=0123".to_owned())),
    ] {
        let (status, problem) = server
            .send_raw("pull_request", "d-forged", &body, signature)
            .await;
        assert_eq!(status, 401, "{name}: {problem}");
        assert_eq!(problem["status"], 401);
    }
    assert!(
        server
            .store
            .github_delivery("d-forged", "")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(server.store.log_size().await.unwrap(), size);
    let metrics = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("countersign_github_deliveries_refused_total{reason=\"mismatch\"} 2"),
        "{metrics}"
    );

    // The same delivery, signed, is heard: sent twice at once, and once more under another
    // id, it has one effect and one answer.
    let (one, two) = tokio::join!(
        server.deliver("pull_request", "d-forged", &opened),
        server.deliver("pull_request", "d-forged", &opened)
    );
    assert_eq!(one, two);
    let (status, answer) = one;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (StatusCode::OK, Some("proposed")),
        "{answer}"
    );
    let (_, again) = server.deliver("pull_request", "d-other-id", &opened).await;
    assert_eq!(again, answer);

    // Events countersign does not follow: acknowledged, ignored, recorded.
    for (event, payload) in [
        ("installation", all["installation"][0].clone()),
        (
            "pull_request",
            example(&all, "pull_request", Some("labeled")),
        ),
    ] {
        let id = format!("d-{}", event.replace('_', "-"));
        let (status, answer) = server.deliver(event, &id, &payload).await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["outcome"], "ignored");
    }
    let ping = all["ping"][0].clone();
    let (status, answer) = server.deliver("ping", "d-ping", &ping).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (StatusCode::OK, Some("pong"))
    );

    // Malformed, but signed: a 422 naming the field, recorded nowhere.
    let mut broken = opened.clone();
    broken["pull_request"]["head"]
        .as_object_mut()
        .unwrap()
        .remove("sha");
    let (status, problem) = server.deliver("pull_request", "d-broken", &broken).await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("pull_request.head"),
        "{problem}"
    );
    let bad_commit = adapt(
        opened.clone(),
        &[("/pull_request/head/sha", json!("--upload-pack=x"))],
    );
    let (status, problem) = server
        .deliver("pull_request", "d-bad-sha", &bad_commit)
        .await;
    assert_eq!(status, 422, "{problem}");
    let body = b"not json";
    let (status, _) = server
        .send_raw(
            "push",
            "d-text",
            body,
            Some(hub_signature(SECRET.as_bytes(), body)),
        )
        .await;
    assert_eq!(status, 422);
    let (status, problem) = server
        .send_raw(
            "push",
            "",
            body,
            Some(hub_signature(SECRET.as_bytes(), body)),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("x-github-delivery")
    );
    assert!(
        server
            .store
            .github_delivery("d-broken", "")
            .await
            .unwrap()
            .is_none()
    );
    server.stop().await;
}

/// Closed unmerged → closed and cancelled on GitHub; reopened → a new proposal; merged
/// without countersign's authorization → closed, said so; a push to the protected branch
/// moves the server's copy and queues the fleet's post-merge runs.
async fn closing_reopening_and_pushes(db: &Db) {
    let Some(all) = examples() else { return };
    let world = world();
    let api = stand_in(ManualClock::new(NOW)).await;
    let server = start(db, &world, &api, |c| c).await;
    let opened = adapt(
        example(&all, "pull_request", Some("opened")),
        &[
            ("/pull_request/head/sha", json!(world.h1)),
            ("/pull_request/base/sha", json!(world.base)),
        ],
    );
    let (_, answer) = server.deliver("pull_request", "d-1", &opened).await;
    let first = answer["proposal"].as_str().unwrap().to_owned();
    let closed_example = example(&all, "pull_request", Some("closed"));
    let closed = adapt(
        closed_example.clone(),
        &[
            ("/pull_request/head/sha", json!(world.h1)),
            ("/pull_request/base/sha", json!(world.base)),
        ],
    );
    let (status, answer) = server.deliver("pull_request", "d-2", &closed).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (StatusCode::OK, Some("closed")),
        "{answer}"
    );
    assert_eq!(server.proposal(&first).await["state"], "closed");
    server.reported(&first).await;
    assert_eq!(api.shown(&world.h1).unwrap()["conclusion"], "cancelled");

    // Reopened: a new proposal follows the pull request; its check is in progress again.
    let reopened = adapt(
        example(&all, "pull_request", Some("reopened")),
        &[
            ("/pull_request/head/sha", json!(world.h1)),
            ("/pull_request/base/sha", json!(world.base)),
        ],
    );
    let (status, answer) = server.deliver("pull_request", "d-3", &reopened).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (StatusCode::OK, Some("proposed")),
        "{answer}"
    );
    let second = answer["proposal"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    server.reported(&second).await;
    let shown = api.shown(&world.h1).unwrap();
    assert_eq!(shown["status"], "in_progress", "{shown}");
    assert_eq!(
        shown["output"]["title"],
        "awaiting approval: 0 of 1 (single_approver)"
    );

    // Merged on GitHub while countersign never authorized it: closed, and said so.
    let merged = adapt(
        closed_example,
        &[
            ("/pull_request/head/sha", json!(world.h1)),
            ("/pull_request/base/sha", json!(world.base)),
            ("/pull_request/merged", json!(true)),
            ("/pull_request/merge_commit_sha", json!(world.h1)),
        ],
    );
    let (status, answer) = server.deliver("pull_request", "d-4", &merged).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (StatusCode::OK, Some("closed")),
        "{answer}"
    );
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .contains("without countersign's authorization"),
        "{answer}"
    );
    server.reported(&second).await;
    assert_eq!(api.shown(&world.h1).unwrap()["conclusion"], "cancelled");

    // A push to master on GitHub: the server's master follows, the fleet gets the plan.
    git(
        &world.github,
        &["update-ref", "refs/heads/master", &world.lib],
    );
    let push = adapt(
        push_example(&all),
        &[("/before", json!(world.base)), ("/after", json!(world.lib))],
    );
    assert_eq!(push["ref"], "refs/heads/master");
    let (status, answer) = server.deliver("push", "d-5", &push).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "recorded", "{answer}");
    assert_eq!(answer["runs"], 1, "{answer}");
    assert_eq!(
        git(&world.server, &["rev-parse", "refs/heads/master"]),
        world.lib
    );
    let runs: Value = server
        .client
        .get(format!("{}/v1/runs", server.base))
        .bearer_auth(&server.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run = &runs["runs"][0];
    assert_eq!(run["suite"], "lib-unit", "{runs}");
    assert_eq!(run["branch"], "master", "{runs}");
    assert_eq!(run["commit"], world.lib.as_str(), "{runs}");
    // A push to master that does not fast-forward it: the server keeps its master.
    git(
        &world.github,
        &["update-ref", "refs/heads/master", &world.h1],
    );
    let forced = adapt(
        push_example(&all),
        &[("/before", json!(world.lib)), ("/after", json!(world.h1))],
    );
    let (status, answer) = server.deliver("push", "d-6", &forced).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .contains("does not fast-forward"),
        "{answer}"
    );
    assert_eq!(
        git(&world.server, &["rev-parse", "refs/heads/master"]),
        world.lib
    );

    // A pull request into a branch that is not protected is not judged.
    let elsewhere = adapt(opened, &[("/pull_request/base/ref", json!("develop"))]);
    let (status, answer) = server.deliver("pull_request", "d-7", &elsewhere).await;
    assert_eq!(status, 202, "{answer}");
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .contains("not a protected branch"),
        "{answer}"
    );
    server.stop().await;
}

/// A pull request countersign does not judge still gets a `countersign` check: completed,
/// `failure`, with the reason, so a branch protection requiring the check blocks the merge
/// and says why instead of waiting for a check that never comes.
async fn refused_pull_requests_show_a_failing_check(db: &Db) {
    let Some(all) = examples() else { return };
    let world = world();
    let api = stand_in(ManualClock::new(NOW)).await;
    let server = start(db, &world, &api, |c| c).await;
    let opened = adapt(
        example(&all, "pull_request", Some("opened")),
        &[
            ("/pull_request/head/sha", json!(world.h1)),
            ("/pull_request/base/sha", json!(world.base)),
        ],
    );
    let shown = |head: String| {
        let api = &api;
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(shown) = api.shown(&head) {
                    return shown;
                }
                assert!(Instant::now() < deadline, "nothing shown on {head}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    // Into a branch countersign does not protect: not judged, and shown so.
    let elsewhere = adapt(
        opened.clone(),
        &[("/pull_request/base/ref", json!("develop"))],
    );
    let (status, answer) = server.deliver("pull_request", "d-dev", &elsewhere).await;
    assert_eq!(status, 202, "{answer}");
    let check = shown(world.h1.clone()).await;
    assert_eq!(check["name"], "countersign", "{check}");
    assert_eq!(check["status"], "completed", "{check}");
    assert_eq!(check["conclusion"], "failure", "{check}");
    assert_eq!(check["output"]["title"], "not judged by countersign");
    assert!(
        check["output"]["summary"]
            .as_str()
            .unwrap()
            .contains("develop, which is not a protected branch"),
        "{check}"
    );

    // Refused: a head that shares no history with its base.
    let tree = git(
        &world.github,
        &["rev-parse", &format!("{}^{{tree}}", world.base)],
    );
    let orphan = git(&world.github, &["commit-tree", &tree, "-m", "orphan"]);
    git(&world.github, &["update-ref", "refs/pull/2/head", &orphan]);
    let unrelated = adapt(opened, &[("/pull_request/head/sha", json!(orphan))]);
    let (status, answer) = server.deliver("pull_request", "d-orphan", &unrelated).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "refused", "{answer}");
    let check = shown(orphan.clone()).await;
    assert_eq!(check["conclusion"], "failure", "{check}");
    assert!(
        check["output"]["summary"]
            .as_str()
            .unwrap()
            .contains("shares no history"),
        "{check}"
    );
    server.stop().await;
}

/// With a token rather than an App: commit statuses, the token sent as is.
async fn tokens_and_statuses(db: &Db) {
    let Some(all) = examples() else { return };
    let world = world();
    let api = stand_in(ManualClock::new(NOW)).await;
    let server = start(db, &world, &api, |c| {
        c.with_token("ghp_plain-test-token")
            .unwrap()
            .with_report(GithubReport::Status)
    })
    .await;
    let opened = adapt(
        example(&all, "pull_request", Some("opened")),
        &[
            ("/pull_request/head/sha", json!(world.h1)),
            ("/pull_request/base/sha", json!(world.base)),
        ],
    );
    let (_, answer) = server.deliver("pull_request", "d-1", &opened).await;
    let id = answer["proposal"].as_str().unwrap().to_owned();
    server.reported(&id).await;
    let calls = api.calls();
    let status = calls
        .iter()
        .find(|c| c.path.contains("/statuses/"))
        .unwrap_or_else(|| panic!("{calls:?}"));
    assert_eq!(
        status.path,
        format!("/repos/{FULL_NAME}/statuses/{}", world.h1)
    );
    assert_eq!(status.body["sent"]["state"], "pending");
    assert_eq!(status.body["sent"]["context"], "countersign");
    assert!(api.api.lock().unwrap().minted.is_empty());
    server.stop().await;
}

/// The App's installation token is bought once, reused, and bought again once the server's
/// clock passes its expiry (less the margin).
async fn installation_tokens_expire_with_the_clock(db: &Db) {
    let Some(all) = examples() else { return };
    let all = &all;
    let world = world();
    let api = stand_in(ManualClock::new(NOW)).await;
    let server = start(db, &world, &api, |c| c).await;
    let opened = adapt(
        example(all, "pull_request", Some("opened")),
        &[
            ("/pull_request/head/sha", json!(world.h1)),
            ("/pull_request/base/sha", json!(world.base)),
        ],
    );
    let (_, answer) = server.deliver("pull_request", "d-app-1", &opened).await;
    let first = answer["proposal"].as_str().unwrap().to_owned();
    server.reported(&first).await;
    assert_eq!(api.api.lock().unwrap().minted.len(), 1);
    // 56 minutes on: inside the margin of the hour-long token.
    api.clock.advance(Duration::from_secs(56 * 60));
    let closed = adapt(
        example(all, "pull_request", Some("closed")),
        &[
            ("/pull_request/head/sha", json!(world.h1)),
            ("/pull_request/base/sha", json!(world.base)),
        ],
    );
    let (_, answer) = server.deliver("pull_request", "d-app-2", &closed).await;
    assert_eq!(answer["outcome"], "closed", "{answer}");
    server.reported(&first).await;
    {
        let stand = api.api.lock().unwrap();
        assert_eq!(stand.minted.len(), 2, "{:?}", stand.calls);
        assert!(stand.refused.is_empty(), "{:?}", stand.refused);
    }
    server.stop().await;
}

// ---- The fleet: a runner leasing over HTTP and pushing signed JUnit results ----

/// The repository name the examples' evidence carries (`[repository] name`).
const REPOSITORY: &str = "github.com/Codertocat/Hello-World";

/// The key of runner `ci` in [`CONFIG`]: RFC 8032's first test key.
fn runner_key() -> countersign_evidence::dsse::SigningKey {
    let seed: [u8; 32] =
        hex_bytes("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    let key = countersign_evidence::dsse::SigningKey::from_seed(&seed);
    assert_eq!(
        key.public_key().to_hex(),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
    key
}

fn hex_bytes(text: &str) -> [u8; 32] {
    let mut out = [0; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// A JUnit report of suite `lib-unit` in which `failed` fail and `passed` pass, read with
/// countersign's JUnit reader and signed by runner `ci` for `commit`, as `attest` does.
fn junit_envelope(commit: &str, passed: &[&str], failed: &[&str]) -> Vec<u8> {
    use countersign_evidence::report::junit;
    use countersign_evidence::statement::{Statement, TEST_RESULT_V01, TestResult};
    let mut xml = format!(
        "<testsuites><testsuite name=\"lib\" tests=\"{}\" failures=\"{}\">",
        passed.len() + failed.len(),
        failed.len()
    );
    for name in passed {
        xml.push_str(&format!("<testcase classname=\"lib\" name=\"{name}\"/>"));
    }
    for name in failed {
        xml.push_str(&format!(
            "<testcase classname=\"lib\" name=\"{name}\"><failure message=\"assertion failed: add(1, 1) == 2\"/></testcase>"
        ));
    }
    xml.push_str("</testsuite></testsuites>");
    let report = junit::parse("junit.xml", xml.as_bytes()).unwrap();
    let result = TestResult::from_cases(&report.cases, Vec::new());
    let statement = Statement::for_commit(
        REPOSITORY,
        commit,
        "lib-unit",
        TEST_RESULT_V01,
        serde_json::to_value(&result).unwrap(),
    );
    countersign_evidence::attest(&statement, &runner_key()).to_json()
}

impl Server {
    /// A runner token of `runner:ci`.
    async fn runner_token(&self) -> String {
        let principal: Principal = "runner:ci".parse().unwrap();
        create_token(
            &self.store,
            &principal,
            Role::Runner,
            NOW as i64 + 86_400,
            [9; 32],
        )
        .await
        .unwrap()
        .0
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> Value {
        let (status, value) = self
            .call(reqwest::Method::GET, path, &self.admin, None)
            .await;
        assert_eq!(status, 200, "{path}: {value}");
        value
    }

    /// Leases every item runner `ci` may take now.
    async fn lease(&self, runner: &str) -> Vec<Value> {
        let body = json!({ "repository": REPOSITORY, "environments": ["default"], "max": 8 });
        let (status, leased) = self
            .call(
                reqwest::Method::POST,
                "/v1/work/lease",
                runner,
                Some(serde_json::to_vec(&body).unwrap()),
            )
            .await;
        assert_eq!(status, 200, "{leased}");
        leased["items"].as_array().unwrap().clone()
    }

    /// Pushes `envelope` for leased `item` (a branch run's route, or its proposal's), then
    /// finishes the item with `outcome`; the evidence route's answer.
    async fn run(&self, runner: &str, item: &Value, envelope: Vec<u8>, outcome: &str) -> Value {
        let route = match item["proposal"].as_str() {
            Some(p) => format!("/v1/proposals/{p}/evidence"),
            None => format!("/v1/runs/{}/evidence", item["id"].as_str().unwrap()),
        };
        let (status, answer) = self
            .call(reqwest::Method::POST, &route, runner, Some(envelope))
            .await;
        assert_eq!(status, 201, "{answer}");
        let body = json!({ "attempt": item["attempt"], "outcome": outcome });
        let (status, finished) = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/work/{}/finish", item["id"].as_str().unwrap()),
                runner,
                Some(serde_json::to_vec(&body).unwrap()),
            )
            .await;
        assert_eq!(status, 200, "{finished}");
        answer
    }

    /// The runs queued to verify fixes (cause `merge:…`).
    async fn verification_runs(&self) -> Vec<Value> {
        let runs = self.get("/v1/runs?branch=master").await;
        runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|run| {
                run["cause"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("merge:"))
            })
            .cloned()
            .collect()
    }
}

/// `payload` with field `key` (absent from the example) added to the object at `pointer`.
fn with_field(mut payload: Value, pointer: &str, key: &str, value: Value) -> Value {
    payload
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("the example has no {pointer}"))
        .as_object_mut()
        .unwrap()
        .insert(key.to_owned(), value);
    payload
}

/// GitHub moves `master` to `lib` (a `lib/` change) and announces the push: the server's
/// master follows and the fleet runs the change's plan (`lib-unit`) on it; runner `ci`
/// leases the run over HTTP and reports `lib::adds` and `lib::subs` failing in JUnit:
/// findings F-1 and F-2 are opened.
async fn push_and_fail(
    server: &Server,
    all: &BTreeMap<String, Vec<Value>>,
    world: &World,
    runner: &str,
) {
    git(
        &world.github,
        &["update-ref", "refs/heads/master", &world.lib],
    );
    let push = adapt(
        push_example(all),
        &[("/before", json!(world.base)), ("/after", json!(world.lib))],
    );
    let (status, answer) = server.deliver("push", "d-push-lib", &push).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["runs"], 1, "{answer}");
    // Redelivered: answered alike, nothing queued twice.
    let (_, again) = server.deliver("push", "d-push-lib", &push).await;
    assert_eq!(again, answer);
    let items = server.lease(runner).await;
    assert_eq!(items.len(), 1, "{items:?}");
    let item = &items[0];
    assert_eq!(item["suite"], "lib-unit");
    assert_eq!(item["branch"], "master");
    assert_eq!(item["commit"], world.lib.as_str());
    let answer = server
        .run(
            runner,
            item,
            junit_envelope(&world.lib, &["mul"], &["adds", "subs"]),
            "failed",
        )
        .await;
    let opened: Vec<(&str, &str)> = answer["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["finding"].as_str().unwrap(),
                c["change"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(opened, [("F-1", "opened"), ("F-2", "opened")], "{answer}");
}

/// A push to a protected branch on GitHub queues the pushed change's plan; a runner's
/// failing JUnit results of that run open findings, on the protected branch's commit.
async fn a_push_s_failing_run_opens_findings(db: &Db) {
    let Some(all) = examples() else { return };
    let world = world();
    let api = stand_in(ManualClock::new(NOW)).await;
    let server = start(db, &world, &api, |c| c).await;
    let runner = server.runner_token().await;
    push_and_fail(&server, &all, &world, &runner).await;
    let finding = server.get("/v1/findings/F-1").await;
    assert_eq!(finding["state"], "open", "{finding}");
    assert_eq!(finding["repo"], "shop");
    assert_eq!(finding["suite"], "lib-unit");
    assert_eq!(finding["branch"], "master");
    assert_eq!(finding["component"], "component:default/lib", "{finding}");
    assert_eq!(finding["evidence"]["commit"], world.lib.as_str());
    assert!(
        finding["evidence"]["message"]
            .as_str()
            .unwrap()
            .contains("assertion failed"),
        "{finding}"
    );
    // Nothing verifies anything: no merge was announced.
    assert!(server.verification_runs().await.is_empty());
    server.stop().await;
}

/// A pull request whose description says `Fixes F-1`: an unknown finding refuses it (a
/// failing check says why), a finding of another repository is never linked, the link
/// adds the reproducing suite without changing the tier; merged on GitHub, the merged pull
/// request and the push that lands it (`push_first`: in that order) queue the reproducing
/// suite's run on master once between them, redeliveries included; passing there, the
/// findings are verified.
async fn fixes_merged_on_github_are_verified(db: &Db, push_first: bool) {
    let Some(all) = examples() else { return };
    let world = world();
    let api = stand_in(ManualClock::new(NOW)).await;
    let server = start(db, &world, &api, |c| c).await;
    let runner = server.runner_token().await;
    push_and_fail(&server, &all, &world, &runner).await;
    // A finding of another repository on this server.
    {
        let mut tx = server.store.begin().await.unwrap();
        tx.observe_finding(&countersign_store::Observation {
            repo: "elsewhere".into(),
            repository: "github.com/acme/elsewhere".into(),
            kind: countersign_lifecycle::FindingKind::TestFailure,
            suite: "lib-unit".into(),
            test: "lib.adds".into(),
            component: "unmapped".into(),
            severity: countersign_lifecycle::severity(
                None,
                countersign_lifecycle::FindingKind::TestFailure,
            ),
            branch: "main".into(),
            commit: world.base.clone(),
            evidence: json!({}),
            owners: Vec::new(),
            now_ms: NOW as i64 * 1000,
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    // The fix: an `api/` change on top of master (its plan alone runs nothing).
    let fix = RepoWriter::open(&world.github)
        .unwrap()
        .commit_on(
            "refs/heads/fix",
            &CommitId::from_hex(&world.lib).unwrap(),
            [("api/handler.rs", Some("pub fn handle() { fixed() }\n"))],
            "api: the fix",
            CODERTOCAT,
            NOW as i64 + 10,
        )
        .unwrap()
        .as_str()
        .to_owned();
    git(&world.github, &["update-ref", "refs/pull/2/head", &fix]);
    let opened = |body: &str| {
        adapt(
            example(&all, "pull_request", Some("opened")),
            &[
                ("/pull_request/head/sha", json!(fix)),
                ("/pull_request/base/sha", json!(world.lib)),
                ("/pull_request/body", json!(body)),
            ],
        )
    };
    // GitHub has no example of an edited description: the opened one, as `edited`, with
    // the `changes` GitHub sends for it.
    let edited = |body: &str| {
        with_field(
            adapt(opened(body), &[("/action", json!("edited"))]),
            "",
            "changes",
            json!({ "body": { "from": "before" } }),
        )
    };

    // An unknown finding: refused, and the head's check fails saying which.
    let (status, answer) = server
        .deliver("pull_request", "d-open", &opened("Fixes F-99"))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "refused", "{answer}");
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .contains("there is no finding F-99"),
        "{answer}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let check = loop {
        if let Some(check) = api.shown(&fix) {
            break check;
        }
        assert!(Instant::now() < deadline, "no check on {fix}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(check["conclusion"], "failure", "{check}");
    assert!(
        check["output"]["summary"]
            .as_str()
            .unwrap()
            .contains("F-99"),
        "{check}"
    );
    // A finding of another repository: refused, never linked.
    let (_, answer) = server
        .deliver("pull_request", "d-edit-0", &edited("Fixes F-1, F-3"))
        .await;
    assert_eq!(answer["outcome"], "refused", "{answer}");
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .contains("repository elsewhere"),
        "{answer}"
    );
    assert_eq!(server.get("/v1/findings/F-3").await["fixes"], json!([]));
    assert_eq!(server.get("/v1/findings/F-1").await["fixes"], json!([]));

    // The description fixed: the edit opens the proposal, linking F-1. The change alone
    // plans nothing; the link requires the reproducing suite, at the same tier.
    let (_, answer) = server
        .deliver("pull_request", "d-edit-1", &edited("Fixes F-1"))
        .await;
    assert_eq!(answer["outcome"], "proposed", "{answer}");
    let id = answer["proposal"].as_str().unwrap().to_owned();
    let proposal = server.proposal(&id).await;
    assert_eq!(proposal["state"], "awaiting_evidence", "{proposal}");
    assert_eq!(proposal["tier"], "single_approver", "{proposal}");
    assert_eq!(server.get("/v1/findings/F-1").await["fixes"], json!([id]));
    // Edited again to name F-2 too: linked, the decision re-derived at the same head.
    let (_, answer) = server
        .deliver("pull_request", "d-edit-2", &edited("fixes: F-1, F-2"))
        .await;
    assert_eq!(answer["outcome"], "linked", "{answer}");
    assert_eq!(answer["state"], "awaiting_evidence", "{answer}");
    assert_eq!(server.get("/v1/findings/F-2").await["fixes"], json!([id]));
    // Naming them no more unlinks nothing.
    let (_, answer) = server
        .deliver("pull_request", "d-edit-3", &edited("A fix."))
        .await;
    assert_eq!(answer["outcome"], "unchanged", "{answer}");
    assert_eq!(server.get("/v1/findings/F-2").await["fixes"], json!([id]));
    let plan = server.get(&format!("/v1/proposals/{id}/plan")).await;
    assert_eq!(plan["missing"], json!(["lib-unit"]), "{plan}");

    // The head's run of the reproducing suite passes; an eligible person approves.
    let items = server.lease(&runner).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["proposal"], id.as_str());
    server
        .run(
            &runner,
            &items[0],
            junit_envelope(&fix, &["adds", "subs", "mul"], &[]),
            "passed",
        )
        .await;
    let opened_example = example(&all, "pull_request", Some("opened"));
    let approval = adapt(
        example(&all, "pull_request_review", Some("submitted")),
        &[
            ("/review/commit_id", json!(fix)),
            ("/review/state", json!("approved")),
            ("/review/user", requested_reviewer(&opened_example)),
            ("/pull_request/head/sha", json!(fix)),
        ],
    );
    let (_, answer) = server
        .deliver("pull_request_review", "d-approve", &approval)
        .await;
    assert_eq!(answer["state"], "authorized", "{answer}");

    // Merged on GitHub with a merge commit.
    let merge = git(
        &world.github,
        &[
            "-c",
            "user.name=GitHub",
            "-c",
            "user.email=noreply@github.com",
            "commit-tree",
            &format!("{fix}^{{tree}}"),
            "-p",
            &world.lib,
            "-p",
            &fix,
            "-m",
            "Merge pull request #2 from Codertocat/changes",
        ],
    );
    let closed = adapt(
        example(&all, "pull_request", Some("closed")),
        &[
            ("/pull_request/head/sha", json!(fix)),
            ("/pull_request/base/sha", json!(world.lib)),
            ("/pull_request/merged", json!(true)),
            ("/pull_request/merge_commit_sha", json!(merge)),
        ],
    );
    let push = adapt(
        push_example(&all),
        &[("/before", json!(world.lib)), ("/after", json!(merge))],
    );
    let land = || git(&world.github, &["update-ref", "refs/heads/master", &merge]);
    if push_first {
        land();
        let (_, pushed) = server.deliver("push", "d-push-merge", &push).await;
        assert_eq!(pushed["outcome"], "recorded", "{pushed}");
        assert_eq!(
            pushed.get("verification_runs"),
            None,
            "not merged yet: {pushed}"
        );
        let (_, merged) = server.deliver("pull_request", "d-closed", &closed).await;
        assert_eq!(merged["outcome"], "merged", "{merged}");
        assert_eq!(merged["verification_runs"], 1, "{merged}");
    } else {
        // GitHub announces the merge before its branch moved (as the server sees it).
        let (_, merged) = server.deliver("pull_request", "d-closed", &closed).await;
        assert_eq!(merged["outcome"], "merged", "{merged}");
        assert_eq!(
            merged["verification_runs"], 0,
            "the merge commit is not on master yet: {merged}"
        );
        land();
        let (_, pushed) = server.deliver("push", "d-push-merge", &push).await;
        assert_eq!(pushed["outcome"], "recorded", "{pushed}");
        assert_eq!(pushed["verification_runs"], 1, "{pushed}");
    }
    // Redelivered, both: nothing more.
    server.deliver("pull_request", "d-closed", &closed).await;
    server.deliver("push", "d-push-merge", &push).await;
    server
        .deliver("pull_request", "d-closed-again", &closed)
        .await;
    let runs = server.verification_runs().await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["cause"], format!("merge:{id}"));
    assert_eq!(runs[0]["commit"], merge.as_str());
    assert_eq!(runs[0]["suite"], "lib-unit");

    // The reproducing suite runs on master at the merge and passes: both verified.
    let items = server.lease(&runner).await;
    let item = items
        .iter()
        .find(|i| i["id"] == runs[0]["id"])
        .unwrap_or_else(|| panic!("{items:?}"));
    let answer = server
        .run(
            &runner,
            item,
            junit_envelope(&merge, &["adds", "subs", "mul"], &[]),
            "passed",
        )
        .await;
    let verified: Vec<(&str, &str)> = answer["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["finding"].as_str().unwrap(),
                c["change"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verified,
        [("F-1", "verified"), ("F-2", "verified")],
        "{answer}"
    );
    let finding = server.get("/v1/findings/F-1").await;
    assert_eq!(finding["state"], "verified", "{finding}");
    assert_eq!(finding["verification"]["proposal"], id.as_str());
    assert_eq!(finding["verification"]["commit"], merge.as_str());
    // The other repository's finding is untouched.
    assert_eq!(server.get("/v1/findings/F-3").await["state"], "open");
    server.stop().await;
}

/// A push to the pull request (synchronize) reads its description again: a finding it names
/// that the proposal does not fix yet is linked with the head move (its suite required, the
/// tier the change's own); one it cannot link refuses the move, and the new head's check
/// fails naming it while the proposal stays on the head it judged.
async fn synchronize_links_what_the_description_adds(db: &Db) {
    let Some(all) = examples() else { return };
    let world = world();
    let api = stand_in(ManualClock::new(NOW)).await;
    let server = start(db, &world, &api, |c| c).await;
    let runner = server.runner_token().await;
    push_and_fail(&server, &all, &world, &runner).await;
    let pull = |action: &str, head: &str, body: &str| {
        adapt(
            example(&all, "pull_request", Some(action)),
            &[
                ("/pull_request/head/sha", json!(head)),
                ("/pull_request/base/sha", json!(world.lib)),
                ("/pull_request/body", json!(body)),
            ],
        )
    };
    let opened_example = example(&all, "pull_request", Some("opened"));
    let (_, answer) = server
        .deliver(
            "pull_request",
            "d-open",
            &pull("opened", &world.h1, "An api change."),
        )
        .await;
    assert_eq!(answer["outcome"], "proposed", "{answer}");
    assert_eq!(answer["state"], "awaiting_approval", "{answer}");
    let id = answer["proposal"].as_str().unwrap().to_owned();
    let tier = server.proposal(&id).await["tier"].clone();
    let approval = adapt(
        example(&all, "pull_request_review", Some("submitted")),
        &[
            ("/review/commit_id", json!(world.h1)),
            ("/review/state", json!("approved")),
            ("/review/user", requested_reviewer(&opened_example)),
            ("/pull_request/head/sha", json!(world.h1)),
        ],
    );
    let (_, answer) = server
        .deliver("pull_request_review", "d-approve", &approval)
        .await;
    assert_eq!(answer["state"], "authorized", "{answer}");
    // Authorized, then the description says it fixes F-2: the authorization does not stand
    // without the reproducing suite's evidence (linking is never a way around it).
    let edited = with_field(
        adapt(
            pull("opened", &world.h1, "Closes F-2"),
            &[("/action", json!("edited"))],
        ),
        "",
        "changes",
        json!({ "body": { "from": "An api change." } }),
    );
    let (_, answer) = server.deliver("pull_request", "d-edit", &edited).await;
    assert_eq!(answer["outcome"], "linked", "{answer}");
    assert_eq!(answer["state"], "awaiting_evidence", "{answer}");
    assert_eq!(
        server.proposal(&id).await["tier"],
        tier,
        "a link never changes the tier"
    );
    assert_eq!(server.get("/v1/findings/F-2").await["fixes"], json!([id]));
    // Its run is queued for the head.
    let items = server.lease(&runner).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["proposal"], id.as_str());
    assert_eq!(items[0]["commit"], world.h1.as_str());

    git(
        &world.github,
        &["update-ref", "refs/pull/2/head", &world.h2],
    );
    let (_, answer) = server
        .deliver(
            "pull_request",
            "d-sync-1",
            &pull("synchronize", &world.h2, "Closes F-2, F-1"),
        )
        .await;
    assert_eq!(answer["outcome"], "head_moved", "{answer}");
    assert_eq!(answer["state"], "awaiting_evidence", "{answer}");
    let proposal = server.proposal(&id).await;
    assert_eq!(proposal["tier"], tier, "a link never changes the tier");
    assert_eq!(server.get("/v1/findings/F-1").await["fixes"], json!([id]));

    let h3 = RepoWriter::open(&world.github)
        .unwrap()
        .commit_on(
            "refs/heads/changes",
            &CommitId::from_hex(&world.h2).unwrap(),
            [("api/handler.rs", Some("pub fn handle() { v3() }\n"))],
            "api: v3",
            CODERTOCAT,
            NOW as i64 + 20,
        )
        .unwrap()
        .as_str()
        .to_owned();
    git(&world.github, &["update-ref", "refs/pull/2/head", &h3]);
    let (_, answer) = server
        .deliver(
            "pull_request",
            "d-sync-2",
            &pull("synchronize", &h3, "Closes F-1, F-99"),
        )
        .await;
    assert_eq!(answer["outcome"], "refused", "{answer}");
    assert!(
        answer["reason"].as_str().unwrap().contains("F-99"),
        "{answer}"
    );
    assert_eq!(server.proposal(&id).await["head"], world.h2.as_str());
    let deadline = Instant::now() + Duration::from_secs(20);
    let check = loop {
        if let Some(check) = api.shown(&h3) {
            break check;
        }
        assert!(Instant::now() < deadline, "no check on {h3}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(check["conclusion"], "failure", "{check}");
    server.stop().await;
}

async fn fixes_verified_merge_then_push(db: &Db) {
    fixes_merged_on_github_are_verified(db, false).await;
}

async fn fixes_verified_push_then_merge(db: &Db) {
    fixes_merged_on_github_are_verified(db, true).await;
}

on_both_backends!(
    a_pull_request_is_followed_to_its_merge,
    a_dismissed_review_withdraws_its_verdict,
    refused_pull_requests_show_a_failing_check,
    only_signed_deliveries_are_heard,
    closing_reopening_and_pushes,
    tokens_and_statuses,
    installation_tokens_expire_with_the_clock,
    a_push_s_failing_run_opens_findings,
    fixes_verified_merge_then_push,
    fixes_verified_push_then_merge,
    synchronize_links_what_the_description_adds,
);

/// Without the integration configured the route is a 404, whatever is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_is_404_without_the_integration() {
    let db = Db::sqlite();
    let server = common::start(&db).await;
    let body = br#"{"zen": "Keep it logically awesome."}"#;
    let response = server
        .client
        .post(format!("{}/v1/integrations/github/webhook", server.base))
        .header("x-github-event", "ping")
        .header("x-github-delivery", "d-1")
        .header(
            "x-hub-signature-256",
            hub_signature(SECRET.as_bytes(), body),
        )
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    server.stop().await;
    db.cleanup().await;
}
