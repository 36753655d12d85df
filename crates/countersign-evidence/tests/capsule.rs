//! Capsule evidence at the library level: the routing (an envelope carrying a capsule is
//! judged by it alone, however the annotation is spelled), batch and one-by-one agreeing,
//! and the time check.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;

use countersign_evidence::capsule::{self, Capsule, CapsuleSigner};
use countersign_evidence::statement::{Statement, TEST_RESULT_V01};
use countersign_evidence::{
    Expected, Refusal, SigningKey, Trust, TrustedRunner, attest, verify_many_trusting,
    verify_trusting,
};
use serde_json::json;

const REPOSITORY: &str = "github.com/acme/lab";
const COMMIT: &str = "d20ace7968ba43c0219f62d71334c1095bab1602";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed(&[seed; 32])
}

fn at(s: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(s).unwrap()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn signers() -> Vec<CapsuleSigner> {
    vec![CapsuleSigner {
        name: "org".into(),
        key: key(7).public_key().clone(),
        suites: set(&["eu-int"]),
        environments: set(&["eu"]),
    }]
}

fn runners() -> Vec<TrustedRunner> {
    vec![TrustedRunner {
        name: "ci".into(),
        key: key(1).public_key().clone(),
        suites: set(&["unit", "eu-int"]),
        vex: false,
    }]
}

fn capsule_bytes() -> Vec<u8> {
    capsule::build(
        &key(7),
        key(9).public_key(),
        &"ab".repeat(32),
        &set(&["eu-int"]),
        "eu",
        at(1_000),
        at(2_000),
    )
    .unwrap()
    .to_json()
}

fn statement(suite: &str) -> Statement {
    Statement::for_commit(
        REPOSITORY,
        COMMIT,
        suite,
        TEST_RESULT_V01,
        json!({ "result": "PASSED", "configuration": [], "passedTests": ["t"] }),
    )
}

fn expected() -> Expected<'static> {
    Expected {
        repository: REPOSITORY,
        commit: COMMIT,
        max_bytes: 1 << 20,
    }
}

#[test]
fn capsule_evidence_is_judged_by_its_capsule() {
    let (runners, signers) = (runners(), signers());
    let trust = Trust {
        runners: &runners,
        capsule_signers: &signers,
    };
    let mut s = statement("eu-int");
    capsule::annotate(&mut s, &capsule_bytes(), "eu");
    let accepted = verify_trusting(&attest(&s, &key(9)).to_json(), &trust, &expected()).unwrap();
    assert!(
        accepted.runner.starts_with("capsule:org:"),
        "{}",
        accepted.runner
    );
    assert!(!accepted.vex_authority);
    // The trusted runner `ci` may attest eu-int on its own, but not under a capsule that is
    // not for its key: the capsule alone decides.
    let by_ci = verify_trusting(&attest(&s, &key(1)).to_json(), &trust, &expected());
    assert!(
        matches!(by_ci, Err(Refusal::CapsuleWrongKey { .. })),
        "{by_ci:?}"
    );
    // Without any signer trusted (plain `verify`), capsule evidence counts for nothing.
    let alone = countersign_evidence::verify(&attest(&s, &key(9)).to_json(), &runners, &expected());
    assert!(
        matches!(alone, Err(Refusal::CapsuleUntrustedSigner { .. })),
        "{alone:?}"
    );
}

#[test]
fn an_escaped_annotation_is_refused_not_ignored() {
    let runners = runners();
    let mut s = statement("unit");
    capsule::annotate(&mut s, &capsule_bytes(), "eu");
    // `countersign.dev\/capsule`: the same key to a JSON reader, missed by the byte search.
    let json = String::from_utf8(s.to_json())
        .unwrap()
        .replace("countersign.dev/capsule", "countersign.dev\\/capsule");
    let envelope = countersign_evidence::Envelope::sign(
        countersign_evidence::dsse::IN_TOTO_PAYLOAD_TYPE,
        json.into_bytes(),
        &key(1),
    )
    .to_json();
    let verdict = countersign_evidence::verify(&envelope, &runners, &expected());
    assert!(
        matches!(verdict, Err(Refusal::Malformed { .. })),
        "{verdict:?}"
    );
}

