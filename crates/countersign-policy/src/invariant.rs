//! The invariants no policy can lift, enforced in Rust after Cedar has spoken.
//!
//! Each invariant names the least restrictive tier it allows. Approval-time invariants
//! (an agent never approves, an author never approves its own change, two distinct humans
//! for change control) live with approvals: here only the tier.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::tier::Tier;

pub(crate) struct InvariantHit {
    pub name: &'static str,
    /// The tier the change may take at least.
    pub minimum: Tier,
    pub message: &'static str,
    pub facts: &'static [&'static str],
}

/// The invariants that hold for these facts, in a fixed order.
pub(crate) fn check(facts: &BTreeMap<String, Value>) -> Vec<InvariantHit> {
    let non_empty = |name: &str| {
        facts
            .get(name)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    };
    let positive = |name: &str| facts.get(name).and_then(Value::as_i64).unwrap_or(0) > 0;
    let is_true = |name: &str| facts.get(name).and_then(Value::as_bool).unwrap_or(false);

    let mut hits = Vec::new();
    if non_empty("never_automate_touched") {
        hits.push(InvariantHit {
            name: "never-automate-surface",
            minimum: Tier::SingleApprover,
            message: "A surface on the never-automate list is touched: the change never takes an automated route.",
            facts: &["never_automate_touched"],
        });
    }
    if is_true("governance_touched")
        && facts.get("author_kind").and_then(Value::as_str) == Some("agent")
    {
        hits.push(InvariantHit {
            name: "agent-edits-governance",
            minimum: Tier::ChangeControl,
            message: "An agent edits countersign's own graph, policy or configuration: always change control.",
            facts: &["governance_touched", "author_kind"],
        });
    }
    if positive("unmapped_files") {
        hits.push(InvariantHit {
            name: "unmapped-never-auto-merge",
            minimum: Tier::NotifyAndProceed,
            message: "Some changed files map to no node: the change never auto-merges.",
            facts: &["unmapped_files"],
        });
    }
    hits
}
