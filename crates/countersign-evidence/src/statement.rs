//! in-toto Statement v1 and the predicates countersign understands: test-result v0.1,
//! vulns v0.2 and OpenVEX. These are wire types: their serde shape is the published one.
//!
//! The subject of a countersign statement is the git commit under test:
//! `{"name": REPOSITORY, "digest": {"gitCommit": SHA}, "annotations": {"countersign.dev/suite": SUITE}}`.
//! The suite rides on the subject's `annotations` (a standard ResourceDescriptor field) rather
//! than in the test-result `configuration`, because vulns and OpenVEX predicates have no
//! configuration and every attestation needs a suite. See docs/evidence.md.
//!
//! This module does not sign or verify (that is `dsse` and `verify`) and does not read reports
//! (that is `report`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::report::vex::{self, VexDocument};

/// `_type` of an in-toto Statement v1.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// Predicate type of in-toto test-result v0.1.
pub const TEST_RESULT_V01: &str = "https://in-toto.io/attestation/test-result/v0.1";
/// Predicate type of in-toto vulns v0.2.
pub const VULNS_V02: &str = "https://in-toto.io/attestation/vulns/v0.2";
/// Predicate type countersign writes for an OpenVEX document. `https://openvex.dev/ns`, which
/// vexctl writes, is accepted too.
pub const OPENVEX_V020: &str = "https://openvex.dev/ns/v0.2.0";
const OPENVEX_UNVERSIONED: &str = "https://openvex.dev/ns";
/// Subject annotation naming the suite an attestation is evidence for.
pub const SUITE_ANNOTATION: &str = "countersign.dev/suite";
/// Digest algorithm name of a git commit in a ResourceDescriptor.
pub const GIT_COMMIT_DIGEST: &str = "gitCommit";

/// An in-toto ResourceDescriptor (the fields countersign uses; others are ignored).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDescriptor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, Value>,
}

/// An in-toto Statement v1 with its predicate still as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<ResourceDescriptor>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    #[serde(default)]
    pub predicate: Value,
}

impl Statement {
    /// The statement countersign attests: `predicate` about `commit` of `repository`, as
    /// evidence for `suite`.
    pub fn for_commit(
        repository: &str,
        commit: &str,
        suite: &str,
        predicate_type: &str,
        predicate: Value,
    ) -> Self {
        Self {
            type_: STATEMENT_V1.to_owned(),
            subject: vec![ResourceDescriptor {
                name: Some(repository.to_owned()),
                digest: BTreeMap::from([(GIT_COMMIT_DIGEST.to_owned(), commit.to_owned())]),
                annotations: BTreeMap::from([(
                    SUITE_ANNOTATION.to_owned(),
                    Value::String(suite.to_owned()),
                )]),
                ..ResourceDescriptor::default()
            }],
            predicate_type: predicate_type.to_owned(),
            predicate,
        }
    }

    /// Compact JSON, the DSSE payload.
    pub fn to_json(&self) -> Vec<u8> {
        // A tree of strings and JSON values always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// `result` of a test-result predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TestResultOutcome {
    Passed,
    Warned,
    Failed,
}

/// in-toto test-result v0.1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    pub result: TestResultOutcome,
    pub configuration: Vec<ResourceDescriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default)]
    pub passed_tests: Vec<String>,
    #[serde(default)]
    pub warned_tests: Vec<String>,
    #[serde(default)]
    pub failed_tests: Vec<String>,
    /// countersign's extension: what the report said of failed tests (test id → message, at
    /// most [`MAX_FAILURE_MESSAGES`] of them), so a finding can show why a test failed.
    /// Consumers of the published predicate ignore a field they do not know.
    #[serde(
        default,
        rename = "countersign.dev/failureMessages",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub failure_messages: BTreeMap<String, String>,
}

/// The most failure messages a test-result carries (each at most
/// [`crate::report::junit::MAX_MESSAGE_CHARS`] characters): the first failed tests' in
/// report order.
pub const MAX_FAILURE_MESSAGES: usize = 100;

