//! SARIF 2.1.0 logs (clippy through clippy-sarif, CodeQL, Semgrep): a streaming reader that
//! yields each result with its rule, level and locations.
//!
//! The log is walked with serde visitors: each `runs[i].results[j]` is deserialized on its own,
//! handed to the caller and dropped; everything else (rule metadata, artifacts, invocations) is
//! skipped without being kept. Memory is bounded by the largest single result.
//!
//! Refused: input that is not JSON or is truncated, a `version` other than "2.1.0", a log
//! without `runs`, a run without `tool.driver.name`, a result whose `level` is not one of
//! none/note/warning/error or whose `message` is missing. Accepted but flagged: a result
//! without locations (its `locations` is empty and it is counted in
//! [`SarifSummary::without_location`]), since tools legitimately emit crate- or
//! project-level findings. A missing `level` is resolved as SARIF §3.27.10 says: "none" for
//! a `kind` other than "fail", else the rule's `defaultConfiguration.level` (found by
//! `ruleIndex` or `ruleId`), else "warning". When a run lists its `results` before its `tool`
//! (Semgrep does), results without an explicit level wait for the rules, so memory is then
//! bounded by the number of such results in one run rather than by one result.
//! Per-invocation `ruleConfigurationOverrides` are not consulted.

use std::fmt;
use std::io::BufRead;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{ReportError, strip_position};

/// Severity of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    None,
    Note,
    Warning,
    Error,
}

/// Where a result points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub uri: Option<String>,
    pub start_line: Option<u64>,
    /// The rest of the region, when the tool gives it: with `start_line`, what tells two
    /// results of one rule in one file apart.
    pub start_column: Option<u64>,
    pub end_line: Option<u64>,
    pub end_column: Option<u64>,
}

/// One result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SarifResult {
    /// Index of the run in `runs`.
    pub run: usize,
    /// Index of the result in the run's `results`. Results whose level comes from their
    /// rule may be yielded after later ones when the log puts `results` before `tool`.
    pub index: usize,
    pub rule_id: Option<String>,
    pub level: Level,
    pub message: String,
    /// Empty when the tool gave none (flagged in the summary, not refused).
    pub locations: Vec<Location>,
    /// `partialFingerprints` (SARIF §3.27.17): the tool's stable identity of the result,
    /// by fingerprint name. Empty when the tool gave none.
    pub partial_fingerprints: std::collections::BTreeMap<String, String>,
}

/// The tool of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SarifRun {
    pub tool: String,
    pub version: Option<String>,
}

/// Totals over a log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SarifSummary {
    pub runs: Vec<SarifRun>,
    pub results: u64,
    pub errors: u64,
    pub warnings: u64,
    pub notes: u64,
    pub nones: u64,
    /// Results that have no location at all.
    pub without_location: u64,
}

/// A whole log in memory. For large logs use [`read`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SarifReport {
    pub summary: SarifSummary,
    pub results: Vec<SarifResult>,
}

/// Reads a log into memory.
pub fn parse(file: &str, reader: impl BufRead) -> Result<SarifReport, ReportError> {
    let mut results = Vec::new();
    let summary = read(file, reader, |r| results.push(r))?;
    Ok(SarifReport { summary, results })
}

/// Streams a log: `on_result` sees each result as soon as it is read.
pub fn read(
    file: &str,
    reader: impl BufRead,
    mut on_result: impl FnMut(SarifResult),
) -> Result<SarifSummary, ReportError> {
    let mut summary = SarifSummary::default();
    // serde_json buffers one string at a time; results are small structs and skipped parts
    // of the log are never held.
    let mut de = serde_json::Deserializer::from_reader(reader);
    let outcome = LogSeed {
        on_result: &mut on_result,
        summary: &mut summary,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match outcome {
        Ok(()) => Ok(summary),
        Err(e) if e.is_io() => Err(ReportError::Io {
            file: file.to_owned(),
            source: std::io::Error::other(e.to_string()),
        }),
        Err(e) => Err(ReportError::Malformed {
            file: file.to_owned(),
            line: e.line() as u64,
            column: e.column() as u64,
            what: strip_position(&e.to_string()),
        }),
    }
}

struct LogSeed<'a, F> {
    on_result: &'a mut F,
    summary: &'a mut SarifSummary,
}

impl<'de, F: FnMut(SarifResult)> DeserializeSeed<'de> for LogSeed<'_, F> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F: FnMut(SarifResult)> Visitor<'de> for LogSeed<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a SARIF log object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut version = None;
        let mut runs = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "version" => version = Some(map.next_value::<String>()?),
                "runs" => {
                    runs = true;
                    map.next_value_seed(RunsSeed {
                        on_result: &mut *self.on_result,
                        summary: &mut *self.summary,
                    })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match version.as_deref() {
            Some("2.1.0") => {}
            Some(other) => {
                return Err(de::Error::custom(format!(
                    "version: SARIF {other} is not supported, only 2.1.0"
                )));
            }
            None => return Err(de::Error::custom("version: missing")),
        }
        if !runs {
            return Err(de::Error::custom("runs: missing"));
        }
        Ok(())
    }
}

