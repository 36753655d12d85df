//! Real (and, where marked in tests/vectors/README.md, hand-written) reports from each tool,
//! read by the streaming parsers.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::fmt::Write as _;
use std::io::BufReader;
use std::path::Path;

use countersign_evidence::report::{junit, sarif, vex};

fn open(name: &str) -> BufReader<std::fs::File> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    BufReader::new(std::fs::File::open(path).unwrap())
}

fn junit(name: &str) -> String {
    let report = junit::parse(name, open(name)).unwrap();
    let s = &report.summary;
    let mut out = format!(
        "tests={} passed={} failed={} errored={} skipped={} flaky={}\n",
        s.tests, s.passed, s.failed, s.errored, s.skipped, s.flaky
    );
    for case in &report.cases {
        writeln!(out, "{:?} {}", case.outcome, case.id).unwrap();
    }
    out
}

fn sarif(name: &str) -> String {
    let report = sarif::parse(name, open(name)).unwrap();
    let mut out = format!("{:?}\n", report.summary);
    for r in &report.results {
        let at: Vec<String> = r
            .locations
            .iter()
            .map(|l| {
                format!(
                    "{}:{}",
                    l.uri.as_deref().unwrap_or("?"),
                    l.start_line.unwrap_or(0)
                )
            })
            .collect();
        writeln!(
            out,
            "{:?} {} at [{}]",
            r.level,
            r.rule_id.as_deref().unwrap_or("-"),
            at.join(", ")
        )
        .unwrap();
    }
    out
}

fn vex(name: &str) -> String {
    let doc = vex::parse(name, open(name)).unwrap();
    let mut out = format!("{:?}\n", doc.format);
    for s in &doc.statements {
        writeln!(
            out,
            "{} {:?} {:?} products={:?} aliases={:?}",
            s.vulnerability, s.status, s.justification, s.products, s.aliases
        )
        .unwrap();
    }
    out
}

#[test]
fn junit_pytest() {
    insta::assert_snapshot!(junit("junit-pytest.xml"));
}

#[test]
fn junit_jest_junit() {
    insta::assert_snapshot!(junit("junit-jest-junit.xml"));
}

#[test]
fn junit_nextest() {
    insta::assert_snapshot!(junit("junit-nextest.xml"));
}

#[test]
fn junit_surefire() {
    insta::assert_snapshot!(junit("junit-surefire.xml"));
}

#[test]
fn sarif_codeql() {
    insta::assert_snapshot!(sarif("sarif-codeql.sarif"));
}

#[test]
fn sarif_clippy() {
    insta::assert_snapshot!(sarif("sarif-clippy.sarif"));
}

#[test]
fn sarif_semgrep() {
    insta::assert_snapshot!(sarif("sarif-semgrep.sarif"));
}

#[test]
fn vex_openvex() {
    insta::assert_snapshot!(vex("vex-openvex.json"));
}

#[test]
fn vex_cyclonedx() {
    insta::assert_snapshot!(vex("vex-cyclonedx.json"));
}
