//! Times parsing a large CODEOWNERS file and looking up paths in it, and prints the peak
//! memory: `cargo run --release --example codeowners_scale -- SHAPE RULES`, where SHAPE is
//! one of the line shapes below. A file of 3 MiB or more is ignored, so RULES past that size
//! measure nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::time::Instant;

use countersign_graph::codeowners::Codeowners;

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Line `i` of a file of the given shape.
fn line(shape: &str, i: usize) -> String {
    match shape {
        // A directory per team, the common shape of large files.
        "dir" => format!("/services/s{i}/ @acme/t{i}"),
        // A name at any depth.
        "name" => format!("n{i} @acme/t{i}"),
        // The shortest lines: the most rules a file under the size limit can hold.
        "tiny" => format!("n{i} @b"),
        // The shortest wildcard lines.
        "star" => format!("*a{i}* @b"),
        // An extension at any depth.
        "ext" => format!("*.e{i} @acme/t{i}"),
        // A wildcard in the last segment, anchored.
        "prefix" => format!("/services/pay{i}* @acme/t{i}"),
        // Wildcards and `**` ending in a literal extension.
        "deep" => format!("/s{i}/**/x*y?z/*.rs @acme/t{i}"),
        other => panic!("unknown shape {other}: dir, name, tiny, star, ext, prefix, deep"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let shape = args.get(1).map_or("dir", String::as_str);
    let rules: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let mut text = String::from("* @acme/default\n");
    for i in 0..rules {
        text.push_str(&line(shape, i));
        text.push('\n');
    }
    let t = Instant::now();
    let (co, diagnostics) = Codeowners::parse("CODEOWNERS", &text);
    println!(
        "{shape} x {rules}: {} bytes, parse {:?}, {} rules, {} diagnostics, peak RSS {}",
        text.len(),
        t.elapsed(),
        co.rules.len(),
        diagnostics.len(),
        peak_rss()
    );
    let paths: Vec<String> = (0..1_000)
        .map(|k| {
            let i = k * 7919 % rules.max(1);
            format!("services/s{i}/pay{i}x/s{i}/a/b/xAyBz/n{i}/lib.e{i}")
        })
        .collect();
    let t = Instant::now();
    let owned = paths.iter().filter(|p| co.rule_for(p).is_some()).count();
    println!(
        "1000 lookups (depth 10): {:?}, {owned} owned, peak RSS {}",
        t.elapsed(),
        peak_rss()
    );
}
