//! Recording decisions in the audit log: the events a decision produces, the blobs they
//! refer to, and the authorization statement an automated decision issues.
//!
//! What is recorded is what re-derivation needs. Every decision records the proposal (base,
//! head, author, declared tier, changed paths) and the digest of every governed file it read,
//! so a bundle can replay it. An automated decision records strictly more: nobody signed
//! off on it, so it also records every fact the policies saw and issues a signed SLSA
//! verification summary about the head commit for deploy-time gates.

use std::collections::BTreeMap;

use crate::error::{Classify, Result, bail};
use countersign_audit::bundle::Blob;
use countersign_audit::{Event, EventKind, Signer};
use countersign_evidence::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE, SigningKey};
use countersign_repo::{CONFIG_FILE, Config};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::evaluate::{Evaluation, Proposer};
use crate::report::EvaluationReport;

/// The principal countersign itself acts as when the system authorizes.
pub const SYSTEM_ACTOR: &str = "system:countersign";
/// The SLSA Verification Summary predicate.
pub const VSA_PREDICATE: &str = "https://slsa.dev/verification_summary/v1";
/// `verifier.id` of the summaries countersign issues.
pub const VERIFIER_ID: &str = "https://countersign.dev/verifier/v1";

/// The events of one decision, in log order, and the blobs they refer to.
pub struct Record {
    pub subject: String,
    pub events: Vec<Event>,
    pub blobs: Vec<Blob>,
}

/// A stable proposal id for a change: the same base, head and author give the same id.
pub fn proposal_id(base: &str, head: &str, author: &str) -> String {
    let hash = Sha256::digest(format!("{base}..{head} by {author}").as_bytes());
    format!("p-{}", hex::encode(&hash[..8]))
}

/// The `[repository] name` of the base's countersign.toml, as the decision read it: who the
/// repository is in records, evidence and authorization statements (e.g.
/// `github.com/acme/shop`). `None` when the base declares none (or has no config).
pub fn repository_name(evaluation: &Evaluation) -> Result<Option<String>> {
    let Some(Some(bytes)) = evaluation.inputs.get(CONFIG_FILE) else {
        return Ok(None);
    };
    let text =
        std::str::from_utf8(bytes).invalid(|| "reading countersign.toml at the base".to_owned())?;
    Ok(Config::parse(text)?.repository.name)
}

/// Builds the record of `evaluation` under its [`proposal_id`]. `now` is an RFC 3339 time
/// from the caller's clock; `log_key` signs the authorization statement of an automated
/// decision. The record, and that statement, name the repository by the base's
/// `[repository] name`: a change recorded from a repository that declares none is refused,
/// as a local path identifies nothing a deploy gate or an auditor elsewhere could match.
pub fn record(
    evaluation: &Evaluation,
    proposer: &Proposer,
    now: &str,
    log_key: &Signer,
) -> Result<Record> {
    let report = &evaluation.report;
    let (Some(base), Some(head)) = (&report.change.base, &report.change.head) else {
        bail!("only a change between two commits can be recorded");
    };
    let Some(repository) = repository_name(evaluation)? else {
        bail!(
            "recording needs `[repository] name` (e.g. \"github.com/acme/shop\") in countersign.toml at the base: the record and its signed authorization statement name the repository, and a local directory names none (see docs/config.md)"
        );
    };
    let subject = proposal_id(base, head, &report.author);
    record_as(
        subject,
        evaluation,
        proposer,
        &repository,
        now,
        Some(log_key),
        Map::new(),
    )
}

