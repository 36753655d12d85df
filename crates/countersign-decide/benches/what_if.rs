//! What-if at scale: the search for what would lower the tier of a 10-file change on the
//! 10k-node synthetic graph (the decision bench's change), with the default budget, as
//! `countersign evaluate --what-if` runs it (the decision itself included).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use countersign_decide::evaluate::{Proposer, decide_loaded};
use countersign_decide::governed;
use countersign_decide::what_if::Budget;
use countersign_graph::synthetic;
use countersign_repo::{ChangeKind, ChangedPath};
use criterion::{Criterion, criterion_group, criterion_main};

// The allocator of the `countersign` binary and the server, which run this search: with
// glibc's malloc, allocation was ~40% of the bench's profile, a cost the product does not pay.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn what_if(c: &mut Criterion) {
    let n = 10_000usize;
    let state = governed::load(&synthetic::catalog(n, 10, 7)).unwrap();
    let changes: Vec<ChangedPath> = (0..10)
        .map(|k| ChangedPath {
            path: format!("services/c{}/src/main.rs", 100 + (n - 100) * k / 10),
            kind: ChangeKind::Modified,
        })
        .collect();
    let proposer = Proposer {
        author: "agent:bench".to_owned(),
        declared_tier: None,
        dispatched_by: None,
    };
    let run = || {
        decide_loaded(
            &state,
            &[],
            changes.clone(),
            &proposer,
            None,
            None,
            Vec::new(),
            Some(&Budget::default()),
        )
        .unwrap()
    };
    // What the figure measures, printed once with it.
    let report = run().report.what_if.unwrap();
    eprintln!(
        "what-if on {n} nodes: tier {:?}, {} re-decisions, cut {:?}",
        report.tier, report.search.decisions, report.search.cut
    );
    c.bench_function("what-if 10 files, 10k nodes", |b| b.iter(run));
}

criterion_group!(benches, what_if);
criterion_main!(benches);
