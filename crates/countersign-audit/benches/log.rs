//! Log benchmarks at one million leaves: append, inclusion proof (target < 100 µs), and
//! verifying the whole log against a checkpoint (target < 3 s).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use countersign_audit::checkpoint::Checkpoint;
use countersign_audit::log::verify_log;
use countersign_audit::merkle::{MemoryStore, prove_consistency, prove_inclusion, tree_hash};
use criterion::{Criterion, criterion_group, criterion_main};

const LEAVES: u64 = 1_000_000;

/// A leaf of realistic size: a canonical event is a few hundred bytes.
fn entry(i: u64) -> Vec<u8> {
    format!(
        r#"{{"actor":"human:alice","at":"2026-11-27T02:40:23Z","data":{{"envelope":"sha256:{i:064x}","tier":"single_approver"}},"kind":"decided","subject":"prop-{i}","v":1}}"#
    )
    .into_bytes()
}

fn build(entries: &[Vec<u8>]) -> MemoryStore {
    let mut store = MemoryStore::new();
    for e in entries {
        store.append(e).unwrap();
    }
    store
}

fn benches(c: &mut Criterion) {
    let entries: Vec<Vec<u8>> = (0..LEAVES).map(entry).collect();

    let mut group = c.benchmark_group("log_1m");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("append_1m_leaves", |b| {
        b.iter(|| black_box(build(&entries)))
    });

    let store = build(&entries);
    let root = tree_hash(LEAVES, &store).unwrap();
    let checkpoint = Checkpoint::new("log.example", LEAVES, root).unwrap();
    group.bench_function("verify_1m_log", |b| {
        b.iter(|| verify_log(black_box(&entries), &checkpoint, &store).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("proofs_at_1m");
    let mut index = 0u64;
    group.bench_function("inclusion_proof", |b| {
        b.iter(|| {
            // Walk the indexes so that no single path is favoured.
            index = (index + 7919) % LEAVES;
            prove_inclusion(black_box(index), LEAVES, &store).unwrap()
        })
    });
    let leaf = countersign_audit::merkle::leaf_hash(&entries[123_456]);
    let proof = prove_inclusion(123_456, LEAVES, &store).unwrap();
    group.bench_function("inclusion_verify", |b| {
        b.iter(|| proof.verify(black_box(&leaf), LEAVES, &root).unwrap())
    });
    group.bench_function("consistency_proof", |b| {
        b.iter(|| prove_consistency(black_box(654_321), LEAVES, &store).unwrap())
    });
    group.bench_function("tree_hash", |b| {
        b.iter(|| tree_hash(black_box(LEAVES), &store).unwrap())
    });
    group.finish();
}

criterion_group!(log_benches, benches);
criterion_main!(log_benches);
