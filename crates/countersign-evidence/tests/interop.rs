//! DSSE interop with securesystemslib, the Python reference implementation: its envelopes
//! verify here, and ours verify there.
//!
//! The checked-in vector always runs. The live round trip needs `python3` with
//! `securesystemslib` (`pip install securesystemslib in-toto`); without it the test prints
//! why it skipped, except under `CI=true`, where a missing interpreter is a failure.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use countersign_evidence::dsse::SigningKey;
use countersign_evidence::statement::{Statement, TEST_RESULT_V01};
use countersign_evidence::verify::DEFAULT_MAX_ENVELOPE_BYTES;
use countersign_evidence::{Expected, PublicKey, TrustedRunner, attest, verify};

const REPO: &str = "github.com/acme/shop";
const HEAD: &str = "d20ace7968ba43c0219f62d71334c1095bab1602";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Verifies a securesystemslib envelope with the key from its `public.json`, and checks that
/// the key id securesystemslib assigned is the one countersign computes.
fn verify_python_envelope(envelope: &[u8], public_json: &[u8]) {
    let key: serde_json::Value = serde_json::from_slice(public_json).unwrap();
    let public = PublicKey::from_hex(key["keyval"]["public"].as_str().unwrap()).unwrap();
    assert_eq!(
        public.key_id(),
        key["keyid"].as_str().unwrap(),
        "key id rule"
    );
    let runners = [TrustedRunner {
        name: "python".to_owned(),
        key: public,
        suites: BTreeSet::from(["unit".to_owned()]),
        vex: false,
    }];
    let accepted = verify(
        envelope,
        &runners,
        &Expected {
            repository: REPO,
            commit: HEAD,
            max_bytes: DEFAULT_MAX_ENVELOPE_BYTES,
        },
    )
    .unwrap();
    assert_eq!(
        (accepted.runner.as_str(), accepted.suite.as_str()),
        ("python", "unit")
    );
}

#[test]
fn checked_in_securesystemslib_envelope_verifies() {
    let dir = manifest_dir().join("tests/vectors");
    verify_python_envelope(
        &std::fs::read(dir.join("dsse-securesystemslib-envelope.json")).unwrap(),
        &std::fs::read(dir.join("dsse-securesystemslib-public.json")).unwrap(),
    );
}

fn python_with_securesystemslib() -> Result<(), String> {
    match Command::new("python3")
        .args(["-c", "import securesystemslib, cryptography"])
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "python3 cannot import securesystemslib: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("python3 not runnable: {e}")),
    }
}

#[test]
fn live_round_trip_with_securesystemslib() {
    if let Err(reason) = python_with_securesystemslib() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("DSSE interop cannot run under CI: {reason}");
        }
        eprintln!("skipping DSSE interop: {reason} (pip install securesystemslib in-toto)");
        return;
    }
    let script = manifest_dir().join("tests/interop/dsse_interop.py");
    let dir = tempfile::tempdir().unwrap();

    // Python signs, countersign verifies.
    let out = Command::new("python3")
        .arg(&script)
        .args(["sign", dir.path().to_str().unwrap(), REPO, HEAD, "unit"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    verify_python_envelope(
        &std::fs::read(dir.path().join("envelope.json")).unwrap(),
        &std::fs::read(dir.path().join("public.json")).unwrap(),
    );

    // countersign signs, Python verifies.
    let key = SigningKey::from_seed(&[9; 32]);
    let statement = Statement::for_commit(
        REPO,
        HEAD,
        "unit",
        TEST_RESULT_V01,
        serde_json::json!({"result": "PASSED", "configuration": []}),
    );
    let path = dir.path().join("countersign-envelope.json");
    std::fs::write(&path, attest(&statement, &key).to_json()).unwrap();
    let out = Command::new("python3")
        .arg(&script)
        .args(["verify", path.to_str().unwrap(), &key.public_key().to_hex()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!(
            "{} https://in-toto.io/Statement/v1",
            key.public_key().key_id()
        )
    );
}
