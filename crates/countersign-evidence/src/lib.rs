//! Evidence for a change: the validation plan (which suites a change must pass), signed
//! attestations of what runners found (in-toto Statements in DSSE envelopes), their
//! verification against trusted runners and the head commit, and the reading of the reports
//! they carry (JUnit, SARIF, OpenVEX, CycloneDX VEX).
//!
//! This crate does not run anything, reads no files, keeps no clock and makes no randomness:
//! reports arrive as readers, keys as bytes, runners as values. Runners execute the plan
//! elsewhere; the binary reads files and keys.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::panic))]

pub mod assess;
pub mod capsule;
pub mod dsse;
pub mod plan;
pub mod report;
pub mod statement;
pub mod verify;

pub use assess::{
    AssessInput, Assessment, NewlyPassing, Reachability, Regression, RegressionKind, SuiteStatus,
    Vulnerability, assess,
};
pub use capsule::{Capsule, CapsuleSigner};
pub use dsse::{Envelope, PublicKey, SigningKey, VerifiedEnvelope};
pub use plan::{PlanReason, PlannedSuite, ValidationPlan, plan};
pub use statement::{Predicate, Statement};
pub use verify::{
    AcceptedEvidence, Expected, Refusal, Trust, TrustedRunner, verify, verify_many,
    verify_many_trusting, verify_trusting,
};

/// Signs `statement` as an in-toto DSSE envelope with a runner's key.
pub fn attest(statement: &Statement, key: &SigningKey) -> Envelope {
    Envelope::sign(dsse::IN_TOTO_PAYLOAD_TYPE, statement.to_json(), key)
}
