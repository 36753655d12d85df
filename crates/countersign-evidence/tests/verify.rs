//! Every refusal of `verify`, each from a concrete bad envelope, and the happy paths.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::collections::BTreeSet;

use base64::Engine as _;
use countersign_evidence::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE, SigningKey};
use countersign_evidence::statement::{OPENVEX_V020, Statement, TEST_RESULT_V01, VULNS_V02};
use countersign_evidence::verify::DEFAULT_MAX_ENVELOPE_BYTES;
use countersign_evidence::{Expected, Predicate, TrustedRunner, attest, verify};
use serde_json::json;

const REPO: &str = "github.com/acme/shop";
const HEAD: &str = "d20ace7968ba43c0219f62d71334c1095bab1602";

fn runner_key() -> SigningKey {
    SigningKey::from_seed(&[42; 32])
}

fn runners() -> Vec<TrustedRunner> {
    vec![TrustedRunner {
        name: "ci-linux".to_owned(),
        key: runner_key().public_key().clone(),
        suites: BTreeSet::from(["unit".to_owned(), "scan".to_owned()]),
        vex: false,
    }]
}

fn test_result() -> serde_json::Value {
    json!({
        "result": "FAILED",
        "configuration": [{"name": "junit.xml", "digest": {"sha256": "00"}}],
        "passedTests": ["a::ok"],
        "failedTests": ["a::bad"]
    })
}

fn statement(repo: &str, commit: &str, suite: &str) -> Statement {
    Statement::for_commit(repo, commit, suite, TEST_RESULT_V01, test_result())
}

fn good() -> Vec<u8> {
    attest(&statement(REPO, HEAD, "unit"), &runner_key()).to_json()
}

/// The single caller of `verify`: renders acceptance or the refusal with its reason.
fn check(envelope: &[u8]) -> String {
    check_limit(envelope, DEFAULT_MAX_ENVELOPE_BYTES)
}

fn check_limit(envelope: &[u8], max_bytes: usize) -> String {
    let expected = Expected {
        repository: REPO,
        commit: HEAD,
        max_bytes,
    };
    match verify(envelope, &runners(), &expected) {
        Ok(accepted) => format!(
            "accepted: runner={} suite={} commit={} predicate={}",
            accepted.runner,
            accepted.suite,
            accepted.commit,
            accepted.predicate.predicate_type()
        ),
        Err(refusal) => format!("refused ({}): {refusal}", refusal.reason()),
    }
}

#[test]
fn accepts_a_good_envelope() {
    insta::assert_snapshot!(check(&good()), @"accepted: runner=ci-linux suite=unit commit=d20ace7968ba43c0219f62d71334c1095bab1602 predicate=https://in-toto.io/attestation/test-result/v0.1");
}

#[test]
fn accepts_upper_case_commit_and_unpadded_url_safe_base64() {
    let env = attest(
        &statement(REPO, &HEAD.to_uppercase(), "unit"),
        &runner_key(),
    );
    let json = json!({
        "payload": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&env.payload),
        "payloadType": env.payload_type,
        "signatures": [{"sig": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&env.signatures[0].sig)}],
        "extra": "ignored"
    });
    insta::assert_snapshot!(check(json.to_string().as_bytes()), @"accepted: runner=ci-linux suite=unit commit=d20ace7968ba43c0219f62d71334c1095bab1602 predicate=https://in-toto.io/attestation/test-result/v0.1");
}

#[test]
fn truncated_json() {
    let bytes = good();
    insta::assert_snapshot!(check(&bytes[..bytes.len() / 2]), @"refused (malformed): malformed evidence: envelope JSON: EOF while parsing a string at line 2 column 417");
}

