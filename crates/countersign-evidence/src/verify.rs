//! Deciding whether an envelope counts as evidence for a change: signed by a trusted runner,
//! about the expected repository and head commit, for a suite that runner may attest, with a
//! predicate countersign understands. Every refusal names its reason.
//!
//! This module reads no configuration (trusted runners are passed in) and no clock; it does
//! not compute coverage or regressions from accepted evidence.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::capsule::CapsuleSigner;
use crate::dsse::{DsseError, Envelope, IN_TOTO_PAYLOAD_TYPE, PublicKey, VerifiedEnvelope};
use crate::statement::{
    GIT_COMMIT_DIGEST, Predicate, PredicateError, STATEMENT_V1, SUITE_ANNOTATION, Statement,
};

/// Default largest envelope accepted, in bytes. A test-result predicate naming 100,000 tests
/// is about 5 MiB; this leaves room without letting one upload exhaust memory.
pub const DEFAULT_MAX_ENVELOPE_BYTES: usize = 32 * 1024 * 1024;

/// A runner countersign trusts, and the suites it may attest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedRunner {
    pub name: String,
    pub key: PublicKey,
    pub suites: BTreeSet<String>,
    /// A VEX authority (`vex = true` in the base's config): its `not_affected` may clear a
    /// finding on any node, not only on the nodes its suite exercises.
    pub vex: bool,
}

/// What the evidence must be about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected<'a> {
    /// The repository as the statement's subject names it (e.g. `github.com/acme/shop`),
    /// compared exactly.
    pub repository: &'a str,
    /// The full hex commit id, compared case-insensitively.
    pub commit: &'a str,
    /// Largest envelope accepted, in bytes.
    pub max_bytes: usize,
}

/// An envelope that counts as evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptedEvidence {
    pub runner: String,
    pub key_id: String,
    pub suite: String,
    pub repository: String,
    pub commit: String,
    pub predicate: Predicate,
    /// Every signer is a VEX authority ([`TrustedRunner::vex`]).
    pub vex_authority: bool,
}

/// Why an envelope does not count. One variant per reason; [`Refusal::reason`] gives a stable
/// machine-readable name for each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("envelope is {size} bytes, over the {limit}-byte limit")]
    TooLarge { limit: usize, size: usize },
    #[error("malformed evidence: {what}")]
    Malformed { what: String },
    #[error("payload type {found:?} is not {IN_TOTO_PAYLOAD_TYPE}")]
    WrongPayloadType { found: String },
    #[error("signed by no trusted runner (key ids: {})", keyids.join(", "))]
    UnknownKey { keyids: Vec<String> },
    #[error("signature by key {keyid} does not verify")]
    BadSignature { keyid: String },
    #[error("evidence is about repository {found}, expected {expected}")]
    OtherRepository { expected: String, found: String },
    #[error("evidence is for commit {found}, expected {expected}")]
    OtherCommit { expected: String, found: String },
    #[error("runner {runner} may not attest suite {suite:?}")]
    SuiteNotAllowed { runner: String, suite: String },
    #[error("unknown predicate type {predicate_type}")]
    UnknownPredicate { predicate_type: String },
    #[error("the capsule is signed by no key trusted for capsules at the base (key ids: {})", keyids.join(", "))]
    CapsuleUntrustedSigner { keyids: Vec<String> },
    #[error("the capsule's signature by key {keyid} does not verify")]
    CapsuleBadSignature { keyid: String },
    #[error("the capsule names digest sha256:{named}, its bytes are sha256:{actual}")]
    CapsuleDigestMismatch { named: String, actual: String },
    #[error("signed by key {}, not the capsule's runner key {expected}", found.join(", "))]
    CapsuleWrongKey {
        expected: String,
        found: Vec<String>,
    },
    #[error("suite {suite:?} is not one of the capsule's suites ({})", allowed.join(", "))]
    CapsuleOtherSuite { suite: String, allowed: Vec<String> },
    #[error("environment {found:?} is not the capsule's environment {allowed:?}")]
    CapsuleOtherEnvironment { found: String, allowed: String },
    #[error(
        "capsule signer {signer} may not delegate {what} (its entry at the base does not allow it)"
    )]
    CapsuleNotDelegated { signer: String, what: String },
    #[error("the capsule expired at {expires_at} (now {now})")]
    CapsuleExpired { expires_at: String, now: String },
    #[error("the capsule is issued at {issued_at}, after now ({now})")]
    CapsuleNotYetValid { issued_at: String, now: String },
    #[error(
        "the lease proof does not verify under the capsule's runner key {runner_key}: only the holder of that key, signing for this token, leases under the capsule"
    )]
    CapsuleUnproven { runner_key: String },
}

