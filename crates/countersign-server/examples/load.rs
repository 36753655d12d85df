//! A bounded load generator for the countersign server: proposal decisions per second end to
//! end, and their latency.
//!
//! It writes a governed repository with many independent changes against one base, starts the
//! real server (`countersign_server::run`) on `127.0.0.1:0` over a fresh SQLite file or
//! PostgreSQL schema, and has `--clients` concurrent HTTP clients POST `/v1/proposals` until
//! `--requests` were sent or `--duration` elapsed, whichever comes first. Every request is a
//! whole decision: auth, the diff from git objects, the governed state of the base, Cedar, the
//! audit record and its log entries committed before the `201`. It only ever talks to the
//! loopback server it started.
//!
//! ```text
//! cargo run --release -p countersign-server --example load -- \
//!     [--database sqlite|postgres|URL] [--clients 64] [--requests 20000] [--duration 20s] \
//!     [--changes 512] [--components 40] [--warmup 256] [--loose] [--rate R]
//! ```
//!
//! By default each client sends its next request as soon as the previous one is answered
//! (a closed loop: the most decisions per second, and latency = clients / throughput). With
//! `--rate R` the requests are due at R per second whatever the answers (an open loop), and
//! each latency counts from when its request was due, so a stalled server shows as latency.
//!
//! The repository is packed with `git repack` (as a clone the server reads would be) unless
//! `--loose` is given or `git` is missing; the result line says which.
//!
//! `--hostile N` serves a second repository beside the measured one, with N clients
//! proposing against it without pause all through the measured phase: a base whose catalog
//! is a `--hostile-size`-node dependency chain and a head that changes a file of every
//! component (each such decision loads a large catalog and walks the whole chain). The
//! measured clients' latency, with and without it, is what the per-repository share of the
//! decision pool (issue 24) is for; the hostile repository's answers are counted apart.
//!
//! `--database postgres` uses `COUNTERSIGN_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) with a fresh schema, dropped at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bench;

use bench::{Database, ms, percentile};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use countersign_policy::Principal;
use countersign_repo::{CommitId, RepoWriter};
use countersign_server::{AppState, Clock, Role, create_token};
use countersign_store::Store;
use serde_json::json;

const AUTHOR: &str = "Alice <alice@example.com>";
const TIME: i64 = 1_767_603_600;
/// Hard ceilings whatever the flags say: a load run stays bounded.
const MAX_REQUESTS: u64 = 1_000_000;
const MAX_DURATION: Duration = Duration::from_secs(600);
const MAX_CLIENTS: usize = 1024;

struct Args {
    database: String,
    clients: usize,
    requests: u64,
    duration: Duration,
    changes: usize,
    components: usize,
    warmup: u64,
    pack: bool,
    rate: Option<f64>,
    hostile: usize,
    hostile_size: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        database: "sqlite".to_owned(),
        clients: 64,
        requests: 20_000,
        duration: Duration::from_secs(20),
        changes: 512,
        components: 40,
        warmup: 256,
        pack: true,
        rate: None,
        hostile: 0,
        hostile_size: 5_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|e| format!("{flag} {v:?}: {e}"))
                .and_then(|n| {
                    if n == 0 {
                        Err(format!("{flag} must be at least 1"))
                    } else {
                        Ok(n)
                    }
                })
        };
        match flag.as_str() {
            "--database" => args.database = value()?,
            "--clients" => args.clients = usize::try_from(number(value()?)?).unwrap_or(usize::MAX),
            "--requests" => args.requests = number(value()?)?,
            "--duration" => {
                let v = value()?;
                args.duration =
                    humantime::parse_duration(&v).map_err(|e| format!("--duration {v:?}: {e}"))?;
            }
            "--changes" => args.changes = usize::try_from(number(value()?)?).unwrap_or(usize::MAX),
            "--components" => {
                args.components = usize::try_from(number(value()?)?).unwrap_or(usize::MAX)
            }
            "--loose" => args.pack = false,
            "--hostile" => args.hostile = usize::try_from(number(value()?)?).unwrap_or(usize::MAX),
            "--hostile-size" => {
                args.hostile_size = usize::try_from(number(value()?)?).unwrap_or(usize::MAX)
            }
            "--rate" => {
                let v = value()?;
                let rate: f64 = v.parse().map_err(|e| format!("--rate {v:?}: {e}"))?;
                if !(rate > 0.0 && rate <= 100_000.0) {
                    return Err("--rate is between 0 and 100000 requests per second".into());
                }
                args.rate = Some(rate);
            }
            "--warmup" => args.warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--help" | "-h" => {
                println!(
                    "load [--database sqlite|postgres|URL] [--clients N] [--requests N] \
                     [--duration 20s] [--changes N] [--components N] [--warmup N] [--loose] [--rate R] \
                     [--hostile N] [--hostile-size NODES]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag {other:?} (try --help)")),
        }
    }
    if args.clients > MAX_CLIENTS || args.hostile > MAX_CLIENTS {
        return Err(format!("--clients and --hostile are at most {MAX_CLIENTS}"));
    }
    if args.hostile_size > 100_000 {
        return Err("--hostile-size is at most 100000".into());
    }
    if args.clients > MAX_CLIENTS {
        return Err(format!("--clients is at most {MAX_CLIENTS}"));
    }
    if args.requests > MAX_REQUESTS {
        return Err(format!("--requests is at most {MAX_REQUESTS}"));
    }
    if args.duration > MAX_DURATION {
        return Err(format!("--duration is at most {}s", MAX_DURATION.as_secs()));
    }
    Ok(args)
}

