//! Bounded fleet benchmarks against the real server (`countersign_server::run` on
//! `127.0.0.1:0`) over a fresh SQLite file or PostgreSQL schema (issue 17):
//!
//! * **overhead**: per run, what the server spends between a runner asking for work and the
//!   decision re-derived with its evidence: `POST /v1/work/lease` (one item of a proposal
//!   whose plan is one suite), `POST /v1/proposals/{id}/evidence` (one signed test-result
//!   envelope; the `201` is sent after the decision is re-derived and recorded) and
//!   `POST /v1/work/{id}/finish`. Signing the envelope is the runner's work and is not
//!   counted. One proposal per iteration, so each push re-derives a decision with one
//!   envelope.
//! * **drain**: `--runners` concurrent lease loops (lease one item, finish it, again) against
//!   one server and database until the `--items` work items are gone; asserts that every
//!   item ran exactly once and reports wall time and items per second.
//!
//! ```text
//! cargo run --release -p countersign-server --example fleet -- \
//!     [--database sqlite|postgres|URL] [--iterations 100] [--runners 50] [--items 1000]
//! ```
//!
//! `--database postgres` uses `COUNTERSIGN_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) with a fresh schema, dropped at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bench;

use bench::{Database, ms, percentile};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use countersign_evidence::dsse::SigningKey;
use countersign_evidence::statement::{Statement, TEST_RESULT_V01};
use countersign_policy::Principal;
use countersign_repo::RepoWriter;
use countersign_server::{AppState, Clock, Role, create_token};
use countersign_store::Store;
use serde_json::{Value, json};

const AUTHOR: &str = "Alice <alice@example.com>";
const TIME: i64 = 1_767_603_600;
const REPOSITORY: &str = "github.com/acme/fleet";
/// Suites per component in the drain's repository.
const SUITES_PER_COMPONENT: usize = 50;
const MAX_ITERATIONS: usize = 10_000;
const MAX_RUNNERS: usize = 256;
const MAX_ITEMS: usize = 20_000;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    database: String,
    iterations: usize,
    runners: usize,
    items: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        database: "sqlite".to_owned(),
        iterations: 100,
        runners: 50,
        items: 1000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{v}: {e}"));
        match flag.as_str() {
            "--database" => args.database = value()?,
            "--iterations" => args.iterations = number(value()?)?.clamp(1, MAX_ITERATIONS),
            "--runners" => args.runners = number(value()?)?.clamp(1, MAX_RUNNERS),
            "--items" => args.items = number(value()?)?.clamp(1, MAX_ITEMS),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

fn runner_key() -> SigningKey {
    SigningKey::from_seed(&[42; 32])
}

/// A repository whose components each plan `suites_per_component` suites (all defined in
/// `[suites]`, all attestable by the runner `ci`), and one change per component, each on its
/// own branch off the base. Returns the base and the heads.
fn repository(
    dir: &std::path::Path,
    components: usize,
    suites_per_component: usize,
) -> (String, Vec<String>) {
    let suite = |c: usize, s: usize| format!("c{c}-s{s}");
    let mut catalog = String::from(
        "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: team\nspec:\n  type: team\n  children: []\n",
    );
    let mut suites = Vec::new();
    for c in 0..components {
        let names: Vec<String> = (0..suites_per_component).map(|s| suite(c, s)).collect();
        catalog.push_str(&format!(
            "---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: c{c}\n  annotations:\n    countersign.dev/criticality: low\n    countersign.dev/paths: /c{c}/**\n    countersign.dev/suites: {}\nspec:\n  type: service\n  lifecycle: production\n  owner: team\n",
            names.join(", ")
        ));
        suites.extend(names);
    }
    let quoted: Vec<String> = suites.iter().map(|s| format!("\"{s}\"")).collect();
    let mut config = format!(
        "[repository]\nname = \"{REPOSITORY}\"\n\n[[runners]]\nname = \"ci\"\npublic_key = \"{}\"\nsuites = [{}]\n",
        runner_key().public_key().to_hex(),
        quoted.join(", ")
    );
    for s in &suites {
        config.push_str(&format!("\n[suites.{s}]\ncommand = [\"true\"]\n"));
    }
    let mut files: Vec<(String, String)> = vec![
        ("countersign.toml".to_owned(), config),
        ("catalog-info.yaml".to_owned(), catalog),
    ];
    files.extend((0..components).map(|c| (format!("c{c}/src.rs"), "fn f() {}\n".to_owned())));
    let mut w = RepoWriter::init(dir).unwrap();
    let base = w
        .commit(
            files.iter().map(|(p, t)| (p.as_str(), Some(t.as_str()))),
            "base",
            AUTHOR,
            TIME,
        )
        .unwrap();
    let heads = (0..components)
        .map(|c| {
            w.commit_on(
                &format!("refs/heads/c{c}"),
                &base,
                [(format!("c{c}/src.rs"), Some("fn f() { g() }\n"))],
                "change",
                AUTHOR,
                TIME + 1 + c as i64,
            )
            .unwrap()
            .as_str()
            .to_owned()
        })
        .collect();
    (base.as_str().to_owned(), heads)
}

/// A running server over a fresh database, with a proposer token and `runners` runner
/// tokens of `runner:ci`.
struct Harness {
    _dir: tempfile::TempDir,
    database: Option<Database>,
    store: Store,
    base_url: String,
    client: reqwest::Client,
    proposer: String,
    runners: Vec<String>,
    base: String,
    heads: Vec<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), std::io::Error>>>,
}