impl Refusal {
    /// A stable snake_case name for the reason, for JSON output, policy context and audit.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::TooLarge { .. } => "too_large",
            Refusal::Malformed { .. } => "malformed",
            Refusal::WrongPayloadType { .. } => "wrong_payload_type",
            Refusal::UnknownKey { .. } => "unknown_key",
            Refusal::BadSignature { .. } => "bad_signature",
            Refusal::OtherRepository { .. } => "other_repository",
            Refusal::OtherCommit { .. } => "other_commit",
            Refusal::SuiteNotAllowed { .. } => "suite_not_allowed",
            Refusal::UnknownPredicate { .. } => "unknown_predicate",
            Refusal::CapsuleUntrustedSigner { .. } => "capsule_untrusted_signer",
            Refusal::CapsuleBadSignature { .. } => "capsule_bad_signature",
            Refusal::CapsuleDigestMismatch { .. } => "capsule_digest_mismatch",
            Refusal::CapsuleWrongKey { .. } => "capsule_wrong_key",
            Refusal::CapsuleOtherSuite { .. } => "capsule_other_suite",
            Refusal::CapsuleOtherEnvironment { .. } => "capsule_other_environment",
            Refusal::CapsuleNotDelegated { .. } => "capsule_not_delegated",
            Refusal::CapsuleExpired { .. } => "capsule_expired",
            Refusal::CapsuleNotYetValid { .. } => "capsule_not_yet_valid",
            Refusal::CapsuleUnproven { .. } => "capsule_unproven",
        }
    }
}

fn malformed(what: impl Into<String>) -> Refusal {
    Refusal::Malformed { what: what.into() }
}

/// Verifies `envelope` (the bytes of a DSSE JSON envelope) against the trusted runners and
/// what the evidence must be about. Checks run cheapest first: size, envelope syntax, payload
/// type, signature, then the statement (repository, commit, suite, predicate).
pub fn verify(
    envelope: &[u8],
    runners: &[TrustedRunner],
    expected: &Expected<'_>,
) -> Result<AcceptedEvidence, Refusal> {
    verify_trusting(envelope, &Trust::runners(runners), expected)
}

/// Whom evidence may come from: the base's `[[runners]]`, and the keys it trusts to sign
/// capsules (`[[capsules.signers]]`).
#[derive(Debug, Clone, Copy)]
pub struct Trust<'a> {
    pub runners: &'a [TrustedRunner],
    pub capsule_signers: &'a [CapsuleSigner],
}

impl<'a> Trust<'a> {
    /// Runners only: no capsule is trusted.
    pub fn runners(runners: &'a [TrustedRunner]) -> Self {
        Self {
            runners,
            capsule_signers: &[],
        }
    }
}

/// [`verify`] with capsules: an envelope carrying a capsule is judged by the capsule alone
/// (`capsule::verify_evidence`), whether or not its key is also a runner's.
pub fn verify_trusting(
    envelope: &[u8],
    trust: &Trust<'_>,
    expected: &Expected<'_>,
) -> Result<AcceptedEvidence, Refusal> {
    let envelope = parse(envelope, expected)?;
    if crate::capsule::may_carry(&envelope.payload) {
        return crate::capsule::verify_evidence(envelope, trust.capsule_signers, expected);
    }
    let (verified, signers) = envelope
        .verify(trust.runners, |r| &r.key)
        .map_err(from_dsse)?;
    accept(&verified, &signers, expected)
}

/// [`verify`] for many envelopes at once, with one Ed25519 batch equation when every
/// envelope parses and names a trusted key; the results are exactly [`verify`]'s (on any
/// failure in the batch, each envelope is verified alone to give its own refusal).
pub fn verify_many(
    envelopes: &[&[u8]],
    runners: &[TrustedRunner],
    expected: &Expected<'_>,
) -> Vec<Result<AcceptedEvidence, Refusal>> {
    verify_many_trusting(envelopes, &Trust::runners(runners), expected)
}

/// [`verify_many`] with capsules ([`verify_trusting`]). A batch holding an envelope that
/// carries a capsule is verified one by one.
pub fn verify_many_trusting(
    envelopes: &[&[u8]],
    trust: &Trust<'_>,
    expected: &Expected<'_>,
) -> Vec<Result<AcceptedEvidence, Refusal>> {
    let runners = trust.runners;
    let parsed: Result<Vec<Envelope>, Refusal> =
        envelopes.iter().map(|e| parse(e, expected)).collect();
    if let Ok(parsed) = parsed
        && !parsed.iter().any(|e| crate::capsule::may_carry(&e.payload))
        && let Some(verified) = Envelope::verify_batch(parsed, runners, |r| &r.key)
    {
        return verified
            .iter()
            .map(|(verified, signers)| accept(verified, signers, expected))
            .collect();
    }
    envelopes
        .iter()
        .map(|e| verify_trusting(e, trust, expected))
        .collect()
}

