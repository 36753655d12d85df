//! Webhook notifications end to end: the real server on 127.0.0.1:0 delivering to a loopback
//! receiver (axum on 127.0.0.1:0) that verifies every HMAC signature and records what it
//! got; the outbox's transactional and claiming guarantees at the store. Every scenario on
//! SQLite and PostgreSQL. Nothing is ever sent off the loopback interface.
//!
//! The server's time is a `ManualClock` the tests move: the worker signs and logs with it
//! and prunes by it, so nothing here sleeps to make time pass. What the tests still wait
//! for is the other side doing its work (a delivery arriving, a row settling) and the
//! database's clock, which alone says when a retry is due or a lease has expired (so that
//! several servers agree): those waits poll for the condition, with tiny delays.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode};
use common::{Db, NOW, Server, start_with};
use countersign_audit::{Event, EventKind};
use countersign_repo::RepoWriter;
use countersign_server::{AppState, DeliverySettings, ManualClock, Target, WebhookConfig};
use countersign_store::{Attempt, OutboxItem, Outcome, Store};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "test-secret-0123456789abcdef";

/// One request the receiver accepted as authentic.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    event: String,
    attempt: String,
    /// `X-Countersign-Timestamp`: the server's clock when it sent the request.
    timestamp: u64,
    body: Value,
}

#[derive(Default)]
struct Inbox {
    /// Statuses to answer with, in order; 200 once empty.
    script: VecDeque<u16>,
    received: Vec<Received>,
    /// Requests whose signature or timestamp did not verify.
    forged: Vec<String>,
}

/// A webhook receiver on 127.0.0.1:0, verifying signatures the way docs/server.md tells
/// receivers to, against the server's clock.
struct Receiver {
    url: String,
    inbox: Arc<Mutex<Inbox>>,
}

/// The time of a server under test: the harness's `NOW` until a test moves it.
fn clock() -> ManualClock {
    ManualClock::new(NOW)
}

fn unix_seconds(clock: &ManualClock) -> u64 {
    clock.now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The server reads `clock`.
fn reading(clock: &ManualClock, mut state: AppState) -> AppState {
    state.clock = clock.clock();
    state
}

fn verify(headers: &HeaderMap, body: &[u8], clock: &ManualClock) -> Result<u64, String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(format!("no {name}"))
    };
    let timestamp = header("x-countersign-timestamp")?;
    let signature = header("x-countersign-signature")?;
    let hex = signature
        .strip_prefix("sha256=")
        .ok_or("not sha256=")?
        .to_owned();
    let expected: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| "signature mismatch".to_owned())?;
    let sent: u64 = timestamp.parse().map_err(|_| "timestamp not a number")?;
    // Receivers allow some skew; the server's clock is the test's, so none is needed here:
    // the request was signed with the time it reads.
    let now = unix_seconds(clock);
    if sent != now {
        return Err(format!("timestamp {sent} is not the server's time {now}"));
    }
    Ok(sent)
}

/// A receiver answering `script` (then 200), for a server reading `clock`.
async fn receiver(script: impl IntoIterator<Item = u16>, clock: &ManualClock) -> Receiver {
    receiver_advancing(script, clock, Duration::ZERO).await
}

/// [`receiver`] that moves `clock` forward by `step` after each request it accepts: the
/// next attempt happens later by the server's clock.
async fn receiver_advancing(
    script: impl IntoIterator<Item = u16>,
    clock: &ManualClock,
    step: Duration,
) -> Receiver {
    let clock = clock.clone();
    let inbox = Arc::new(Mutex::new(Inbox {
        script: script.into_iter().collect(),
        ..Inbox::default()
    }));
    let shared = Arc::clone(&inbox);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let inbox = Arc::clone(&shared);
            let clock = clock.clone();
            async move {
                let mut inbox = inbox.lock().unwrap();
                let timestamp = match verify(&headers, &body, &clock) {
                    Ok(timestamp) => timestamp,
                    Err(why) => {
                        inbox.forged.push(why);
                        return StatusCode::UNAUTHORIZED;
                    }
                };
                let header = |name: &str| headers[name].to_str().unwrap().to_owned();
                inbox.received.push(Received {
                    id: header("x-countersign-id"),
                    event: header("x-countersign-event"),
                    attempt: header("x-countersign-attempt"),
                    timestamp,
                    body: serde_json::from_slice(&body).unwrap(),
                });
                clock.advance(step);
                StatusCode::from_u16(inbox.script.pop_front().unwrap_or(200)).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url, inbox }
}