#[test]
fn wrong_payload_type() {
    let statement = statement(REPO, HEAD, "unit");
    let env = Envelope::sign("application/json", statement.to_json(), &runner_key());
    insta::assert_snapshot!(check(&env.to_json()), @r#"refused (wrong_payload_type): payload type "application/json" is not application/vnd.in-toto+json"#);
}

#[test]
fn signature_over_different_bytes() {
    let mut env = attest(&statement(REPO, HEAD, "unit"), &runner_key());
    let other = attest(&statement(REPO, HEAD, "scan"), &runner_key());
    env.signatures = other.signatures;
    insta::assert_snapshot!(check(&env.to_json()), @"refused (bad_signature): signature by key c1e3566d2143da273b4904ad552a906ce4b6130510f8eceba62d908d8bac8d4e does not verify");
}

#[test]
fn unknown_key() {
    let env = attest(
        &statement(REPO, HEAD, "unit"),
        &SigningKey::from_seed(&[7; 32]),
    );
    insta::assert_snapshot!(check(&env.to_json()), @"refused (unknown_key): signed by no trusted runner (key ids: bfe1a83869e5bf574e3ff3acbb83f840de84a990d10059f3096f0bf4f2b90c10)");
}

#[test]
fn other_commit() {
    let env = attest(
        &statement(REPO, "0000000000000000000000000000000000000001", "unit"),
        &runner_key(),
    );
    insta::assert_snapshot!(check(&env.to_json()), @"refused (other_commit): evidence is for commit 0000000000000000000000000000000000000001, expected d20ace7968ba43c0219f62d71334c1095bab1602");
}

#[test]
fn other_repository() {
    let env = attest(
        &statement("github.com/evil/shop", HEAD, "unit"),
        &runner_key(),
    );
    insta::assert_snapshot!(check(&env.to_json()), @"refused (other_repository): evidence is about repository github.com/evil/shop, expected github.com/acme/shop");
}

#[test]
fn suite_not_allowed() {
    let env = attest(&statement(REPO, HEAD, "deploy"), &runner_key());
    insta::assert_snapshot!(check(&env.to_json()), @r#"refused (suite_not_allowed): runner ci-linux may not attest suite "deploy""#);
}

#[test]
fn unknown_predicate() {
    let statement = Statement::for_commit(
        REPO,
        HEAD,
        "unit",
        "https://slsa.dev/provenance/v1",
        json!({}),
    );
    insta::assert_snapshot!(check(&attest(&statement, &runner_key()).to_json()), @"refused (unknown_predicate): unknown predicate type https://slsa.dev/provenance/v1");
}

#[test]
fn payload_over_the_limit() {
    insta::assert_snapshot!(check_limit(&good(), 100), @"refused (too_large): envelope is 838 bytes, over the 100-byte limit");
}

#[test]
fn malformed_statements() {
    let sign = |payload: serde_json::Value| {
        Envelope::sign(
            IN_TOTO_PAYLOAD_TYPE,
            payload.to_string().into_bytes(),
            &runner_key(),
        )
        .to_json()
    };
    let subject = json!([{"name": REPO, "digest": {"gitCommit": HEAD}, "annotations": {"countersign.dev/suite": "unit"}}]);
    insta::assert_snapshot!(check(&sign(json!("just a string"))), @r#"refused (malformed): malformed evidence: statement: invalid type: string "just a string", expected struct Statement at line 1 column 15"#);
    insta::assert_snapshot!(check(&sign(json!({
        "_type": "https://in-toto.io/Statement/v0.1", "subject": subject,
        "predicateType": TEST_RESULT_V01, "predicate": test_result()
    }))), @r#"refused (malformed): malformed evidence: statement _type "https://in-toto.io/Statement/v0.1" is not https://in-toto.io/Statement/v1"#);
    insta::assert_snapshot!(check(&sign(json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": REPO, "digest": {"sha256": "ab"}}],
        "predicateType": TEST_RESULT_V01, "predicate": test_result()
    }))), @"refused (malformed): malformed evidence: no subject has a gitCommit digest");
    insta::assert_snapshot!(check(&sign(json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": REPO, "digest": {"gitCommit": HEAD}}],
        "predicateType": TEST_RESULT_V01, "predicate": test_result()
    }))), @"refused (malformed): malformed evidence: subject has no countersign.dev/suite annotation");
    insta::assert_snapshot!(check(&sign(json!({
        "_type": "https://in-toto.io/Statement/v1", "subject": subject,
        "predicateType": TEST_RESULT_V01, "predicate": {"result": "GREAT"}
    }))), @"refused (malformed): malformed evidence: malformed https://in-toto.io/attestation/test-result/v0.1 predicate: unknown variant `GREAT`, expected one of `PASSED`, `WARNED`, `FAILED`");
    insta::assert_snapshot!(check(br#"{"payload": "e30=", "payloadType": "application/vnd.in-toto+json", "signatures": []}"#), @"refused (malformed): malformed evidence: no signatures");
}

#[test]
fn vulns_and_openvex_predicates_are_accepted() {
    let vulns = Statement::for_commit(
        REPO,
        HEAD,
        "scan",
        VULNS_V02,
        json!({"scanner": {"uri": "pkg:github/aquasecurity/trivy", "version": "0.50.0",
               "result": [{"id": "CVE-2024-1", "severity": [{"method": "cvss_score", "score": "9.8"}]}]}}),
    );
    let accepted = verify(
        &attest(&vulns, &runner_key()).to_json(),
        &runners(),
        &Expected {
            repository: REPO,
            commit: HEAD,
            max_bytes: DEFAULT_MAX_ENVELOPE_BYTES,
        },
    )
    .unwrap();
    let Predicate::Vulns(v) = accepted.predicate else {
        panic!("not vulns")
    };
    assert_eq!(v.scanner.result[0].id, "CVE-2024-1");

    let openvex = Statement::for_commit(
        REPO,
        HEAD,
        "scan",
        OPENVEX_V020,
        json!({"@context": "https://openvex.dev/ns/v0.2.0", "@id": "x", "author": "a",
               "timestamp": "2024-01-01T00:00:00Z", "version": 1,
               "statements": [{"vulnerability": {"name": "CVE-2024-1"},
                               "products": [{"@id": "pkg:cargo/shop@1"}],
                               "status": "not_affected", "justification": "component_not_present"}]}),
    );
    insta::assert_snapshot!(check(&attest(&openvex, &runner_key()).to_json()), @"accepted: runner=ci-linux suite=scan commit=d20ace7968ba43c0219f62d71334c1095bab1602 predicate=https://openvex.dev/ns/v0.2.0");
}

#[test]
fn garbage_never_panics() {
    // A cheap sweep of every prefix and some byte flips of a good envelope; the fuzz targets
    // do this properly.
    let bytes = good();
    for end in (0..bytes.len()).step_by(7) {
        let _ = check(&bytes[..end]);
    }
    for i in (0..bytes.len()).step_by(13) {
        let mut flipped = bytes.clone();
        flipped[i] ^= 0x20;
        let _ = check(&flipped);
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary bytes are refused or accepted, never a panic.
        #[test]
        fn verify_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = check(&bytes);
        }

    }

    proptest! {
        // ed25519 in an unoptimised test build is slow; a few dozen positions suffice.
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// An envelope countersign signs verifies, and flipping any bit of its payload is
        /// caught as a bad signature.
        #[test]
        fn signed_envelopes_verify_and_tampering_is_caught(flip in 0usize..400) {
            let env = attest(&statement(REPO, HEAD, "unit"), &runner_key());
            prop_assert!(check(&env.to_json()).starts_with("accepted"));
            let mut tampered = env.clone();
            let i = flip % tampered.payload.len();
            tampered.payload[i] ^= 1;
            prop_assert!(check(&tampered.to_json()).starts_with("refused (bad_signature)"));
        }
    }
}

/// `verify_many` gives exactly `verify`'s result for each envelope, whether the batch holds
/// (all good) or fails (one bad signature among good ones, then each is checked alone).
#[test]
fn verify_many_agrees_with_verify_one_by_one() {
    let expected = Expected {
        repository: REPO,
        commit: HEAD,
        max_bytes: DEFAULT_MAX_ENVELOPE_BYTES,
    };
    let good: Vec<Vec<u8>> = (0..20)
        .map(|i| {
            let suite = if i % 2 == 0 { "unit" } else { "scan" };
            attest(&statement(REPO, HEAD, suite), &runner_key()).to_json()
        })
        .collect();
    // The same payload signed over different bytes: the signature does not verify.
    let mut forged = Envelope::parse(&good[3]).unwrap();
    forged.payload = statement(REPO, HEAD, "scan").to_json();
    forged.payload.push(b' ');
    let mut mixed = good.clone();
    mixed[7] = forged.to_json();
    mixed.push(attest(&statement(REPO, HEAD, "deploy"), &runner_key()).to_json());
    for batch in [&good, &mixed] {
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        let together = countersign_evidence::verify_many(&refs, &runners(), &expected);
        let alone: Vec<_> = refs
            .iter()
            .map(|e| verify(e, &runners(), &expected))
            .collect();
        assert_eq!(format!("{together:?}"), format!("{alone:?}"));
    }
    let refs: Vec<&[u8]> = mixed.iter().map(Vec::as_slice).collect();
    let results = countersign_evidence::verify_many(&refs, &runners(), &expected);
    assert_eq!(results[7].as_ref().unwrap_err().reason(), "bad_signature");
    assert_eq!(
        results[20].as_ref().unwrap_err().reason(),
        "suite_not_allowed"
    );
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 19);
}

