//! The store's error type: every failure names the operation or row it happened on.
//!
//! Verification findings are not here: [`crate::VerifyError`] says how the log differs from
//! its checkpoint.

use std::path::PathBuf;

use countersign_audit::{CanonicalError, CheckpointError, EventError, ProveError};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database URL is not one this store opens.
    #[error("database URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("creating database directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("applying migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed; `operation` says which.
    #[error("{operation}: {source}")]
    Database {
        operation: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A row with this key exists already (and differs, for checkpoints).
    #[error("{table} row {key:?} already exists")]
    Duplicate { table: &'static str, key: String },
    /// A read asked for log entries or tree sizes the log does not have yet.
    #[error("{what} {requested} is beyond the log, which has {size} entries")]
    BeyondLog {
        what: &'static str,
        requested: u64,
        size: u64,
    },
    /// A row holds something the schema's checks could not rule out but the log cannot use.
    #[error("table {table}, row {key}, column {column}: {reason}")]
    Corrupt {
        table: &'static str,
        key: String,
        column: &'static str,
        reason: String,
    },
    /// A checkpoint offered for storage does not describe this log.
    #[error("checkpoint for size {size}: {reason}")]
    CheckpointMismatch { size: u64, reason: String },
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("event: {0}")]
    Event(#[from] EventError),
    #[error("event: {0}")]
    Canonical(#[from] CanonicalError),
    #[error("decision {id}: record is not JSON: {source}")]
    Record {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Prove(#[from] ProveError),
    /// A bundle was asked for a subject no log entry is about.
    #[error("no log entry is about proposal {subject:?}")]
    NoEntries { subject: String },
    /// A bundle needs a signed checkpoint covering entry `index`, there is none and no key
    /// to sign one was given.
    #[error("no signed checkpoint covers entry {index} yet")]
    NoCheckpoint { index: u64 },
    /// An event names a blob the store does not hold.
    #[error("blob {digest} referenced by entry {index} is missing")]
    MissingBlob { digest: String, index: u64 },
    #[error("bundle: {0}")]
    Bundle(#[from] countersign_audit::BundleError),
    /// The group commit holding this transaction failed: its `COMMIT` did not succeed.
    #[error("committing transaction: {0}")]
    Batch(String),
    /// The batch holding this transaction was rolled back before committing, because
    /// another member of it failed: nothing of this transaction was written, and doing it
    /// again is safe.
    #[error("the transaction's batch was rolled back, nothing of it was written: {0}")]
    RolledBack(String),
    /// A numeric value outside what the database's signed 64-bit integers hold.
    #[error("{what} {value} does not fit a 64-bit signed database integer")]
    TooLarge { what: &'static str, value: u64 },
}

/// Maps a sqlx error to [`Error::Database`] naming `operation`.
pub(crate) fn db(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| Error::Database { operation, source }
}