struct RunsSeed<'a, F> {
    on_result: &'a mut F,
    summary: &'a mut SarifSummary,
}

impl<'de, F: FnMut(SarifResult)> DeserializeSeed<'de> for RunsSeed<'_, F> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(SarifResult)> Visitor<'de> for RunsSeed<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of runs")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut run = 0;
        while seq
            .next_element_seed(RunSeed {
                run,
                on_result: &mut *self.on_result,
                summary: &mut *self.summary,
            })?
            .is_some()
        {
            run += 1;
        }
        Ok(())
    }
}

struct RunSeed<'a, F> {
    run: usize,
    on_result: &'a mut F,
    summary: &'a mut SarifSummary,
}

#[derive(Deserialize)]
struct Tool {
    driver: Driver,
}

#[derive(Deserialize)]
struct Driver {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default, rename = "semanticVersion")]
    semantic_version: Option<String>,
    #[serde(default)]
    rules: Vec<RuleDescriptor>,
}

#[derive(Deserialize)]
struct RuleDescriptor {
    #[serde(default)]
    id: Option<String>,
    #[serde(default, rename = "defaultConfiguration")]
    default_configuration: Option<RuleConfiguration>,
}

#[derive(Deserialize)]
struct RuleConfiguration {
    #[serde(default)]
    level: Option<String>,
}

/// Default levels of a run's rules, by index and by id.
#[derive(Default)]
struct RuleLevels {
    by_index: Vec<Option<Level>>,
    by_id: std::collections::HashMap<String, Level>,
}

impl RuleLevels {
    fn of(rules: &[RuleDescriptor]) -> Self {
        let mut out = Self::default();
        for rule in rules {
            let level = rule
                .default_configuration
                .as_ref()
                .and_then(|c| c.level.as_deref())
                .and_then(parse_level);
            out.by_index.push(level);
            if let (Some(id), Some(level)) = (&rule.id, level) {
                out.by_id.insert(id.clone(), level);
            }
        }
        out
    }

    fn level(&self, pending: &Pending) -> Option<Level> {
        pending
            .rule_index
            .and_then(|i| self.by_index.get(i).copied().flatten())
            .or_else(|| {
                pending
                    .result
                    .rule_id
                    .as_ref()
                    .and_then(|id| self.by_id.get(id).copied())
            })
    }
}

fn parse_level(text: &str) -> Option<Level> {
    Some(match text {
        "none" => Level::None,
        "note" => Level::Note,
        "warning" => Level::Warning,
        "error" => Level::Error,
        _ => return None,
    })
}

/// A result whose level depends on its rule's default configuration, held until the run's
/// rules are known (some tools, Semgrep among them, write `results` before `tool`).
struct Pending {
    rule_index: Option<usize>,
    result: SarifResult,
}

fn emit<F: FnMut(SarifResult)>(summary: &mut SarifSummary, on_result: &mut F, result: SarifResult) {
    summary.results += 1;
    match result.level {
        Level::Error => summary.errors += 1,
        Level::Warning => summary.warnings += 1,
        Level::Note => summary.notes += 1,
        Level::None => summary.nones += 1,
    }
    if result.locations.is_empty() {
        summary.without_location += 1;
    }
    on_result(result);
}

impl<'de, F: FnMut(SarifResult)> DeserializeSeed<'de> for RunSeed<'_, F> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F: FnMut(SarifResult)> Visitor<'de> for RunSeed<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a SARIF run object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let run = self.run;
        let mut tool = None;
        let mut rules: Option<RuleLevels> = None;
        let mut pending = Vec::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "tool" => {
                    let t: Tool = map
                        .next_value()
                        .map_err(|e| de::Error::custom(format!("runs[{run}].tool: {e}")))?;
                    rules = Some(RuleLevels::of(&t.driver.rules));
                    tool = Some(SarifRun {
                        tool: t.driver.name,
                        version: t.driver.version.or(t.driver.semantic_version),
                    });
                }
                "results" => map.next_value_seed(ResultsSeed {
                    run,
                    rules: rules.as_ref(),
                    pending: &mut pending,
                    on_result: &mut *self.on_result,
                    summary: &mut *self.summary,
                })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let tool = tool.ok_or_else(|| de::Error::custom(format!("runs[{run}].tool: missing")))?;
        let rules = rules.unwrap_or_default();
        for p in pending {
            let level = rules.level(&p).unwrap_or(Level::Warning);
            emit(
                self.summary,
                self.on_result,
                SarifResult { level, ..p.result },
            );
        }
        self.summary.runs.push(tool);
        Ok(())
    }
}