/// A catalog of one team (three humans) owning `n` components, every fourth one critical.
fn catalog(n: usize) -> String {
    let mut text = String::from(
        "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: team-shop\n\
         spec:\n  type: team\n  children: []\n  members: [alice, bob, carol]\n",
    );
    for user in ["alice", "bob", "carol"] {
        text.push_str(&format!(
            "---\napiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: {user}\n\
             spec:\n  memberOf: [team-shop]\n"
        ));
    }
    for i in 0..n {
        let criticality = if i % 4 == 0 { "critical" } else { "moderate" };
        text.push_str(&format!(
            "---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: svc-{i}\n  \
             annotations:\n    countersign.dev/criticality: {criticality}\n    \
             countersign.dev/paths: /svc-{i}/**\nspec:\n  type: service\n  lifecycle: production\n  \
             owner: team-shop\n"
        ));
        if i > 0 {
            text.push_str(&format!("  dependsOn: [component:svc-{}]\n", i - 1));
        }
    }
    text
}

/// The repository: a base commit and `changes` independent one-file changes branching from it.
fn repository(dir: &std::path::Path, components: usize, changes: usize) -> (String, Vec<String>) {
    let mut w = RepoWriter::init(dir).unwrap();
    let mut files: Vec<(String, Option<String>)> =
        vec![("catalog-info.yaml".to_owned(), Some(catalog(components)))];
    for i in 0..components {
        files.push((format!("svc-{i}/src/lib.rs"), Some(format!("// svc {i}\n"))));
    }
    w.commit(files, "base", AUTHOR, TIME).unwrap();
    let base: CommitId = w.head().unwrap();
    let heads = (0..changes)
        .map(|i| {
            let path = format!("svc-{}/src/change_{i}.rs", i % components);
            w.commit_on(
                &format!("refs/heads/change-{i}"),
                &base,
                [(path, Some(format!("// change {i}\n")))],
                &format!("change {i}"),
                AUTHOR,
                TIME + 1 + i64::try_from(i).unwrap(),
            )
            .unwrap()
            .as_str()
            .to_owned()
        })
        .collect();
    (base.as_str().to_owned(), heads)
}

/// The hostile repository: a catalog of one `nodes`-node chain (`h<i+1>` depends on `h<i>`),
/// with the catalog size limit raised as a legitimately large catalog would, and one head
/// that changes a file of every component. Returns the base and the head.
fn hostile_repository(dir: &std::path::Path, nodes: usize) -> (String, String) {
    let mut text = String::from(
        "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: team-h\n\
         spec:\n  type: team\n  children: []\n",
    );
    for i in 0..nodes {
        text.push_str(&format!(
            "---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: h{i}\n  \
             annotations:\n    countersign.dev/paths: /h{i}/**\nspec:\n  type: service\n  \
             owner: team-h\n"
        ));
        if i > 0 {
            text.push_str(&format!("  dependsOn: [component:h{}]\n", i - 1));
        }
    }
    let mut w = RepoWriter::init(dir).unwrap();
    let mut files: Vec<(String, Option<String>)> = vec![
        ("catalog-info.yaml".to_owned(), Some(text)),
        (
            "countersign.toml".to_owned(),
            Some("[limits]\nfile_bytes = 67108864\nglobs = 200000\n".to_owned()),
        ),
    ];
    files.extend((0..nodes).map(|i| (format!("h{i}/lib.rs"), Some(format!("// {i}\n")))));
    w.commit(files, "base", AUTHOR, TIME).unwrap();
    let base: CommitId = w.head().unwrap();
    let head = w
        .commit_on(
            "refs/heads/everything",
            &base,
            (0..nodes).map(|i| (format!("h{i}/lib.rs"), Some(format!("// {i} changed\n")))),
            "touch every component",
            AUTHOR,
            TIME + 1,
        )
        .unwrap();
    (base.as_str().to_owned(), head.as_str().to_owned())
}

