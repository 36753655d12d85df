//! Store benchmarks on a SQLite file (WAL, synchronous=FULL): appending 10,000 events in
//! batches and one transaction per event, an inclusion proof and whole-log verification at
//! 100,000 leaves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use countersign_audit::{Event, EventKind, Signer};
use countersign_store::{Store, verify};
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

/// A realistic event: a canonical decision event is a few hundred bytes.
fn event(n: u64) -> Event {
    Event::new(
        EventKind::Decided,
        "2026-11-27T02:40:23Z",
        &format!("prop-{n}"),
        "human:alice",
        serde_json::json!({"envelope": format!("sha256:{n:064x}"), "tier": "single_approver"}),
    )
    .unwrap()
}

async fn fresh() -> (tempfile::TempDir, String, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let store = Store::connect(&url).await.unwrap();
    (dir, url, store)
}

async fn append(store: &Store, range: std::ops::Range<u64>, per_tx: u64) {
    let mut n = range.start;
    while n < range.end {
        let mut tx = store.begin().await.unwrap();
        for m in n..(n + per_tx).min(range.end) {
            tx.append_event(&event(m)).await.unwrap();
        }
        tx.commit().await.unwrap();
        n += per_tx;
    }
}

fn benches(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();

    let mut group = c.benchmark_group("sqlite_append_10k");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    for per_tx in [10_000u64, 100, 1] {
        group.bench_function(format!("{per_tx}_per_tx"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (_dir, _url, store) = rt.block_on(fresh());
                    let start = Instant::now();
                    rt.block_on(append(&store, 0..10_000, per_tx));
                    total += start.elapsed();
                    rt.block_on(store.close());
                }
                total
            })
        });
    }
    group.finish();

    // 100k by default to keep `cargo bench` short; COUNTERSIGN_BENCH_LEAVES=1000000 for
    // the 1M-entry figures.
    let leaves: u64 = std::env::var("COUNTERSIGN_BENCH_LEAVES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let (_dir, url, store) = rt.block_on(fresh());
    rt.block_on(append(&store, 0..leaves, 5000));
    let signer = Signer::from_seed("bench.countersign/log", [1; 32]).unwrap();
    rt.block_on(store.sign_checkpoint(&signer)).unwrap();

    let mut group = c.benchmark_group(format!("sqlite_{leaves}"));
    let mut index = 0u64;
    group.bench_function("inclusion_proof", |b| {
        b.iter(|| {
            index = (index + 7919) % leaves;
            black_box(rt.block_on(store.inclusion_proof(index, leaves)).unwrap())
        })
    });
    group.bench_function("tree_hash", |b| {
        b.iter(|| black_box(rt.block_on(store.tree_hash(leaves)).unwrap()))
    });
    // The same store with its stored hashes mirrored in memory, as the server runs it.
    let mirrored = rt.block_on(Store::connect(&url)).unwrap();
    rt.block_on(mirrored.mirror_stored_hashes()).unwrap();
    group.bench_function("inclusion_proof_mirrored", |b| {
        b.iter(|| {
            index = (index + 7919) % leaves;
            black_box(
                rt.block_on(mirrored.inclusion_proof(index, leaves))
                    .unwrap(),
            )
        })
    });
    group.bench_function("tree_hash_mirrored", |b| {
        b.iter(|| black_box(rt.block_on(mirrored.tree_hash(leaves)).unwrap()))
    });
    group.sample_size(10);
    group.bench_function("verify", |b| {
        b.iter(|| black_box(rt.block_on(verify(&store, &[signer.verifier()])).unwrap()))
    });
    group.finish();
}

criterion_group!(store, benches);
criterion_main!(store);