struct ResultsSeed<'a, F> {
    run: usize,
    rules: Option<&'a RuleLevels>,
    pending: &'a mut Vec<Pending>,
    on_result: &'a mut F,
    summary: &'a mut SarifSummary,
}

#[derive(Deserialize)]
struct WireResult {
    #[serde(default, rename = "ruleId")]
    rule_id: Option<String>,
    #[serde(default, rename = "ruleIndex")]
    rule_index: Option<usize>,
    #[serde(default)]
    rule: Option<WireRule>,
    #[serde(default)]
    level: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    message: Option<WireMessage>,
    #[serde(default)]
    locations: Option<Vec<WireLocation>>,
    #[serde(default, rename = "partialFingerprints")]
    partial_fingerprints: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct WireRule {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    index: Option<usize>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
struct WireLocation {
    #[serde(default, rename = "physicalLocation")]
    physical: Option<WirePhysical>,
}

#[derive(Deserialize)]
struct WirePhysical {
    #[serde(default, rename = "artifactLocation")]
    artifact: Option<WireArtifact>,
    #[serde(default)]
    region: Option<WireRegion>,
}

#[derive(Deserialize)]
struct WireArtifact {
    #[serde(default)]
    uri: Option<String>,
}

#[derive(Deserialize)]
struct WireRegion {
    #[serde(default, rename = "startLine")]
    start_line: Option<u64>,
    #[serde(default, rename = "startColumn")]
    start_column: Option<u64>,
    #[serde(default, rename = "endLine")]
    end_line: Option<u64>,
    #[serde(default, rename = "endColumn")]
    end_column: Option<u64>,
}

impl<'de, F: FnMut(SarifResult)> DeserializeSeed<'de> for ResultsSeed<'_, F> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(SarifResult)> Visitor<'de> for ResultsSeed<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of results")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let run = self.run;
        let mut index = 0usize;
        while let Some(wire) = seq
            .next_element::<WireResult>()
            .map_err(|e| de::Error::custom(format!("runs[{run}].results[{index}]: {e}")))?
        {
            let field = |name: &str| format!("runs[{run}].results[{index}].{name}");
            // SARIF §3.27.10: an explicit level wins; a result of a kind other than "fail"
            // is "none"; otherwise the rule's default level, else "warning".
            let explicit = match wire.level.as_deref() {
                Some(text) => Some(parse_level(text).ok_or_else(|| {
                    de::Error::custom(format!(
                        "{}: {text:?} is not none, note, warning or error",
                        field("level")
                    ))
                })?),
                None => match wire.kind.as_deref() {
                    None | Some("fail") => None,
                    Some(_) => Some(Level::None),
                },
            };
            let message = wire
                .message
                .and_then(|m| m.text.or(m.id))
                .ok_or_else(|| de::Error::custom(format!("{}: missing", field("message"))))?;
            let locations: Vec<Location> = wire
                .locations
                .unwrap_or_default()
                .into_iter()
                .map(|l| {
                    let physical = l.physical;
                    let region = physical.as_ref().and_then(|p| p.region.as_ref());
                    Location {
                        uri: physical
                            .as_ref()
                            .and_then(|p| p.artifact.as_ref())
                            .and_then(|a| a.uri.clone()),
                        start_line: region.and_then(|r| r.start_line),
                        start_column: region.and_then(|r| r.start_column),
                        end_line: region.and_then(|r| r.end_line),
                        end_column: region.and_then(|r| r.end_column),
                    }
                })
                .filter(|l| l.uri.is_some())
                .collect();
            let rule_index = wire.rule_index.or(wire.rule.as_ref().and_then(|r| r.index));
            let result = SarifResult {
                run,
                index,
                rule_id: wire.rule_id.or(wire.rule.and_then(|r| r.id)),
                level: explicit.unwrap_or(Level::Warning),
                message,
                locations,
                // Values are strings by the spec; anything else is not a fingerprint.
                partial_fingerprints: wire
                    .partial_fingerprints
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(k, v)| match v {
                        serde_json::Value::String(v) => Some((k, v)),
                        _ => None,
                    })
                    .collect(),
            };
            let pending = Pending { rule_index, result };
            match (explicit, self.rules) {
                (Some(_), _) => emit(self.summary, self.on_result, pending.result),
                (None, Some(rules)) => {
                    let level = rules.level(&pending).unwrap_or(Level::Warning);
                    emit(
                        self.summary,
                        self.on_result,
                        SarifResult {
                            level,
                            ..pending.result
                        },
                    );
                }
                (None, None) => self.pending.push(pending),
            }
            index += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> String {
        match parse("t.sarif", json.as_bytes()) {
            Ok(report) => {
                let mut out = format!("{:?}\n", report.summary);
                for r in report.results {
                    out.push_str(&format!("{r:?}\n"));
                }
                out
            }
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn results_levels_and_missing_locations() {
        insta::assert_snapshot!(check(r#"{
          "version": "2.1.0", "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
          "runs": [{
            "results": [
              {"ruleId": "r1", "level": "error", "message": {"text": "bad"},
               "locations": [{"physicalLocation": {"artifactLocation": {"uri": "src/a.rs"}, "region": {"startLine": 3}}}]},
              {"rule": {"id": "r2"}, "message": {"text": "no place"}},
              {"ruleId": "r3", "kind": "pass", "message": {"text": "fine"}, "locations": []}
            ],
            "tool": {"driver": {"name": "clippy", "version": "0.1.95", "rules": [{"id": "r1"}]}}
          }]
        }"#), @r#"
        SarifSummary { runs: [SarifRun { tool: "clippy", version: Some("0.1.95") }], results: 3, errors: 1, warnings: 1, notes: 0, nones: 1, without_location: 2 }
        SarifResult { run: 0, index: 0, rule_id: Some("r1"), level: Error, message: "bad", locations: [Location { uri: Some("src/a.rs"), start_line: Some(3), start_column: None, end_line: None, end_column: None }], partial_fingerprints: {} }
        SarifResult { run: 0, index: 2, rule_id: Some("r3"), level: None, message: "fine", locations: [], partial_fingerprints: {} }
        SarifResult { run: 0, index: 1, rule_id: Some("r2"), level: Warning, message: "no place", locations: [], partial_fingerprints: {} }
        "#);
    }

    #[test]
    fn rule_default_level_applies_before_or_after_the_tool() {
        let results = r#""results": [
              {"ruleId": "sql", "message": {"text": "a"}, "locations": []},
              {"ruleIndex": 1, "message": {"text": "b"}},
              {"ruleId": "unknown", "message": {"text": "c"}},
              {"ruleId": "sql", "level": "note", "message": {"text": "d"}}
            ]"#;
        let tool = r#""tool": {"driver": {"name": "semgrep", "rules": [
              {"id": "sql", "defaultConfiguration": {"level": "error"}},
              {"id": "eval", "defaultConfiguration": {"level": "note"}}
            ]}}"#;
        let first = check(&format!(
            r#"{{"version": "2.1.0", "runs": [{{{results}, {tool}}}]}}"#
        ));
        let second = check(&format!(
            r#"{{"version": "2.1.0", "runs": [{{{tool}, {results}}}]}}"#
        ));
        insta::assert_snapshot!(first, @r#"
        SarifSummary { runs: [SarifRun { tool: "semgrep", version: None }], results: 4, errors: 1, warnings: 1, notes: 2, nones: 0, without_location: 4 }
        SarifResult { run: 0, index: 3, rule_id: Some("sql"), level: Note, message: "d", locations: [], partial_fingerprints: {} }
        SarifResult { run: 0, index: 0, rule_id: Some("sql"), level: Error, message: "a", locations: [], partial_fingerprints: {} }
        SarifResult { run: 0, index: 1, rule_id: None, level: Note, message: "b", locations: [], partial_fingerprints: {} }
        SarifResult { run: 0, index: 2, rule_id: Some("unknown"), level: Warning, message: "c", locations: [], partial_fingerprints: {} }
        "#);
        // Same results, only yielded in document order when the rules come first.
        let sorted = |text: &str| {
            let mut lines: Vec<&str> = text.lines().collect();
            lines.sort();
            lines.join("\n")
        };
        assert_eq!(sorted(&first), sorted(&second));
    }

    #[test]
    fn refusals() {
        insta::assert_snapshot!(check(r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"ruleId": "a", "mess"#), @"error: t.sarif:1:99: runs[0].results[0]: EOF while parsing a string");
        insta::assert_snapshot!(check(r#"{"version": "2.0.0", "runs": []}"#), @"error: t.sarif:1:32: version: SARIF 2.0.0 is not supported, only 2.1.0");
        insta::assert_snapshot!(check(r#"{"version": "2.1.0"}"#), @"error: t.sarif:1:20: runs: missing");
        insta::assert_snapshot!(check(r#"{"version": "2.1.0", "runs": [{"results": []}]}"#), @"error: t.sarif:1:45: runs[0].tool: missing");
        insta::assert_snapshot!(check(r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"level": "fatal", "message": {"text": "m"}}]}]}"#), @r#"error: t.sarif:1:123: runs[0].results[0].level: "fatal" is not none, note, warning or error"#);
        insta::assert_snapshot!(check(r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"level": "error"}]}]}"#), @"error: t.sarif:1:97: runs[0].results[0].message: missing");
        insta::assert_snapshot!(check(r#"{"version": "2.1.0", "runs": []} trailing"#), @"error: t.sarif:1:34: trailing characters");
    }
}