/// Packs the repository as a served clone is (`git clone` and `git gc` write packs; the
/// writer leaves one loose file per object). Whether it could is printed with the results.
fn pack(dir: &std::path::Path) -> bool {
    std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["repack", "-a", "-d", "-q"])
        .status()
        .is_ok_and(|status| status.success())
}

struct Shared {
    client: reqwest::Client,
    url: String,
    token: String,
    base: String,
    heads: Vec<String>,
    next: AtomicU64,
    limit: u64,
    deadline: Instant,
    /// Open loop: request `n` is due at `start + n / rate`, and its latency counts from then.
    rate: Option<f64>,
    start: Instant,
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    by_status: BTreeMap<u16, u64>,
    first_error: Option<String>,
}

async fn client(shared: Arc<Shared>) -> Tally {
    let mut tally = Tally::default();
    loop {
        let n = shared.next.fetch_add(1, Ordering::Relaxed);
        if n >= shared.limit || Instant::now() >= shared.deadline {
            return tally;
        }
        // Every head is proposed again and again with a distinct title: the same base, so
        // the governed state is shared, and a distinct proposal every time.
        let head = &shared.heads[usize::try_from(n).unwrap() % shared.heads.len()];
        let body = json!({
            "repo": "shop", "base": shared.base, "head": head,
            "title": format!("load change {n}"),
        });
        let started = match shared.rate {
            Some(rate) => {
                let due = shared.start + Duration::from_secs_f64(n as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                due
            }
            None => Instant::now(),
        };
        let response = shared
            .client
            .post(&shared.url)
            .bearer_auth(&shared.token)
            .json(&body)
            .send()
            .await;
        let (status, text) = match response {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.text().await.unwrap_or_default())
            }
            Err(e) => (0, e.to_string()),
        };
        let elapsed = started.elapsed();
        *tally.by_status.entry(status).or_default() += 1;
        if status == 201 {
            tally.latencies.push(elapsed);
        } else if tally.first_error.is_none() {
            tally.first_error = Some(format!("{status}: {text}"));
        }
    }
}

/// Proposes `head` on `base` of the hostile repository until `stop`, counting statuses.
async fn hostile_client(
    shared: Arc<Shared>,
    base: String,
    head: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> BTreeMap<u16, u64> {
    let mut statuses = BTreeMap::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let body = json!({
            "repo": "hostile", "base": base, "head": head, "title": format!("hostile {n}"),
        });
        let status = match shared
            .client
            .post(&shared.url)
            .bearer_auth(&shared.token)
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        };
        *statuses.entry(status).or_default() += 1;
    }
    statuses
}

async fn run_phase(shared: &Arc<Shared>, clients: usize) -> (Tally, Duration) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(client(shared.clone())))
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        let tally = task.await.unwrap();
        total.latencies.extend(tally.latencies);
        for (status, count) in tally.by_status {
            *total.by_status.entry(status).or_default() += count;
        }
        if total.first_error.is_none() {
            total.first_error = tally.first_error;
        }
    }
    (total, started.elapsed())
}

/// The allocator of the `countersign` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("load: {e}");
            std::process::exit(2);
        }
    };
    // The server gets a runtime of its own, as `countersign serve` builds it; the clients
    // share another. Both still share the machine's cores, as on one host they would.
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("server")
        .build()
        .unwrap();
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("client")
        .build()
        .unwrap();
    client_runtime.block_on(run(args, server_runtime.handle().clone()));
}

