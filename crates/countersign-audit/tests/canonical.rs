//! RFC 8785 canonical JSON against the reference test data, and the audit event's leaf bytes.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use countersign_audit::canonical::{CanonicalError, canonicalize, format_es6};
use countersign_audit::event::{Event, EventError, EventKind, leaf_bytes};
use serde_json::{Value, json};

fn check(input: &str, expected: &str) {
    let value: Value = serde_json::from_str(input).unwrap();
    let got = String::from_utf8(canonicalize(&value).unwrap()).unwrap();
    assert_eq!(got, expected, "input {input}");
}

#[test]
fn reference_files() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/jcs");
    let mut seen = 0;
    for entry in std::fs::read_dir(format!("{dir}/input")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let input = std::fs::read_to_string(&path).unwrap();
        let expected = std::fs::read_to_string(format!("{dir}/output/{name}")).unwrap();
        check(&input, &expected);
        seen += 1;
    }
    assert_eq!(seen, 3);
}

#[test]
fn appendix_b_numbers() {
    let table = include_str!("vectors/jcs/numbers.txt");
    for line in table.lines() {
        let (bits, expected) = line.split_once(',').unwrap();
        let value = f64::from_bits(u64::from_str_radix(bits, 16).unwrap());
        assert_eq!(format_es6(value), expected, "{bits}");
        // Through a serde_json Value as well, where it fits the safe range or is a fraction.
        if let Some(number) = serde_json::Number::from_f64(value) {
            let bytes = canonicalize(&Value::Number(number)).unwrap();
            assert_eq!(String::from_utf8(bytes).unwrap(), expected, "{bits}");
        }
    }
}

#[test]
fn small_cases() {
    check(
        r#"{"b":1,"a":[true,null,"x"]}"#,
        r#"{"a":[true,null,"x"],"b":1}"#,
    );
    check(
        r#""\u0000\u001f\u007f\u2028 \t\b\f\r""#,
        "\"\\u0000\\u001f\u{7f}\u{2028} \\t\\b\\f\\r\"",
    );
    check(
        "[1e21, 1e-7, 123456789012345680000, 0.1, -0.0, 100, -5]",
        "[1e+21,1e-7,123456789012345680000,0.1,0,100,-5]",
    );
    // UTF-16 order: U+1F600 (surrogates D83D…) sorts before U+FB33, unlike in UTF-8 or code points.
    check(
        r#"{"\ufb33":1,"\ud83d\ude00":2}"#,
        "{\"\u{1f600}\":2,\"\u{fb33}\":1}",
    );
    check("9007199254740992", "9007199254740992");
    check("-9007199254740992", "-9007199254740992");
}

#[test]
fn unsafe_integers_are_refused_with_their_place() {
    let value = json!({"a": [0, {"b/c": 9007199254740993u64}]});
    assert_eq!(
        canonicalize(&value),
        Err(CanonicalError::UnsafeInteger {
            pointer: "/a/1/b~1c".into(),
            number: "9007199254740993".into()
        })
    );
    assert!(canonicalize(&json!(-9007199254740993i64)).is_err());
}

fn event() -> Event {
    Event::new(
        EventKind::EvidenceAccepted,
        "2026-11-27T02:40:23Z",
        "prop-42",
        "human:alice",
        json!({"envelope": "sha256:ab", "z": 1, "a": [1.5, "é"]}),
    )
    .unwrap()
}

#[test]
fn event_leaf_bytes_are_canonical_and_round_trip() {
    let event = event();
    let bytes = leaf_bytes(&event).unwrap();
    assert_eq!(
        String::from_utf8(bytes.clone()).unwrap(),
        r#"{"actor":"human:alice","at":"2026-11-27T02:40:23Z","data":{"a":[1.5,"é"],"envelope":"sha256:ab","z":1},"kind":"evidence_accepted","prev":null,"subject":"prop-42","v":1}"#
    );
    assert_eq!(Event::from_leaf(&bytes).unwrap(), event);
}

#[test]
fn event_refusals_name_the_field() {
    let non_canonical = br#"{"v":1,"kind":"decided","at":"2026-11-27T02:40:23Z","subject":"p","actor":"a","data":null}"#;
    assert_eq!(
        Event::from_leaf(non_canonical),
        Err(EventError::NotCanonical)
    );
    let v2 = br#"{"actor":"a","at":"2026-11-27T02:40:23Z","data":null,"kind":"decided","subject":"p","v":2}"#;
    assert!(matches!(
        Event::from_leaf(v2),
        Err(EventError::Invalid { field: "v", .. })
    ));
    let unknown_kind = br#"{"actor":"a","at":"2026-11-27T02:40:23Z","data":null,"kind":"vetoed","subject":"p","v":1}"#;
    assert!(matches!(
        Event::from_leaf(unknown_kind),
        Err(EventError::Json(_))
    ));
    let extra = br#"{"actor":"a","at":"2026-11-27T02:40:23Z","data":null,"extra":1,"kind":"decided","subject":"p","v":1}"#;
    assert!(matches!(Event::from_leaf(extra), Err(EventError::Json(_))));
    let bad_time = Event::new(EventKind::Merged, "yesterday", "p", "a", Value::Null);
    assert!(matches!(
        bad_time,
        Err(EventError::Invalid { field: "at", .. })
    ));
    let no_subject = Event::new(
        EventKind::Merged,
        "2026-11-27T02:40:23Z",
        "",
        "a",
        Value::Null,
    );
    assert!(matches!(
        no_subject,
        Err(EventError::Invalid {
            field: "subject",
            ..
        })
    ));
}

#[test]
fn every_kind_has_its_wire_name() {
    let kinds = [
        (EventKind::Proposed, "proposed"),
        (EventKind::EvidenceAccepted, "evidence_accepted"),
        (EventKind::EvidenceRefused, "evidence_refused"),
        (EventKind::Decided, "decided"),
        (EventKind::Notified, "notified"),
        (EventKind::Approved, "approved"),
        (EventKind::Rejected, "rejected"),
        (EventKind::Authorized, "authorized"),
        (EventKind::Merged, "merged"),
        (EventKind::Verified, "verified"),
        (EventKind::HeadMoved, "head_moved"),
        (EventKind::Closed, "closed"),
        (EventKind::TokenRevoked, "token_revoked"),
        (EventKind::RunStarted, "run_started"),
        (EventKind::RunFinished, "run_finished"),
        (EventKind::RunReturned, "run_returned"),
        (EventKind::FindingOpened, "finding_opened"),
        (EventKind::FindingObserved, "finding_observed"),
        (EventKind::FindingLinked, "finding_linked"),
        (EventKind::FindingVerified, "finding_verified"),
        (EventKind::FindingReopened, "finding_reopened"),
    ];
    for (kind, name) in kinds {
        assert_eq!(serde_json::to_value(kind).unwrap(), json!(name));
    }
}
