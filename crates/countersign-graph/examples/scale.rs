//! Times a build and an impact on the synthetic catalog and prints the peak memory:
//! `cargo run --release --example scale -- 100000`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::Instant;

use countersign_graph::{FileSource, GraphSettings, build, impact, synthetic};

fn peak_rss_kb() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "VmHWM: unknown".into())
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let source = synthetic::catalog(n, 10, 7);
    println!("source: {} files, {}", source.paths().len(), peak_rss_kb());
    let t = Instant::now();
    let out = build(&source, &GraphSettings::default()).unwrap();
    println!(
        "build: {:?}, {} nodes, {} edges, {}",
        t.elapsed(),
        out.graph.nodes().len(),
        out.graph.edges().len(),
        peak_rss_kb()
    );
    let changed: Vec<String> = (0..10)
        .map(|k| format!("services/c{}/src/main.rs", 100 + (n - 100) * k / 10))
        .collect();
    let t = Instant::now();
    let i = impact(&out.graph, &changed);
    println!(
        "impact: {:?}, {} touched, {} reached",
        t.elapsed(),
        i.touched.len(),
        i.blast_radius.len()
    );
}
