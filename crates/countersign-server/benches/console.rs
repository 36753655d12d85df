//! The console's pages rendered server-side with a big database (issue 19's performance
//! acceptance): the home page and a proposal's page for a signed-in owner, with 10,000
//! proposals and 100,000 runs, on SQLite and on PostgreSQL (skipped with the reason printed
//! when the test server is unreachable, as the tests do).
//!
//! The data: three proposals made through the real API (so the template has its decision,
//! log entries and repository), then cloned by one `INSERT ... SELECT` over a recursive
//! series to 10,000 (one in 20 awaiting approval, one in 20 awaiting evidence, the rest
//! merged), and 100,000 runs spread over the last 30 days (about 3,300 in the last 24
//! hours; some queued and running) in one more. What is measured is one in-process request
//! through the server's router (`tower::ServiceExt::oneshot`), body included: routing, the
//! session lookup, every query, the rendering.
//!
//!     cargo bench -p countersign-server --bench console
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use countersign_server::AppState;
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tower::ServiceExt as _;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PROPOSALS: i64 = 10_000;
const RUNS: i64 = 100_000;

/// A connection of the bench's own to the store's database, for the bulk inserts.
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Raw {
    async fn connect(url: &str) -> Raw {
        if url.starts_with("sqlite:") {
            Raw::Sqlite(sqlx::SqlitePool::connect(url).await.unwrap())
        } else {
            Raw::Postgres(sqlx::PgPool::connect(url).await.unwrap())
        }
    }

    async fn execute(&self, sql: &str) -> u64 {
        match self {
            Raw::Sqlite(pool) => sqlx::query(sql)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
            Raw::Postgres(pool) => sqlx::query(sql)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
        }
        .unwrap_or_else(|e| panic!("{e}: {sql}"))
    }

    /// The columns of `table`, in order.
    async fn columns(&self, table: &str) -> Vec<String> {
        use sqlx::Row as _;
        match self {
            Raw::Sqlite(pool) => sqlx::query(&format!(
                "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
            ))
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect(),
            Raw::Postgres(pool) => sqlx::query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_name = $1 AND table_schema = current_schema() \
                 ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect(),
        }
    }

    /// What a deployment's database knows about its tables after a bulk load: PostgreSQL's
    /// autovacuum analyzes them on its own, so the bench does it at once; SQLite gathers no
    /// statistics unless told to and the server does not, so the SQLite half runs without
    /// (the queries must not need them).
    async fn analyze(&self) {
        if let Raw::Postgres(_) = self {
            self.execute("ANALYZE").await;
        }
    }

    async fn close(self) {
        match self {
            Raw::Sqlite(pool) => pool.close().await,
            Raw::Postgres(pool) => pool.close().await,
        }
    }
}

/// `WITH RECURSIVE n(i)` counting 1..=`to`, which both SQLite and PostgreSQL run (a 64-bit
/// counter: PostgreSQL's `integer` overflows in the runs' time arithmetic).
fn series(to: i64) -> String {
    format!(
        "WITH RECURSIVE n(i) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT i + 1 FROM n WHERE i < {to})"
    )
}

/// Clones `template` into [`PROPOSALS`] proposals and adds [`RUNS`] runs.
async fn seed(raw: &Raw, template: &str, now_ms: i64) {
    let columns = raw.columns("proposals").await;
    let values: Vec<String> = columns
        .iter()
        .map(|c| match c.as_str() {
            "id" => "'p-' || (100000000000 + n.i) || 'c0ffee000000'".to_owned(),
            "title" => "p.title || ' #' || n.i".to_owned(),
            "state" => "CASE WHEN n.i % 20 = 0 THEN 'awaiting_approval' \
                        WHEN n.i % 20 = 1 THEN 'awaiting_evidence' ELSE 'merged' END"
                .to_owned(),
            "superseded_by" | "closed_reason" => "NULL".to_owned(),
            other => format!("p.{other}"),
        })
        .collect();
    let inserted = raw
        .execute(&format!(
            "{} INSERT INTO proposals ({}) SELECT {} FROM proposals p, n WHERE p.id = '{template}'",
            series(PROPOSALS),
            columns.join(", "),
            values.join(", ")
        ))
        .await;
    assert_eq!(inserted, PROPOSALS as u64);
    // One run every 26 s back from now: 100,000 cover 30 days.
    let inserted = raw
        .execute(&format!(
            "{} INSERT INTO runs (id, repo, repository, suite, environment, commit_id, proposal, \
             definition, state, outcome, runner, attempt, queued_at, started_at, finished_at, \
             tests_passed, tests_failed, tests_skipped, duration_ms) \
             SELECT 'r-' || (100000000000 + n.i) || 'c0ffee000000', 'shop', 'github.com/acme/shop', \
             CASE WHEN n.i % 3 = 0 THEN 'payments-unit' ELSE 'shop-e2e' END, 'default', p.head, \
             'p-' || (100000000000 + n.i % {PROPOSALS} + 1) || 'c0ffee000000', \
             '{{\"command\":[\"true\"]}}', \
             CASE WHEN n.i % 2000 = 0 THEN 'running' WHEN n.i % 2000 = 1 THEN 'queued' ELSE 'finished' END, \
             CASE WHEN n.i % 2000 IN (0, 1) THEN NULL WHEN n.i % 17 = 0 THEN 'failed' ELSE 'passed' END, \
             CASE WHEN n.i % 2000 = 1 THEN NULL ELSE 'runner:ci' END, 1, \
             {now_ms} - n.i * 26000, \
             CASE WHEN n.i % 2000 = 1 THEN NULL ELSE {now_ms} - n.i * 26000 + 1000 END, \
             CASE WHEN n.i % 2000 IN (0, 1) THEN NULL ELSE {now_ms} - n.i * 26000 + 61000 END, \
             CASE WHEN n.i % 2000 IN (0, 1) THEN NULL ELSE 120 END, \
             CASE WHEN n.i % 2000 IN (0, 1) THEN NULL WHEN n.i % 17 = 0 THEN 1 ELSE 0 END, \
             CASE WHEN n.i % 2000 IN (0, 1) THEN NULL ELSE 3 END, \
             CASE WHEN n.i % 2000 IN (0, 1) THEN NULL ELSE 60000 END \
             FROM proposals p, n WHERE p.id = '{template}'",
            series(RUNS),
        ))
        .await;
    assert_eq!(inserted, RUNS as u64);
    raw.analyze().await;
}

