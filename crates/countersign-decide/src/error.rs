//! [`DecideError`]: why a change could not be decided or recorded, and whose fault that is.
//!
//! It wraps the errors of the crates the pipeline wires (each already names its file, line
//! or field) and adds what the pipeline knows on top: which snapshot or file was being read.
//! Every error has a [`ErrorKind`]: the input's fault (a revision that names nothing, a
//! malformed catalog or policy at the base) or the machine's (the repository missing or
//! corrupt, a file that cannot be read, a broken invariant of the pipeline). A caller that
//! answers someone else's request tells them about the first and logs the second (the
//! server); messages of input errors name no path of this machine, and no message names a
//! command-line flag (the binary adds those, knowing its flags).
//!
//! It does not say how to render itself beyond `Display` plus `source()`: callers print the
//! chain (the binary with `{:#}` through anyhow, the server into a problem detail).

use std::error::Error as StdError;
use std::path::PathBuf;

use countersign_policy::PrincipalError;

/// A cause with no variant of its own (a DSSE, key or JSON error met while reading an
/// input); the variant holding it says whose fault it is.
type Cause = Box<dyn StdError + Send + Sync + 'static>;

/// Whose fault an error is. Match it exhaustively: a new kind must be answered somewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is unusable as given: whoever gave it can fix it (another revision, a
    /// corrected catalog, policy or config at the base, a principal, a complete bundle).
    Input,
    /// This machine failed: the repository is missing, empty, shallow or corrupt, a file
    /// cannot be read, or the pipeline broke an invariant of its own. Nothing in the input
    /// explains it, and its message may name paths of this machine.
    Internal,
}

