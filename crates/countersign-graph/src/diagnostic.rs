//! Findings about a graph that do not stop it from being built or used: unknown
//! references, dangling dependencies, duplicates, CODEOWNERS oddities, cycles, coverage.
//!
//! A diagnostic is data for a report; it never aborts anything (that is [`crate::GraphError`]).

use std::fmt;

use crate::model::SourceLocation;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

/// What kind of finding this is; stable names for JSON and for filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiagnosticCode {
    /// An owner, system, memberOf, parent... naming no entity.
    UnknownRef,
    /// A dependsOn / providesApis / consumesApis naming no entity.
    DanglingDependency,
    /// Two descriptors declare the same entity; the first by file and line is kept.
    DuplicateEntity,
    /// A CODEOWNERS owner that names no Group or User of the catalog.
    UnknownOwner,
    /// A CODEOWNERS pattern GitHub does not support (`!`, `\#`, `[ ]`), over the length limit,
    /// or that cannot compile.
    UnsupportedPattern,
    /// A Location target that is a URL, absolute, outside the repository or missing.
    LocationTarget,
    /// The configured CODEOWNERS file does not exist.
    MissingCodeowners,
    /// The CODEOWNERS file is not applied at all: at or over GitHub's size limit (as GitHub
    /// does), or over countersign's limit of wildcard rules.
    CodeownersIgnored,
    /// A workspace member or dependency that cannot be resolved.
    Workspace,
    /// A cycle of dependencies.
    Cycle,
    /// A file that two nodes own with equally specific globs.
    PathClaimedTwice,
    /// Tracked files that map to no node.
    Unmapped,
    /// A `countersign.dev/paths` glob that matches no tracked file (an error: the files it
    /// was meant for are unmapped, or owned by someone else).
    DeadGlob,
    /// A User's `countersign.dev/ssh-signing-keys` or `countersign.dev/openpgp-signing-keys`
    /// that does not parse (an error: every decision against the catalog refuses it). Found
    /// by countersign-decide, which owns key formats.
    SigningKey,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: DiagnosticCode,
    pub message: String,
    pub location: Option<SourceLocation>,
}

impl Diagnostic {
    pub fn new(
        severity: Severity,
        code: DiagnosticCode,
        message: impl Into<String>,
        location: Option<SourceLocation>,
    ) -> Self {
        Diagnostic {
            severity,
            code,
            message: message.into(),
            location,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        match &self.location {
            Some(loc) => write!(f, "{loc}: {severity}: {}", self.message),
            None => write!(f, "{severity}: {}", self.message),
        }
    }
}