impl Harness {
    async fn start(
        spec: &str,
        server_runtime: &tokio::runtime::Handle,
        components: usize,
        suites_per_component: usize,
        runners: usize,
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let (base, heads) = repository(dir.path(), components, suites_per_component);
        let database = Database::open(spec, "fleet").await;
        let url = database.url().to_owned();
        let handle = server_runtime.clone();
        // (sqlx's connect future is not `Send`: it runs on a thread of its own, once.)
        let store = std::thread::spawn(move || handle.block_on(Store::connect(&url)).unwrap())
            .join()
            .unwrap();
        let agent: Principal = "agent:benchbot".parse().unwrap();
        let (proposer, _) = create_token(&store, &agent, Role::Proposer, i64::MAX, [7u8; 32])
            .await
            .unwrap();
        let runner: Principal = "runner:ci".parse().unwrap();
        let mut tokens = Vec::new();
        for n in 0..runners {
            let mut secret = [9u8; 32];
            secret[..8].copy_from_slice(&(n as u64).to_le_bytes());
            let (token, _) = create_token(&store, &runner, Role::Runner, i64::MAX, secret)
                .await
                .unwrap();
            tokens.push(token);
        }
        let repos = BTreeMap::from([("fleet".to_owned(), dir.path().to_owned())]);
        let state = AppState::new(store.clone(), repos, Clock::system());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = server_runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            countersign_server::run(listener, state, async move {
                let _ = stopped.await;
            })
            .await
        });
        Harness {
            _dir: dir,
            database: Some(database),
            store,
            base_url,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(runners + 1)
                .build()
                .unwrap(),
            proposer,
            runners: tokens,
            base,
            heads,
            stop: Some(stop),
            server: Some(server),
        }
    }

    async fn post(&self, token: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn propose_all(&self) {
        for head in &self.heads {
            let body =
                json!({ "repo": "fleet", "base": self.base, "head": head, "title": "bench" });
            let (status, view) = self
                .post(
                    &self.proposer,
                    "/v1/proposals",
                    body.to_string().into_bytes(),
                )
                .await;
            assert_eq!(status, 201, "{view}");
        }
    }

    /// Leases one item; `None` when the queue is empty.
    async fn lease(&self, token: &str) -> Option<Value> {
        let body = json!({ "repository": REPOSITORY, "environments": ["default"], "max": 1 });
        let (status, leased) = self
            .post(token, "/v1/work/lease", body.to_string().into_bytes())
            .await;
        assert_eq!(status, 200, "{leased}");
        leased["items"].as_array().unwrap().first().cloned()
    }

    async fn finish(&self, token: &str, item: &Value, envelopes: &[String]) {
        let id = item["id"].as_str().unwrap();
        let body = json!({
            "attempt": item["attempt"], "outcome": "passed",
            "tests": { "passed": 2, "failed": 0 }, "duration_ms": 1, "envelopes": envelopes,
        });
        let (status, view) = self
            .post(
                token,
                &format!("/v1/work/{id}/finish"),
                body.to_string().into_bytes(),
            )
            .await;
        assert_eq!(status, 200, "{view}");
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
        self.store.close().await;
        if let Some(database) = self.database.take() {
            database.drop_schema().await;
        }
    }
}

