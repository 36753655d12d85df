//! The finding lifecycle: what failed on a protected branch, how severe it is, and what a
//! later run does to it. Pure: the server derives findings from signed evidence and
//! persists what these functions answer.
//!
//! ```text
//! failed test / reachable vulnerability ──► open ──(observed again)──► open
//!                                            │ fix merged, reproducing suite run again
//!                                passes ◄────┴────► fails
//!                               verified           reopened ──(observed, fixed again)──► …
//! ```
//!
//! A finding is live while it is not `verified`; one identity (kind, suite, test or
//! vulnerability id, component) has at most one live finding. Not here: reading evidence
//! (the server), storing rows (countersign-store).

use std::fmt;
use std::str::FromStr;

use crate::state::UnknownValue;

macro_rules! vocabulary {
    ($name:ident, $what:literal, $expected:literal, [$($variant:ident => $text:literal),* $(,)?]) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<$name, UnknownValue> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownValue {
                        what: $what,
                        value: s.to_owned(),
                        expected: $expected,
                    })
            }
        }
    };
}

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingKind {
    /// A test case that failed in a signed test-result.
    TestFailure,
    /// A vulnerability a signed scan reported, reachable from the internet (or placed on no
    /// node, which nothing shows unreachable).
    Vulnerability,
}

vocabulary!(FindingKind, "finding kind", "test_failure or vulnerability", [
    TestFailure => "test_failure",
    Vulnerability => "vulnerability",
]);

/// Where a finding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingState {
    /// Seen failing; no fix has been verified.
    Open,
    /// A merged fix was run again on the protected branch and the reproducing test passed
    /// (or the vulnerability was no longer reported). Final for this finding: a later
    /// failure of the same identity opens a new one.
    Verified,
    /// A merged fix was run again and it still failed: live again, waiting for another fix.
    Reopened,
}

vocabulary!(FindingState, "finding state", "open, verified or reopened", [
    Open => "open",
    Verified => "verified",
    Reopened => "reopened",
]);

impl FindingState {
    /// Whether the finding is live: observations count on it and fixes may link to it.
    pub fn is_live(self) -> bool {
        self != FindingState::Verified
    }

    /// After a merged fix's reproducing run: `passed` verifies, a failure reopens. `None`
    /// for a finding that is not live (nothing to verify).
    pub fn after_fix(self, passed: bool) -> Option<FindingState> {
        if !self.is_live() {
            return None;
        }
        Some(if passed {
            FindingState::Verified
        } else {
            FindingState::Reopened
        })
    }
}

/// How urgent a finding is, and the scale of a component's criticality it is derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Low,
    Moderate,
    High,
    Critical,
}

vocabulary!(Severity, "severity", "low, moderate, high or critical", [
    Low => "low",
    Moderate => "moderate",
    High => "high",
    Critical => "critical",
]);

/// The severity of a finding of `kind` on a component of `criticality` (`None`: placed on
/// no component, which is treated as `high`, as unmapped code never counts as harmless):
///
/// | criticality | test_failure | vulnerability |
/// |---|---|---|
/// | low | low | moderate |
/// | moderate | moderate | high |
/// | high | high | critical |
/// | critical | critical | critical |
///
/// A reachable vulnerability is one step more severe than a failed test on the same
/// component: it can be exploited, not only observed.
pub fn severity(criticality: Option<Severity>, kind: FindingKind) -> Severity {
    let base = criticality.unwrap_or(Severity::High);
    match kind {
        FindingKind::TestFailure => base,
        FindingKind::Vulnerability => match base {
            Severity::Low => Severity::Moderate,
            Severity::Moderate => Severity::High,
            Severity::High | Severity::Critical => Severity::Critical,
        },
    }
}

/// The identity of a finding: what makes two observations the same finding.
pub fn identity(kind: FindingKind, suite: &str, test: &str, component: &str) -> String {
    format!("{kind}\n{suite}\n{test}\n{component}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_table() {
        let mut rows = Vec::new();
        for criticality in [
            Some(Severity::Low),
            Some(Severity::Moderate),
            Some(Severity::High),
            Some(Severity::Critical),
            None,
        ] {
            rows.push(format!(
                "{:>8}: {} {}",
                criticality.map_or("unmapped", Severity::as_str),
                severity(criticality, FindingKind::TestFailure),
                severity(criticality, FindingKind::Vulnerability),
            ));
        }
        assert_eq!(
            rows,
            [
                "     low: low moderate",
                "moderate: moderate high",
                "    high: high critical",
                "critical: critical critical",
                "unmapped: high critical",
            ]
        );
    }

    #[test]
    fn states_parse_and_fixes_move_only_live_findings() {
        for state in FindingState::ALL {
            assert_eq!(state.as_str().parse::<FindingState>().unwrap(), *state);
        }
        assert!("closed".parse::<FindingState>().is_err());
        assert_eq!(
            FindingState::Open.after_fix(true),
            Some(FindingState::Verified)
        );
        assert_eq!(
            FindingState::Reopened.after_fix(false),
            Some(FindingState::Reopened)
        );
        assert_eq!(FindingState::Verified.after_fix(false), None);
    }
}
