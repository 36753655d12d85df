//! Times a build, an impact and the rendered chains of the 100k-node chain and cycle and
//! prints the peak memory: `cargo run --release --example chain -- 100000`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::Instant;

use countersign_graph::{GraphSettings, build, impact, synthetic};

fn peak_rss() -> String {
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
        .unwrap_or(100_000);
    let cycle = std::env::args().nth(2).as_deref() == Some("cycle");
    let source = synthetic::chain(n, cycle);
    let t = Instant::now();
    let out = build(&source, &GraphSettings::default()).unwrap();
    println!("build: {:?}, {}", t.elapsed(), peak_rss());
    let t = Instant::now();
    let i = impact(&out.graph, &["services/c0/main.rs"]);
    println!(
        "impact: {:?}, {} reached, {}",
        t.elapsed(),
        i.blast_radius.len(),
        peak_rss()
    );
    let t = Instant::now();
    let chains = i.chains(countersign_graph::impact::CHAIN_SHOWN);
    println!(
        "chains: {:?}, {} chains, {}",
        t.elapsed(),
        chains.len(),
        peak_rss()
    );
}