/// Issue 23 point 9: two signatures, the first with an empty key id by a runner that may not
/// attest the suite, the second naming a runner that may. One verdict on both paths:
/// refused, whichever signature comes first.
#[test]
fn every_signer_must_be_allowed_the_suite_on_both_paths() {
    let scanner = SigningKey::from_seed(&[43; 32]);
    let mut runners = runners();
    runners[0].suites = BTreeSet::from(["unit".to_owned()]);
    runners.push(TrustedRunner {
        name: "scanner".to_owned(),
        key: scanner.public_key().clone(),
        suites: BTreeSet::from(["scan".to_owned()]),
        vex: false,
    });
    let expected = Expected {
        repository: REPO,
        commit: HEAD,
        max_bytes: DEFAULT_MAX_ENVELOPE_BYTES,
    };
    let mut env = attest(&statement(REPO, HEAD, "scan"), &scanner);
    let mut ci = attest(&statement(REPO, HEAD, "scan"), &runner_key()).signatures;
    ci[0].keyid = String::new();
    let named = env.signatures.remove(0);
    for order in [
        [ci[0].clone(), named.clone()],
        [named.clone(), ci[0].clone()],
    ] {
        env.signatures = order.to_vec();
        let bytes = env.to_json();
        let one = verify(&bytes, &runners, &expected).map(|a| a.runner);
        let many = countersign_evidence::verify_many(&[&bytes, &good()], &runners, &expected)
            .remove(0)
            .map(|a| a.runner);
        assert_eq!(one, many);
        assert_eq!(one.unwrap_err().reason(), "suite_not_allowed");
    }
    // Both named: the batch path sees both signers too.
    let mut ci_named = ci[0].clone();
    ci_named.keyid = runner_key().public_key().key_id().to_owned();
    env.signatures = vec![named, ci_named];
    let bytes = env.to_json();
    let many = countersign_evidence::verify_many(&[&bytes], &runners, &expected).remove(0);
    assert_eq!(many.unwrap_err().reason(), "suite_not_allowed");
}

/// A signature that names a trusted key and does not verify refuses the envelope even when
/// another signature verifies: a claimed signer it does not have makes it ambiguous.
#[test]
fn a_bad_named_signature_beside_a_good_one_is_refused() {
    let mut env = attest(&statement(REPO, HEAD, "unit"), &runner_key());
    let mut bad = env.signatures[0].clone();
    bad.sig[0] ^= 1;
    env.signatures.push(bad);
    insta::assert_snapshot!(check(&env.to_json()), @"refused (bad_signature): signature by key c1e3566d2143da273b4904ad552a906ce4b6130510f8eceba62d908d8bac8d4e does not verify");
}
