//! Edge capsules: an organization's signed delegation of evidence to one runner key, for some
//! suites in one environment, until an expiry. A capsule is an in-toto Statement v1 (predicate
//! [`CAPSULE_V1`], subject the countersign binary by its SHA-256) in a DSSE envelope signed by
//! a key the base's `[[capsules.signers]]` trusts. A runner started with a capsule carries it
//! in every statement it signs ([`CAPSULE_ANNOTATION`] on the subject: the capsule's digest
//! and its bytes), so each envelope can be judged alone, online or imported later.
//!
//! An envelope that carries a capsule is judged by the capsule alone ([`verify_evidence`]):
//! the capsule's signature by a trusted signer, its runner key as the envelope's signer, the
//! suite within both the capsule's suites and the signer's, the environment the capsule's and
//! one the signer may delegate. A capsule never widens trust: what it grants is what its
//! signer's entry at the base allows, narrowed further by the capsule.
//!
//! Online, a runner leases work under its capsule (`POST /v1/work/lease`): it sends the
//! capsule with a lease proof ([`prove_lease`]), its runner key's signature binding the
//! capsule to the API token it leases with, which the server checks with
//! [`Capsule::check_lease_proof`]. A capsule is public (every envelope carries it): the proof
//! is what keeps another runner's token from leasing under it.
//!
//! This module reads no clock: expiry is checked by [`Capsule::check_valid_at`] with the time
//! the caller passes (the server: when the evidence is received).

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::dsse::{DsseError, Envelope, IN_TOTO_PAYLOAD_TYPE, PublicKey, SigningKey};
use crate::statement::{ResourceDescriptor, STATEMENT_V1, Statement};
use crate::verify::Refusal;

/// Predicate type of a capsule manifest.
pub const CAPSULE_V1: &str = "https://countersign.dev/capsule/v1";
/// Subject annotation of an evidence statement carrying the capsule it was signed under:
/// `{"digest": "sha256:HEX", "envelope": BASE64}`, the digest of the capsule file's bytes.
pub const CAPSULE_ANNOTATION: &str = "countersign.dev/capsule";
/// Subject annotation naming the environment a statement's suite ran in.
pub const ENVIRONMENT_ANNOTATION: &str = "countersign.dev/environment";
/// The name of a capsule's subject: the countersign binary, by its SHA-256.
pub const BINARY_SUBJECT: &str = "countersign";
/// Largest capsule accepted inside an evidence statement, in bytes.
pub const MAX_CAPSULE_BYTES: usize = 64 * 1024;
/// The DSSE payload type a lease proof is signed under (its pre-authentication encoding
/// keeps a proof from passing for any other signed thing).
pub const LEASE_PROOF_TYPE: &str = "application/vnd.countersign.capsule-lease.v1";

/// A key the base trusts to sign capsules, and what it may delegate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapsuleSigner {
    pub name: String,
    pub key: PublicKey,
    pub suites: BTreeSet<String>,
    pub environments: BTreeSet<String>,
}

/// The predicate of a capsule manifest, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CapsulePredicate {
    /// The runner's ed25519 public key, 64 hex digits.
    pub runner_key: String,
    pub suites: Vec<String>,
    pub environment: String,
    /// RFC 3339.
    pub issued_at: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// A capsule as read: what it binds, and the digest of its bytes. Reading it
/// ([`Capsule::read`]) checks its shape, not its signature: use [`Capsule::open`] for that.
#[derive(Debug, Clone, PartialEq)]
pub struct Capsule {
    /// Lower-case hex SHA-256 of the capsule file's bytes.
    pub digest: String,
    /// Key ids of the envelope's signatures (unauthenticated until opened).
    pub key_ids: Vec<String>,
    pub runner_key: PublicKey,
    /// Lower-case hex SHA-256 of the countersign binary the capsule is for.
    pub binary_sha256: String,
    pub suites: BTreeSet<String>,
    pub environment: String,
    pub issued_at: jiff::Timestamp,
    pub expires_at: jiff::Timestamp,
}