async fn overhead(args: &Args, server_runtime: &tokio::runtime::Handle) {
    let h = Harness::start(&args.database, server_runtime, args.iterations, 1, 1).await;
    h.propose_all().await;
    let token = h.runners[0].clone();
    let key = runner_key();
    let mut totals = Vec::new();
    let mut parts = [Duration::ZERO; 3];
    for _ in 0..args.iterations {
        let started = Instant::now();
        let item = h.lease(&token).await.expect("an item per proposal");
        let leased = started.elapsed();
        // The runner's work, not counted: sign the report.
        let statement = Statement::for_commit(
            REPOSITORY,
            item["commit"].as_str().unwrap(),
            item["suite"].as_str().unwrap(),
            TEST_RESULT_V01,
            json!({ "result": "PASSED", "configuration": [], "passedTests": ["t::a", "t::b"], "failedTests": [] }),
        );
        let bytes = countersign_evidence::attest(&statement, &key).to_json();
        let digest = countersign_audit::bundle::digest(&bytes);
        let proposal = item["proposal"].as_str().unwrap();
        let pushed_at = Instant::now();
        let (status, accepted) = h
            .post(&token, &format!("/v1/proposals/{proposal}/evidence"), bytes)
            .await;
        let pushed = pushed_at.elapsed();
        assert_eq!(status, 201, "{accepted}");
        assert_eq!(accepted["recorded"], true, "{accepted}");
        let finish_at = Instant::now();
        h.finish(&token, &item, &[digest]).await;
        let finished = finish_at.elapsed();
        totals.push(leased + pushed + finished);
        for (sum, part) in parts.iter_mut().zip([leased, pushed, finished]) {
            *sum += part;
        }
    }
    totals.sort();
    let n = totals.len() as u32;
    let mean = totals.iter().sum::<Duration>() / n;
    println!(
        "| {} | {} | {} | {} | {} | {} | {} | {} |",
        h.database.as_ref().unwrap().name(),
        args.iterations,
        ms(mean),
        ms(percentile(&totals, 50.0)),
        ms(percentile(&totals, 95.0)),
        ms(parts[0] / n),
        ms(parts[1] / n),
        ms(parts[2] / n),
    );
    h.stop().await;
}

async fn drain(args: &Args, server_runtime: &tokio::runtime::Handle) {
    let components = args.items.div_ceil(SUITES_PER_COMPONENT);
    let per = args.items.min(SUITES_PER_COMPONENT);
    let h = Arc::new(
        Harness::start(
            &args.database,
            server_runtime,
            components,
            per,
            args.runners,
        )
        .await,
    );
    h.propose_all().await;
    let items = components * per;
    let started = Instant::now();
    let loops: Vec<_> = (0..args.runners)
        .map(|n| {
            let h = h.clone();
            tokio::spawn(async move {
                let token = h.runners[n].clone();
                let mut ran = Vec::new();
                while let Some(item) = h.lease(&token).await {
                    h.finish(&token, &item, &[]).await;
                    ran.push(item["id"].as_str().unwrap().to_owned());
                }
                ran
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in loops {
        all.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "an item ran twice");
    assert_eq!(all.len(), items, "not every item ran");
    println!(
        "| {} | {} | {items} | {:.2} | {:.0} | every item ran exactly once |",
        h.database.as_ref().unwrap().name(),
        args.runners,
        elapsed.as_secs_f64(),
        items as f64 / elapsed.as_secs_f64(),
    );
    let h = Arc::into_inner(h).expect("the loops are done");
    h.stop().await;
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("fleet: {e}");
            std::process::exit(2);
        }
    };
    // The server gets a runtime of its own, as `countersign serve` builds it; the runners
    // share another, on the same cores.
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("server")
        .build()
        .unwrap();
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("runners")
        .build()
        .unwrap();
    let handle = server_runtime.handle().clone();
    client_runtime.block_on(async {
        println!("| backend | runs | mean ms | p50 ms | p95 ms | lease ms | push + re-derive ms | finish ms |");
        println!("|---|---|---|---|---|---|---|---|");
        overhead(&args, &handle).await;
        println!();
        println!("| backend | runners | items | seconds | items/s | check |");
        println!("|---|---|---|---|---|---|");
        drain(&args, &handle).await;
    });
}
