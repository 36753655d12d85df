//! Proving the built-in properties of the default pack with cvc5 (target: under 5 s).
//! Skipped with a message when no cvc5 is found (`CVC5` or `PATH`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use countersign_policy::{PolicyPack, SolverConfig, solver_version, verify};
use criterion::{Criterion, criterion_group, criterion_main};

fn verify_default_pack(c: &mut Criterion) {
    let solver = SolverConfig::new(std::env::var_os("CVC5").map(Into::into));
    if let Err(error) = solver_version(&solver) {
        eprintln!("skipping the verify bench: {error}");
        return;
    }
    let pack = PolicyPack::default_pack();
    let mut group = c.benchmark_group("verify");
    group.sample_size(10);
    group.bench_function("default_pack_builtin_properties", |b| {
        b.iter(|| {
            let verification = verify(&pack, &[], &solver).unwrap();
            assert!(verification.holds());
        })
    });
    group.finish();
}

criterion_group!(benches, verify_default_pack);
criterion_main!(benches);