/// Why a capsule cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("a capsule names at least one suite")]
    NoSuites,
    #[error("suite {0:?} is not a suite name")]
    BadSuite(String),
    #[error("environment {0:?} is not an environment name")]
    BadEnvironment(String),
    #[error("the binary digest {0:?} is not 64 hex digits")]
    BadDigest(String),
    #[error("the capsule expires ({expires}) before it is issued ({issued})")]
    ExpiresBeforeIssued { issued: String, expires: String },
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'))
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Signs a capsule manifest binding `runner_key` and the binary `binary_sha256` to `suites`
/// in `environment` from `issued_at` until `expires_at`.
pub fn build(
    signing_key: &SigningKey,
    runner_key: &PublicKey,
    binary_sha256: &str,
    suites: &BTreeSet<String>,
    environment: &str,
    issued_at: jiff::Timestamp,
    expires_at: jiff::Timestamp,
) -> Result<Envelope, BuildError> {
    if suites.is_empty() {
        return Err(BuildError::NoSuites);
    }
    if let Some(bad) = suites.iter().find(|s| !is_name(s)) {
        return Err(BuildError::BadSuite(bad.clone()));
    }
    if !is_name(environment) {
        return Err(BuildError::BadEnvironment(environment.to_owned()));
    }
    if binary_sha256.len() != 64 || !binary_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BuildError::BadDigest(binary_sha256.to_owned()));
    }
    if expires_at <= issued_at {
        return Err(BuildError::ExpiresBeforeIssued {
            issued: issued_at.to_string(),
            expires: expires_at.to_string(),
        });
    }
    let predicate = CapsulePredicate {
        runner_key: runner_key.to_hex(),
        suites: suites.iter().cloned().collect(),
        environment: environment.to_owned(),
        issued_at: issued_at.to_string(),
        expires_at: expires_at.to_string(),
    };
    let statement = Statement {
        type_: STATEMENT_V1.to_owned(),
        subject: vec![ResourceDescriptor {
            name: Some(BINARY_SUBJECT.to_owned()),
            digest: [("sha256".to_owned(), binary_sha256.to_ascii_lowercase())].into(),
            ..ResourceDescriptor::default()
        }],
        predicate_type: CAPSULE_V1.to_owned(),
        // A struct of strings always serializes.
        predicate: serde_json::to_value(&predicate).unwrap_or_default(),
    };
    Ok(Envelope::sign(
        IN_TOTO_PAYLOAD_TYPE,
        statement.to_json(),
        signing_key,
    ))
}

fn malformed(what: impl std::fmt::Display) -> Refusal {
    Refusal::Malformed {
        what: format!("capsule: {what}"),
    }
}

impl Capsule {
    /// Reads a capsule file's bytes without checking its signature: what it claims.
    pub fn read(bytes: &[u8]) -> Result<Self, Refusal> {
        let envelope = parse_envelope(bytes)?;
        let key_ids = envelope
            .signatures
            .iter()
            .map(|s| s.keyid.clone())
            .collect();
        Self::from_payload(sha256_hex(bytes), key_ids, &envelope.payload)
    }

    /// Reads a capsule and verifies its signature against the trusted signers: the capsule
    /// and the signer that signed it. Every signer that signed must be trusted for what the
    /// capsule delegates ([`verify_evidence`] checks the suite and environment in use).
    pub fn open<'s>(
        bytes: &[u8],
        signers: &'s [CapsuleSigner],
    ) -> Result<(Self, &'s CapsuleSigner), Refusal> {
        let envelope = parse_envelope(bytes)?;
        let (verified, who) = envelope.verify(signers, |s| &s.key).map_err(|e| match e {
            DsseError::Malformed { what } => malformed(what),
            DsseError::UnknownKey { keyids } => Refusal::CapsuleUntrustedSigner { keyids },
            DsseError::BadSignature { keyid } => Refusal::CapsuleBadSignature { keyid },
        })?;
        let Some(signer) = who.first() else {
            return Err(Refusal::CapsuleUntrustedSigner { keyids: Vec::new() });
        };
        let capsule = Self::from_payload(
            sha256_hex(bytes),
            verified.key_ids().to_vec(),
            verified.payload(),
        )?;
        Ok((capsule, signer))
    }

    fn from_payload(digest: String, key_ids: Vec<String>, payload: &[u8]) -> Result<Self, Refusal> {
        let statement: Statement =
            serde_json::from_slice(payload).map_err(|e| malformed(format!("statement: {e}")))?;
        if statement.type_ != STATEMENT_V1 {
            return Err(malformed(format!("_type {:?}", statement.type_)));
        }
        if statement.predicate_type != CAPSULE_V1 {
            return Err(malformed(format!(
                "predicateType {:?} is not {CAPSULE_V1}",
                statement.predicate_type
            )));
        }
        let binary_sha256 = match statement.subject.as_slice() {
            [subject] if subject.name.as_deref() == Some(BINARY_SUBJECT) => subject
                .digest
                .get("sha256")
                .cloned()
                .ok_or_else(|| malformed("the binary subject has no sha256 digest"))?,
            _ => {
                return Err(malformed(
                    "the subject must be the countersign binary alone",
                ));
            }
        };
        let predicate: CapsulePredicate = serde_json::from_value(statement.predicate)
            .map_err(|e| malformed(format!("predicate: {e}")))?;
        let runner_key = PublicKey::from_hex(&predicate.runner_key)
            .map_err(|e| malformed(format!("runnerKey: {e}")))?;
        let time = |field: &str, text: &str| {
            text.parse::<jiff::Timestamp>()
                .map_err(|e| malformed(format!("{field} {text:?}: {e}")))
        };
        let suites: BTreeSet<String> = predicate.suites.into_iter().collect();
        if suites.is_empty() {
            return Err(malformed("no suites"));
        }
        Ok(Self {
            digest,
            key_ids,
            runner_key,
            binary_sha256: binary_sha256.to_ascii_lowercase(),
            suites,
            environment: predicate.environment,
            issued_at: time("issuedAt", &predicate.issued_at)?,
            expires_at: time("expiresAt", &predicate.expires_at)?,
        })
    }

    /// Whether the capsule is in force at `now`: issued, and not yet expired.
    pub fn check_valid_at(&self, now: jiff::Timestamp) -> Result<(), Refusal> {
        if now >= self.expires_at {
            return Err(Refusal::CapsuleExpired {
                expires_at: self.expires_at.to_string(),
                now: now.to_string(),
            });
        }
        if now < self.issued_at {
            return Err(Refusal::CapsuleNotYetValid {
                issued_at: self.issued_at.to_string(),
                now: now.to_string(),
            });
        }
        Ok(())
    }
}

