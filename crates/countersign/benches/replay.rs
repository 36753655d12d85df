//! `countersign replay` over 2,000 commits of a 500-file repository (target: under 20 s),
//! run as the real binary. The catalog changes every 250 commits, so the replay builds
//! 9 governed states, not 2,000.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::process::Command;

use countersign_repo::RepoWriter;
use criterion::{Criterion, criterion_group, criterion_main};

const SERVICES: usize = 50;
const FILES_PER_SERVICE: usize = 10;
const COMMITS: usize = 2_000;

fn catalog(version: usize) -> String {
    let mut out = String::new();
    for s in 0..SERVICES {
        let criticality = ["low", "moderate", "high", "critical"][(s + version) % 4];
        let surface = if s % 10 == 0 {
            "\n    countersign.dev/surfaces: payments"
        } else {
            ""
        };
        let depends = if s > 0 && s % 3 == 0 {
            format!("\n  dependsOn: [component:svc{}]", s - 1)
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: svc{s}\n  annotations:\n    countersign.dev/criticality: {criticality}\n    countersign.dev/paths: /svc{s}/**{surface}\nspec:\n  type: service\n  lifecycle: production\n  owner: team-{}{depends}\n",
            s % 5
        );
    }
    out
}

fn generate(dir: &std::path::Path) {
    let mut writer = RepoWriter::init(dir).unwrap();
    let mut files: Vec<(String, Option<String>)> =
        vec![("catalog-info.yaml".to_owned(), Some(catalog(0)))];
    for s in 0..SERVICES {
        for f in 0..FILES_PER_SERVICE {
            files.push((format!("svc{s}/src/f{f}.rs"), Some(format!("// {s} {f}\n"))));
        }
    }
    let time = 1_767_603_600;
    writer
        .commit(files, "base", "Alice <a@example.com>", time)
        .unwrap();
    for i in 1..=COMMITS {
        let author = if i % 4 == 0 {
            "dependabot[bot] <bot@example.com>"
        } else {
            "Alice <a@example.com>"
        };
        let mut change = vec![(
            format!("svc{}/src/f{}.rs", i % SERVICES, i % FILES_PER_SERVICE),
            Some(format!("// change {i}\n")),
        )];
        if i % 250 == 0 {
            change.push(("catalog-info.yaml".to_owned(), Some(catalog(i))));
        }
        writer
            .commit(
                change,
                &format!("change {i}"),
                author,
                time + (i as i64) * 3_600,
            )
            .unwrap();
    }
}

fn replay(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path());
    let repo = dir.path().to_str().unwrap().to_owned();
    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    group.bench_function("2000_commits_500_files", |b| {
        b.iter(|| {
            let output = Command::new(env!("CARGO_BIN_EXE_countersign"))
                .args([
                    "replay", "--repo", &repo, "--last", "2000", "--format", "json",
                ])
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        })
    });
    group.finish();
}

criterion_group!(benches, replay);
criterion_main!(benches);