/// [`record`] under a caller-chosen `subject` (the server's proposal id), with `annotations`
/// added to the `decided` event's data (fields re-derivation ignores, such as the server's
/// eligible approvers). Without a `log_key`, an automated decision is still recorded as
/// authorized, but its `authorized` event carries no signed verification summary: whoever
/// has no log key cannot issue one, and re-derivation then has no statement to check.
pub fn record_as(
    subject: String,
    evaluation: &Evaluation,
    proposer: &Proposer,
    repository: &str,
    now: &str,
    log_key: Option<&Signer>,
    annotations: Map<String, Value>,
) -> Result<Record> {
    let report = &evaluation.report;
    let (Some(base), Some(head)) = (&report.change.base, &report.change.head) else {
        bail!("only a change between two commits can be recorded");
    };
    let mut blobs = Vec::new();
    let mut inputs = BTreeMap::new();
    for (path, bytes) in &evaluation.inputs {
        let entry = match bytes {
            Some(bytes) => {
                let blob = Blob::new(bytes.clone());
                let d = Value::from(blob.digest());
                blobs.push(blob);
                d
            }
            None => Value::Null,
        };
        inputs.insert(path.clone(), entry);
    }
    // The accepted envelopes: re-derivation re-verifies them against the recorded runners.
    let evidence: Vec<String> = evaluation
        .evidence
        .iter()
        .map(|envelope| {
            let blob = Blob::new(envelope.clone());
            let d = blob.digest().to_owned();
            blobs.push(blob);
            d
        })
        .collect();
    let proposed = json!({
        "repository": repository,
        "base": base,
        "head": head,
        "author": report.author,
        "declared_tier": proposer.declared_tier,
        "changes": report.change.paths,
    });
    let mut decided = json!({
        "tier": report.tier,
        "automated": report.automated,
        "reasons": recorded_reasons(report),
        "approvals_required": report.approvers.required,
        "graph_version": report.graph_version,
        "policy_version": report.policy_version,
        "inputs": inputs,
        "evidence": evidence,
    });
    if let Some(dispatcher) = &proposer.dispatched_by {
        // Agent provenance, a decision input (the `dispatched_by` fact): re-derived with it.
        decided["dispatched_by"] = Value::from(dispatcher.as_str());
    }
    if let Some(object) = decided.as_object_mut() {
        for (name, value) in annotations {
            // Never overwrite what re-derivation compares.
            object.entry(name).or_insert(value);
        }
    }
    let actor = report.author.clone();
    let mut events = vec![event(EventKind::Proposed, now, &subject, &actor, proposed)?];
    if report.automated {
        decided["facts"] =
            serde_json::to_value(&report.facts).internal(|| "encoding the facts".into())?;
        events.push(event(
            EventKind::Decided,
            now,
            &subject,
            SYSTEM_ACTOR,
            decided,
        )?);
        let mut authorized = json!({ "commit": head, "tier": report.tier });
        if let Some(log_key) = log_key {
            let vsa = summary(evaluation, repository, head, now, log_key)?;
            let vsa = Blob::new(vsa);
            authorized["verification_summary"] = Value::from(vsa.digest());
            blobs.push(vsa);
        }
        events.push(event(
            EventKind::Authorized,
            now,
            &subject,
            SYSTEM_ACTOR,
            authorized,
        )?);
    } else {
        events.push(event(
            EventKind::Decided,
            now,
            &subject,
            SYSTEM_ACTOR,
            decided,
        )?);
    }
    Ok(Record {
        subject,
        events,
        blobs,
    })
}

/// The reasons as a `decided` event records them: what identifies each reason (source, id,
/// effect, tier), not its wording, which may improve without changing the decision. Bundle
/// verification compares re-derived reasons in this same shape.
pub fn recorded_reasons(report: &EvaluationReport) -> Vec<Value> {
    report
        .reasons
        .iter()
        .map(|r| json!({"source": r.source, "id": r.id, "effect": r.effect, "tier": r.tier}))
        .collect()
}

fn event(kind: EventKind, at: &str, subject: &str, actor: &str, data: Value) -> Result<Event> {
    Event::new(kind, at, subject, actor, data).internal(|| "building an audit event".into())
}

/// The SLSA Verification Summary of an automated decision, from its evaluation.
fn summary(
    evaluation: &Evaluation,
    repository: &str,
    head: &str,
    now: &str,
    log_key: &Signer,
) -> Result<Vec<u8>> {
    let report = &evaluation.report;
    let tier = serde_json::to_value(report.tier).internal(|| "encoding the tier".into())?;
    verification_summary(
        repository,
        head,
        tier.as_str().unwrap_or("unknown"),
        &report.policy_version,
        now,
        log_key,
    )
}

/// The SLSA Verification Summary (v1) saying countersign authorized commit `head` of
/// `repository` at `tier` (its recorded name, e.g. `single_approver`) under the policy
/// version `policy_version`, as a DSSE envelope (JSON bytes) signed with the log key. The
/// statement an `authorized` event names under `verification_summary`, whether the system
/// authorized at once or enough people approved.
pub fn verification_summary(
    repository: &str,
    head: &str,
    tier: &str,
    policy_version: &str,
    now: &str,
    log_key: &Signer,
) -> Result<Vec<u8>> {
    let tier = tier.to_ascii_uppercase();
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{ "name": repository, "digest": { "gitCommit": head } }],
        "predicateType": VSA_PREDICATE,
        "predicate": {
            "verifier": { "id": VERIFIER_ID, "version": { "countersign": env!("CARGO_PKG_VERSION") } },
            "timeVerified": now,
            "resourceUri": format!("git+{repository}@{head}"),
            "policy": {
                "uri": "https://countersign.dev/policy",
                "digest": { "sha256": policy_version },
            },
            "verificationResult": "PASSED",
            // Custom levels must not start with SLSA_ (VSA v1, verifiedLevels).
            "verifiedLevels": [format!("COUNTERSIGN_{tier}")],
        },
    });
    let key = SigningKey::from_seed(&log_key.seed());
    let payload =
        serde_json::to_vec(&statement).internal(|| "encoding the verification summary".into())?;
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, payload, &key);
    Ok(envelope.to_json())
}