/// What a lease proof signs: the capsule (its digest) and the API token it leases with (the
/// lower-case hex SHA-256 of the token's text, as the server stores it).
fn lease_message(capsule_digest: &str, token_sha256: &str) -> Vec<u8> {
    format!("capsule sha256:{capsule_digest}\ntoken sha256:{token_sha256}\n").into_bytes()
}

/// A lease proof: base64 of the runner key's signature (DSSE, [`LEASE_PROOF_TYPE`]) binding
/// the capsule with `capsule_digest` to the token whose SHA-256 is `token_sha256`.
pub fn prove_lease(runner_key: &SigningKey, capsule_digest: &str, token_sha256: &str) -> String {
    let envelope = Envelope::sign(
        LEASE_PROOF_TYPE,
        lease_message(capsule_digest, token_sha256),
        runner_key,
    );
    envelope
        .signatures
        .first()
        .map(|s| STANDARD.encode(&s.sig))
        .unwrap_or_default()
}

/// What a runner sends to lease under the capsule whose file bytes are `capsule`: the
/// capsule in base64 and `runner_key`'s proof ([`prove_lease`]) for the token whose SHA-256 is
/// `token_sha256`.
pub fn lease_fields(
    capsule: &[u8],
    runner_key: &SigningKey,
    token_sha256: &str,
) -> (String, String) {
    (
        STANDARD.encode(capsule),
        prove_lease(runner_key, &sha256_hex(capsule), token_sha256),
    )
}

impl Capsule {
    /// Whether `proof` ([`prove_lease`]) is this capsule's runner key binding the capsule to
    /// the token whose SHA-256 is `token_sha256`. A proof made for another token or another
    /// capsule, or by another key, is [`Refusal::CapsuleUnproven`].
    pub fn check_lease_proof(&self, token_sha256: &str, proof: &str) -> Result<(), Refusal> {
        let unproven = || Refusal::CapsuleUnproven {
            runner_key: self.runner_key.key_id().to_owned(),
        };
        // An ed25519 signature is 64 bytes: bounded before decoding.
        if proof.len() > 128 {
            return Err(unproven());
        }
        let sig = STANDARD.decode(proof.trim()).map_err(|_| unproven())?;
        let envelope = Envelope {
            payload_type: LEASE_PROOF_TYPE.to_owned(),
            payload: lease_message(&self.digest, token_sha256),
            signatures: vec![crate::dsse::Signature {
                keyid: String::new(),
                sig,
            }],
        };
        envelope
            .verify(std::slice::from_ref(&self.runner_key), |k| k)
            .map(|_| ())
            .map_err(|_| unproven())
    }
}

