//! Graph import and impact at scale, on the synthetic catalog.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use countersign_graph::{GraphSettings, build, impact, synthetic};
use criterion::{Criterion, criterion_group, criterion_main};

fn import(c: &mut Criterion) {
    let source = synthetic::catalog(10_000, 10, 7);
    let settings = GraphSettings::default();
    let mut group = c.benchmark_group("import");
    group.sample_size(10);
    group.bench_function("10k entities", |b| {
        b.iter(|| build(&source, &settings).unwrap())
    });
    group.finish();
}

fn impact_of_change(c: &mut Criterion) {
    let settings = GraphSettings::default();
    let mut group = c.benchmark_group("impact 10 files");
    for n in [1_000usize, 10_000, 100_000] {
        let source = synthetic::catalog(n, 10, 7);
        let graph = build(&source, &settings).unwrap().graph;
        // Ten files spread over the graph, outside the platform cluster.
        let changed: Vec<String> = (0..10)
            .map(|k| format!("services/c{}/src/main.rs", 100 + (n - 100) * k / 10))
            .collect();
        group.bench_function(format!("{n} nodes"), |b| {
            b.iter(|| impact(&graph, &changed))
        });
    }
    group.finish();
}

/// The adversarial shapes of issue 24: a 100k-node chain and cycle, a change at one end
/// reaching every node. Impact alone, and impact plus its rendered (bounded) chains.
fn impact_of_long_chain(c: &mut Criterion) {
    let settings = GraphSettings::default();
    let mut group = c.benchmark_group("impact 100k chain");
    group.sample_size(10);
    for (name, cycle) in [("chain", false), ("cycle", true)] {
        let source = synthetic::chain(100_000, cycle);
        let graph = build(&source, &settings).unwrap().graph;
        let changed = ["services/c0/main.rs"];
        group.bench_function(format!("{name} impact"), |b| {
            b.iter(|| impact(&graph, &changed))
        });
        group.bench_function(format!("{name} impact + chains"), |b| {
            b.iter(|| {
                let i = impact(&graph, &changed);
                i.chains(countersign_graph::impact::CHAIN_SHOWN).len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, import, impact_of_change, impact_of_long_chain);
criterion_main!(benches);
