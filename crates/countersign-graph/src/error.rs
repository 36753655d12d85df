//! Failures of a graph build: input that cannot be understood at all.
//!
//! Every variant names the file and line (and column or field where known) so a user can
//! go straight to the fix. Findings that still leave a usable graph (an unknown owner, a
//! dangling dependency) are not errors: they are [`crate::diagnostic::Diagnostic`]s.

use crate::entity_ref::EntityRefError;
use crate::source::SourceError;

/// Why a graph could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{file}: not valid UTF-8")]
    NotUtf8 { file: String },
    #[error(
        "{file}: encoded as {encoding}; countersign reads rule files as UTF-8 (re-save it as UTF-8)"
    )]
    Encoding {
        file: String,
        encoding: &'static str,
    },
    #[error("{file}:{line}:{column}: malformed YAML: {message}")]
    Yaml {
        file: String,
        line: u32,
        column: u32,
        message: String,
    },
    #[error("{file}:{line}:{column}: malformed JSON: {message}")]
    Json {
        file: String,
        line: u32,
        column: u32,
        message: String,
    },
    #[error("{file}:{line}:{column}: malformed TOML: {message}")]
    Toml {
        file: String,
        line: u32,
        column: u32,
        message: String,
    },
    #[error(
        "{file}:{line}: unknown kind `{kind}` (expected one of Component, API, Resource, System, \
         Domain, Group, User, Location)"
    )]
    UnknownKind {
        file: String,
        line: u32,
        kind: String,
    },
    #[error(
        "{file}:{line}: unsupported apiVersion `{api_version}` (expected backstage.io/v1alpha1 \
         or backstage.io/v1beta1)"
    )]
    ApiVersion {
        file: String,
        line: u32,
        api_version: String,
    },
    /// A field that is missing or has the wrong shape (`metadata.name`, `spec.dependsOn`).
    #[error("{file}:{line}: field `{field}`: {message}")]
    Field {
        file: String,
        line: u32,
        field: String,
        message: String,
    },
    #[error("{file}:{line}: field `{field}`: {source}")]
    EntityRef {
        file: String,
        line: u32,
        field: String,
        #[source]
        source: EntityRefError,
    },
    #[error("{file}:{line}: annotation `{annotation}`: {message}")]
    Annotation {
        file: String,
        line: u32,
        annotation: String,
        message: String,
    },
    /// An input over one of the documented [`crate::Limits`], named by its key.
    #[error(
        "{file}:{line}: {what}: over the limit `{limit}` = {max} ({})",
        crate::limits::RAISE_HINT
    )]
    Limit {
        file: String,
        line: u32,
        what: String,
        limit: &'static str,
        max: u64,
    },
    #[error("settings `{field}`: invalid glob `{glob}`: {message}")]
    SettingsGlob {
        field: &'static str,
        glob: String,
        message: String,
    },
}

impl GraphError {
    /// Whether the files are at fault (what a user fixes by editing them), rather than
    /// reading them (a corrupt object, an I/O failure: the machine's).
    pub fn is_input(&self) -> bool {
        match self {
            GraphError::Source(source) => source.is_input(),
            GraphError::NotUtf8 { .. }
            | GraphError::Encoding { .. }
            | GraphError::Limit { .. }
            | GraphError::Yaml { .. }
            | GraphError::Json { .. }
            | GraphError::Toml { .. }
            | GraphError::UnknownKind { .. }
            | GraphError::ApiVersion { .. }
            | GraphError::Field { .. }
            | GraphError::EntityRef { .. }
            | GraphError::Annotation { .. }
            | GraphError::SettingsGlob { .. } => true,
        }
    }
}

/// 1-based line and column of a byte offset, for parsers that report offsets or spans.
pub(crate) fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}