fn parse_envelope(bytes: &[u8]) -> Result<Envelope, Refusal> {
    if bytes.len() > MAX_CAPSULE_BYTES {
        return Err(malformed(format!(
            "{} bytes, over the {MAX_CAPSULE_BYTES}-byte limit",
            bytes.len()
        )));
    }
    let envelope = Envelope::parse(bytes).map_err(|e| malformed(e.to_string()))?;
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(malformed(format!(
            "payload type {:?} is not {IN_TOTO_PAYLOAD_TYPE}",
            envelope.payload_type
        )));
    }
    Ok(envelope)
}

/// Marks `statement` as signed under the capsule whose file bytes are `capsule`, and in
/// `environment`: on every subject, the capsule's digest and bytes, and the environment.
pub fn annotate(statement: &mut Statement, capsule: &[u8], environment: &str) {
    let value = serde_json::json!({
        "digest": format!("sha256:{}", sha256_hex(capsule)),
        "envelope": STANDARD.encode(capsule),
    });
    for subject in &mut statement.subject {
        subject
            .annotations
            .insert(CAPSULE_ANNOTATION.to_owned(), value.clone());
        subject.annotations.insert(
            ENVIRONMENT_ANNOTATION.to_owned(),
            Value::String(environment.to_owned()),
        );
    }
}

/// The capsule bytes an annotation carries, checked against the digest it names.
fn carried_bytes(value: &Value) -> Result<Vec<u8>, Refusal> {
    let digest = value
        .get("digest")
        .and_then(Value::as_str)
        .and_then(|d| d.strip_prefix("sha256:"))
        .ok_or_else(|| malformed(format!("{CAPSULE_ANNOTATION} has no sha256: digest")))?;
    let encoded = value
        .get("envelope")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(format!("{CAPSULE_ANNOTATION} has no envelope")))?;
    // Base64 of at most MAX_CAPSULE_BYTES: bounded before decoding.
    if encoded.len() > MAX_CAPSULE_BYTES / 3 * 4 + 4 {
        return Err(malformed(format!(
            "over the {MAX_CAPSULE_BYTES}-byte limit"
        )));
    }
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|_| malformed("the envelope is not base64"))?;
    let actual = sha256_hex(&bytes);
    if !actual.eq_ignore_ascii_case(digest) {
        return Err(Refusal::CapsuleDigestMismatch {
            named: digest.to_owned(),
            actual,
        });
    }
    Ok(bytes)
}

/// Whether a statement payload may carry a capsule: a cheap byte search before parsing, so
/// envelopes without one cost nothing more. A payload that spells the annotation some other
/// way (JSON escapes) is caught after verification ([`statement_capsule`]) and refused.
pub(crate) fn may_carry(payload: &[u8]) -> bool {
    let needle = CAPSULE_ANNOTATION.as_bytes();
    payload.windows(needle.len()).any(|w| w == needle)
}

/// The capsule annotation of any subject of `statement`, when one has it.
pub(crate) fn statement_capsule(statement: &Statement) -> Option<&Value> {
    statement
        .subject
        .iter()
        .find_map(|s| s.annotations.get(CAPSULE_ANNOTATION))
}

/// The capsule an evidence envelope carries, read without checking any signature (its
/// digest is checked against the bytes): `None` when it carries none. For the expiry check of
/// an envelope already verified, and for `evidence verify`'s output.
pub fn carried(envelope: &[u8]) -> Result<Option<Capsule>, Refusal> {
    let envelope = Envelope::parse(envelope).map_err(|e| Refusal::Malformed {
        what: e.to_string(),
    })?;
    if !may_carry(&envelope.payload) {
        return Ok(None);
    }
    let statement: Statement = serde_json::from_slice(&envelope.payload)
        .map_err(|e| malformed(format!("statement: {e}")))?;
    match statement_capsule(&statement) {
        Some(value) => Capsule::read(&carried_bytes(value)?).map(Some),
        None => Ok(None),
    }
}