/// The `configuration` entry of a test-result that says whose suite files ran: a resource
/// named this, with the commit in its `gitCommit` digest. Absent: the suite files of the
/// commit under test (the subject). A runner that checks the *base* commit's suite files out
/// over the head's code names the base here (docs/evidence.md, "Base version of a suite").
pub const SUITE_SOURCE: &str = "countersign.dev/suite-source";

impl TestResult {
    /// The commit whose suite files ran ([`SUITE_SOURCE`]), when the runner named one.
    pub fn suite_source(&self) -> Option<&str> {
        self.configuration
            .iter()
            .find(|c| c.name.as_deref() == Some(SUITE_SOURCE))
            .map(|c| c.digest.get("gitCommit").map_or("", String::as_str))
    }

    /// From test cases read out of reports: failed and errored tests are failed, flaky tests
    /// (passed on a retry) are warned, skipped tests are in no list. The run is FAILED when a
    /// test failed, WARNED when one was flaky, else PASSED.
    pub fn from_cases<'a>(
        cases: impl IntoIterator<Item = &'a crate::report::junit::TestCase>,
        configuration: Vec<ResourceDescriptor>,
    ) -> Self {
        use crate::report::junit::Outcome;
        let mut out = Self {
            result: TestResultOutcome::Passed,
            configuration,
            url: None,
            passed_tests: Vec::new(),
            warned_tests: Vec::new(),
            failed_tests: Vec::new(),
            failure_messages: BTreeMap::new(),
        };
        for case in cases {
            match case.outcome {
                Outcome::Passed => out.passed_tests.push(case.id.clone()),
                Outcome::Flaky => out.warned_tests.push(case.id.clone()),
                Outcome::Failed | Outcome::Errored => {
                    out.failed_tests.push(case.id.clone());
                    if let Some(message) = &case.message
                        && out.failure_messages.len() < MAX_FAILURE_MESSAGES
                    {
                        out.failure_messages
                            .entry(case.id.clone())
                            .or_insert_with(|| message.clone());
                    }
                }
                Outcome::Skipped => {}
            }
        }
        out.result = if !out.failed_tests.is_empty() {
            TestResultOutcome::Failed
        } else if !out.warned_tests.is_empty() {
            TestResultOutcome::Warned
        } else {
            TestResultOutcome::Passed
        };
        out
    }
}

/// A SARIF result's identity beside its rule: the tool's `partialFingerprints` when it
/// gives them, else its first location's file and region. `None` for a result with neither,
/// which is then one finding per rule (nothing tells its instances apart).
fn sarif_fingerprint(result: &crate::report::sarif::SarifResult) -> Option<String> {
    if !result.partial_fingerprints.is_empty() {
        let pairs: Vec<String> = result
            .partial_fingerprints
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        return Some(format!("partialFingerprints:{}", pairs.join(";")));
    }
    let location = result.locations.first()?;
    let uri = location.uri.as_deref()?;
    let mut region = String::new();
    let parts = [
        ("", location.start_line),
        (":", location.start_column),
        ("-", location.end_line),
        (":", location.end_column),
    ];
    for (separator, value) in parts {
        if let Some(value) = value {
            region.push_str(separator);
            region.push_str(&value.to_string());
        }
    }
    Some(if region.is_empty() {
        uri.to_owned()
    } else {
        format!("{uri}:{region}")
    })
}

/// in-toto vulns v0.2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vulns {
    pub scanner: Scanner,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ScanMetadata>,
}

/// Severity method of a finding mapped from SARIF: the score is the SARIF `level`.
pub const SARIF_LEVEL_METHOD: &str = "sarif-level";
/// vulns result annotation: where a SARIF finding points (`uri:line`).
pub const LOCATION_ANNOTATION: &str = "countersign.dev/location";
/// vulns result annotation: the identity of a SARIF finding beside its rule, so two results
/// of one rule are two findings. `partialFingerprints:` and the tool's fingerprints
/// (`name=value`, sorted, `;`-separated) when it gives them, else `<uri>:<region>`.
pub const FINGERPRINT_ANNOTATION: &str = "countersign.dev/fingerprint";