/// Size, envelope syntax and payload type: everything before the signature.
fn parse(envelope: &[u8], expected: &Expected<'_>) -> Result<Envelope, Refusal> {
    if envelope.len() > expected.max_bytes {
        return Err(Refusal::TooLarge {
            limit: expected.max_bytes,
            size: envelope.len(),
        });
    }
    let envelope = Envelope::parse(envelope).map_err(from_dsse)?;
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(Refusal::WrongPayloadType {
            found: envelope.payload_type,
        });
    }
    Ok(envelope)
}

/// Everything after the signature: the statement, its subject, suite and predicate.
///
/// Every trusted runner that signed must be allowed the suite: an envelope is one claim,
/// and a signer that may not make it refuses the whole envelope, whichever signature comes
/// first and whichever path (one by one or batched) verified it. The evidence is the first
/// signer's; the others vouched for the same claim under the same rule.
fn accept(
    verified: &VerifiedEnvelope,
    signers: &[&TrustedRunner],
    expected: &Expected<'_>,
) -> Result<AcceptedEvidence, Refusal> {
    let statement: Statement = serde_json::from_slice(verified.payload())
        .map_err(|e| malformed(format!("statement: {e}")))?;
    // The byte search that routes capsule evidence missed this one (the annotation spelled
    // with JSON escapes): judged by the capsule or not at all, never by the runners alone.
    if crate::capsule::statement_capsule(&statement).is_some() {
        return Err(malformed(format!(
            "the {} annotation must be spelled without escapes",
            crate::capsule::CAPSULE_ANNOTATION
        )));
    }
    accept_statement(verified, signers, expected, statement)
}

/// [`accept`] of a statement parsed from `verified`'s payload.
pub(crate) fn accept_statement(
    verified: &VerifiedEnvelope,
    signers: &[&TrustedRunner],
    expected: &Expected<'_>,
    statement: Statement,
) -> Result<AcceptedEvidence, Refusal> {
    let Some(runner) = signers.first() else {
        return Err(Refusal::UnknownKey { keyids: Vec::new() });
    };
    if statement.type_ != STATEMENT_V1 {
        return Err(malformed(format!(
            "statement _type {:?} is not {STATEMENT_V1}",
            statement.type_
        )));
    }
    let subject = pick_subject(&statement, expected)?;
    let suite = match subject.annotations.get(SUITE_ANNOTATION) {
        Some(Value::String(suite)) if !suite.is_empty() => suite.clone(),
        _ => {
            return Err(malformed(format!(
                "subject has no {SUITE_ANNOTATION} annotation"
            )));
        }
    };
    if let Some(refused) = signers.iter().find(|r| !r.suites.contains(&suite)) {
        return Err(Refusal::SuiteNotAllowed {
            runner: refused.name.clone(),
            suite,
        });
    }
    let repository = subject.name.clone().unwrap_or_default();
    let commit = subject
        .digest
        .get(GIT_COMMIT_DIGEST)
        .cloned()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let predicate =
        Predicate::parse(&statement.predicate_type, statement.predicate).map_err(|e| match e {
            PredicateError::Unknown(predicate_type) => Refusal::UnknownPredicate { predicate_type },
            malformed_predicate @ PredicateError::Malformed { .. } => {
                malformed(malformed_predicate.to_string())
            }
        })?;
    Ok(AcceptedEvidence {
        runner: runner.name.clone(),
        key_id: verified.key_id().to_owned(),
        suite,
        repository,
        commit,
        predicate,
        vex_authority: signers.iter().all(|r| r.vex),
    })
}

/// The subject naming the expected repository and commit. When none does, the refusal says
/// what the closest subject was about: the commit if the repository matched, else the
/// repository.
fn pick_subject<'s>(
    statement: &'s Statement,
    expected: &Expected<'_>,
) -> Result<&'s crate::statement::ResourceDescriptor, Refusal> {
    let commits: Vec<_> = statement
        .subject
        .iter()
        .filter_map(|s| Some((s, s.digest.get(GIT_COMMIT_DIGEST)?)))
        .collect();
    let Some(&(first, _)) = commits.first() else {
        return Err(malformed("no subject has a gitCommit digest"));
    };
    let same_repository: Vec<_> = commits
        .iter()
        .filter(|(s, _)| s.name.as_deref() == Some(expected.repository))
        .collect();
    if let Some((subject, _)) = same_repository
        .iter()
        .find(|(_, commit)| commit.eq_ignore_ascii_case(expected.commit))
    {
        return Ok(subject);
    }
    match same_repository.first() {
        Some((_, commit)) => Err(Refusal::OtherCommit {
            expected: expected.commit.to_owned(),
            found: (*commit).clone(),
        }),
        None => Err(Refusal::OtherRepository {
            expected: expected.repository.to_owned(),
            found: first.name.clone().unwrap_or_default(),
        }),
    }
}

fn from_dsse(error: DsseError) -> Refusal {
    match error {
        DsseError::Malformed { what } => Refusal::Malformed { what },
        DsseError::UnknownKey { keyids } => Refusal::UnknownKey { keyids },
        DsseError::BadSignature { keyid } => Refusal::BadSignature { keyid },
    }
}