/// Verifies an evidence envelope that carries a capsule: by the capsule alone. Returns the
/// runner to verify the envelope with (the capsule's runner key, allowed the suites both the
/// capsule and its signer's entry allow), the capsule and its signer. The envelope's own
/// signature, subject and suite are the caller's (`verify`), with the refusals mapped by
/// [`map_refusal`].
pub(crate) fn trusted_runner<'s>(
    statement: &Statement,
    signers: &'s [CapsuleSigner],
) -> Result<(crate::TrustedRunner, Capsule, &'s CapsuleSigner), Refusal> {
    let Some(value) = statement_capsule(statement) else {
        return Err(malformed("no capsule annotation"));
    };
    let bytes = carried_bytes(value)?;
    let (capsule, signer) = Capsule::open(&bytes, signers)?;
    let suites = capsule
        .suites
        .intersection(&signer.suites)
        .cloned()
        .collect();
    let runner = crate::TrustedRunner {
        name: format!("capsule:{}:{}", signer.name, short(&capsule.digest)),
        key: capsule.runner_key.clone(),
        suites,
        vex: false,
    };
    Ok((runner, capsule, signer))
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// After the envelope verified under the capsule's runner key: the suite and environment it
/// names against the capsule and the signer's entry.
pub(crate) fn check_scope(
    statement: &Statement,
    suite: &str,
    capsule: &Capsule,
    signer: &CapsuleSigner,
) -> Result<(), Refusal> {
    if !capsule.suites.contains(suite) {
        return Err(Refusal::CapsuleOtherSuite {
            suite: suite.to_owned(),
            allowed: capsule.suites.iter().cloned().collect(),
        });
    }
    if !signer.suites.contains(suite) {
        return Err(Refusal::CapsuleNotDelegated {
            signer: signer.name.clone(),
            what: format!("suite {suite:?}"),
        });
    }
    let environments: BTreeSet<&str> = statement
        .subject
        .iter()
        .filter_map(|s| s.annotations.get(ENVIRONMENT_ANNOTATION))
        .map(|v| v.as_str().unwrap_or(""))
        .collect();
    let environment = match environments.into_iter().collect::<Vec<_>>().as_slice() {
        [one] => (*one).to_owned(),
        [] => String::new(),
        _ => return Err(malformed("subjects name different environments")),
    };
    if environment != capsule.environment {
        return Err(Refusal::CapsuleOtherEnvironment {
            found: environment,
            allowed: capsule.environment.clone(),
        });
    }
    if !signer.environments.contains(&capsule.environment) {
        return Err(Refusal::CapsuleNotDelegated {
            signer: signer.name.clone(),
            what: format!("environment {:?}", capsule.environment),
        });
    }
    Ok(())
}

/// The refusal of the envelope's own signature check, in the capsule's terms: a signature by
/// another key than the capsule's runner key is `capsule_wrong_key`.
pub(crate) fn map_signature_refusal(error: DsseError, capsule: &Capsule) -> Refusal {
    match error {
        DsseError::Malformed { what } => Refusal::Malformed { what },
        DsseError::UnknownKey { keyids } => Refusal::CapsuleWrongKey {
            expected: capsule.runner_key.key_id().to_owned(),
            found: keyids,
        },
        DsseError::BadSignature { keyid } => Refusal::BadSignature { keyid },
    }
}

/// Verifies an evidence envelope that carries a capsule. See the module doc.
pub fn verify_evidence(
    envelope: Envelope,
    signers: &[CapsuleSigner],
    expected: &crate::Expected<'_>,
) -> Result<crate::AcceptedEvidence, Refusal> {
    let statement: Statement =
        serde_json::from_slice(&envelope.payload).map_err(|e| Refusal::Malformed {
            what: format!("statement: {e}"),
        })?;
    let (runner, capsule, signer) = trusted_runner(&statement, signers)?;
    let runners = [runner];
    let (verified, who) = envelope
        .verify(&runners, |r| &r.key)
        .map_err(|e| map_signature_refusal(e, &capsule))?;
    let scope = statement.clone();
    let accepted = match crate::verify::accept_statement(&verified, &who, expected, statement) {
        Err(Refusal::SuiteNotAllowed { suite, .. }) => {
            check_scope_suite_first(&suite, &capsule, signer)?;
            return Err(Refusal::CapsuleOtherSuite {
                suite,
                allowed: capsule.suites.iter().cloned().collect(),
            });
        }
        other => other?,
    };
    // `verified` holds the payload `scope` was parsed from: the signature covers it.
    check_scope(&scope, &accepted.suite, &capsule, signer)?;
    Ok(accepted)
}

/// The suite refusal with the most precise reason: outside the capsule, or in the capsule
/// but beyond what its signer may delegate.
fn check_scope_suite_first(
    suite: &str,
    capsule: &Capsule,
    signer: &CapsuleSigner,
) -> Result<(), Refusal> {
    if capsule.suites.contains(suite) && !signer.suites.contains(suite) {
        return Err(Refusal::CapsuleNotDelegated {
            signer: signer.name.clone(),
            what: format!("suite {suite:?}"),
        });
    }
    Ok(())
}
