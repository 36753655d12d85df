//! Loading and checking policy files: Cedar parse errors, strict schema validation, and
//! countersign's own rules (every policy has `@id` and `@reason`, ids unique across
//! files), each reported with file:line:col.
//!
//! A finding is a [`PolicyDiagnostic`], not an `Err`. This module reads no files: the
//! caller hands it `(path, text)` pairs.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use cedar_policy::{
    ActionConstraint, Effect, EntityUid, Policy, PolicyId, PolicySet, Schema, ValidationMode,
    Validator,
};
use miette::Diagnostic;

use crate::facts::referenced_facts;
use crate::tier::Tier;

/// How serious a finding is. Errors make a pack unusable; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One finding about a policy file, located by 1-based line and column (in characters).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyDiagnostic {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub severity: Severity,
    /// The policy's `@id`, when the finding is about one policy that has one.
    pub policy_id: Option<String>,
    pub message: String,
}

impl fmt::Display for PolicyDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file,
            self.line,
            self.column,
            self.severity.as_str(),
            self.message
        )
    }
}

/// Check policy files (`(path, text)`, e.g. a directory's `.cedar` files) against the
/// countersign schema. An empty result means the files make a usable pack.
pub fn check(files: &[(String, String)]) -> Vec<PolicyDiagnostic> {
    match crate::schema::schema() {
        Ok(schema) => load(files, &schema).1,
        Err(message) => vec![PolicyDiagnostic {
            file: crate::schema::SCHEMA_PATH.to_owned(),
            line: 1,
            column: 1,
            severity: Severity::Error,
            policy_id: None,
            message,
        }],
    }
}

/// Whether a policy permits or forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum PolicyEffect {
    Permit,
    Forbid,
}

/// What countersign keeps about each policy besides Cedar's own form.
#[derive(Debug, Clone)]
pub(crate) struct PolicyInfo {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub reason: String,
    pub effect: PolicyEffect,
    /// The tiers the policy's action scope covers.
    pub tiers: Vec<Tier>,
    /// Context attributes the policy's text refers to.
    pub facts: Vec<String>,
}

/// The policies that parsed, under their `@id`s, with their information.
pub(crate) struct Loaded {
    pub set: PolicySet,
    pub policies: BTreeMap<String, PolicyInfo>,
}