impl Vulns {
    /// A SARIF log as a vulns v0.2 predicate. SARIF is static analysis, so this is meant for
    /// security analyzers (CodeQL, Semgrep security rules): each result at level `error` or
    /// `warning` becomes a finding whose `id` is the rule id (`<tool>/result-<run>-<index>`
    /// when the result has none), whose severity is `{"method": "sarif-level", "score":
    /// <level>}`, and whose first location rides in a `countersign.dev/location` annotation.
    /// `note` and `none` results are informational and dropped. The scanner is the first
    /// run's tool (`pkg:generic/<tool>`), with its version. See docs/evidence.md.
    pub fn from_sarif(report: &crate::report::sarif::SarifReport) -> Self {
        use crate::report::sarif::Level;
        let tool = report.summary.runs.first();
        let tool_name = |run: usize| {
            report
                .summary
                .runs
                .get(run)
                .map_or("sarif", |r| r.tool.as_str())
                .to_owned()
        };
        let result = report
            .results
            .iter()
            .filter(|r| matches!(r.level, Level::Error | Level::Warning))
            .map(|r| {
                let level = if r.level == Level::Error {
                    "error"
                } else {
                    "warning"
                };
                let mut annotations = Vec::new();
                if let Some(location) = r.locations.first()
                    && let Some(uri) = &location.uri
                {
                    let at = match location.start_line {
                        Some(line) => format!("{uri}:{line}"),
                        None => uri.clone(),
                    };
                    annotations.push(BTreeMap::from([(
                        LOCATION_ANNOTATION.to_owned(),
                        Value::String(at),
                    )]));
                }
                if let Some(fingerprint) = sarif_fingerprint(r) {
                    annotations.push(BTreeMap::from([(
                        FINGERPRINT_ANNOTATION.to_owned(),
                        Value::String(fingerprint),
                    )]));
                }
                VulnResult {
                    id: r.rule_id.clone().unwrap_or_else(|| {
                        format!("{}/result-{}-{}", tool_name(r.run), r.run, r.index)
                    }),
                    severity: vec![VulnSeverity {
                        method: SARIF_LEVEL_METHOD.to_owned(),
                        score: level.to_owned(),
                    }],
                    annotations,
                }
            })
            .collect();
        Vulns {
            scanner: Scanner {
                uri: format!(
                    "pkg:generic/{}",
                    tool.map_or("sarif", |t| t.tool.as_str())
                        .to_ascii_lowercase()
                        .replace(char::is_whitespace, "-")
                ),
                version: tool.and_then(|t| t.version.clone()),
                db: None,
                result,
            },
            metadata: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scanner {
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<ScannerDb>,
    pub result: Vec<VulnResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScannerDb {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VulnResult {
    pub id: String,
    pub severity: Vec<VulnSeverity>,
    /// Free key/value pairs; countersign reads `countersign.dev/package` (the purl or node the
    /// finding is in) from them when present.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<BTreeMap<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VulnSeverity {
    pub method: String,
    pub score: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_started_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_finished_on: Option<String>,
}

/// A predicate countersign understands, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    TestResult(TestResult),
    Vulns(Vulns),
    OpenVex(VexDocument),
}

/// Why a predicate is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PredicateError {
    #[error("unknown predicate type {0}")]
    Unknown(String),
    #[error("malformed {predicate_type} predicate: {what}")]
    Malformed {
        predicate_type: String,
        what: String,
    },
}

impl Predicate {
    /// Parses `predicate` according to `predicate_type`.
    pub fn parse(predicate_type: &str, predicate: Value) -> Result<Self, PredicateError> {
        let malformed = |what: String| PredicateError::Malformed {
            predicate_type: predicate_type.to_owned(),
            what,
        };
        match predicate_type {
            TEST_RESULT_V01 => serde_json::from_value(predicate)
                .map(Predicate::TestResult)
                .map_err(|e| malformed(e.to_string())),
            VULNS_V02 => serde_json::from_value(predicate)
                .map(Predicate::Vulns)
                .map_err(|e| malformed(e.to_string())),
            OPENVEX_V020 | OPENVEX_UNVERSIONED => vex::openvex_from_value(predicate)
                .map(Predicate::OpenVex)
                .map_err(|e| malformed(e.to_string())),
            other => Err(PredicateError::Unknown(other.to_owned())),
        }
    }

    /// The predicate type URI this predicate is written under.
    pub fn predicate_type(&self) -> &'static str {
        match self {
            Predicate::TestResult(_) => TEST_RESULT_V01,
            Predicate::Vulns(_) => VULNS_V02,
            Predicate::OpenVex(_) => OPENVEX_V020,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::junit::{Outcome, TestCase};

    #[test]
    fn statement_shape_is_in_toto_v1() {
        let s = Statement::for_commit(
            "github.com/acme/shop",
            "d20ace7968ba43c0219f62d71334c1095bab1602",
            "unit",
            TEST_RESULT_V01,
            serde_json::json!({"result": "PASSED", "configuration": []}),
        );
        let v: Value = serde_json::from_slice(&s.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{
                    "name": "github.com/acme/shop",
                    "digest": {"gitCommit": "d20ace7968ba43c0219f62d71334c1095bab1602"},
                    "annotations": {"countersign.dev/suite": "unit"}
                }],
                "predicateType": "https://in-toto.io/attestation/test-result/v0.1",
                "predicate": {"result": "PASSED", "configuration": []}
            })
        );
    }

    #[test]
    fn test_result_from_cases() {
        let case = |id: &str, outcome| TestCase {
            id: id.to_owned(),
            outcome,
            time: None,
            message: Some(format!("why {id}")),
        };
        let cases = [
            case("a", Outcome::Passed),
            case("b", Outcome::Flaky),
            case("c", Outcome::Skipped),
        ];
        let r = TestResult::from_cases(&cases, vec![]);
        assert_eq!(r.result, TestResultOutcome::Warned);
        assert_eq!(r.passed_tests, ["a"]);
        assert_eq!(r.warned_tests, ["b"]);
        assert!(r.failure_messages.is_empty(), "only failures keep messages");
        // The field stays off the wire when empty: a passing predicate is the published shape.
        assert!(
            !serde_json::to_string(&r)
                .unwrap()
                .contains("failureMessages")
        );
        let r = TestResult::from_cases(&[case("d", Outcome::Errored)], vec![]);
        assert_eq!(r.result, TestResultOutcome::Failed);
        assert_eq!(r.failure_messages["d"], "why d");
    }

    #[test]
    fn failure_messages_ride_in_an_extension_field_and_are_bounded() {
        let cases: Vec<TestCase> = (0..MAX_FAILURE_MESSAGES + 5)
            .map(|i| TestCase {
                id: format!("t{i:03}"),
                outcome: if i % 2 == 0 {
                    Outcome::Failed
                } else {
                    Outcome::Errored
                },
                time: None,
                message: (i != 1).then(|| format!("boom {i}")),
            })
            .collect();
        let r = TestResult::from_cases(&cases, vec![]);
        assert_eq!(r.failed_tests.len(), MAX_FAILURE_MESSAGES + 5);
        assert_eq!(r.failure_messages.len(), MAX_FAILURE_MESSAGES);
        assert_eq!(r.failure_messages["t000"], "boom 0");
        assert!(
            !r.failure_messages.contains_key("t001"),
            "no message, no entry"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["countersign.dev/failureMessages"]["t002"], "boom 2");
        // Read back, and read by a consumer that predates the field (it ignores it).
        let back: TestResult = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, r);
        let mut old = json;
        old.as_object_mut()
            .unwrap()
            .remove("countersign.dev/failureMessages");
        let old: TestResult = serde_json::from_value(old).unwrap();
        assert!(old.failure_messages.is_empty());
    }

