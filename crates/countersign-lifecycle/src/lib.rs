//! The proposal lifecycle: the states a proposal goes through, the verdicts people give, the
//! one approval tally, and every transition, as pure functions of typed values.
//!
//! Handlers load a proposal, ask [`transition`] what an event does to it, and persist the
//! answer; the rules live here, once. No I/O, no clock, no async: the whole lifecycle is
//! property-tested without a database (`tests/properties.rs`).
//!
//! Not here: deciding the tier (countersign-policy), storing rows (countersign-store),
//! composing log events and notifications (the server, from the [`Transition`]).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::panic))]

mod finding;
mod record;
mod state;
mod tally;
mod transition;

pub use finding::{FindingKind, FindingState, Severity, identity, severity};
pub use record::{DecidedRecord, RecordError, Requirement};
pub use state::{ProposalState, UnknownValue, Verdict};
pub use tally::{
    Approval, Ineligible, Pool, Tally, authors, eligibility, pool, same_principal, tally,
};
pub use transition::{
    Event, Proposal, Refusal, RefusalKind, Transition, VerdictChange, opened, settle, transition,
};
