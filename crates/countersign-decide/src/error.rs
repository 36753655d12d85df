//! [`DecideError`]: why a change could not be decided or recorded.
//!
//! It wraps the errors of the crates the pipeline wires (each already names its file, line
//! or field) and adds what the pipeline knows on top: which snapshot or file was being read.
//! It does not say how to render itself beyond `Display` plus `source()`: callers print the
//! chain (the binary with `{:#}` through anyhow, the server into a problem detail).

use std::error::Error as StdError;

/// Why the pipeline stopped. Every variant is about the input: a revision, a file, a policy,
/// an argument, or a record that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// The caller's input is unusable as given (no source below it).
    #[error("{0}")]
    Invalid(String),
    /// What was being done when `source` failed, e.g. "reading the governed state at base main".
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<dyn StdError + Send + Sync + 'static>,
    },
    #[error(transparent)]
    Repo(#[from] countersign_repo::RepoError),
    #[error(transparent)]
    Config(#[from] countersign_repo::ConfigError),
    #[error(transparent)]
    Source(#[from] countersign_graph::SourceError),
    #[error(transparent)]
    Graph(#[from] countersign_graph::GraphError),
    #[error(transparent)]
    Policy(#[from] countersign_policy::PolicyError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl DecideError {
    /// The message and every cause, joined by ": " (what `anyhow`'s `{:#}` prints), for
    /// callers that report an error on one line without anyhow.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut source = self.source();
        while let Some(cause) = source {
            out.push_str(": ");
            out.push_str(&cause.to_string());
            source = cause.source();
        }
        out
    }
}

pub type Result<T, E = DecideError> = std::result::Result<T, E>;

/// Adds what the pipeline was doing to an error, like `anyhow::Context`, but typed.
pub(crate) trait Context<T> {
    fn context(self, context: &str) -> Result<T>;
    fn with_context<F: FnOnce() -> String>(self, context: F) -> Result<T>;
}

impl<T, E: StdError + Send + Sync + 'static> Context<T> for std::result::Result<T, E> {
    fn context(self, context: &str) -> Result<T> {
        self.with_context(|| context.to_owned())
    }

    fn with_context<F: FnOnce() -> String>(self, context: F) -> Result<T> {
        self.map_err(|source| DecideError::Context {
            context: context(),
            source: Box::new(source),
        })
    }
}

/// `return Err(DecideError::Invalid(format!(...)))`.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::DecideError::Invalid(format!($($arg)*)))
    };
}
pub(crate) use bail;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_names_every_cause_once() {
        let inner: std::result::Result<(), DecideError> = Err(DecideError::Invalid(
            "line 2: \"/etc\" is not repository-relative".into(),
        ));
        let error = inner.context("reading the listed paths").unwrap_err();
        assert_eq!(
            error.chain(),
            "reading the listed paths: line 2: \"/etc\" is not repository-relative"
        );
        assert_eq!(error.to_string(), "reading the listed paths");
    }
}