/// Proposals through the real server, the bulk data, a console session for alice.
async fn prepare(db: &common::Db) -> Fixture {
    let captured = std::sync::Arc::new(std::sync::Mutex::new(None::<AppState>));
    let keep = captured.clone();
    let server = common::start_with(db, move |state| {
        *keep.lock().unwrap() = Some(state.clone());
        state
    })
    .await;
    let state = captured.lock().unwrap().take().unwrap();
    let (status, proposal) = server.propose("fixbot", &server.repo.payments).await;
    assert!(status.is_success(), "{proposal}");
    let (status, docs) = server.propose("fixbot", &server.repo.docs).await;
    assert!(status.is_success(), "{docs}");
    let template = proposal["id"].as_str().unwrap().to_owned();
    let raw = Raw::connect(db.url()).await;
    seed(&raw, &template, common::NOW as i64 * 1000).await;
    raw.close().await;
    let router = countersign_server::router(state);
    let cookie = sign_in(&router, &server).await;
    Fixture {
        router,
        cookie,
        proposal: template,
    }
}

/// alice's session cookie, from a one-click sign-in link (as `countersign demo` prints).
async fn sign_in(router: &axum::Router, server: &common::Server) -> String {
    let alice: countersign_policy::Principal = "human:alice".parse().unwrap();
    let link = countersign_server::console::create_sign_in_link(
        &server.store,
        &alice,
        countersign_server::Role::Approver,
        common::NOW as i64 + 3600,
        [0x42; 32],
    )
    .await
    .unwrap();
    let response = router
        .clone()
        .oneshot(Request::get(&link).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let cookie = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    assert!(!cookie.is_empty(), "{link}: {}", response.status());
    cookie
}

/// A database with the data, the router's state and the paths to measure.
struct Fixture {
    router: axum::Router,
    cookie: String,
    proposal: String,
}

async fn get(router: &axum::Router, path: &str, cookie: &str) -> (StatusCode, usize) {
    let response = router
        .clone()
        .oneshot(
            Request::get(path)
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .unwrap();
    (status, body.len())
}

fn bench_backend(c: &mut Criterion, rt: &Runtime, name: &str, db: &common::Db) {
    let fixture = rt.block_on(prepare(db));
    for (page, path) in [
        ("home", "/".to_owned()),
        ("proposal", format!("/proposals/{}", fixture.proposal)),
    ] {
        let (status, bytes) = rt.block_on(get(&fixture.router, &path, &fixture.cookie));
        assert_eq!(status, StatusCode::OK, "{name} {path}");
        eprintln!("{name} {path}: {bytes} bytes");
        let mut group = c.benchmark_group(format!("console_{name}"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(5));
        group.bench_function(page, |b| {
            b.iter(|| rt.block_on(get(&fixture.router, &path, &fixture.cookie)));
        });
        group.finish();
    }
}

fn benches(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let sqlite = common::Db::sqlite();
    bench_backend(c, &rt, "sqlite", &sqlite);
    match rt.block_on(common::Db::postgres()) {
        Some(postgres) => {
            bench_backend(c, &rt, "postgres", &postgres);
            rt.block_on(postgres.cleanup());
        }
        None => eprintln!("skipped the PostgreSQL half: the test server is unreachable"),
    }
}

criterion_group!(console, benches);
criterion_main!(console);
