//! Persistence for countersign: the tamper-evident audit log (RFC 6962 leaves and stored
//! hashes), its signed checkpoints and the decisions it records, in SQLite (default, one file,
//! no setup) or PostgreSQL (shared by several server processes), through sqlx.
//!
//! * [`Store::connect`] opens either backend and applies the embedded migrations.
//! * [`Store::begin`] gives a [`Tx`]: [`Tx::append_event`] and the state change the event
//!   records ([`Tx::put_decision`]) commit together, so there is no decision without its log
//!   entry; appenders are serialized so the log never forks. A process's concurrent
//!   transactions are group-committed: savepoints of one database transaction, one durable
//!   commit for the batch, each `commit` returning only once it is durable.
//! * Reads: entries, tree hashes, inclusion and consistency proofs in `O(log n)` stored-hash
//!   reads (one query), checkpoints, decisions; with [`Store::mirror_stored_hashes`], from
//!   an in-process copy of the immutable stored hashes instead (for the long-lived server).
//! * The server's state: [`Token`]s (hashed secrets), [`Proposal`]s, [`Approval`]s (one
//!   per approver and head, enforced by the schema) and [`Idempotent`] responses.
//! * Evidence the server accepted ([`AcceptedEvidence`]), indexed by the head it was
//!   accepted under, so a head's evidence never counts for another head.
//! * Webhook notifications: an outbox written in the transaction of the state change it
//!   announces ([`Tx::enqueue_notification`]), claimed under a lease by delivery workers,
//!   and a log of every delivery [`Attempt`].
//! * Runs of the fleet ([`Run`]): work items queued from a validation plan, leased by exactly
//!   one runner (`FOR UPDATE SKIP LOCKED` on PostgreSQL), heartbeats, finish, cancel.
//! * The GitHub integration: deliveries answered ([`GithubDelivery`]), pull requests followed
//!   by proposals ([`GithubPull`]), and the outbox of `countersign` check reports
//!   ([`GithubCheck`]), bumped in the transaction of each proposal change.
//! * Merge verifications ([`Tx::take_verification`]): the post-merge runs of a merged fix
//!   queued exactly once, whichever announcement of the merge comes first.
//! * [`verify()`] recomputes the tree from storage and checks it against the latest signed
//!   checkpoint, naming the first altered or missing entry.
//!
//! The Merkle math, event encoding and note signing are countersign-audit's; this crate only
//! moves their inputs and outputs in and out of the database. It reads no clock except the
//! database's (for `created_at`) and holds no keys.

mod backend;
mod bundle;
mod decision;
mod error;
mod evidence;
mod finding;
mod github;
mod group;
mod log;
mod log_check;
mod log_key;
mod merge_verification;
mod mirror;
mod outbox;
mod proposal;
mod run;
mod schedule;
mod session;
mod store;
mod token;
mod tx;
mod verify;

pub use decision::Decision;
pub use error::Error;
pub use evidence::AcceptedEvidence;
pub use finding::{Finding, FindingFilter, Observation, Observed};
pub use github::{CheckReport, GithubCheck, GithubDelivery, GithubPull};
pub use log::{Entry, Leaf, StoredCheckpoint};
pub use log_check::LogCheck;
pub use merge_verification::AwaitedVerification;
pub use outbox::{Attempt, Claimed, Delivery, OutboxItem, OutboxRow, Outcome};
pub use proposal::{Approval, HeadMove, Idempotent, Proposal, ProposalFilter};
pub use run::{
    BaseVersion, CapsuleAsk, Finish, LeaseAsk, NewRun, Refusal, Run, RunFilter, RunFor, RunOutcome,
    RunState, RunTally, TestCounts,
};
pub use schedule::ScheduleFire;
pub use session::{Grant, Session};
pub use store::Store;
pub use token::Token;
pub use tx::Tx;
pub use verify::{ExtendError, VerifyError, check_extends, verify};