/// Parse, annotate and validate. Policies that parse are kept even when other findings
/// exist, so one run reports everything; the caller decides whether errors are fatal.
pub(crate) fn load(files: &[(String, String)], schema: &Schema) -> (Loaded, Vec<PolicyDiagnostic>) {
    let mut diagnostics = Vec::new();
    let mut set = PolicySet::new();
    let mut policies: BTreeMap<String, PolicyInfo> = BTreeMap::new();
    let texts: BTreeMap<&str, &str> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();

    for (path, text) in files {
        let mut at = |offset: usize, severity, policy_id: Option<String>, message: String| {
            let (line, column) = line_column(text, offset);
            diagnostics.push(PolicyDiagnostic {
                file: path.clone(),
                line,
                column,
                severity,
                policy_id,
                message,
            });
        };
        let parsed = match PolicySet::from_str(text) {
            Ok(parsed) => parsed,
            Err(errors) => {
                for error in errors.iter() {
                    at(
                        first_label_offset(error).unwrap_or(0),
                        Severity::Error,
                        None,
                        message_of(error),
                    );
                }
                continue;
            }
        };

        let mut cursor = 0;
        for template in parsed.templates() {
            let offset = find_from(text, &template.to_string(), 0);
            at(
                offset,
                Severity::Error,
                template.annotation("id").map(str::to_owned),
                "templates (policies with ?principal or ?resource slots) are not supported: write a static policy"
                    .to_owned(),
            );
        }

        // Cedar names the policies of one text policy0, policy1, ... in source order;
        // sorting on the number lets the text search below walk the file once.
        let mut in_order: Vec<&Policy> = parsed.policies().collect();
        in_order.sort_by_key(|p| source_index(p.id()));
        for policy in in_order {
            let policy_text = policy.to_string();
            let offset = find_from(text, &policy_text, cursor);
            cursor = offset + policy_text.len();
            let (line, column) = line_column(text, offset);
            let declared_id = policy
                .annotation("id")
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_owned);
            let reason = policy
                .annotation("reason")
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned);

            if declared_id.is_none() {
                at(
                    offset,
                    Severity::Error,
                    None,
                    "policy has no @id(\"...\") annotation: every policy needs a unique id so decisions can name it"
                        .to_owned(),
                );
            }
            if reason.is_none() {
                at(
                    offset,
                    Severity::Error,
                    declared_id.clone(),
                    "policy has no @reason(\"...\") annotation: every policy needs a plain-language reason for explanations"
                        .to_owned(),
                );
            }
            let id = match &declared_id {
                Some(id) => match policies.get(id) {
                    Some(first) => {
                        at(
                            offset,
                            Severity::Error,
                            Some(id.clone()),
                            format!(
                                "duplicate policy id {id:?}: first defined at {}:{}:{}",
                                first.file, first.line, first.column
                            ),
                        );
                        // Keep validating it under a name that cannot collide.
                        format!("{id} ({path}:{line}:{column})")
                    }
                    None => id.clone(),
                },
                None => format!("{path}:{line}:{column}"),
            };

            let info = PolicyInfo {
                file: path.clone(),
                line,
                column,
                reason: reason.unwrap_or_default(),
                effect: match policy.effect() {
                    Effect::Permit => PolicyEffect::Permit,
                    Effect::Forbid => PolicyEffect::Forbid,
                },
                tiers: tiers_of(&policy.action_constraint()),
                facts: referenced_facts(&policy_text),
            };
            match set.add(policy.new_id(PolicyId::new(&id))) {
                Ok(()) => {
                    policies.insert(id, info);
                }
                Err(error) => at(offset, Severity::Error, Some(id), error.to_string()),
            }
        }
    }

    let validation = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
    let mut locate =
        |policy_id: &PolicyId, diagnostic: &dyn Diagnostic, severity: Severity, message: String| {
            let id = policy_id.to_string();
            let Some(info) = policies.get(&id) else {
                return;
            };
            let text = texts.get(info.file.as_str()).copied().unwrap_or("");
            let (line, column) = match first_label_offset(diagnostic) {
                Some(offset) => line_column(text, offset),
                None => (info.line, info.column),
            };
            diagnostics.push(PolicyDiagnostic {
                file: info.file.clone(),
                line,
                column,
                severity,
                policy_id: Some(id),
                message,
            });
        };
    for error in validation.validation_errors() {
        locate(error.policy_id(), error, Severity::Error, message_of(error));
    }
    for warning in validation.validation_warnings() {
        locate(
            warning.policy_id(),
            warning,
            Severity::Warning,
            message_of(warning),
        );
    }

    diagnostics.sort();
    (Loaded { set, policies }, diagnostics)
}

/// Cedar's message, with its help line when it has one (that is where it names the
/// expected type or a likely typo).
fn message_of(diagnostic: &dyn Diagnostic) -> String {
    let mut message = diagnostic.to_string();
    if let Some(help) = diagnostic.help() {
        message.push_str(&format!(" (help: {help})"));
    }
    message
}

fn first_label_offset(diagnostic: &dyn Diagnostic) -> Option<usize> {
    let mut labels = diagnostic.labels()?;
    labels.next().map(|label| label.offset())
}

fn source_index(id: &PolicyId) -> u64 {
    id.to_string()
        .strip_prefix("policy")
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

fn find_from(text: &str, needle: &str, from: usize) -> usize {
    text.get(from..)
        .and_then(|rest| rest.find(needle))
        .map(|pos| from + pos)
        .or_else(|| text.find(needle))
        .unwrap_or(0)
}

/// 1-based line and column (in characters) of a byte offset, clamped to the text.
pub(crate) fn line_column(text: &str, offset: usize) -> (u32, u32) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

fn tiers_of(constraint: &ActionConstraint) -> Vec<Tier> {
    let tier_of = |uid: &EntityUid| uid.id().unescaped().parse::<Tier>().ok();
    match constraint {
        ActionConstraint::Any => Tier::ALL.to_vec(),
        ActionConstraint::Eq(uid) => tier_of(uid).into_iter().collect(),
        ActionConstraint::In(uids) => {
            let mut tiers: Vec<Tier> = uids.iter().filter_map(tier_of).collect();
            tiers.sort();
            tiers.dedup();
            tiers
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_characters() {
        let text = "ab\nçd\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 3), (2, 1));
        assert_eq!(line_column(text, 5), (2, 2));
        assert_eq!(line_column(text, 4), (2, 1));
        assert_eq!(line_column(text, 100), (3, 1));
    }
}