async fn run(args: Args, server_runtime: tokio::runtime::Handle) {
    let dir = tempfile::tempdir().unwrap();
    let (base, heads) = repository(dir.path(), args.components, args.changes);
    let packed = args.pack && pack(dir.path());
    let database = Database::open(&args.database, "load").await;
    let url = database.url().to_owned();
    // The server's store lives in the server's runtime (its connections' I/O with it).
    let handle = server_runtime.clone();
    // (sqlx's connect future is not `Send`: it runs on a thread of its own, once.)
    let store = std::thread::spawn(move || handle.block_on(Store::connect(&url)).unwrap())
        .join()
        .unwrap();
    let principal: Principal = "agent:loadbot".parse().unwrap();
    let (token, _) = create_token(&store, &principal, Role::Proposer, i64::MAX, [7u8; 32])
        .await
        .unwrap();
    let mut repos = BTreeMap::from([("shop".to_owned(), dir.path().to_owned())]);
    let hostile_dir = tempfile::tempdir().unwrap();
    let hostile = (args.hostile > 0).then(|| {
        let (base, head) = hostile_repository(hostile_dir.path(), args.hostile_size);
        if args.pack {
            pack(hostile_dir.path());
        }
        repos.insert("hostile".to_owned(), hostile_dir.path().to_owned());
        (base, head)
    });
    let state = AppState::new(store.clone(), repos, Clock::system());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/v1/proposals", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = server_runtime.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        countersign_server::run(listener, state, async move {
            let _ = stopped.await;
        })
        .await
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()
        .unwrap();

    let phase = |limit: u64, duration: Duration, rate: Option<f64>| {
        Arc::new(Shared {
            rate,
            start: Instant::now(),
            client: client.clone(),
            url: url.clone(),
            token: token.clone(),
            base: base.clone(),
            heads: heads.clone(),
            next: AtomicU64::new(0),
            limit,
            deadline: Instant::now() + duration,
        })
    };
    if args.warmup > 0 {
        // Opens the connections and fills the caches; not measured.
        let (warm, _) = run_phase(&phase(args.warmup, MAX_DURATION, None), args.clients).await;
        if let Some(error) = warm.first_error {
            eprintln!("warm-up error: {error}");
        }
    }
    let stop_hostile = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hostile_tasks: Vec<_> = hostile
        .iter()
        .flat_map(|(base, head)| {
            let shared = phase(u64::MAX, MAX_DURATION, None);
            let stop = stop_hostile.clone();
            (0..args.hostile).map(move |_| {
                tokio::spawn(hostile_client(
                    shared.clone(),
                    base.clone(),
                    head.clone(),
                    stop.clone(),
                ))
            })
        })
        .collect();
    if !hostile_tasks.is_empty() {
        // Let the hostile decisions occupy the pool before the measured phase starts.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (mut tally, elapsed) = run_phase(
        &phase(args.requests, args.duration, args.rate),
        args.clients,
    )
    .await;
    stop_hostile.store(true, Ordering::Relaxed);
    let mut hostile_statuses: BTreeMap<u16, u64> = BTreeMap::new();
    for task in hostile_tasks {
        for (status, count) in task.await.unwrap() {
            *hostile_statuses.entry(status).or_default() += count;
        }
    }
    tally.latencies.sort();
    let ok = tally.latencies.len();
    let sent: u64 = tally.by_status.values().sum();
    let rate = ok as f64 / elapsed.as_secs_f64();
    let l = &tally.latencies;
    println!(
        "| backend | clients | offered/s | sent | 201 | other | seconds | decisions/s | p50 ms | p95 ms | p99 ms | max ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {sent} | {ok} | {} | {:.2} | {rate:.0} | {} | {} | {} | {} |",
        database.name(),
        args.clients,
        args.rate.map_or("max".to_owned(), |r| format!("{r:.0}")),
        sent - ok as u64,
        elapsed.as_secs_f64(),
        ms(percentile(l, 50.0)),
        ms(percentile(l, 95.0)),
        ms(percentile(l, 99.0)),
        ms(l.last().copied().unwrap_or_default()),
    );
    if let Some(error) = &tally.first_error {
        println!("statuses {:?}; first failure: {error}", tally.by_status);
    }
    if hostile.is_some() {
        println!(
            "hostile repository ({} clients, a {}-node chain, every component changed): statuses {hostile_statuses:?}",
            args.hostile, args.hostile_size
        );
    }
    let size = store.log_size().await.unwrap();
    println!(
        "log size after the run: {size} entries; repository: {} objects, {} changes, {} components",
        if packed { "packed" } else { "loose" },
        args.changes,
        args.components
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    store.close().await;
    database.drop_schema().await;
}