/// Why the pipeline stopped.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// The input is unusable as given: `message`, and the error met reading it, if any.
    #[error("{message}")]
    Invalid {
        message: String,
        #[source]
        source: Option<Cause>,
    },
    /// The pipeline or the machine failed (see [`ErrorKind::Internal`]).
    #[error("{message}")]
    Internal {
        message: String,
        #[source]
        source: Option<Cause>,
    },
    /// What was being done when `source` failed, e.g. "reading the governed state at base
    /// main". Of `source`'s kind.
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<DecideError>,
    },
    /// The author of a change is not a principal (`human:NAME`, `agent:NAME`, ...).
    #[error("the author {author:?} is not a principal")]
    Author {
        author: String,
        #[source]
        source: PrincipalError,
    },
    /// An evidence file the caller named could not be read.
    #[error("reading evidence {}", path.display())]
    ReadEvidence {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Repo(#[from] countersign_repo::RepoError),
    #[error(transparent)]
    Config(#[from] countersign_repo::ConfigError),
    /// A snapshot's file could not be read (a corrupt object, an I/O failure).
    #[error(transparent)]
    Source(#[from] countersign_graph::SourceError),
    #[error(transparent)]
    Graph(#[from] countersign_graph::GraphError),
    #[error(transparent)]
    Policy(#[from] countersign_policy::PolicyError),
}

impl DecideError {
    /// An input error with no cause below it.
    pub fn invalid(message: impl Into<String>) -> DecideError {
        DecideError::Invalid {
            message: message.into(),
            source: None,
        }
    }

    /// An internal error with no cause below it.
    pub fn internal(message: impl Into<String>) -> DecideError {
        DecideError::Internal {
            message: message.into(),
            source: None,
        }
    }

    /// Whose fault this is.
    pub fn kind(&self) -> ErrorKind {
        use countersign_policy::PolicyError;
        let input = |yes: bool| {
            if yes {
                ErrorKind::Input
            } else {
                ErrorKind::Internal
            }
        };
        match self {
            DecideError::Invalid { .. } | DecideError::Author { .. } => ErrorKind::Input,
            DecideError::Config(_) => ErrorKind::Input,
            DecideError::Policy(PolicyError::Invalid { .. }) => ErrorKind::Input,
            // The embedded schema or entity types failed to build: a bug, not the pack.
            DecideError::Policy(PolicyError::Engine { .. }) => ErrorKind::Internal,
            DecideError::Repo(error) => input(error.is_input()),
            DecideError::Graph(error) => input(error.is_input()),
            DecideError::Context { source, .. } => source.kind(),
            // Files the caller named exist only on this machine: whoever runs it can fix the
            // path, but it is not the content of a change.
            DecideError::ReadEvidence { .. } => ErrorKind::Internal,
            DecideError::Internal { .. } | DecideError::Source(_) => ErrorKind::Internal,
        }
    }

    /// `kind() == ErrorKind::Input`.
    pub fn is_input(&self) -> bool {
        self.kind() == ErrorKind::Input
    }

    /// The repository error at the bottom of this one, if that is what it is: for callers
    /// that add advice of their own (the binary's `git fetch` hint for a shallow clone).
    pub fn repo_error(&self) -> Option<&countersign_repo::RepoError> {
        match self {
            DecideError::Repo(error) => Some(error),
            DecideError::Context { source, .. } => source.repo_error(),
            _ => None,
        }
    }

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

/// Adds what the pipeline was doing to an error, like `anyhow::Context`, but typed: an
/// error of the pipeline keeps its kind ([`Context::context`]); a foreign one says its kind
/// ([`Context::invalid`], [`Context::internal`]).
pub(crate) trait Context<T> {
    fn context(self, context: &str) -> Result<T>;
    fn with_context<F: FnOnce() -> String>(self, context: F) -> Result<T>;
}

impl<T, E: Into<DecideError>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: &str) -> Result<T> {
        self.with_context(|| context.to_owned())
    }

    fn with_context<F: FnOnce() -> String>(self, context: F) -> Result<T> {
        self.map_err(|source| DecideError::Context {
            context: context(),
            source: Box::new(source.into()),
        })
    }
}

/// A foreign error met reading an input (`invalid`) or doing the pipeline's own work
/// (`internal`), with what was being done.
pub(crate) trait Classify<T> {
    fn invalid<F: FnOnce() -> String>(self, message: F) -> Result<T>;
    fn internal<F: FnOnce() -> String>(self, message: F) -> Result<T>;
}

impl<T, E: StdError + Send + Sync + 'static> Classify<T> for std::result::Result<T, E> {
    fn invalid<F: FnOnce() -> String>(self, message: F) -> Result<T> {
        self.map_err(|source| DecideError::Invalid {
            message: message(),
            source: Some(Box::new(source)),
        })
    }

    fn internal<F: FnOnce() -> String>(self, message: F) -> Result<T> {
        self.map_err(|source| DecideError::Internal {
            message: message(),
            source: Some(Box::new(source)),
        })
    }
}

/// `return Err(DecideError::invalid(format!(...)))`: the input's fault.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::DecideError::invalid(format!($($arg)*)))
    };
}
pub(crate) use bail;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use countersign_repo::RepoError;

    #[test]
    fn the_chain_names_every_cause_once() {
        let inner: std::result::Result<(), DecideError> = Err(DecideError::invalid(
            "line 2: \"/etc\" is not repository-relative",
        ));
        let error = inner.context("reading the listed paths").unwrap_err();
        assert_eq!(
            error.chain(),
            "reading the listed paths: line 2: \"/etc\" is not repository-relative"
        );
        assert_eq!(error.to_string(), "reading the listed paths");
    }

    #[test]
    fn context_keeps_the_kind_of_what_failed() {
        let missing = RepoError::NotARepository {
            path: "/srv/repos/shop".into(),
            message: "no such directory".into(),
        };
        let unknown = RepoError::RevNotFound {
            rev: "nope".into(),
            message: "no branch, tag or commit is named `nope`".into(),
        };
        for (error, kind) in [(missing, ErrorKind::Internal), (unknown, ErrorKind::Input)] {
            let wrapped = Err::<(), _>(error)
                .context("reading the governed state at base nope")
                .unwrap_err();
            assert_eq!(wrapped.kind(), kind, "{}", wrapped.chain());
            assert!(wrapped.repo_error().is_some());
        }
        let json = serde_json::from_str::<serde_json::Value>("{").map(|_| ());
        assert_eq!(
            json.invalid(|| "the statement".into()).unwrap_err().kind(),
            ErrorKind::Input
        );
        let json = serde_json::from_str::<serde_json::Value>("{").map(|_| ());
        assert_eq!(
            json.internal(|| "encoding".into()).unwrap_err().kind(),
            ErrorKind::Internal
        );
    }
}