#[test]
fn batch_and_one_by_one_agree_with_capsules() {
    let (runners, signers) = (runners(), signers());
    let trust = Trust {
        runners: &runners,
        capsule_signers: &signers,
    };
    let mut under = statement("eu-int");
    capsule::annotate(&mut under, &capsule_bytes(), "eu");
    let mut other_env = statement("eu-int");
    capsule::annotate(&mut other_env, &capsule_bytes(), "us");
    let envelopes = [
        attest(&statement("unit"), &key(1)).to_json(),
        attest(&under, &key(9)).to_json(),
        attest(&other_env, &key(9)).to_json(),
    ];
    let refs: Vec<&[u8]> = envelopes.iter().map(Vec::as_slice).collect();
    let many = verify_many_trusting(&refs, &trust, &expected());
    let one: Vec<_> = refs
        .iter()
        .map(|e| verify_trusting(e, &trust, &expected()))
        .collect();
    assert_eq!(many, one);
    assert!(many[0].is_ok() && many[1].is_ok());
    assert!(
        matches!(many[2], Err(Refusal::CapsuleOtherEnvironment { .. })),
        "{:?}",
        many[2]
    );
}

#[test]
fn a_capsule_is_in_force_from_issue_to_expiry() {
    let capsule = Capsule::read(&capsule_bytes()).unwrap();
    assert!(matches!(
        capsule.check_valid_at(at(999)),
        Err(Refusal::CapsuleNotYetValid { .. })
    ));
    assert!(capsule.check_valid_at(at(1_000)).is_ok());
    assert!(capsule.check_valid_at(at(1_999)).is_ok());
    assert!(matches!(
        capsule.check_valid_at(at(2_000)),
        Err(Refusal::CapsuleExpired { .. })
    ));
    // What it binds, as signed.
    assert_eq!(capsule.runner_key, *key(9).public_key());
    assert_eq!(capsule.environment, "eu");
    assert_eq!(capsule.binary_sha256, "ab".repeat(32));
    assert_eq!(capsule.digest, capsule::sha256_hex(&capsule_bytes()));
    // Built with nonsense, refused with a reason.
    let bad = capsule::build(
        &key(7),
        key(9).public_key(),
        "xyz",
        &set(&["a"]),
        "eu",
        at(1),
        at(2),
    );
    assert!(bad.is_err());
    let backwards = capsule::build(
        &key(7),
        key(9).public_key(),
        &"ab".repeat(32),
        &set(&["a"]),
        "eu",
        at(2),
        at(1),
    );
    assert!(backwards.is_err());
}

/// A lease proof holds for the capsule and the token it was made for, by the capsule's
/// runner key, and for nothing else: another token, another capsule, another key, bytes
/// that are not a signature.
#[test]
fn a_lease_proof_binds_the_capsule_to_one_token() {
    let bytes = capsule_bytes();
    let capsule = Capsule::read(&bytes).unwrap();
    let (token, other_token) = ("a".repeat(64), "b".repeat(64));
    let (_, proof) = capsule::lease_fields(&bytes, &key(9), &token);
    assert_eq!(capsule.check_lease_proof(&token, &proof), Ok(()));
    let unproven = |proof: &str, token: &str| {
        matches!(
            capsule.check_lease_proof(token, proof),
            Err(Refusal::CapsuleUnproven { .. })
        )
    };
    assert!(unproven(&proof, &other_token), "another token");
    let other_capsule = capsule::build(
        &key(7),
        key(9).public_key(),
        &"ab".repeat(32),
        &set(&["eu-int", "eu-b"]),
        "eu",
        at(1_000),
        at(2_000),
    )
    .unwrap()
    .to_json();
    let (_, for_other) = capsule::lease_fields(&other_capsule, &key(9), &token);
    assert!(unproven(&for_other, &token), "another capsule");
    let (_, by_other_key) = capsule::lease_fields(&bytes, &key(13), &token);
    assert!(unproven(&by_other_key, &token), "another key");
    assert!(unproven("", &token) && unproven("%%%", &token) && unproven(&"A".repeat(200), &token));
    assert_eq!(
        Refusal::CapsuleUnproven {
            runner_key: String::new()
        }
        .reason(),
        "capsule_unproven"
    );
}
