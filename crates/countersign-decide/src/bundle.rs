//! Re-deriving the decision of a verified bundle: the second half of `countersign bundle
//! verify`, after countersign-audit checked the checkpoint, proofs and blob digests.
//!
//! The recorded inputs (governed files, changed paths, proposer, evidence envelopes) go
//! through [`evaluate::rederive`], the pipeline that made the decision; every difference in
//! tier, reasons or graph/policy version from the `decided` event is listed. Each
//! authorization statement recorded must be signed by the log key and be about the commit
//! its `authorized` event names. Shared by the binary and the server's tests, so a bundle from
//! either is judged by one implementation.

use std::collections::BTreeMap;

use countersign_audit::{Event, EventKind, VerifiedBundle, Verifier};
use countersign_evidence::dsse::{Envelope, PublicKey};
use countersign_repo::{ChangeKind, ChangedPath};
use serde_json::Value;

use crate::error::{Classify, DecideError, Result, bail};
use crate::evaluate::{self, Proposer};
use crate::record;

fn last_event(bundle: &VerifiedBundle, kind: EventKind) -> Option<&Event> {
    bundle
        .events
        .iter()
        .rev()
        .map(|(_, e)| e)
        .find(|e| e.kind == kind)
}

fn field<'a>(event: &'a Event, name: &str) -> Result<&'a Value> {
    event
        .data
        .get(name)
        .ok_or_else(|| DecideError::invalid(format!("the {:?} event has no {name:?}", event.kind)))
}

/// Re-derives the decision recorded in `bundle` and lists every difference from the record
/// (empty: same tier, reasons and versions). `Err` when the bundle lacks what re-derivation
/// needs, or an authorization statement is not signed by `verifier`'s key or is about
/// another commit than its event authorized.
pub fn rederive(bundle: &VerifiedBundle, verifier: &Verifier) -> Result<Vec<String>> {
    let proposed = last_event(bundle, EventKind::Proposed)
        .ok_or_else(|| DecideError::invalid("the bundle has no `proposed` event"))?;
    let decided = last_event(bundle, EventKind::Decided)
        .ok_or_else(|| DecideError::invalid("the bundle has no `decided` event"))?;
    let blob = |d: &str| -> Result<Vec<u8>> {
        bundle
            .blobs
            .get(d)
            .cloned()
            .ok_or_else(|| DecideError::invalid(format!("blob {d} is missing from the bundle")))
    };
    let mut inputs = BTreeMap::new();
    let recorded_inputs = field(decided, "inputs")?
        .as_object()
        .ok_or_else(|| DecideError::invalid("`inputs` is not an object"))?;
    for (path, d) in recorded_inputs {
        let content = match d.as_str() {
            Some(d) => Some(blob(d)?),
            None => None,
        };
        inputs.insert(path.clone(), content);
    }
    let changes = field(proposed, "changes")?
        .as_array()
        .ok_or_else(|| DecideError::invalid("`changes` is not a list"))?
        .iter()
        .map(|c| {
            let path = c["path"].as_str().unwrap_or_default().to_string();
            let kind = match (c["status"].as_str(), c["from"].as_str()) {
                (Some("added"), _) => ChangeKind::Added,
                (Some("deleted"), _) => ChangeKind::Deleted,
                (Some("renamed"), Some(from)) => ChangeKind::Renamed {
                    from: from.to_string(),
                },
                _ => ChangeKind::Modified,
            };
            ChangedPath { path, kind }
        })
        .collect();
    let proposer = Proposer {
        author: field(proposed, "author")?
            .as_str()
            .unwrap_or_default()
            .to_string(),
        declared_tier: proposed.data["declared_tier"].as_str().map(str::to_string),
    };
    let base = proposed.data["base"].as_str().map(str::to_string);
    let head = proposed.data["head"].as_str().map(str::to_string);
    let envelopes = match decided.data.get("evidence").and_then(Value::as_array) {
        Some(digests) => digests
            .iter()
            .map(|d| blob(d.as_str().unwrap_or_default()))
            .collect::<Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    let again = evaluate::rederive(inputs, changes, &proposer, base, head.clone(), envelopes)?;
    let report = &again.report;
    let mut differences = Vec::new();
    let recorded_tier = decided.data["tier"].clone();
    let derived_tier =
        serde_json::to_value(report.tier).internal(|| "encoding the re-derived tier".into())?;
    if recorded_tier != derived_tier {
        differences.push(format!(
            "tier: recorded {recorded_tier}, re-derived {derived_tier}"
        ));
    }
    for (name, derived) in [
        ("graph_version", &report.graph_version),
        ("policy_version", &report.policy_version),
    ] {
        if decided.data[name].as_str() != Some(derived.as_str()) {
            differences.push(format!(
                "{name}: recorded {}, re-derived {derived}",
                decided.data[name]
            ));
        }
    }
    let derived_reasons = record::recorded_reasons(report);
    let recorded_reasons = decided.data["reasons"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for r in &recorded_reasons {
        if !derived_reasons.contains(r) {
            differences.push(format!("reason recorded but not re-derived: {r}"));
        }
    }
    for r in &derived_reasons {
        if !recorded_reasons.contains(r) {
            differences.push(format!("reason re-derived but not recorded: {r}"));
        }
    }
    // Each authorization's statement must be the log key's and about the commit that
    // event authorized (after a head move, an earlier authorization is about an earlier
    // head). One without a statement (recorded without a log key) has nothing to check
    // beyond its inclusion in the log.
    for (_, authorized) in bundle
        .events
        .iter()
        .filter(|(_, e)| e.kind == EventKind::Authorized)
    {
        let Some(summary) = authorized.data.get("verification_summary") else {
            continue;
        };
        let d = summary
            .as_str()
            .ok_or_else(|| DecideError::invalid("`verification_summary` is not a digest"))?;
        let commit = authorized.data["commit"]
            .as_str()
            .or(head.as_deref())
            .unwrap_or_default();
        check_summary(&blob(d)?, verifier, commit)?;
    }
    Ok(differences)
}

/// Checks an authorization statement: a DSSE envelope signed by the log key (`verifier`)
/// whose in-toto statement is about `commit`. Returns the statement.
pub fn check_summary(envelope: &[u8], verifier: &Verifier, commit: &str) -> Result<Value> {
    let envelope = Envelope::parse(envelope)
        .invalid(|| "the verification summary is not a DSSE envelope".into())?;
    let key = PublicKey::from_bytes(&verifier.public_key())
        .invalid(|| "the log key is not an Ed25519 key".into())?;
    let (verified, _) = envelope
        .verify(std::slice::from_ref(&key), |k| k)
        .invalid(|| "the verification summary is not signed by the log key".into())?;
    let statement: Value = serde_json::from_slice(verified.payload())
        .invalid(|| "the verification summary's statement is not JSON".into())?;
    if statement["subject"][0]["digest"]["gitCommit"].as_str() != Some(commit) {
        bail!("the verification summary is about another commit than the one authorized");
    }
    Ok(statement)
}