    #[test]
    fn sarif_maps_to_vulns_keeping_errors_and_warnings() {
        use crate::report::sarif::{
            Level, Location, SarifReport, SarifResult, SarifRun, SarifSummary,
        };
        let result = |index, rule: Option<&str>, level, uri: Option<&str>| SarifResult {
            run: 0,
            index,
            rule_id: rule.map(str::to_owned),
            level,
            message: "m".into(),
            locations: uri
                .map(|u| Location {
                    uri: Some(u.into()),
                    start_line: Some(7),
                    start_column: None,
                    end_line: None,
                    end_column: None,
                })
                .into_iter()
                .collect(),
            partial_fingerprints: BTreeMap::new(),
        };
        let report = SarifReport {
            summary: SarifSummary {
                runs: vec![SarifRun {
                    tool: "CodeQL".into(),
                    version: Some("2.20".into()),
                }],
                ..SarifSummary::default()
            },
            results: vec![
                result(0, Some("js/sql-injection"), Level::Error, Some("src/db.js")),
                result(1, None, Level::Warning, None),
                result(2, Some("js/unused"), Level::Note, None),
            ],
        };
        let vulns = Vulns::from_sarif(&report);
        let v = serde_json::to_value(&vulns).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"scanner": {
            "uri": "pkg:generic/codeql", "version": "2.20",
            "result": [
                {"id": "js/sql-injection", "severity": [{"method": "sarif-level", "score": "error"}],
                 "annotations": [{"countersign.dev/location": "src/db.js:7"},
                                 {"countersign.dev/fingerprint": "src/db.js:7"}]},
                {"id": "CodeQL/result-0-1", "severity": [{"method": "sarif-level", "score": "warning"}]}
            ]}})
        );
        assert!(matches!(
            Predicate::parse(VULNS_V02, v),
            Ok(Predicate::Vulns(_))
        ));
    }

    #[test]
    fn spec_example_predicates_parse() {
        // The examples of test-result.md and vulns_02.md.
        let test_result = serde_json::json!({
            "result": "PASSED",
            "configuration": [{
                "name": ".github/workflows/ci.yml",
                "downloadLocation": "https://github.com/in-toto/in-toto/blob/d20ace7968ba43c0219f62d71334c1095bab1602/.github/workflows/ci.yml",
                "digest": {"gitBlob": "ebe4add40f63c3c98bc9b32ff1e736f04120b023"}
            }],
            "url": "https://github.com/in-toto/in-toto/actions/runs/4425592351",
            "passedTests": ["build (3.7, ubuntu-latest, py)"],
            "warnedTests": [],
            "failedTests": []
        });
        assert!(matches!(
            Predicate::parse(TEST_RESULT_V01, test_result),
            Ok(Predicate::TestResult(_))
        ));
        let vulns = serde_json::json!({
            "scanner": {
                "uri": "pkg:github/aquasecurity/trivy@244fd47e07d1004f0aed9",
                "version": "0.19.2",
                "db": {
                    "uri": "pkg:github/aquasecurity/trivy-db/commit/4c76bb580b2736d67751410fa4ab66d2b6b9b27d",
                    "version": "v1-2021080612",
                    "lastUpdate": "2021-08-06T17:45:50.52Z"
                },
                "result": [{"id": "CVE-123", "severity": [
                    {"method": "nvd", "score": "medium"},
                    {"method": "cvss_score", "score": "5.2"}
                ]}]
            },
            "metadata": {
                "scanStartedOn": "2021-08-06T17:45:50.52Z",
                "scanFinishedOn": "2021-08-06T17:50:50.52Z"
            }
        });
        let Ok(Predicate::Vulns(v)) = Predicate::parse(VULNS_V02, vulns) else {
            panic!("vulns example did not parse")
        };
        assert_eq!(v.scanner.result[0].severity[1].score, "5.2");
        assert!(matches!(
            Predicate::parse("https://example.com/other", Value::Null),
            Err(PredicateError::Unknown(_))
        ));
        assert!(matches!(
            Predicate::parse(TEST_RESULT_V01, serde_json::json!({"result": "MAYBE"})),
            Err(PredicateError::Malformed { .. })
        ));
    }
}