impl Receiver {
    fn received(&self) -> Vec<Received> {
        let inbox = self.inbox.lock().unwrap();
        assert!(inbox.forged.is_empty(), "forged: {:?}", inbox.forged);
        inbox.received.clone()
    }
}

/// Fast retries for tests: 20 ms, then 40 ms (each jittered down to half), polled every
/// 10 ms.
fn fast() -> DeliverySettings {
    DeliverySettings {
        max_attempts: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(10),
        concurrency: 4,
        retention: Duration::from_secs(3600),
    }
}

fn config(targets: Vec<Target>, delivery: DeliverySettings) -> WebhookConfig {
    WebhookConfig::new(targets)
        .unwrap()
        .with_delivery(delivery)
        .unwrap()
}

/// Polls `condition` every 10 ms for up to 10 s: for what the server does in its own time
/// (delivering, settling a row) or the database's clock decides.
async fn until<T>(what: &str, mut condition: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn events_about(server: &Server, id: &str) -> Vec<Event> {
    server
        .store
        .entries_about(id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event().unwrap())
        .collect()
}

async fn notify_and_proceed_alerts_the_owning_team(db: &Db) {
    let clock = clock();
    let shop = receiver([], &clock).await;
    let ops = receiver([], &clock).await;
    let targets = vec![
        Target::new("team-shop", &shop.url, SECRET)
            .unwrap()
            .with_teams(["team-shop"])
            .unwrap(),
        // Another team's target hears nothing of team-shop's change.
        Target::new("team-ops", &ops.url, SECRET)
            .unwrap()
            .with_teams(["group:default/team-ops"])
            .unwrap(),
    ];
    let changes = changes();
    let server = start_with_changes(db, &changes, config(targets, fast()), &clock).await;
    let proposal = propose_change(&server, &changes, &changes.shop).await;
    assert_eq!(
        (proposal["tier"].as_str(), proposal["state"].as_str()),
        (Some("notify_and_proceed"), Some("authorized")),
        "{proposal}"
    );
    let id = proposal["id"].as_str().unwrap();
    let got = until("the team alert", async || {
        let r = shop.received();
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(got.len(), 1, "{got:?}");
    let alert = &got[0];
    assert_eq!(alert.event, "notify_and_proceed");
    assert_eq!(alert.attempt, "1");
    assert_eq!(alert.timestamp, NOW);
    assert_eq!(alert.body["created_at"], "2026-01-05T09:00:00Z");
    assert_eq!(alert.body["id"], alert.id.as_str());
    assert_eq!(alert.body["type"], "notify_and_proceed");
    assert_eq!(alert.body["proposal"]["id"], id);
    assert_eq!(alert.body["proposal"]["state"], "authorized");
    assert_eq!(alert.body["proposal"]["head"], changes.shop.as_str());
    assert_eq!(
        alert.body["owners"],
        serde_json::json!(["group:default/team-shop"])
    );
    assert_eq!(
        alert.body["touched"],
        serde_json::json!(["component:default/shop"])
    );
    // The alert is in the log: a `notified` event, in the transaction of the decision,
    // after `authorized`, naming the one target; the payload points at it.
    let events = events_about(&server, id).await;
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Proposed,
            EventKind::Decided,
            EventKind::Authorized,
            EventKind::Notified
        ]
    );
    assert_eq!(events[3].data["targets"], serde_json::json!(["team-shop"]));
    let entries = server.store.entries_about(id).await.unwrap();
    assert_eq!(alert.body["log_index"], entries[3].index);

    // The delivery log, for auditors and admins only. The worker records the attempt once
    // the receiver has answered: wait for that, not just for the receiver.
    until("the attempt recorded", async || {
        let rows = server.store.outbox(10).await.unwrap();
        rows.iter().any(|r| r.state == "delivered").then_some(())
    })
    .await;
    let (status, log) = server
        .send(
            reqwest::Method::GET,
            "/v1/webhooks/deliveries",
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{log}");
    let rows = log["deliveries"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{log}");
    assert_eq!(
        (
            rows[0]["notification"].as_str(),
            rows[0]["target"].as_str(),
            rows[0]["status"].as_u64(),
            rows[0]["outcome"].as_str(),
            rows[0]["attempt"].as_u64(),
        ),
        (
            Some(alert.id.as_str()),
            Some("team-shop"),
            Some(200),
            Some("delivered"),
            Some(1)
        )
    );
    // When it started, by the server's clock.
    assert_eq!(rows[0]["started_at"], "2026-01-05T09:00:00.000Z");
    // Only the origin of the URL is shown: paths often carry secrets.
    assert_eq!(
        rows[0]["url"].as_str().unwrap(),
        shop.url.trim_end_matches("/hook")
    );
    assert!(log["next_before"].is_null(), "{log}");
    let (status, problem) = server
        .send(
            reqwest::Method::GET,
            "/v1/webhooks/deliveries",
            Some("fixbot"),
            None,
        )
        .await;
    assert_eq!(status, 403, "{problem}");
    let (status, problem) = server
        .send(
            reqwest::Method::GET,
            "/v1/webhooks/deliveries?limit=0",
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(
        (status.as_u16(), problem["detail"].as_str()),
        (422, Some("limit: 0 is not between 1 and 1000"))
    );
    let (status, _) = server
        .send(
            reqwest::Method::GET,
            "/v1/webhooks/deliveries?before=soon",
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(status, 422);
    assert!(ops.received().is_empty());
    server.stop().await;
}

/// A repository with independent changes against one base: the common catalog plus a
/// high-criticality `inventory` component. A `shop` change (moderate) is notify_and_proceed,
/// an `inventory` change (high) needs a single approver from team-shop.
struct Changes {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    base: String,
    shop: String,
    inventory: String,
}

fn changes() -> Changes {
    let dir = tempfile::tempdir().unwrap();
    let mut w = RepoWriter::init(dir.path()).unwrap();
    let catalog = format!(
        "{}---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: inventory\n  \
         annotations:\n    countersign.dev/criticality: high\n    countersign.dev/paths: /inventory/**\n\
         spec:\n  type: service\n  lifecycle: production\n  owner: team-shop\n",
        common::CATALOG
    );
    // Not a member of team-shop, so every member stays an eligible approver.
    let author = "Dave <dave@example.com>";
    let base = w
        .commit(
            [
                ("catalog-info.yaml", Some(catalog.as_str())),
                ("inventory/stock.rs", Some("pub fn stock() {}\n")),
                ("shop/index.html", Some("<html></html>\n")),
            ],
            "base",
            author,
            NOW as i64,
        )
        .unwrap();
    let shop = w
        .commit_on(
            "refs/heads/shop",
            &base,
            [("shop/index.html", Some("<html>shop</html>\n"))],
            "shop",
            author,
            NOW as i64 + 1,
        )
        .unwrap();
    let inventory = w
        .commit_on(
            "refs/heads/inventory",
            &base,
            [("inventory/stock.rs", Some("pub fn stock() -> u32 { 0 }\n"))],
            "stock",
            author,
            NOW as i64 + 2,
        )
        .unwrap();
    Changes {
        path: dir.path().to_owned(),
        _dir: dir,
        base: base.as_str().to_owned(),
        shop: shop.as_str().to_owned(),
        inventory: inventory.as_str().to_owned(),
    }
}

/// The server with `changes` configured as repository `changes`, and `webhooks`, reading
/// `clock`.
async fn start_with_changes(
    db: &Db,
    changes: &Changes,
    webhooks: WebhookConfig,
    clock: &ManualClock,
) -> Server {
    let path = changes.path.clone();
    let clock = clock.clone();
    start_with(db, move |mut state| {
        let mut repos = (*state.repos).clone();
        repos.insert("changes".to_owned(), path);
        state.repos = Arc::new(repos);
        reading(&clock, state)
            .with_webhooks(webhooks)
            .with_log_signer(common::log_signer())
    })
    .await
}

/// The server with `webhooks`, reading `clock`.
async fn start_with_webhooks(db: &Db, webhooks: WebhookConfig, clock: &ManualClock) -> Server {
    let clock = clock.clone();
    start_with(db, move |state| {
        reading(&clock, state).with_webhooks(webhooks)
    })
    .await
}

async fn propose_change(server: &Server, changes: &Changes, head: &str) -> Value {
    let body = serde_json::json!({ "repo": "changes", "base": changes.base, "head": head, "title": "change" });
    let (status, proposal) = server
        .send(
            reqwest::Method::POST,
            "/v1/proposals",
            Some("fixbot"),
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{proposal}");
    proposal
}

async fn approvers_are_told_when_a_proposal_waits(db: &Db) {
    let clock = clock();
    let hooks = receiver([], &clock).await;
    let changes = changes();
    let targets = vec![Target::new("approvers", &hooks.url, SECRET).unwrap()];
    let server = start_with_changes(db, &changes, config(targets, fast()), &clock).await;
    let head = changes.inventory.clone();
    let proposal = propose_change(&server, &changes, &head).await;
    assert_eq!(
        (proposal["tier"].as_str(), proposal["state"].as_str()),
        (Some("single_approver"), Some("awaiting_approval")),
        "{proposal}"
    );
    let id = proposal["id"].as_str().unwrap().to_owned();
    let waiting = until("the approvers' notice", async || {
        hooks.received().first().cloned()
    })
    .await;
    assert_eq!(waiting.event, "awaiting_approval");
    assert_eq!(waiting.body["proposal"]["id"], id.as_str());
    assert_eq!(waiting.body["proposal"]["state"], "awaiting_approval");
    assert_eq!(waiting.body["approvals_required"], 1);
    let approvers = waiting.body["approvers"].as_array().unwrap();
    assert_eq!(
        approvers,
        proposal["eligible_approvers"].as_array().unwrap()
    );
    assert!(
        approvers.contains(&Value::from("human:bob")),
        "{approvers:?}"
    );

    let (status, after) = server.verdict("bob", &id, &head, "approve").await;
    assert_eq!(
        (status.as_u16(), after["state"].as_str()),
        (200, Some("authorized"))
    );
    let authorized = until("the authorization notice", async || {
        hooks.received().get(1).cloned()
    })
    .await;
    assert_eq!(authorized.event, "authorized");
    assert_eq!(authorized.body["proposal"]["state"], "authorized");
    assert!(authorized.body["approvers"].as_array().unwrap().is_empty());
    assert_ne!(authorized.id, waiting.id);
    // The `notified` events sit in the proposal's log and bundle, which still verifies and
    // re-derives offline.
    let kinds: Vec<EventKind> = events_about(&server, &id)
        .await
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::Proposed,
            EventKind::Decided,
            EventKind::Notified,
            EventKind::Approved,
            EventKind::Authorized,
            EventKind::Notified
        ]
    );
    let bundle = server
        .client
        .get(format!("{}/v1/proposals/{id}/bundle", server.base))
        .bearer_auth(&server.tokens["auditor"])
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let verifier = common::log_signer().verifier();
    let bundle =
        countersign_audit::bundle::verify_bundle(&bundle, std::slice::from_ref(&verifier)).unwrap();
    assert_eq!(bundle.events.len(), 6);
    let differences = countersign_decide::bundle::rederive(&bundle, &verifier).unwrap();
    assert!(differences.is_empty(), "{differences:?}");

    // A rejection is announced too.
    let (_, change_control) = server
        .propose("fixbot", &server.repo.payments.clone())
        .await;
    let other = change_control["id"].as_str().unwrap();
    let payments = server.repo.payments.clone();
    assert_eq!(
        server.verdict("bob", other, &payments, "reject").await.1["state"],
        "rejected"
    );
    let got = until("the rejection notice", async || {
        let r = hooks.received();
        (r.len() >= 4).then_some(r)
    })
    .await;
    let kinds: BTreeSet<(&str, &str)> = got
        .iter()
        .map(|r| (r.body["proposal"]["id"].as_str().unwrap(), r.event.as_str()))
        .collect();
    assert!(kinds.contains(&(other, "awaiting_approval")), "{kinds:?}");
    assert!(kinds.contains(&(other, "rejected")), "{kinds:?}");
    assert_eq!(got.len(), 4, "{got:?}");
    server.stop().await;
}

async fn a_failing_receiver_gets_it_on_the_third_attempt(db: &Db) {
    let clock = clock();
    // A minute passes (by the server's clock) with each attempt.
    let hooks = receiver_advancing([500, 500], &clock, Duration::from_secs(60)).await;
    let targets = vec![Target::new("flaky", &hooks.url, SECRET).unwrap()];
    let server = start_with_webhooks(db, config(targets, fast()), &clock).await;
    let (_, proposal) = server.propose("fixbot", &server.repo.docs.clone()).await;
    assert_eq!(proposal["state"], "authorized", "{proposal}");
    let row = until("delivery", async || {
        let rows = server.store.outbox(10).await.unwrap();
        rows.into_iter().find(|r| r.state != "pending")
    })
    .await;
    assert_eq!(
        (row.state.as_str(), row.attempts),
        ("delivered", 3),
        "{row:?}"
    );
    let got = hooks.received();
    // The same notification three times, numbered.
    assert_eq!(
        got.iter()
            .map(|r| (r.id.as_str(), r.attempt.as_str(), r.event.as_str()))
            .collect::<Vec<_>>(),
        [
            (row.item.notification.as_str(), "1", "authorized"),
            (row.item.notification.as_str(), "2", "authorized"),
            (row.item.notification.as_str(), "3", "authorized"),
        ]
    );
    assert!(got.windows(2).all(|w| w[0].body == w[1].body));
    // Each attempt is signed with the time the server's clock read when it was made.
    assert_eq!(
        got.iter().map(|r| r.timestamp).collect::<Vec<_>>(),
        [NOW, NOW + 60, NOW + 120]
    );
    let log = server.store.deliveries(100, None).await.unwrap();
    let mut log: Vec<_> = log
        .into_iter()
        .map(|d| {
            (
                d.attempt.attempt,
                d.attempt.started_at_ms,
                d.attempt.status,
                d.outcome,
                d.attempt.error,
            )
        })
        .collect();
    log.reverse();
    let at = |minutes: i64| (NOW as i64 + 60 * minutes) * 1000;
    assert_eq!(
        log,
        [
            (
                1,
                at(0),
                Some(500),
                "retry".to_owned(),
                Some("HTTP 500 Internal Server Error".to_owned())
            ),
            (
                2,
                at(1),
                Some(500),
                "retry".to_owned(),
                Some("HTTP 500 Internal Server Error".to_owned())
            ),
            (3, at(2), Some(200), "delivered".to_owned(), None),
        ]
    );
    server.stop().await;
}

/// A server whose one target, `down`, answers `script` (then 200) and gets two attempts; a
/// proposal is made, and its notification has settled (dead, with a script of two or more
/// failures).
async fn settled_after_two_attempts(
    db: &Db,
    script: impl IntoIterator<Item = u16>,
) -> (Server, Receiver, countersign_store::OutboxRow) {
    let clock = clock();
    let hooks = receiver(script, &clock).await;
    let targets = vec![Target::new("down", &hooks.url, SECRET).unwrap()];
    let delivery = DeliverySettings {
        max_attempts: 2,
        ..fast()
    };
    let server = start_with_webhooks(db, config(targets, delivery), &clock).await;
    server.propose("fixbot", &server.repo.docs.clone()).await;
    let row = until("a settled notification", async || {
        let rows = server.store.outbox(10).await.unwrap();
        rows.into_iter().find(|r| r.state != "pending")
    })
    .await;
    (server, hooks, row)
}

async fn a_dead_receiver_dead_letters_after_the_last_attempt(db: &Db) {
    let (server, hooks, row) = settled_after_two_attempts(db, [503, 503, 503, 503]).await;
    assert_eq!((row.state.as_str(), row.attempts), ("dead", 2), "{row:?}");
    assert_eq!(
        row.last_error.as_deref(),
        Some("HTTP 503 Service Unavailable")
    );
    let outcomes: Vec<String> = server
        .store
        .deliveries(10, None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.outcome)
        .collect();
    assert_eq!(outcomes, ["dead", "retry"]);
    // What an operator alerts on.
    let metrics = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"countersign_webhook_deliveries_total{target="down",outcome="dead"} 1"#,
        r#"countersign_webhook_deliveries_total{target="down",outcome="retry"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} not in {metrics}");
    }
    // Nothing more is attempted: a dead row is claimable by no worker, now or later.
    assert!(
        server
            .store
            .claim_notifications("probe", 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(hooks.received().len(), 2);
    server.stop().await;
}

/// After the receiver's outage, an admin queues the dead notification again: it is sent
/// at once, with its attempts counted from 1 again, and delivered. Only an admin may, only
/// for a configured target, and only what is dead.
async fn an_admin_redelivers_dead_notifications(db: &Db) {
    let (server, hooks, dead) = settled_after_two_attempts(db, [503, 503]).await;
    assert_eq!(dead.state, "dead");
    let redeliver = |token: &'static str, body: Value| {
        let server = &server;
        async move {
            server
                .send(
                    reqwest::Method::POST,
                    "/v1/webhooks/redeliver",
                    Some(token),
                    Some(body),
                )
                .await
        }
    };
    // Refused: not an admin; a target that is not configured; a notification never sent.
    let (status, _) = redeliver("auditor", json!({ "target": "down" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, problem) = redeliver("admin", json!({ "target": "gone" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("\"gone\""));
    let (status, _) = redeliver(
        "admin",
        json!({ "target": "down", "notification": "ntf-nothing" }),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = redeliver("admin", json!({ "target": "down", "extra": 1 })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, body) = redeliver(
        "admin",
        json!({ "target": "down", "notification": dead.item.notification }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["requeued"], json!([dead.item.id]));
    let delivered = until("redelivery", async || {
        let rows = server.store.outbox(10).await.unwrap();
        rows.into_iter().find(|r| r.state == "delivered")
    })
    .await;
    assert_eq!(delivered.item.id, dead.item.id);
    assert_eq!(delivered.attempts, 1, "counted from 1 again");
    let received = hooks.received();
    let attempts: Vec<&str> = received.iter().map(|r| r.attempt.as_str()).collect();
    assert_eq!(attempts, ["1", "2", "1"]);
    assert!(received.iter().all(|r| r.id == dead.item.notification));
    // Delivered now: nothing left to redeliver.
    let (status, problem) = redeliver(
        "admin",
        json!({ "target": "down", "notification": dead.item.notification }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let (status, body) = redeliver("admin", json!({ "target": "down" })).await;
    assert_eq!(
        (status, body["requeued"].clone()),
        (StatusCode::OK, json!([]))
    );
    server.stop().await;
}

/// The worker prunes settled notifications past their retention when its clock says an
/// interval has passed since it last did: not before, however much real time passes.
async fn the_worker_prunes_when_its_clock_says_so(db: &Db) {
    let clock = clock();
    let hooks = receiver([], &clock).await;
    let targets = vec![Target::new("hooks", &hooks.url, SECRET).unwrap()];
    let delivery = DeliverySettings {
        retention: Duration::from_millis(1),
        ..fast()
    };
    let server = start_with_webhooks(db, config(targets, delivery), &clock).await;
    server.propose("fixbot", &server.repo.docs.clone()).await;
    until("delivery", async || {
        let rows = server.store.outbox(10).await.unwrap();
        rows.into_iter().find(|r| r.state == "delivered")
    })
    .await;
    // The worker goes round again (it delivers a second notification) long after the first
    // passed its 1 ms retention; but it pruned when it started, before either existed, and
    // its clock has not moved since: both stay.
    server.propose("fixbot", &server.repo.shop.clone()).await;
    let rows = until("the second delivery", async || {
        let rows = server.store.outbox(10).await.unwrap();
        (rows.iter().filter(|r| r.state == "delivered").count() == 2).then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    // An hour later by the server's clock, the worker prunes again.
    clock.advance(Duration::from_secs(3600));
    until("pruning", async || {
        server
            .store
            .outbox(10)
            .await
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(server.store.deliveries(10, None).await.unwrap().is_empty());
    assert_eq!(hooks.received().len(), 2);
    server.stop().await;
}

fn item(n: usize) -> OutboxItem {
    OutboxItem {
        id: format!("ntf-{n}/t"),
        notification: format!("ntf-{n}"),
        target: "t".to_owned(),
        kind: "authorized".to_owned(),
        subject: format!("p-{n}"),
        payload: "{}".to_owned(),
    }
}

async fn a_rolled_back_transaction_leaves_no_outbox_row(db: &Db) {
    let store = Store::connect(db.url()).await.unwrap();
    let event = Event::new(
        EventKind::Notified,
        "2026-01-05T09:00:00Z",
        "p-1",
        "system:countersign",
        serde_json::json!({}),
    )
    .unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.append_event(&event).await.unwrap();
    tx.enqueue_notification(&item(1)).await.unwrap();
    tx.rollback().await.unwrap();
    // Dropped without commit: the same.
    let mut tx = store.begin().await.unwrap();
    tx.enqueue_notification(&item(2)).await.unwrap();
    drop(tx);
    assert!(store.outbox(10).await.unwrap().is_empty());
    assert!(
        store
            .claim_notifications("w", 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.log_size().await.unwrap(), 0);
    // Committed, it is there, once.
    let mut tx = store.begin().await.unwrap();
    tx.append_event(&event).await.unwrap();
    tx.enqueue_notification(&item(3)).await.unwrap();
    tx.commit().await.unwrap();
    let rows = store.outbox(10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].item.clone(), rows[0].state.as_str()),
        (item(3), "pending")
    );
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(
        tx.enqueue_notification(&item(3)).await,
        Err(countersign_store::Error::Duplicate { .. })
    ));
    drop(tx);
    store.close().await;
}

/// Settled notifications past their retention go, with their attempts; pending ones stay.
async fn settled_notifications_are_pruned_after_retention(db: &Db) {
    let store = Store::connect(db.url()).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    for n in 0..3 {
        tx.enqueue_notification(&item(n)).await.unwrap();
    }
    tx.commit().await.unwrap();
    let claimed = store.claim_notifications("w", 60_000, 2).await.unwrap();
    assert_eq!(claimed.len(), 2);
    for (claimed, outcome) in claimed.iter().zip([Outcome::Delivered, Outcome::Dead]) {
        let attempt = Attempt {
            outbox: claimed.item.id.clone(),
            notification: claimed.item.notification.clone(),
            target: "t".to_owned(),
            url: "https://hooks.example.com".to_owned(),
            attempt: claimed.attempt,
            started_at_ms: 0,
            duration_ms: 3,
            status: Some(200),
            error: None,
        };
        assert!(store.record_attempt("w", &attempt, outcome).await.unwrap());
        // A worker that no longer holds the lease settles nothing (the attempt is logged).
        assert!(!store.record_attempt("x", &attempt, outcome).await.unwrap());
    }
    assert_eq!(store.deliveries(10, None).await.unwrap().len(), 4);
    // Within the retention: nothing goes.
    assert_eq!(store.prune_notifications(3_600_000).await.unwrap(), 0);
    // Past a retention of 1 ms (by the database's clock): both settled rows go.
    let mut pruned = 0;
    until("the settled rows to age past 1 ms", async || {
        pruned += store.prune_notifications(1).await.unwrap();
        (pruned >= 2).then_some(())
    })
    .await;
    assert_eq!(pruned, 2);
    let left = store.outbox(10).await.unwrap();
    assert_eq!(
        left.iter()
            .map(|r| (r.item.id.as_str(), r.state.as_str()))
            .collect::<Vec<_>>(),
        [("ntf-2/t", "pending")]
    );
    assert!(store.deliveries(10, None).await.unwrap().is_empty());
    store.close().await;
}

/// Two workers (two pools, as two processes would have) claiming at once never get the same
/// row, and a claimed row is not claimable again until its lease expires.
async fn concurrent_claims_never_share_a_row(db: &Db) {
    let store = Store::connect(db.url()).await.unwrap();
    let other = Store::connect(db.url()).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    for n in 0..40 {
        tx.enqueue_notification(&item(n)).await.unwrap();
    }
    tx.commit().await.unwrap();
    let mut tasks = Vec::new();
    for (w, s) in [&store, &other, &store, &other].into_iter().enumerate() {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = s
                    .claim_notifications(&format!("worker-{w}"), 60_000, 3)
                    .await
                    .unwrap();
                if claimed.is_empty() {
                    return mine;
                }
                mine.extend(claimed.into_iter().map(|c| (c.item.id, c.attempt)));
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    assert_eq!(all.len(), 40, "{all:?}");
    let ids: BTreeSet<&String> = all.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 40);
    assert!(all.iter().all(|(_, attempt)| *attempt == 1));
    // Leased: nobody gets them now. With an expired lease (0 ms), they come back as attempt 2.
    assert!(
        store
            .claim_notifications("late", 60_000, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let mut tx = store.begin().await.unwrap();
    tx.enqueue_notification(&item(100)).await.unwrap();
    tx.commit().await.unwrap();
    let first = store.claim_notifications("a", 0, 100).await.unwrap();
    assert_eq!(first.len(), 1);
    let again = until("the 0 ms lease to expire", async || {
        let again = other.claim_notifications("b", 60_000, 100).await.unwrap();
        (!again.is_empty()).then_some(again)
    })
    .await;
    assert_eq!(
        again
            .iter()
            .map(|c| (c.item.id.as_str(), c.attempt))
            .collect::<Vec<_>>(),
        [("ntf-100/t", 2)]
    );
    store.close().await;
    other.close().await;
}

on_both_backends!(
    notify_and_proceed_alerts_the_owning_team,
    approvers_are_told_when_a_proposal_waits,
    a_failing_receiver_gets_it_on_the_third_attempt,
    a_dead_receiver_dead_letters_after_the_last_attempt,
    an_admin_redelivers_dead_notifications,
    the_worker_prunes_when_its_clock_says_so,
    a_rolled_back_transaction_leaves_no_outbox_row,
    concurrent_claims_never_share_a_row,
    settled_notifications_are_pruned_after_retention,
);
