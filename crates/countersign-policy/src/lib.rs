//! The decision engine: the Cedar schema, the default policy pack, tier derivation, the
//! invariants no policy can lift, and explanations.
//!
//! This is the only crate that knows Cedar, and no Cedar type crosses its public API. It
//! reads no files (callers pass policy texts) and keeps no state between decisions: a
//! [`Decision`] is a function of a [`PolicyPack`] and a [`DecisionInput`].
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::panic))]

mod approval;
mod check;
mod decide;
mod explain;
mod facts;
mod invariant;
mod pack;
mod principal;
mod schema;
mod tier;
mod verify;

pub use approval::{ApprovalRequirement, ApprovalRules, OwnerGroup, Requirement};
pub use check::{PolicyDiagnostic, Severity, check};
pub use decide::{
    Decision, DecisionInput, DeclaredTier, Reason, ReasonEffect, ReasonSource, decide,
};
pub use explain::explain_text;
pub use facts::{
    ALL_SURFACES, EvidenceFacts, Facts, SelfValidation, criticality_level, default_never_automate,
    surface_name,
};
pub use pack::{PackModule, PolicyError, PolicyPack, default_files, default_files_with};
pub use principal::{Principal, PrincipalError, PrincipalKind};
pub use schema::schema_text;
pub use tier::{Tier, TierError};
pub use verify::{
    Counterexample, MIN_CVC5, Outcome, PackDiff, Property, PropertyResult, PropertySource,
    SolverConfig, TierDifference, Verification, VerifyError, builtin_properties,
    builtin_properties_text, diff, parse_properties, solver_version, verify,
};
