//! [`DecidedRecord`]: the fields of a stored decision (the `decided` event's data) the
//! lifecycle reads, parsed strictly. A missing or mistyped field is an error: a record that
//! cannot say how many approvals it needs never reads as "none".

use countersign_policy::Tier;
use serde::{Deserialize, Serialize};

/// One part of a change its own owners must approve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// A node ref, `governance files`, `unmapped files` or `the change`.
    pub subject: String,
    pub reasons: Vec<String>,
    /// Who can satisfy it, as principals.
    pub eligible: Vec<String>,
    /// How many of them must approve.
    pub min: u32,
}
use serde_json::Value;

/// What a decision requires of the proposal's current head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecidedRecord {
    pub tier: Tier,
    /// The system authorizes the change without people (an automated tier).
    pub automated: bool,
    /// Distinct eligible humans who must approve.
    pub approvals_required: u32,
    /// Each must be met by approvals of its own eligible people (empty for an automated
    /// tier).
    pub requirements: Vec<Requirement>,
    /// Who may approve, as principals (`human:dave`). Never an author (the decision already
    /// excluded the proposer; the tally also excludes every commit author).
    pub eligible_approvers: Vec<String>,
    /// Every suite the validation plan names.
    pub validation_plan: Vec<String>,
    /// Planned suites some runner trusted at the base may attest: what the proposal waits for.
    pub required_suites: Vec<String>,
    /// Required suites with no accepted evidence for the head yet.
    pub missing_suites: Vec<String>,
    pub policy_version: String,
}

/// A stored decision the lifecycle cannot read.
#[derive(Debug, thiserror::Error)]
#[error("the decision record is unreadable: {0}")]
pub struct RecordError(String);

/// The record as stored. Every field is required: no `#[serde(default)]` here.
#[derive(Deserialize)]
struct Stored {
    tier: String,
    automated: bool,
    approvals_required: u32,
    requirements: Vec<Requirement>,
    eligible_approvers: Vec<String>,
    validation_plan: Vec<String>,
    required_suites: Vec<String>,
    missing_suites: Vec<String>,
    policy_version: String,
}

impl DecidedRecord {
    /// Reads the `decided` event's data as the server stored it.
    pub fn from_json(record: &Value) -> Result<DecidedRecord, RecordError> {
        let stored = Stored::deserialize(record).map_err(|e| RecordError(e.to_string()))?;
        let tier: Tier = stored
            .tier
            .parse()
            .map_err(|e: countersign_policy::TierError| RecordError(e.to_string()))?;
        if stored.automated != tier.is_automated() {
            return Err(RecordError(format!(
                "`automated` is {} for tier {tier}",
                stored.automated
            )));
        }
        if stored.automated && stored.approvals_required > 0 {
            return Err(RecordError(format!(
                "an automated decision requires {} approvals",
                stored.approvals_required
            )));
        }
        if !stored.automated && stored.requirements.is_empty() {
            // A decision for people names whose approval it needs; without requirements
            // any eligible approver could satisfy every part of it.
            return Err(RecordError(format!(
                "tier {tier} needs approvals but the record lists no requirements"
            )));
        }
        for r in &stored.requirements {
            if r.min == 0 {
                return Err(RecordError(format!(
                    "requirement {:?} needs 0 approvals",
                    r.subject
                )));
            }
        }
        Ok(DecidedRecord {
            tier,
            automated: stored.automated,
            approvals_required: stored.approvals_required,
            requirements: stored.requirements,
            eligible_approvers: stored.eligible_approvers,
            validation_plan: stored.validation_plan,
            required_suites: stored.required_suites,
            missing_suites: stored.missing_suites,
            policy_version: stored.policy_version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record() -> Value {
        json!({
            "tier": "single_approver",
            "automated": false,
            "approvals_required": 1,
            "requirements": [{ "subject": "component:default/pay", "reasons": ["criticality high"], "eligible": ["human:dave"], "min": 1 }],
            "eligible_approvers": ["human:dave"],
            "validation_plan": ["unit"],
            "required_suites": ["unit"],
            "missing_suites": [],
            "policy_version": "sha256:abc",
            "reasons": [],
        })
    }

    #[test]
    fn reads_a_record_and_refuses_a_missing_or_inconsistent_field() {
        let read = DecidedRecord::from_json(&record()).unwrap();
        assert_eq!(read.tier, Tier::SingleApprover);
        assert_eq!(read.approvals_required, 1);
        for field in [
            "tier",
            "automated",
            "approvals_required",
            "requirements",
            "eligible_approvers",
            "validation_plan",
            "required_suites",
            "missing_suites",
            "policy_version",
        ] {
            let mut broken = record();
            broken.as_object_mut().unwrap().remove(field);
            let error = DecidedRecord::from_json(&broken).unwrap_err().to_string();
            assert!(error.contains(field), "{field}: {error}");
        }
        let mut wrong = record();
        wrong["approvals_required"] = json!("1");
        assert!(DecidedRecord::from_json(&wrong).is_err());
        let mut inconsistent = record();
        inconsistent["automated"] = json!(true);
        assert!(DecidedRecord::from_json(&inconsistent).is_err());
        let mut unknown = record();
        unknown["tier"] = json!("yolo");
        assert!(DecidedRecord::from_json(&unknown).is_err());
    }
}
