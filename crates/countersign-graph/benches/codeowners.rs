//! CODEOWNERS parsing and lookup at scale: a large realistic file, and files at the limits
//! (the most wildcard rules countersign applies; the most rules a file under 3 MiB holds).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use countersign_graph::codeowners::{Codeowners, MAX_WILDCARD_RULES};
use criterion::{Criterion, criterion_group, criterion_main};

/// A monorepo's file: a directory per team, some names and extensions, some wildcards.
fn realistic(teams: usize) -> String {
    let mut text = String::from("* @acme/platform\n*.md @acme/docs\n");
    for i in 0..teams {
        text.push_str(&format!("/services/s{i}/ @acme/t{i}\n"));
        if i % 10 == 0 {
            text.push_str(&format!("/services/s{i}/**/*.sql @acme/dba\n"));
            text.push_str(&format!("Dockerfile.s{i} @acme/t{i}\n"));
        }
    }
    text
}

fn wildcards(rules: usize) -> String {
    (0..rules)
        .map(|i| format!("/s{i}/**/x*y?z/*.rs @acme/t{i}\n"))
        .collect()
}

/// The shortest indexed lines: the most rules a file under GitHub's 3 MiB limit holds.
fn names(rules: usize) -> String {
    (0..rules).map(|i| format!("n{i} @b\n")).collect()
}

fn paths(n: usize) -> Vec<String> {
    (0..100)
        .map(|k| {
            let i = k * 7919 % n;
            format!("services/s{i}/src/db/migrations/n{i}/x1y2z/{k}.rs")
        })
        .collect()
}

fn parse_and_lookup(c: &mut Criterion) {
    let cases = [
        ("realistic 10k teams", realistic(10_000), 10_000),
        (
            "wildcards at the limit",
            wildcards(MAX_WILDCARD_RULES - 1),
            MAX_WILDCARD_RULES - 1,
        ),
        ("280k names (2.9 MiB)", names(280_000), 280_000),
    ];
    let mut group = c.benchmark_group("codeowners");
    group.sample_size(10);
    for (name, text, n) in &cases {
        group.bench_function(format!("parse {name}"), |b| {
            b.iter(|| Codeowners::parse("CODEOWNERS", text))
        });
        let (co, _) = Codeowners::parse("CODEOWNERS", text);
        let paths = paths(*n);
        group.bench_function(format!("100 lookups {name}"), |b| {
            b.iter(|| paths.iter().filter_map(|p| co.rule_index_for(p)).count())
        });
    }
    group.finish();
}

criterion_group!(benches, parse_and_lookup);
criterion_main!(benches);
