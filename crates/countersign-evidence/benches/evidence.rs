//! Throughput targets of the evidence plane: verifying envelopes (at least 20,000/s on one
//! core) and ingesting a 100,000-test-case JUnit report (under 1 s, memory independent of
//! the report's size since cases are streamed to a callback).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::hint::black_box;

use countersign_evidence::dsse::SigningKey;
use countersign_evidence::report::junit;
use countersign_evidence::statement::{Statement, TEST_RESULT_V01};
use countersign_evidence::verify::DEFAULT_MAX_ENVELOPE_BYTES;
use countersign_evidence::{Expected, TrustedRunner, attest, verify, verify_many};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const REPO: &str = "github.com/acme/shop";
const HEAD: &str = "d20ace7968ba43c0219f62d71334c1095bab1602";

fn bench_verify(c: &mut Criterion) {
    let key = SigningKey::from_seed(&[1; 32]);
    // A realistic small attestation: a suite of 50 tests.
    let passed: Vec<String> = (0..50)
        .map(|i| format!("shop::cart::tests::case_{i}"))
        .collect();
    let statement = Statement::for_commit(
        REPO,
        HEAD,
        "unit",
        TEST_RESULT_V01,
        serde_json::json!({"result": "PASSED", "configuration": [{"name": "junit.xml", "digest": {"sha256": "ab"}}],
                           "passedTests": passed, "warnedTests": [], "failedTests": []}),
    );
    let envelope = attest(&statement, &key).to_json();
    let runners: Vec<TrustedRunner> = (0..5u8)
        .map(|i| TrustedRunner {
            name: format!("runner-{i}"),
            key: SigningKey::from_seed(&[i + 1; 32]).public_key().clone(),
            suites: BTreeSet::from(["unit".to_owned()]),
            vex: false,
        })
        .collect();
    let expected = Expected {
        repository: REPO,
        commit: HEAD,
        max_bytes: DEFAULT_MAX_ENVELOPE_BYTES,
    };
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    group.bench_function("envelope_50_tests", |b| {
        b.iter(|| verify(black_box(&envelope), &runners, &expected).unwrap())
    });
    // A batch, as the server and replay receive them: 256 envelopes of the
    // runners' suites, checked with one Ed25519 batch equation.
    let batch: Vec<Vec<u8>> = (0..256)
        .map(|i| {
            let statement = Statement::for_commit(
                REPO,
                HEAD,
                "unit",
                TEST_RESULT_V01,
                serde_json::json!({"result": "PASSED", "configuration": [{"name": format!("junit-{i}.xml"), "digest": {"sha256": "ab"}}],
                                   "passedTests": passed, "warnedTests": [], "failedTests": []}),
            );
            attest(&statement, &key).to_json()
        })
        .collect();
    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    group.throughput(Throughput::Elements(256));
    group.bench_function("verify_many_256", |b| {
        b.iter(|| {
            let results = verify_many(black_box(&refs), &runners, &expected);
            assert!(results.iter().all(Result::is_ok));
        })
    });
    group.throughput(Throughput::Elements(1));
    // The ed25519 check alone, to show how much of the above is the signature.
    let parsed = countersign_evidence::Envelope::parse(&envelope).unwrap();
    let keys = [key.public_key().clone()];
    group.bench_function("signature_only", |b| {
        b.iter(|| parsed.clone().verify(&keys, |k| k).unwrap().0)
    });
    group.finish();
}

/// A JUnit report shaped like nextest's: 100 suites of 1,000 cases, 1% failing with a
/// message, 1% skipped.
fn junit_report(cases: usize) -> Vec<u8> {
    let mut xml =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"run\">\n");
    for suite in 0..cases / 1000 {
        writeln!(xml, "<testsuite name=\"crate-{suite}\" tests=\"1000\">").unwrap();
        for case in 0..1000 {
            write!(
                xml,
                "<testcase name=\"module::tests::case_{case}\" classname=\"crate-{suite}\" time=\"0.001\""
            )
            .unwrap();
            match case % 100 {
                0 => xml.push_str("><failure message=\"assertion failed\">left: 1\nright: 2</failure></testcase>\n"),
                1 => xml.push_str("><skipped/></testcase>\n"),
                _ => xml.push_str("/>\n"),
            }
        }
        xml.push_str("</testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml.into_bytes()
}

fn bench_junit(c: &mut Criterion) {
    let report = junit_report(100_000);
    let mut group = c.benchmark_group("junit");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(report.len() as u64));
    group.bench_function("stream_100k_cases", |b| {
        b.iter(|| {
            let mut failed = 0u64;
            let summary = junit::read("bench.xml", black_box(report.as_slice()), |case| {
                if case.outcome == junit::Outcome::Failed {
                    failed += 1;
                }
            })
            .unwrap();
            assert_eq!(summary.tests, 100_000);
            failed
        })
    });
    group.finish();
}

criterion_group!(benches, bench_verify, bench_junit);
criterion_main!(benches);
