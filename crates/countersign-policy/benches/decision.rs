//! A whole decision at scale: impact of a 10-file change on the synthetic graph, the Cedar
//! evaluation of every tier and the invariants, as `countersign evaluate` runs them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use countersign_graph::{GraphSettings, SystemGraph, build, impact, synthetic};
use countersign_policy::{DecisionInput, OwnerGroup, PolicyPack, Principal, decide};
use criterion::{Criterion, criterion_group, criterion_main};

fn owner_groups(graph: &SystemGraph, impact: &countersign_graph::Impact) -> Vec<OwnerGroup> {
    impact
        .owners
        .iter()
        .map(|owner| OwnerGroup {
            owner: owner.clone(),
            members: graph
                .members(owner)
                .into_iter()
                .filter_map(|id| graph.node(id))
                .map(|n| n.entity.clone())
                .collect(),
        })
        .collect()
}

fn decision(c: &mut Criterion) {
    let pack = PolicyPack::default_pack();
    let settings = GraphSettings::default();
    let mut group = c.benchmark_group("decision 10 files");
    for n in [1_000usize, 10_000, 100_000] {
        let graph = build(&synthetic::catalog(n, 10, 7), &settings)
            .unwrap()
            .graph;
        let changed: Vec<String> = (0..10)
            .map(|k| format!("services/c{}/src/main.rs", 100 + (n - 100) * k / 10))
            .collect();
        group.bench_function(format!("{n} nodes"), |b| {
            b.iter(|| {
                let impact = impact(&graph, &changed);
                let mut input = DecisionInput::new(&impact, Principal::Agent("bench".into()));
                input.approver_pool = owner_groups(&graph, &impact);
                decide(&pack, &input)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decision);
criterion_main!(benches);
